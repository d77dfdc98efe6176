package factory

import (
	"testing"
	"time"

	"github.com/vws-grid/vws/repository/imagepool"
)

// TestCreateTakesANameAndDigestOfContentWithTwoNames: the pool may give one content
// two names (README: "a second name for the same content"), and the listing is
// ordered by name. A reference naming the second name with its digest names one
// image — the name and the digest agree — so it is created, not refused as if the
// pool named that digest otherwise.
func TestCreateTakesANameAndDigestOfContentWithTwoNames(t *testing.T) {
	now := time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)
	pool := poolOfTwo()
	alias := pool[0]
	alias.Name = "debian-stable" // after "debian-12" in the listing's order
	reg := &recordingRegistry{images: []imagepool.Image{pool[1], pool[0], alias}}
	for _, where := range []string{
		`<sw:software><sw:image><sw:name>debian-stable</sw:name><sw:digest>` + alias.Digest + `</sw:digest></sw:image></sw:software>`,
		`<hw:hardware><hw:RAM><hw:size>256</hw:size></hw:RAM><hw:CPU><hw:count>1</hw:count></hw:CPU><hw:disk><hw:target>vda</hw:target><hw:image><hw:name>debian-stable</hw:name><hw:digest>` +
			alias.Digest + `</hw:digest></hw:image><hw:boot>true</hw:boot></hw:disk></hw:hardware>`,
	} {
		reg.got = nil
		if _, err := runCreate(t, reg, now, `<vw:virtualWorkspace><vw:category>vm</vw:category>`+where+`</vw:virtualWorkspace>`); err != nil || reg.got == nil || reg.got.BaseImage != alias.Digest {
			t.Errorf("debian-stable with its own digest (also named debian-12): %v", err)
		}
	}
}
