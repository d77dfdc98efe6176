package manager

import (
	"bytes"
	"context"
	"errors"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/vws-grid/vws/internal/errdefs"
	"github.com/vws-grid/vws/internal/qcow2"
)

// TestAnImageNamingAHostFileIsRefused: qemu opens the files a qcow2 header names
// below the guest's disk (a backing file, an external data file). The manager
// re-points layers and overlays at its own copies, but a base image that names a host
// file of its own — any file the hypervisor can read, another workspace's disk on this
// host — would let the guest read it. Like the image pool at import, staging refuses
// one, and an overlay keeping its data in another file, before anything is defined.
func TestAnImageNamingAHostFileIsRefused(t *testing.T) {
	dir := t.TempDir()
	secret := filepath.Join(dir, "another-workspace-disk.raw")
	if err := os.WriteFile(secret, bytes.Repeat([]byte("secret"), 1<<16), 0o600); err != nil {
		t.Fatal(err)
	}
	qemuImg := func(args ...string) {
		t.Helper()
		if out, err := exec.Command("qemu-img", args...).CombinedOutput(); err != nil {
			t.Fatalf("qemu-img %s: %v: %s", strings.Join(args, " "), err, out)
		}
	}
	rawBase := filepath.Join(dir, "base.raw")
	if err := os.WriteFile(rawBase, bytes.Repeat([]byte{0x11}, 1<<20), 0o644); err != nil {
		t.Fatal(err)
	}
	backed := filepath.Join(dir, "backed.qcow2")
	if err := qcow2.CreateOverlay(backed, secret, "raw", 1<<20); err != nil {
		t.Fatal(err)
	}
	external := filepath.Join(dir, "external.qcow2")
	qemuImg("create", "-q", "-f", "qcow2", "-o", "data_file="+secret+",data_file_raw=on", external, "1M")
	externalOverlay := filepath.Join(dir, "external-overlay.qcow2")
	qemuImg("create", "-q", "-f", "qcow2", "-b", rawBase, "-F", "raw", "-o", "data_file="+secret, externalOverlay, "1M")

	for _, tc := range []struct{ name, base, baseFormat, overlay string }{
		{"a base with a backing file", backed, "qcow2", ""},
		{"a base keeping its data in another file", external, "qcow2", ""},
		{"an overlay keeping its data in another file", rawBase, "raw", externalOverlay},
	} {
		t.Run(tc.name, func(t *testing.T) {
			overlayPath := tc.overlay
			if overlayPath == "" {
				overlayPath = filepath.Join(t.TempDir(), "disk.qcow2")
				if err := qcow2.CreateOverlay(overlayPath, tc.base, tc.baseFormat, 1<<20); err != nil {
					t.Fatal(err)
				}
			}
			base := fileImage(t, "base", tc.base, tc.baseFormat, "")
			overlay := fileImage(t, "overlay", overlayPath, "qcow2", base.Digest)
			byDigest := map[string]string{base.Digest: tc.base, overlay.Digest: overlayPath}
			hs := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				http.ServeFile(w, r, byDigest[r.URL.Path[strings.LastIndexByte(r.URL.Path, '/')+1:]])
			}))
			t.Cleanup(hs.Close)
			base.Location, overlay.Location = hs.URL+"/files/"+base.Digest, hs.URL+"/files/"+overlay.Digest
			m := localManager(t, nil, hs)
			m.cfg.Dir = filepath.Dir(m.cache.dir)
			files, err := m.stageFiles(context.Background(), &manifest{Images: []manifestImage{base, overlay}}, &record{Key: "ws-1"}, nil)
			if !errors.Is(err, errdefs.ErrImageIntegrity) {
				t.Fatalf("staged for a guest (disk %s): err %v, want an ImageIntegrityFault", files.Disk, err)
			}
		})
	}
}
