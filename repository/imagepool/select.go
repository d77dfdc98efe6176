package imagepool

import (
	"fmt"
	"slices"
	"strings"

	"github.com/vws-grid/vws/internal/errdefs"
)

// Select picks the one image of all that fits want (see Match), for callers that
// already hold a listing (the Factory gets it over SOAP).
func Select(all []Image, want Meta) (Image, error) {
	want, err := normalizeMeta(want, false)
	if err != nil {
		return Image{}, err
	}
	var fits []Image
	for _, img := range all {
		if (want.Name == "" || img.Name == want.Name) && fitsMeta(img, want) {
			// Names of one content are one image to stand on: the first (in the
			// listing's order) stands for the others, which would be no choice.
			if img.Digest != "" && slices.ContainsFunc(fits, func(f Image) bool { return f.Digest == img.Digest }) {
				continue
			}
			fits = append(fits, img)
		}
	}
	switch len(fits) {
	case 1:
		return fits[0], nil
	case 0:
		if len(all) == 0 {
			return Image{}, fmt.Errorf("%w: no image matches %s: the image pool is empty; import one with `vws image import`", errdefs.ErrResourceUnknown, describeWant(want))
		}
		var have []string
		for i, img := range all {
			if i == 10 {
				have = append(have, fmt.Sprintf("and %d more", len(all)-10))
				break
			}
			have = append(have, img.Name+" ("+describeImage(img)+")")
		}
		return Image{}, fmt.Errorf("%w: no image matches %s; the pool has %s", errdefs.ErrResourceUnknown, describeWant(want), strings.Join(have, "; "))
	}
	names := make([]string, len(fits))
	for i, img := range fits {
		names[i] = img.Name
	}
	return Image{}, &AmbiguousError{Want: describeWant(want), Candidates: names}
}
