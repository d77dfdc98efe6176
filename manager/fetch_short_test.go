package manager

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/vws-grid/vws/internal/chunkhash"
	"github.com/vws-grid/vws/internal/errdefs"
)

// TestResumeFromAShortRepositoryCopy: a resumed fetch asks for the bytes after its
// .part, and the Repository answers 416 (Range Not Satisfiable), its copy shorter
// than the manifest says. That is the Repository's copy damaged, an
// ImageIntegrityFault saying so, and the .part, which that copy can never complete,
// is not kept to fail every later Deploy the same way. So is a copy that ends inside
// the range asked for (a 206 giving its shorter length).
func TestResumeFromAShortRepositoryCopy(t *testing.T) {
	for _, tc := range []struct {
		name    string
		chunked bool
		streams int
		left    int
	}{
		{"whole hash", false, 1, 1 << 20}, {"pieces, one stream", true, 1, 1 << 20}, {"pieces, streams", true, 4, 1 << 20},
		{"whole hash, ends inside", false, 1, 5 << 19}, {"pieces, one stream, ends inside", true, 1, 5 << 19}, {"pieces, streams, ends inside", true, 4, 5 << 19},
	} {
		t.Run(tc.name, func(t *testing.T) {
			srv, hs, img := rangeImage(t, 3<<20+5)
			if !tc.chunked {
				img.Chunks = chunkhash.List{}
				img.Role = "layer"
			}
			path := filepath.Join(t.TempDir(), "image")
			// An earlier attempt left the first two MiB; the Repository's copy has
			// since lost its end.
			if err := os.WriteFile(path+".part", srv.data[:2*chunkhash.MinChunkBytes], 0o644); err != nil {
				t.Fatal(err)
			}
			srv.data = srv.data[:tc.left]
			err := (&repoClient{http: hs.Client(), streams: tc.streams}).fetch(context.Background(), img, "", path, nil)
			if !errors.Is(err, errdefs.ErrImageIntegrity) {
				t.Fatalf("a Repository copy shorter than the manifest is not an ImageIntegrityFault: %v", err)
			}
			if !strings.Contains(err.Error(), img.Digest) || !strings.Contains(err.Error(), "shorter") {
				t.Errorf("the error does not say the Repository's copy of %s is short: %v", img.Digest, err)
			}
			if _, serr := os.Stat(path + ".part"); serr == nil {
				t.Errorf("the .part was kept, to fail the next attempt the same way")
			}
		})
	}
}
