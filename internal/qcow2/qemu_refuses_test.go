package qcow2

import (
	"encoding/binary"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
)

// TestQemuCheckHeaderRefusesWhatQemuRefuses: header fields qemu checks when it opens an
// image (the image pool refuses at import what every deploy would fail on) — each
// mutation of a good qemu-img image that qemu refuses, CheckHeader refuses too.
func TestQemuCheckHeaderRefusesWhatQemuRefuses(t *testing.T) {
	requireQemu(t)
	dir := t.TempDir()
	good := filepath.Join(dir, "good.qcow2")
	run(t, "qemu-img", "create", "-f", "qcow2", good, "1G")
	orig, err := os.ReadFile(good)
	if err != nil {
		t.Fatal(err)
	}
	if err := CheckHeader(orig); err != nil {
		t.Fatalf("CheckHeader of qemu-img's own image: %v", err)
	}
	// zstd, with its feature bit, is an image qemu opens.
	zstd := filepath.Join(dir, "zstd.qcow2")
	if exec.Command("qemu-img", "create", "-f", "qcow2", "-o", "compression_type=zstd", zstd, "1G").Run() == nil {
		if b, err := os.ReadFile(zstd); err != nil {
			t.Fatal(err)
		} else if err := CheckHeader(b); err != nil {
			t.Errorf("CheckHeader of qemu-img's zstd image: %v", err)
		}
	}
	be := binary.BigEndian
	tests := []struct {
		name   string
		mutate func(h []byte)
	}{
		{"unknown incompatible feature", func(h []byte) { be.PutUint64(h[72:], 1<<5) }},
		{"L1 table too small for the size", func(h []byte) { be.PutUint32(h[36:], 1) }},
		{"L1 table too large", func(h []byte) { be.PutUint32(h[36:], 32<<20/8+1) }},
		{"L1 table offset not cluster aligned", func(h []byte) { be.PutUint64(h[40:], 3*65536+8) }},
		{"no refcount table", func(h []byte) { be.PutUint32(h[56:], 0) }},
		{"refcount table too large", func(h []byte) { be.PutUint32(h[56:], 8<<20/65536+1) }},
		{"refcount table offset not cluster aligned", func(h []byte) { be.PutUint64(h[48:], 65536+8) }},
		{"too many snapshots", func(h []byte) { be.PutUint32(h[60:], 65537) }},
		{"snapshot table offset not cluster aligned", func(h []byte) { be.PutUint64(h[64:], 8) }},
		{"compression type zstd without its feature bit", func(h []byte) { h[104] = 1 }},
		{"compression type feature bit with zlib", func(h []byte) { be.PutUint64(h[72:], 1<<3) }},
		{"unknown compression type", func(h []byte) { be.PutUint64(h[72:], 1<<3); h[104] = 2 }},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			b := append([]byte(nil), orig...)
			tt.mutate(b)
			path := filepath.Join(t.TempDir(), "bad.qcow2")
			if err := os.WriteFile(path, b, 0o644); err != nil {
				t.Fatal(err)
			}
			if out, err := exec.Command("qemu-img", "info", path).CombinedOutput(); err == nil {
				t.Fatalf("qemu-img opens the mutated image; the test's premise is wrong:\n%s", out)
			}
			if err := CheckHeader(b); err == nil {
				t.Errorf("CheckHeader accepts a header qemu refuses to open")
			}
		})
	}
}

// TestQemuCheckHeaderRefusesSmallSubclusters: with extended L2 entries a cluster is cut
// into 32 subclusters, and qemu opens no image whose subclusters are under 512 bytes
// (clusters under 16 KiB), though its L1 table maps the size.
func TestQemuCheckHeaderRefusesSmallSubclusters(t *testing.T) {
	requireQemu(t)
	dir := t.TempDir()
	ok := filepath.Join(dir, "extl2-16k.qcow2")
	if exec.Command("qemu-img", "create", "-f", "qcow2", "-o", "cluster_size=16k,extended_l2=on", ok, "1G").Run() == nil {
		if b, err := os.ReadFile(ok); err != nil {
			t.Fatal(err)
		} else if err := CheckHeader(b); err != nil {
			t.Errorf("CheckHeader of qemu-img's image with extended L2 entries: %v", err)
		}
	}
	for _, cs := range []string{"4k", "8k"} {
		t.Run(cs, func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "bad.qcow2")
			run(t, "qemu-img", "create", "-f", "qcow2", "-o", "cluster_size="+cs, path, "1M")
			b, err := os.ReadFile(path)
			if err != nil {
				t.Fatal(err)
			}
			be := binary.BigEndian
			be.PutUint64(b[72:], be.Uint64(b[72:])|incompatibleExtendedL2)
			if err := os.WriteFile(path, b, 0o644); err != nil {
				t.Fatal(err)
			}
			if out, err := exec.Command("qemu-img", "info", path).CombinedOutput(); err == nil {
				t.Fatalf("qemu-img opens the mutated image; the test's premise is wrong:\n%s", out)
			}
			if err := CheckHeader(b); err == nil {
				t.Errorf("CheckHeader accepts extended L2 entries with %s clusters, which qemu refuses to open", cs)
			}
		})
	}
}
