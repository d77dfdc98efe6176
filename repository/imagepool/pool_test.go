package imagepool

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"io"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/vws-grid/vws/internal/errdefs"
	"github.com/vws-grid/vws/internal/store"
	"github.com/vws-grid/vws/internal/store/storetest"
)

type testPool struct {
	*Pool
	db      *store.DB
	dataDir string
	logs    *bytes.Buffer
}

func openTestPool(t testing.TB) *testPool {
	t.Helper()
	dataDir := t.TempDir()
	db, err := storetest.New(t, dataDir).Open(context.Background())
	if err != nil {
		t.Fatalf("open the store: %v", err)
	}
	t.Cleanup(func() { db.Close() })
	tp := &testPool{db: db, dataDir: dataDir, logs: &bytes.Buffer{}}
	tp.reopen(t)
	t.Cleanup(func() { tp.Close() }) // before the database closes
	return tp
}

// reopen opens the pool again over the same directory and database (as a restart would).
func (tp *testPool) reopen(t testing.TB) {
	t.Helper()
	if tp.Pool != nil {
		tp.Close()
	}
	log := slog.New(slog.NewTextHandler(tp.logs, nil))
	p, err := Open(context.Background(), filepath.Join(tp.dataDir, "images"), tp.db.SQL(), log)
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	tp.Pool = p
}

func randomBytes(t testing.TB, n int) []byte {
	t.Helper()
	b := make([]byte, n)
	if _, err := rand.Read(b); err != nil {
		t.Fatal(err)
	}
	return b
}

func digestOf(b []byte) string {
	s := sha256.Sum256(b)
	return "sha256:" + hex.EncodeToString(s[:])
}

func mustImport(t testing.TB, p *Pool, data []byte, m Meta) (Image, bool) {
	t.Helper()
	img, stored, err := p.Import(context.Background(), bytes.NewReader(data), m)
	if err != nil {
		t.Fatalf("Import %s: %v", m.Name, err)
	}
	return img, stored
}

// poolFiles lists the files in the pool directory.
func poolFiles(t testing.TB, p *Pool) []string {
	t.Helper()
	entries, err := os.ReadDir(p.Dir())
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, e := range entries {
		names = append(names, e.Name())
	}
	return names
}

func TestImportRaw(t *testing.T) {
	tp := openTestPool(t)
	// Not a multiple of the chunk size, and more than the ring of buffers holds.
	data := randomBytes(t, 5*chunkSize+12345)
	data[0] = 0 // never a magic number by chance
	img, stored, err := tp.Import(context.Background(), bytes.NewReader(data), Meta{
		Name: "deb12", OS: "Linux/debian/12", Kernel: "6.1.0-18-amd64", Arch: "X86_64", Libraries: []string{"glibc=2.36", "openmpi", "glibc=2.36"},
	})
	if err != nil {
		t.Fatal(err)
	}
	if !stored {
		t.Error("stored = false for new content")
	}
	want := Image{Name: "deb12", Digest: digestOf(data), Format: "raw", Size: int64(len(data)), VirtualSize: int64(len(data)),
		OS: "linux/debian/12", Kernel: "6.1.0-18-amd64", Arch: "x86_64", Libraries: []string{"glibc=2.36", "openmpi"}}
	got := img
	got.Created = want.Created
	if !equalImage(got, want) {
		t.Errorf("Import = %+v\nwant     %+v", got, want)
	}
	if img.Created.IsZero() {
		t.Error("Created is zero")
	}
	path, err := tp.Path(img.Digest)
	if err != nil {
		t.Fatal(err)
	}
	if !filepath.IsAbs(path) {
		t.Errorf("Path %q is not absolute", path)
	}
	onDisk, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(onDisk, data) {
		t.Error("blob content differs from the imported bytes")
	}
	if files := poolFiles(t, tp.Pool); len(files) != 1 {
		t.Errorf("pool directory holds %v, want just the blob", files)
	}
}

func equalImage(a, b Image) bool {
	return a.Name == b.Name && a.Digest == b.Digest && a.Format == b.Format && a.Size == b.Size &&
		a.VirtualSize == b.VirtualSize && a.OS == b.OS && a.Kernel == b.Kernel && a.Arch == b.Arch &&
		strings.Join(a.Libraries, " ") == strings.Join(b.Libraries, " ") && a.Created.Equal(b.Created)
}

func TestImportQCOW2(t *testing.T) {
	qemuImg, err := exec.LookPath("qemu-img")
	if err != nil {
		t.Skip("qemu-img is not installed (Debian package qemu-utils; test/setup.sh installs it): skipping the qcow2 import")
	}
	file := filepath.Join(t.TempDir(), "x.qcow2")
	if out, err := exec.Command(qemuImg, "create", "-f", "qcow2", file, "64M").CombinedOutput(); err != nil {
		t.Fatalf("qemu-img create: %v\n%s", err, out)
	}
	data, err := os.ReadFile(file)
	if err != nil {
		t.Fatal(err)
	}
	tp := openTestPool(t)
	img, _ := mustImport(t, tp.Pool, data, Meta{Name: "empty-disk"})
	if img.Format != "qcow2" || img.VirtualSize != 64<<20 || img.Size != int64(len(data)) || img.Digest != digestOf(data) {
		t.Errorf("qcow2 import = %+v; want format qcow2, virtual size %d, size %d", img, 64<<20, len(data))
	}

	// A qcow2 with a backing file is an overlay, not a base image: refused.
	overlay := filepath.Join(t.TempDir(), "overlay.qcow2")
	if out, err := exec.Command(qemuImg, "create", "-f", "qcow2", "-F", "qcow2", "-b", file, overlay).CombinedOutput(); err != nil {
		t.Fatalf("qemu-img create overlay: %v\n%s", err, out)
	}
	ov, err := os.ReadFile(overlay)
	if err != nil {
		t.Fatal(err)
	}
	_, _, err = tp.Import(context.Background(), bytes.NewReader(ov), Meta{Name: "overlay"})
	if !errors.Is(err, errdefs.ErrBadRequest) || !strings.Contains(err.Error(), "backing file") {
		t.Errorf("importing an overlay: err = %v, want a bad request about its backing file", err)
	}
}

func TestDetectFormat(t *testing.T) {
	qcow := func(version uint32, backing, vsize uint64, incompat uint64) []byte {
		h := make([]byte, 512)
		copy(h, "QFI\xfb")
		h[7] = byte(version)
		putBE64(h[8:], backing)
		h[23] = 16 // cluster_bits: 64 KiB, qemu-img's default
		putBE64(h[24:], vsize)
		// The tables where qemu-img puts them, the L1 table large enough for vsize:
		// qemu refuses to open a header without them.
		l1 := (vsize + 1<<29 - 1) >> 29
		h[36], h[37], h[38], h[39] = byte(l1>>24), byte(l1>>16), byte(l1>>8), byte(l1)
		putBE64(h[40:], 3<<16) // l1_table_offset
		putBE64(h[48:], 1<<16) // refcount_table_offset
		h[59] = 1              // refcount_table_clusters
		putBE64(h[72:], incompat)
		h[99] = 4    // refcount_order
		h[103] = 104 // header_length
		return h
	}
	with := func(h []byte, at int, v byte) []byte { h[at] = v; return h }
	tests := []struct {
		name   string
		head   []byte
		size   int64
		format string
		vsize  int64
		errHas string
	}{
		{"empty", nil, 0, "", 0, "empty"},
		{"raw zeros", make([]byte, 512), 1 << 30, "raw", 1 << 30, ""},
		{"raw tiny", []byte("x"), 1, "raw", 1, ""},
		{"qcow2 v3", qcow(3, 0, 1<<34, 0), 200000, "qcow2", 1 << 34, ""},
		{"qcow2 v2", qcow(2, 0, 1<<20, 0), 200000, "qcow2", 1 << 20, ""},
		{"qcow2 v1", qcow(1, 0, 1<<20, 0), 200000, "", 0, "version 1"},
		{"qcow2 backing", qcow(3, 512, 1<<20, 0), 200000, "", 0, "backing file"},
		{"qcow2 data file", qcow(3, 0, 1<<20, 4), 200000, "", 0, "external file"},
		{"qcow2 unknown incompatible feature", qcow(3, 0, 1<<20, 1<<5), 200000, "", 0, "unknown incompatible features"},
		{"qcow2 L1 table too small", with(qcow(3, 0, 1<<34, 0), 39, 1), 200000, "", 0, "L1 table"},
		{"qcow2 zero size", qcow(3, 0, 0, 0), 200000, "", 0, "virtual size"},
		// What qemu would refuse to open is refused at import, not at the first deploy.
		{"qcow2 larger than its clusters map", qcow(3, 0, 1<<51+1, 0), 200000, "", 0, "virtual size"},
		{"qcow2 cluster_bits 30", with(qcow(3, 0, 1<<20, 0), 23, 30), 200000, "", 0, "cluster_bits 30"},
		{"qcow2 cluster_bits 0", with(qcow(2, 0, 1<<20, 0), 23, 0), 200000, "", 0, "cluster_bits 0"},
		{"qcow2 header_length 0", with(qcow(3, 0, 1<<20, 0), 103, 0), 200000, "", 0, "header_length 0"},
		{"qcow2 header_length odd", with(qcow(3, 0, 1<<20, 0), 103, 105), 200000, "", 0, "header_length 105"},
		{"qcow2 refcount_order 7", with(qcow(3, 0, 1<<20, 0), 99, 7), 200000, "", 0, "refcount_order 7"},
		{"qcow2 cut short", []byte("QFI\xfb\x00\x00\x00\x03"), 8, "", 0, "cut short"},
		{"gzip", []byte("\x1f\x8b\x08\x00rest"), 100, "", 0, "gunzip"},
		{"vmdk", []byte("KDMV\x01\x00\x00\x00"), 100, "", 0, "VMDK"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f, v, err := detectFormat(tt.head, tt.size)
			if tt.errHas != "" {
				if !errors.Is(err, errdefs.ErrBadRequest) || !strings.Contains(err.Error(), tt.errHas) {
					t.Fatalf("err = %v, want a bad request mentioning %q", err, tt.errHas)
				}
				return
			}
			if err != nil || f != tt.format || v != tt.vsize {
				t.Fatalf("= %q, %d, %v; want %q, %d", f, v, err, tt.format, tt.vsize)
			}
		})
	}
}

func putBE64(b []byte, v uint64) {
	for i := 0; i < 8; i++ {
		b[i] = byte(v >> (56 - 8*i))
	}
}

func TestImportRefusesEarly(t *testing.T) {
	tp := openTestPool(t)
	// A gzip file is refused after the first chunk: the rest of the stream is not read.
	r := &countingReader{r: io.MultiReader(bytes.NewReader([]byte("\x1f\x8b\x08\x00")), bytes.NewReader(make([]byte, 64<<20)))}
	_, _, err := tp.Import(context.Background(), r, Meta{Name: "tarball"})
	if !errors.Is(err, errdefs.ErrBadRequest) {
		t.Fatalf("err = %v, want bad request", err)
	}
	if r.n > 2*chunkSize {
		t.Errorf("read %d bytes of a refused image; want at most the first chunks", r.n)
	}
	if files := poolFiles(t, tp.Pool); len(files) != 0 {
		t.Errorf("a refused import left %v", files)
	}
}

type countingReader struct {
	r io.Reader
	n int64
}

func (c *countingReader) Read(b []byte) (int, error) {
	n, err := c.r.Read(b)
	c.n += int64(n)
	return n, err
}

// A reader that fails (a truncated HTTP body says io.ErrUnexpectedEOF) stores nothing.
func TestImportTruncatedStream(t *testing.T) {
	tp := openTestPool(t)
	r := io.MultiReader(bytes.NewReader(randomBytes(t, 3*chunkSize)), iotestErrReader{io.ErrUnexpectedEOF})
	_, _, err := tp.Import(context.Background(), r, Meta{Name: "cut"})
	if !errors.Is(err, errdefs.ErrBadRequest) || !errors.Is(err, io.ErrUnexpectedEOF) {
		t.Fatalf("err = %v, want a bad request wrapping io.ErrUnexpectedEOF", err)
	}
	if files := poolFiles(t, tp.Pool); len(files) != 0 {
		t.Errorf("a failed import left %v", files)
	}
	if _, err := tp.Get(context.Background(), "cut"); !errors.Is(err, errdefs.ErrResourceUnknown) {
		t.Errorf("Get after failed import: %v", err)
	}
}

type iotestErrReader struct{ err error }

func (r iotestErrReader) Read([]byte) (int, error) { return 0, r.err }

func TestImportCanceled(t *testing.T) {
	tp := openTestPool(t)
	ctx, cancel := context.WithCancel(context.Background())
	pr, pw := io.Pipe()
	go func() {
		pw.Write(make([]byte, 3*chunkSize))
		cancel()
		pw.Write(make([]byte, 3*chunkSize))
		pw.Close()
	}()
	_, _, err := tp.Import(ctx, pr, Meta{Name: "canceled"})
	if !errors.Is(err, context.Canceled) {
		t.Fatalf("err = %v, want context.Canceled", err)
	}
	pr.Close()
	if files := poolFiles(t, tp.Pool); len(files) != 0 {
		t.Errorf("a canceled import left %v", files)
	}
}

func TestDedupe(t *testing.T) {
	tp := openTestPool(t)
	data := randomBytes(t, 2*chunkSize+1)
	data[0] = 0
	a, storedA := mustImport(t, tp.Pool, data, Meta{Name: "a", OS: "linux"})
	b, storedB := mustImport(t, tp.Pool, data, Meta{Name: "b", OS: "bsd"})
	if !storedA || storedB {
		t.Errorf("stored = %v, %v; want true then false", storedA, storedB)
	}
	if a.Digest != b.Digest || a.Digest != digestOf(data) {
		t.Errorf("digests %s, %s; want both %s", a.Digest, b.Digest, digestOf(data))
	}
	if b.OS != "bsd" {
		t.Errorf("the second name's metadata is %q; each name keeps its own", b.OS)
	}
	if files := poolFiles(t, tp.Pool); len(files) != 1 {
		t.Errorf("pool directory holds %v; want one blob for identical content", files)
	}
	list, err := tp.List(context.Background())
	if err != nil || len(list) != 2 || list[0].Name != "a" || list[1].Name != "b" {
		t.Errorf("List = %+v, %v", list, err)
	}
}

func TestDuplicateName(t *testing.T) {
	tp := openTestPool(t)
	first, _ := mustImport(t, tp.Pool, []byte("first image"), Meta{Name: "base"})
	_, _, err := tp.Import(context.Background(), strings.NewReader("second image"), Meta{Name: "base"})
	var taken *NameTakenError
	if !errors.As(err, &taken) || !errors.Is(err, errdefs.ErrBadRequest) {
		t.Fatalf("err = %v, want a NameTakenError wrapping ErrBadRequest", err)
	}
	if !strings.Contains(err.Error(), first.Digest) || !strings.Contains(err.Error(), "another name") {
		t.Errorf("error %q should name the digest holding the name and what to do", err)
	}
	if files := poolFiles(t, tp.Pool); len(files) != 1 {
		t.Errorf("pool directory holds %v after a refused import", files)
	}
}

func TestGet(t *testing.T) {
	tp := openTestPool(t)
	img, _ := mustImport(t, tp.Pool, []byte("some disk"), Meta{Name: "disk", Arch: "aarch64"})
	ctx := context.Background()
	for _, ref := range []string{"disk", img.Digest, strings.TrimPrefix(img.Digest, "sha256:")} {
		got, err := tp.Get(ctx, ref)
		if err != nil || got.Name != "disk" || got.Digest != img.Digest || got.Arch != "aarch64" {
			t.Errorf("Get(%q) = %+v, %v", ref, got, err)
		}
	}
	if _, err := tp.Get(ctx, "nope"); !errors.Is(err, errdefs.ErrResourceUnknown) {
		t.Errorf("Get(unknown name) err = %v, want ErrResourceUnknown", err)
	}
	if _, err := tp.Get(ctx, digestOf([]byte("other"))); !errors.Is(err, errdefs.ErrResourceUnknown) {
		t.Errorf("Get(unknown digest) err = %v, want ErrResourceUnknown", err)
	}
	for _, bad := range []string{"../x", "sha256:zz", "sha256:" + strings.Repeat("A", 64), "a/b", ""} {
		if _, err := tp.Get(ctx, bad); !errors.Is(err, errdefs.ErrBadRequest) {
			t.Errorf("Get(%q) err = %v, want ErrBadRequest", bad, err)
		}
	}
	for _, bad := range []string{"../x", "sha256:zz", "sha256:" + strings.Repeat("0", 63), "/etc/passwd"} {
		if _, err := tp.Path(bad); !errors.Is(err, errdefs.ErrBadRequest) {
			t.Errorf("Path(%q) err = %v, want ErrBadRequest", bad, err)
		}
	}
	if _, err := tp.Path(digestOf([]byte("other"))); !errors.Is(err, errdefs.ErrResourceUnknown) {
		t.Errorf("Path(unknown) err = %v, want ErrResourceUnknown", err)
	}
}

func TestValidation(t *testing.T) {
	long := strings.Repeat("z", 64)
	for _, name := range []string{"a", "deb-12_x86.64", long, "A1"} {
		if err := ValidateName(name); err != nil {
			t.Errorf("ValidateName(%q) = %v", name, err)
		}
	}
	for _, name := range []string{"", long + "a", "../x", "..", ".hidden", "-x", "a/b", `a\b`, "a b", "ü", "a:b", strings.Repeat("ab", 32)} {
		if err := ValidateName(name); !errors.Is(err, errdefs.ErrBadRequest) {
			t.Errorf("ValidateName(%q) = %v, want ErrBadRequest", name, err)
		}
	}
	good := []Meta{
		{Name: "x", OS: "linux"}, {Name: "x", OS: "WINDOWS/server/2022"}, {Name: "x", Kernel: "6.1.0-18-amd64"},
		{Name: "x", Arch: "riscv64"}, {Name: "x", Libraries: []string{"libstdc++=12.2.0-14", "python3.11"}},
	}
	for _, m := range good {
		if _, err := normalizeMeta(m, true); err != nil {
			t.Errorf("normalizeMeta(%+v) = %v", m, err)
		}
	}
	bad := []struct {
		m    Meta
		says string
	}{
		{Meta{Name: "x", OS: "debian"}, "family"},
		{Meta{Name: "x", OS: "linux/debian/12/extra"}, "three parts"},
		{Meta{Name: "x", OS: "linux/<script>"}, "distribution"},
		{Meta{Name: "x", Kernel: "6.1 smp"}, "kernel"},
		{Meta{Name: "x", Kernel: strings.Repeat("1", 129)}, "kernel"},
		{Meta{Name: "x", Arch: "amd64"}, "x86_64"},
		{Meta{Name: "x", Libraries: []string{"glibc 2.36"}}, "library"},
		{Meta{Name: "x", Libraries: []string{"=1"}}, "library"},
		{Meta{Name: "x", Libraries: make([]string, MaxLibraries+1)}, "at most"},
		{Meta{OS: "linux"}, "name is required"},
	}
	for _, tt := range bad {
		_, err := normalizeMeta(tt.m, true)
		if !errors.Is(err, errdefs.ErrBadRequest) || !strings.Contains(err.Error(), tt.says) {
			t.Errorf("normalizeMeta(%+v) = %v; want a bad request saying %q", tt.m, err, tt.says)
		}
	}
}

func TestMatch(t *testing.T) {
	tp := openTestPool(t)
	mustImport(t, tp.Pool, []byte("deb12"), Meta{Name: "deb12", OS: "linux/debian/12", Kernel: "6.1.0-18-amd64", Arch: "x86_64", Libraries: []string{"glibc=2.36", "openmpi=4.1.4"}})
	mustImport(t, tp.Pool, []byte("deb11"), Meta{Name: "deb11", OS: "linux/debian/11", Kernel: "5.10.0-28-amd64", Arch: "x86_64", Libraries: []string{"glibc=2.31"}})
	mustImport(t, tp.Pool, []byte("deb12arm"), Meta{Name: "deb12-arm", OS: "linux/debian/12", Kernel: "6.1.0-18-arm64", Arch: "aarch64", Libraries: []string{"glibc=2.36"}})
	ctx := context.Background()
	unique := []struct {
		want Meta
		name string
	}{
		{Meta{OS: "linux/debian/12", Arch: "x86_64"}, "deb12"},
		{Meta{OS: "LINUX/Debian/11"}, "deb11"},
		{Meta{Libraries: []string{"openmpi"}}, "deb12"},
		{Meta{Kernel: "5.10"}, "deb11"},
		{Meta{Kernel: "6.1", Arch: "aarch64"}, "deb12-arm"},
		{Meta{Libraries: []string{"glibc=2.31"}}, "deb11"},
		{Meta{Name: "deb12", Arch: "x86_64"}, "deb12"},
	}
	for _, tt := range unique {
		img, err := tp.Match(ctx, tt.want)
		if err != nil || img.Name != tt.name {
			t.Errorf("Match(%+v) = %q, %v; want %q", tt.want, img.Name, err, tt.name)
		}
	}
	ambiguous := []struct {
		want  Meta
		names string
	}{
		{Meta{OS: "linux"}, "deb11, deb12, deb12-arm"},
		{Meta{Kernel: "6.1"}, "deb12, deb12-arm"},
		{Meta{Libraries: []string{"glibc=2"}}, "deb11, deb12, deb12-arm"},
		{Meta{}, "deb11, deb12, deb12-arm"},
	}
	for _, tt := range ambiguous {
		_, err := tp.Match(ctx, tt.want)
		var amb *AmbiguousError
		if !errors.As(err, &amb) || !errors.Is(err, errdefs.ErrMetadata) || strings.Join(amb.Candidates, ", ") != tt.names ||
			!strings.Contains(err.Error(), "ambiguous") || !strings.Contains(err.Error(), "name the image") {
			t.Errorf("Match(%+v) err = %v; want ambiguous between %s", tt.want, err, tt.names)
		}
	}
	none := []Meta{
		{Arch: "riscv64"},
		{Libraries: []string{"glibc=2.3"}}, // 2.3 is not a prefix of 2.31 or 2.36 at a separator
		{Kernel: "6.10"},
		{OS: "linux/ubuntu"},
		{Name: "deb12", Arch: "aarch64"},
		{Name: "missing"},
	}
	for _, want := range none {
		_, err := tp.Match(ctx, want)
		if !errors.Is(err, errdefs.ErrResourceUnknown) || !strings.Contains(err.Error(), "deb12-arm (os=linux/debian/12") {
			t.Errorf("Match(%+v) err = %v; want ErrResourceUnknown listing the pool", want, err)
		}
	}
	if _, err := tp.Match(ctx, Meta{Arch: "amd64"}); !errors.Is(err, errdefs.ErrBadRequest) {
		t.Errorf("Match with a bad architecture: %v", err)
	}
	empty := openTestPool(t)
	if _, err := empty.Match(ctx, Meta{OS: "linux"}); !errors.Is(err, errdefs.ErrResourceUnknown) || !strings.Contains(err.Error(), "empty") {
		t.Errorf("Match on an empty pool: %v", err)
	}
}

// TestRemove: a name goes; its content goes with its last name, which is refused while
// a workspace stands on the content — but a name that shares the content with another
// goes whatever uses it, the content staying.
func TestRemove(t *testing.T) {
	tp := openTestPool(t)
	ctx := context.Background()
	data := []byte("shared content")
	a, _ := mustImport(t, tp.Pool, data, Meta{Name: "a"})
	mustImport(t, tp.Pool, data, Meta{Name: "b"})
	blob, _ := tp.Path(a.Digest)

	used := func(context.Context, string) ([]string, error) { return []string{"web-1 0123"}, nil }
	if err := tp.Remove(ctx, "a", used); err != nil {
		t.Fatalf("Remove of a name whose content another name keeps, in use: %v", err)
	}
	if _, err := os.Stat(blob); err != nil {
		t.Errorf("the blob went while name b still points at it: %v", err)
	}
	if img, err := tp.Get(ctx, a.Digest); err != nil || img.Name != "b" {
		t.Errorf("Get(digest) after removing a = %+v, %v", img, err)
	}
	err := tp.Remove(ctx, "b", used)
	var inUse *InUseError
	if !errors.As(err, &inUse) || !errors.Is(err, errdefs.ErrBadRequest) || !strings.Contains(err.Error(), "used by workspaces (web-1 0123)") {
		t.Fatalf("Remove of the last name of content in use: %v", err)
	}
	if _, err := tp.Get(ctx, "b"); err != nil {
		t.Errorf("a refused removal removed the name: %v", err)
	}
	checkErr := errors.New("repository down")
	if err := tp.Remove(ctx, "b", func(context.Context, string) ([]string, error) { return nil, checkErr }); !errors.Is(err, checkErr) {
		t.Errorf("Remove with a failing in-use check: %v", err)
	}

	var asked string
	notUsed := func(_ context.Context, d string) ([]string, error) { asked = d; return nil, nil }
	if err := tp.Remove(ctx, "b", notUsed); err != nil {
		t.Fatal(err)
	}
	if asked != a.Digest {
		t.Errorf("inUse asked about %q, want %q", asked, a.Digest)
	}
	if _, err := os.Stat(blob); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("the blob stays after its last name went: %v", err)
	}
	var n int
	tp.db.SQL().QueryRow(`SELECT COUNT(*) FROM images`).Scan(&n)
	if n != 0 {
		t.Errorf("%d images rows after removing every name", n)
	}
	if err := tp.Remove(ctx, "b", nil); !errors.Is(err, errdefs.ErrResourceUnknown) {
		t.Errorf("Remove of an unknown name: %v", err)
	}
	if err := tp.Remove(ctx, a.Digest, nil); !errors.Is(err, errdefs.ErrBadRequest) {
		t.Errorf("Remove by digest: %v", err)
	}
	if err := tp.Remove(ctx, "../a", nil); !errors.Is(err, errdefs.ErrBadRequest) {
		t.Errorf("Remove of a path-like name: %v", err)
	}
}

func TestSweep(t *testing.T) {
	tp := openTestPool(t)
	ctx := context.Background()
	kept, _ := mustImport(t, tp.Pool, []byte("keep me"), Meta{Name: "kept"})
	dir := tp.Dir()
	temp := filepath.Join(dir, ".import-123456")
	orphan := filepath.Join(dir, "sha256-"+strings.TrimPrefix(digestOf([]byte("orphan")), "sha256:"))
	unrelated := filepath.Join(dir, "README")
	for _, f := range []string{temp, orphan, unrelated} {
		if err := os.WriteFile(f, []byte("leftover"), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	// An unnamed record whose blob is missing (never made by the pool; the sweep tidies it).
	missing := digestOf([]byte("missing"))
	if _, err := tp.db.SQL().Exec(`INSERT INTO images (digest, format, size, virtual_size, created) VALUES ($1, 'raw', 7, 7, 0)`, missing); err != nil {
		t.Fatal(err)
	}
	tp.reopen(t)
	for _, f := range []string{temp, orphan} {
		if _, err := os.Stat(f); !errors.Is(err, os.ErrNotExist) {
			t.Errorf("%s survived the sweep", filepath.Base(f))
		}
	}
	if _, err := os.Stat(unrelated); err != nil {
		t.Errorf("the sweep removed a file that is not the pool's: %v", err)
	}
	if path, err := tp.Path(kept.Digest); err != nil {
		t.Errorf("the recorded blob is gone: %v", err)
	} else if b, _ := os.ReadFile(path); string(b) != "keep me" {
		t.Errorf("the recorded blob holds %q", b)
	}
	if _, err := tp.Path(missing); !errors.Is(err, errdefs.ErrResourceUnknown) {
		t.Errorf("the unnamed record of a missing blob survived: %v", err)
	}
	logs := tp.logs.String()
	for _, want := range []string{"temporary file", "no image record references", "whose blob is missing"} {
		if !strings.Contains(logs, want) {
			t.Errorf("sweep log lacks %q:\n%s", want, logs)
		}
	}
	if _, err := tp.Get(ctx, "kept"); err != nil {
		t.Error(err)
	}
}

func TestHold(t *testing.T) {
	tp := openTestPool(t)
	ctx := context.Background()
	img, _ := mustImport(t, tp.Pool, []byte("base"), Meta{Name: "base"})
	removed := make(chan error, 1)
	err := tp.Hold(ctx, "base", func(got Image, path string) error {
		if got.Digest != img.Digest {
			t.Errorf("Hold gave %s", got.Digest)
		}
		go func() { removed <- tp.Remove(ctx, "base", nil) }()
		if _, err := os.Stat(path); err != nil {
			t.Errorf("blob vanished while held: %v", err)
		}
		select {
		case err := <-removed:
			t.Errorf("Remove finished while the image was held: %v", err)
		default:
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if err := <-removed; err != nil {
		t.Errorf("Remove after Hold: %v", err)
	}
}

// Select works on a listing the caller already has (the Factory's, over SOAP).
func TestSelect(t *testing.T) {
	all := []Image{
		{Name: "a", OS: "linux/debian/12", Arch: "x86_64", Libraries: []string{"glibc=2.36"}},
		{Name: "b", OS: "linux/rocky/9", Arch: "x86_64", Libraries: []string{"glibc=2.34"}},
	}
	if img, err := Select(all, Meta{OS: "Linux/Debian"}); err != nil || img.Name != "a" {
		t.Errorf("Select(debian) = %q, %v", img.Name, err)
	}
	if img, err := Select(all, Meta{Libraries: []string{"glibc=2.34"}}); err != nil || img.Name != "b" {
		t.Errorf("Select(glibc=2.34) = %q, %v", img.Name, err)
	}
	if _, err := Select(all, Meta{Arch: "x86_64"}); !errors.Is(err, errdefs.ErrMetadata) {
		t.Errorf("Select(x86_64) err = %v, want ambiguous", err)
	}
	if _, err := Select(nil, Meta{}); !errors.Is(err, errdefs.ErrResourceUnknown) {
		t.Errorf("Select on nothing err = %v", err)
	}
}

// chunkSize is the import pipeline's read size (internal/transfer): tests cross it.
const chunkSize = 1 << 20
