package manager

import (
	"bytes"
	"context"
	"errors"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/vws-grid/vws/internal/qcow2"
	"github.com/vws-grid/vws/vmm"
)

// TestRelativeDataDirectory: `vws serve --data ./data` gives the Manager a relative
// directory. A deploy still stages, and every backing file it writes into a qcow2
// header is absolute: qemu reads a relative one from the overlay's own directory,
// where it names nothing (and CreateOverlay refuses one).
func TestRelativeDataDirectory(t *testing.T) {
	if _, err := os.Stat("/usr/bin/qemu-img"); err != nil {
		t.Skip("no qemu-img")
	}
	src := t.TempDir()
	t.Chdir(t.TempDir())
	base := filepath.Join(src, "base.raw")
	if err := os.WriteFile(base, bytes.Repeat([]byte{0x11}, 1<<20), 0o644); err != nil {
		t.Fatal(err)
	}
	overlay := filepath.Join(src, "overlay.qcow2")
	if err := qcow2.CreateOverlay(overlay, base, "raw", 1<<20); err != nil {
		t.Fatal(err)
	}
	baseImg := fileImage(t, "base", base, "raw", "")
	overlayImg := fileImage(t, "overlay", overlay, "qcow2", baseImg.Digest)
	byDigest := map[string]string{baseImg.Digest: base, overlayImg.Digest: overlay}
	hs := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		http.ServeFile(w, r, byDigest[r.URL.Path[strings.LastIndexByte(r.URL.Path, '/')+1:]])
	}))
	defer hs.Close()
	baseImg.Location, overlayImg.Location = hs.URL+"/files/"+baseImg.Digest, hs.URL+"/files/"+overlayImg.Digest
	m, err := New(Config{Dir: filepath.Join("data", "manager"), Host: "h", Repositories: []string{hs.URL}, HTTP: hs.Client()}, silentHV{}, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer m.Close()
	files, err := m.stageFiles(context.Background(), &manifest{Images: []manifestImage{baseImg, overlayImg}}, &record{Key: "ws-1"}, nil)
	if err != nil {
		t.Fatalf("staging with a relative data directory: %v", err)
	}
	for _, p := range []string{files.Disk, filepath.Join(m.workspaceDir("ws-1"), "overlay.qcow2")} {
		if info, err := qcow2.ReadInfo(p); err != nil || !filepath.IsAbs(info.BackingFile) {
			t.Errorf("%s is backed by %q (%v); want an absolute path", p, info.BackingFile, err)
		}
	}
}

// silentHV is a libvirtd that does not answer: the manager's start-up recovery, which
// runs while the test stages, concludes nothing of the files it finds (with no
// hypervisor at all it crashed, asking of the staged workspace's domain).
type silentHV struct{ Hypervisor }

func (silentHV) State(context.Context, string) (vmm.State, error) {
	return 0, errors.New("libvirtd does not answer")
}

func (silentHV) List(context.Context, string) ([]vmm.Domain, error) {
	return nil, errors.New("libvirtd does not answer")
}
