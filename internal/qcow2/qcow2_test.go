package qcow2

import (
	"bytes"
	"encoding/binary"
	"errors"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

const (
	kib = int64(1) << 10
	mib = kib << 10
	gib = mib << 10
	tib = gib << 10
	pib = tib << 10
)

// TestLayout checks every byte that matters in files CreateOverlay writes,
// without relying on qemu: header fields, extension area, backing name,
// refcount table/block and the (zero) L1 table, across sizes where the L1
// table grows from one entry to many clusters.
func TestLayout(t *testing.T) {
	cases := []struct {
		size       int64
		l1Size     uint32
		l1Clusters int64
	}{
		{512, 1, 1},
		{10 * mib, 1, 1},
		{512 * mib, 1, 1},
		{512*mib + 512, 2, 1},
		{4 * gib, 8, 1},
		{1 * tib, 2048, 1},
		{4 * tib, 8192, 1},     // L1 exactly fills one cluster
		{4*tib + 512, 8193, 2}, // ... and spills into a second
		{64 * tib, 131072, 16}, // several L1 clusters
		{MaxVirtualSize, 4 << 20, 512},
	}
	dir := t.TempDir()
	for i, c := range cases {
		for _, format := range []string{"raw", "qcow2"} {
			backing := "/var/lib/vws/images/base-" + format + ".img"
			path := filepath.Join(dir, format+"-"+string(rune('a'+i))+".qcow2")
			if err := CreateOverlay(path, backing, format, c.size); err != nil {
				t.Fatalf("CreateOverlay(%d, %s): %v", c.size, format, err)
			}
			b, err := os.ReadFile(path)
			if err != nil {
				t.Fatal(err)
			}
			used := 3 + c.l1Clusters
			if int64(len(b)) != used*clusterSize {
				t.Errorf("size %d: file is %d bytes, want %d", c.size, len(b), used*clusterSize)
			}
			h, err := parseHeader(b[:clusterSize])
			if err != nil {
				t.Fatalf("size %d: parseHeader: %v", c.size, err)
			}
			fmtExt := 8 + align8(len(format))
			want := header{
				version:               3,
				backingFileOffset:     uint64(headerLength + fmtExt + 8),
				backingFileSize:       uint32(len(backing)),
				clusterBits:           16,
				size:                  uint64(c.size),
				l1Size:                c.l1Size,
				l1TableOffset:         3 * clusterSize,
				refcountTableOffset:   clusterSize,
				refcountTableClusters: 1,
				refcountOrder:         4,
				headerLength:          112,
				backingFormat:         format,
				backingFile:           backing,
			}
			if h != want {
				t.Errorf("size %d %s: header\n got %+v\nwant %+v", c.size, format, h, want)
			}
			// End-of-extensions marker right before the backing name.
			if !bytes.Equal(b[112+fmtExt:112+fmtExt+8], make([]byte, 8)) {
				t.Errorf("size %d: no end-of-extensions marker", c.size)
			}
			// Nothing after the name in cluster 0.
			if !allZero(b[h.backingFileOffset+uint64(h.backingFileSize) : clusterSize]) {
				t.Errorf("size %d: junk after backing name", c.size)
			}
			// Refcount table: one entry pointing at cluster 2.
			rt := b[clusterSize : 2*clusterSize]
			if got := binary.BigEndian.Uint64(rt); got != 2*clusterSize || !allZero(rt[8:]) {
				t.Errorf("size %d: refcount table entry 0 = %#x, rest zero %v", c.size, got, allZero(rt[8:]))
			}
			// Refcount block: exactly the used clusters have refcount 1.
			rb := b[2*clusterSize : 3*clusterSize]
			for j := int64(0); j < refcountBlockEntries; j++ {
				rc := binary.BigEndian.Uint16(rb[2*j:])
				if wantRC := uint16(0); j < used {
					wantRC = 1
					if rc != wantRC {
						t.Fatalf("size %d: refcount[%d] = %d, want 1", c.size, j, rc)
					}
				} else if rc != 0 {
					t.Fatalf("size %d: refcount[%d] = %d, want 0", c.size, j, rc)
				}
			}
			// L1 table: all unallocated, and big enough for l1_size entries.
			l1 := b[3*clusterSize:]
			if int64(len(l1)) < int64(c.l1Size)*8 || !allZero(l1) {
				t.Errorf("size %d: L1 area %d bytes / zero %v", c.size, len(l1), allZero(l1))
			}
			os.Remove(path) // the 2 PiB case is 33 MiB of (sparse) L1
		}
	}
}

func allZero(b []byte) bool {
	for _, c := range b {
		if c != 0 {
			return false
		}
	}
	return true
}

func TestReadInfoRoundTrip(t *testing.T) {
	dir := t.TempDir()
	long := "/" + strings.Repeat("x", MaxBackingPathLen-1)
	for _, c := range []struct {
		backing, format string
		size            int64
	}{
		{"/images/base.raw", "raw", 10 * mib},
		{"/images/base.qcow2", "qcow2", 4 * gib},
		{"/a", "raw", 512},
		{long, "qcow2", 64 * tib},
		{"/images/with space/and-ünïcode.img", "raw", 1 * tib},
	} {
		path := filepath.Join(dir, "ov.qcow2")
		if err := CreateOverlay(path, c.backing, c.format, c.size); err != nil {
			t.Fatalf("CreateOverlay(%q): %v", c.backing, err)
		}
		got, err := ReadInfo(path)
		if err != nil {
			t.Fatalf("ReadInfo: %v", err)
		}
		want := Info{Version: 3, VirtualSize: c.size, ClusterBits: 16, BackingFile: c.backing, BackingFormat: c.format}
		if got != want {
			t.Errorf("ReadInfo = %+v, want %+v", got, want)
		}
		if err := os.Remove(path); err != nil {
			t.Fatal(err)
		}
	}
}

func TestCreateOverlayErrors(t *testing.T) {
	dir := t.TempDir()
	existing := filepath.Join(dir, "existing.qcow2")
	if err := os.WriteFile(existing, []byte("keep me"), 0o644); err != nil {
		t.Fatal(err)
	}
	err := CreateOverlay(existing, "/base.raw", "raw", 10*mib)
	if !errors.Is(err, fs.ErrExist) {
		t.Errorf("existing path: err = %v, want fs.ErrExist", err)
	}
	if b, _ := os.ReadFile(existing); string(b) != "keep me" {
		t.Errorf("existing file was modified: %q", b)
	}

	ok := filepath.Join(dir, "new.qcow2")
	for _, c := range []struct {
		name, path, backing, format string
		size                        int64
		wantErr                     string
	}{
		{"empty path", "", "/base.raw", "raw", mib, "empty overlay path"},
		{"self backing", "/x/ov.qcow2", "/x/ov.qcow2", "qcow2", mib, "own backing file"},
		{"empty backing", ok, "", "raw", mib, "empty backing path"},
		{"relative backing", ok, "base.raw", "raw", mib, "not absolute"},
		{"dot relative backing", ok, "./base.raw", "raw", mib, "not absolute"},
		{"json pseudo-protocol", ok, `json:{"file.filename":"/base.raw"}`, "raw", mib, "not absolute"},
		{"protocol prefix", ok, "nbd://host/export", "raw", mib, "not absolute"},
		{"dotdot backing", ok, "/images/../etc/base.raw", "raw", mib, "not clean"},
		{"double slash", ok, "//images/base.raw", "raw", mib, "not clean"},
		{"trailing slash", ok, "/images/base.raw/", "raw", mib, "not clean"},
		{"newline", ok, "/images/base\n.raw", "raw", mib, "control characters"},
		{"carriage return", ok, "/images/base\r.raw", "raw", mib, "control characters"},
		{"NUL", ok, "/images/base\x00.raw", "raw", mib, "control characters"},
		{"tab", ok, "/images/base\t.raw", "raw", mib, "control characters"},
		{"too long", ok, "/" + strings.Repeat("x", MaxBackingPathLen), "raw", mib, "limit is 1023"},
		{"size 0", ok, "/base.raw", "raw", 0, "must be positive"},
		{"negative size", ok, "/base.raw", "raw", -512, "must be positive"},
		{"unaligned size", ok, "/base.raw", "raw", 1000, "multiple of 512"},
		{"too big", ok, "/base.raw", "raw", MaxVirtualSize + 512, "exceeds the maximum"},
		{"format vmdk", ok, "/base.vmdk", "vmdk", mib, "not supported"},
		{"format empty", ok, "/base.raw", "", mib, "not supported"},
		{"format case", ok, "/base.raw", "RAW", mib, "not supported"},
		{"missing dir", filepath.Join(dir, "nope", "ov.qcow2"), "/base.raw", "raw", mib, "no such file"},
	} {
		t.Run(c.name, func(t *testing.T) {
			err := CreateOverlay(c.path, c.backing, c.format, c.size)
			if err == nil || !strings.Contains(err.Error(), c.wantErr) {
				t.Fatalf("err = %v, want it to contain %q", err, c.wantErr)
			}
			if _, err := os.Stat(ok); !errors.Is(err, fs.ErrNotExist) {
				t.Fatalf("rejected call left a file behind: %v", err)
			}
		})
	}
}

// TestCreateOverlayRemovesPartialFile fails the last step (fsync) and checks
// that no half-written image survives.
func TestCreateOverlayRemovesPartialFile(t *testing.T) {
	path := filepath.Join(t.TempDir(), "ov.qcow2")
	boom := errors.New("boom")
	err := createOverlay(path, "/base.raw", "raw", 10*mib, func(*os.File) error { return boom })
	if !errors.Is(err, boom) {
		t.Fatalf("err = %v, want boom", err)
	}
	if _, err := os.Stat(path); !errors.Is(err, fs.ErrNotExist) {
		t.Fatalf("partial file not removed: %v", err)
	}
	// And the path is usable afterwards.
	if err := CreateOverlay(path, "/base.raw", "raw", 10*mib); err != nil {
		t.Fatal(err)
	}
}

func TestIsQCOW2(t *testing.T) {
	for _, c := range []struct {
		in   string
		want bool
	}{
		{"QFI\xfb", true},
		{"QFI\xfb\x00\x00\x00\x03", true},
		{"QFI", false},
		{"", false},
		{"QFI\xfa\x00\x00", false},
		{"\x00\x00\x00\x00", false},
	} {
		if got := IsQCOW2([]byte(c.in)); got != c.want {
			t.Errorf("IsQCOW2(%q) = %v", c.in, got)
		}
	}
}

func TestReadInfoErrors(t *testing.T) {
	dir := t.TempDir()
	good := filepath.Join(dir, "good.qcow2")
	if err := CreateOverlay(good, "/base.raw", "raw", 10*mib); err != nil {
		t.Fatal(err)
	}
	img, err := os.ReadFile(good)
	if err != nil {
		t.Fatal(err)
	}
	mutate := func(f func(b []byte) []byte) []byte {
		return f(bytes.Clone(img))
	}
	be := binary.BigEndian
	for _, c := range []struct {
		name    string
		content []byte
		wantErr string
		notQ    bool
	}{
		{"raw disk", bytes.Repeat([]byte{0xab}, 8192), "not a qcow2", true},
		{"empty", nil, "not a qcow2", true},
		{"magic only", []byte(magic), "truncated", false},
		{"v3 header cut", img[:80], "truncated", false},
		{"name cut off", img[:140], "truncated", false},
		{"version 1", mutate(func(b []byte) []byte { be.PutUint32(b[4:], 1); return b }), "version 1", false},
		{"version 4", mutate(func(b []byte) []byte { be.PutUint32(b[4:], 4); return b }), "version 4", false},
		{"cluster bits 8", mutate(func(b []byte) []byte { be.PutUint32(b[20:], 8); return b }), "cluster_bits", false},
		{"cluster bits 22", mutate(func(b []byte) []byte { be.PutUint32(b[20:], 22); return b }), "cluster_bits", false},
		{"header length 100", mutate(func(b []byte) []byte { be.PutUint32(b[100:], 100); return b }), "header_length", false},
		{"header length unaligned", mutate(func(b []byte) []byte { be.PutUint32(b[100:], 108); return b }), "header_length", false},
		{"extension overrun", mutate(func(b []byte) []byte { be.PutUint32(b[116:], 4000); return b }), "overruns", false},
		{"backing name too long", mutate(func(b []byte) []byte { be.PutUint32(b[16:], 1024); return b }), "invalid backing file name", false},
		{"backing name past cluster", mutate(func(b []byte) []byte { be.PutUint64(b[8:], clusterSize-4); return b }), "invalid backing file name", false},
		{"huge size", mutate(func(b []byte) []byte { be.PutUint64(b[24:], 1<<63); return b }), "virtual size", false},
	} {
		t.Run(c.name, func(t *testing.T) {
			p := filepath.Join(dir, strings.ReplaceAll(c.name, " ", "_"))
			if err := os.WriteFile(p, c.content, 0o644); err != nil {
				t.Fatal(err)
			}
			_, err := ReadInfo(p)
			if err == nil || !strings.Contains(err.Error(), c.wantErr) {
				t.Fatalf("err = %v, want it to contain %q", err, c.wantErr)
			}
			if errors.Is(err, ErrNotQCOW2) != c.notQ {
				t.Fatalf("errors.Is(err, ErrNotQCOW2) = %v, want %v", !c.notQ, c.notQ)
			}
		})
	}
	if _, err := ReadInfo(filepath.Join(dir, "missing")); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("missing file: err = %v, want fs.ErrNotExist", err)
	}
}

// TestUnwritten: a fresh overlay holds nothing of its own; one qemu-io wrote to does.
func TestUnwritten(t *testing.T) {
	dir := t.TempDir()
	base := filepath.Join(dir, "base.raw")
	if err := os.WriteFile(base, make([]byte, 4<<20), 0o644); err != nil {
		t.Fatal(err)
	}
	ov := filepath.Join(dir, "ov.qcow2")
	if err := CreateOverlay(ov, base, "raw", 4<<20); err != nil {
		t.Fatal(err)
	}
	if empty, err := Unwritten(ov); err != nil || !empty {
		t.Fatalf("a fresh overlay: unwritten %v, %v", empty, err)
	}
	if _, err := exec.LookPath("qemu-io"); err != nil {
		t.Skip("no qemu-io")
	}
	if out, err := exec.Command("qemu-io", "-c", "write -P 0x11 1M 4k", ov).CombinedOutput(); err != nil {
		t.Fatalf("qemu-io: %v: %s", err, out)
	}
	if empty, err := Unwritten(ov); err != nil || empty {
		t.Fatalf("after a write: unwritten %v, %v", empty, err)
	}
	if _, err := Unwritten(base); !errors.Is(err, ErrNotQCOW2) {
		t.Fatalf("a raw file: %v", err)
	}
}
