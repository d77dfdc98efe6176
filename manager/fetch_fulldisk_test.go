package manager

import (
	"context"
	"errors"
	"os"
	"strings"
	"syscall"
	"testing"

	"github.com/vws-grid/vws/internal/chunkhash"
	"github.com/vws-grid/vws/internal/tmpfstest"
)

// TestFullDiskFetchIsNotCalledResumable: a cache that fills up during a one-stream
// fetch has its .part removed (it holds space the administrator must free), so the
// error must not call the transfer resumable.
func TestFullDiskFetchIsNotCalledResumable(t *testing.T) {
	for _, chunked := range []bool{true, false} {
		_, hs, img := rangeImage(t, 3<<20+5)
		if !chunked {
			img.Chunks = chunkhash.List{}
		}
		m := localManager(t, nil, hs) // one stream
		tmpfstest.Mount(t, m.cache.dir, "1m")
		_, _, err := m.stageShared(context.Background(), img, "", "", nil)
		if !errors.Is(err, syscall.ENOSPC) {
			t.Fatalf("chunked %v: staging 3 MiB into a 1 MiB cache: %v", chunked, err)
		}
		if _, serr := os.Stat(m.cache.path(img.Digest) + ".part"); serr == nil {
			t.Errorf("chunked %v: the .part of a full disk was kept", chunked)
		}
		if strings.Contains(err.Error(), "resumable") {
			t.Errorf("chunked %v: the error calls the transfer resumable, its .part removed: %v", chunked, err)
		}
	}
}
