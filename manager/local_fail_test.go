package manager

import (
	"bytes"
	"context"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/vws-grid/vws/internal/tmpfstest"
)

// TestPoolCopyFailingIsNotCalledBad: staging from the co-located pool that fails
// because the cache's disk is full, or because the deploy was cancelled, says so in
// the log, not that the pool has a bad copy, which sends the administrator looking
// for damage that is not there. A copy whose bytes differ still is called bad.
func TestPoolCopyFailingIsNotCalledBad(t *testing.T) {
	data, digest := testImage(3<<20 + 5)
	for _, tc := range []struct {
		name           string
		full, cancel   bool
		damaged, isBad bool
	}{
		{name: "full disk", full: true}, {name: "cancelled", cancel: true}, {name: "damaged", damaged: true, isBad: true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			hs, _ := countingImages(t, data)
			m := localManager(t, nil, hs)
			var logged bytes.Buffer
			m.log = slog.New(slog.NewTextHandler(&logged, nil))
			poolDir := t.TempDir() // another file system than the cache's tmpfs: a copy
			if !tc.full {
				poolDir = filepath.Join(filepath.Dir(m.cache.dir), "pool")
				os.Mkdir(poolDir, 0o700)
			}
			pooled := data
			if tc.damaged {
				pooled = bytes.Clone(data)
				pooled[12345] ^= 0xff
			}
			if err := os.WriteFile(filepath.Join(poolDir, digest), pooled, 0o640); err != nil {
				t.Fatal(err)
			}
			m.cfg.LocalImages = dirPool{poolDir}
			if tc.full {
				tmpfstest.Mount(t, m.cache.dir, "1m")
			}
			ctx, cancel := context.WithCancel(context.Background())
			defer cancel()
			if tc.cancel { // the deploy's caller gives up as the pool's copy is checked
				m.cfg.LocalImages = cancellingPool{dirPool{poolDir}, cancel}
			}
			img := &manifestImage{Role: "base", Digest: digest, Size: int64(len(data)), Location: hs.URL + "/" + digest, Chunks: listOf(t, data)}
			m.stageShared(ctx, img, "", "", nil)
			if bad := strings.Contains(logged.String(), "bad copy"); bad != tc.isBad {
				t.Errorf("the log calls the pool's copy bad: %v, want %v:\n%s", bad, tc.isBad, logged.String())
			}
		})
	}
}

// cancellingPool cancels the deploy as its image is taken from the pool.
type cancellingPool struct {
	dirPool
	cancel context.CancelFunc
}

func (p cancellingPool) Path(digest string) (string, error) {
	p.cancel()
	return p.dirPool.Path(digest)
}
