package repository

import (
	"context"
	"net/http"
	"path/filepath"
	"testing"
	"time"

	"github.com/vws-grid/vws/internal/qcow2"
)

// TestRelativeDataDirectory: `vws serve --data ./data` gives the Repository a relative
// directory. Clones still work, and every backing file the repository writes into a
// qcow2 header is absolute: qemu resolves a relative one against the overlay's own
// directory, where it names nothing.
func TestRelativeDataDirectory(t *testing.T) {
	needQemu(t)
	t.Chdir(t.TempDir())
	f := newFixtureIn(t, "data")
	ctx := context.Background()
	key := f.create("golden", "", "")
	c, err := f.r.Clone(ctx, key, "copy", "o", time.Now().Add(time.Hour))
	if err != nil {
		t.Fatalf("clone with a relative data directory: %v", err)
	}
	for _, k := range []string{key, c.Key} {
		info, err := qcow2.ReadInfo(filepath.Join(f.r.workspaceDir(k), f.chain(k).Overlay))
		if err != nil || !filepath.IsAbs(info.BackingFile) {
			t.Errorf("workspace %s's overlay is backed by %q (%v); want an absolute path", k, info.BackingFile, err)
		}
	}
	// An uploaded overlay is re-pointed at the top layer.
	m, err := f.r.CheckOut(ctx, key, "host-a", "", nil, &tester)
	if err != nil {
		t.Fatal(err)
	}
	res, rs := f.upload(key, "overlay", m.Token, f.managerOverlay(key, m.Token, m, "write -P 0xcd 0 64k"))
	if rs.code != http.StatusOK {
		t.Fatalf("upload: %d %s", rs.code, rs.body)
	}
	if _, _, err := f.r.CheckIn(ctx, key, CheckInRequest{Token: m.Token, OverlayDigest: res.Digest, OverlaySize: -1, MemorySize: -1}); err != nil {
		t.Fatal(err)
	}
	info, err := qcow2.ReadInfo(filepath.Join(f.r.workspaceDir(key), f.chain(key).Overlay))
	if err != nil || !filepath.IsAbs(info.BackingFile) {
		t.Errorf("the checked-in overlay is backed by %q (%v); want an absolute path", info.BackingFile, err)
	}
}
