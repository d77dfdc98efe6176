package qcow2

// Interop tests: qemu-img and qemu-io are the reference implementation, so
// they judge the images CreateOverlay writes.

import (
	"bytes"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
)

func requireQemu(t testing.TB) {
	t.Helper()
	for _, tool := range []string{"qemu-img", "qemu-io"} {
		if _, err := exec.LookPath(tool); err != nil {
			t.Skipf("%s not found in PATH (install qemu-utils): skipping qemu interop test", tool)
		}
	}
}

// run executes a command and fails the test on a non-zero exit.
func run(t testing.TB, name string, args ...string) string {
	t.Helper()
	out, err := exec.Command(name, args...).CombinedOutput()
	if err != nil {
		t.Fatalf("%s %s: %v\n%s", name, strings.Join(args, " "), err, out)
	}
	return string(out)
}

// qemuIO runs one qemu-io command. qemu-io exits non-zero when a command
// fails, including "read -P" pattern mismatches; the output check is a belt
// for older versions that always exit 0.
func qemuIO(t testing.TB, format, path, cmd string) {
	t.Helper()
	out := run(t, "qemu-io", "-f", format, "-c", cmd, path)
	if strings.Contains(out, "Pattern verification failed") || !strings.Contains(out, "bytes at offset") {
		t.Fatalf("qemu-io -f %s -c %q %s:\n%s", format, cmd, path, out)
	}
}

type checkResult struct {
	CheckErrors int `json:"check-errors"`
	Corruptions int `json:"corruptions"`
	Leaks       int `json:"leaks"`
}

// qemuCheck returns qemu-img check's verdict; exit status 0 means no
// corruptions and no leaks (2 = corruptions, 3 = leaks).
func qemuCheck(t testing.TB, path string) (checkResult, error) {
	t.Helper()
	var stdout, stderr bytes.Buffer
	cmd := exec.Command("qemu-img", "check", "--output=json", "-f", "qcow2", path)
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	runErr := cmd.Run()
	var r checkResult
	if err := json.Unmarshal(stdout.Bytes(), &r); err != nil {
		t.Fatalf("qemu-img check %s: %v: bad JSON %q (stderr %q)", path, runErr, stdout.String(), stderr.String())
	}
	if runErr != nil {
		return r, fmt.Errorf("qemu-img check %s: %v: %s %s", path, runErr, stdout.String(), stderr.String())
	}
	return r, nil
}

func requireClean(t testing.TB, path string) {
	t.Helper()
	r, err := qemuCheck(t, path)
	if err != nil || r != (checkResult{}) {
		t.Fatalf("qemu-img check %s: %+v, %v", path, r, err)
	}
}

type imageInfo struct {
	Filename            string `json:"filename"`
	Format              string `json:"format"`
	VirtualSize         int64  `json:"virtual-size"`
	ClusterSize         int64  `json:"cluster-size"`
	BackingFilename     string `json:"backing-filename"`
	FullBackingFilename string `json:"full-backing-filename"`
	BackingFormat       string `json:"backing-filename-format"`
	DirtyFlag           bool   `json:"dirty-flag"`
	FormatSpecific      struct {
		Data struct {
			Compat       string `json:"compat"`
			RefcountBits int    `json:"refcount-bits"`
			Corrupt      bool   `json:"corrupt"`
		} `json:"data"`
	} `json:"format-specific"`
}

func qemuInfoChain(t testing.TB, path string) []imageInfo {
	t.Helper()
	out := run(t, "qemu-img", "info", "--output=json", "--backing-chain", path)
	var chain []imageInfo
	if err := json.Unmarshal([]byte(out), &chain); err != nil {
		t.Fatalf("qemu-img info %s: %v\n%s", path, err, out)
	}
	return chain
}

func sha(t testing.TB, path string) string {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	s := sha256.Sum256(b)
	return hex.EncodeToString(s[:])
}

// makeBase creates a 4 MiB base image with 0xab in its first 4 KiB.
func makeBase(t testing.TB, dir, format string) string {
	t.Helper()
	path := filepath.Join(dir, "base."+format)
	if format == "raw" {
		if err := os.WriteFile(path, nil, 0o644); err != nil {
			t.Fatal(err)
		}
		if err := os.Truncate(path, 4*mib); err != nil {
			t.Fatal(err)
		}
	} else {
		run(t, "qemu-img", "create", "-q", "-f", format, path, "4M")
	}
	qemuIO(t, format, path, "write -P 0xab 0 4k")
	return path
}

func off(n int64) string { return strconv.FormatInt(n, 10) }

// TestQemuOverlay is the main interop test: for both backing formats and
// small to large virtual sizes, qemu must accept, read through and write to
// our overlay without ever touching the base.
func TestQemuOverlay(t *testing.T) {
	requireQemu(t)
	for _, format := range []string{"raw", "qcow2"} {
		for _, size := range []int64{10 * mib, 4 * gib, 1 * tib} {
			t.Run(fmt.Sprintf("%s/%d", format, size), func(t *testing.T) {
				t.Parallel()
				dir := t.TempDir()
				base := makeBase(t, dir, format)
				baseSum := sha(t, base)
				ov := filepath.Join(dir, "overlay.qcow2")
				if err := CreateOverlay(ov, base, format, size); err != nil {
					t.Fatal(err)
				}
				requireClean(t, ov)

				chain := qemuInfoChain(t, ov)
				if len(chain) != 2 {
					t.Fatalf("backing chain has %d images, want 2: %+v", len(chain), chain)
				}
				top := chain[0]
				if top.Format != "qcow2" || top.VirtualSize != size || top.ClusterSize != clusterSize ||
					top.BackingFilename != base || top.FullBackingFilename != base || top.BackingFormat != format ||
					top.DirtyFlag || top.FormatSpecific.Data.Compat != "1.1" ||
					top.FormatSpecific.Data.RefcountBits != 16 || top.FormatSpecific.Data.Corrupt {
					t.Errorf("qemu-img info overlay: %+v", top)
				}
				if chain[1].Filename != base || chain[1].Format != format {
					t.Errorf("qemu-img info base: %+v", chain[1])
				}

				// Reads fall through to the base; writes land in the overlay.
				qemuIO(t, "qcow2", ov, "read -P 0xab 0 4k")
				qemuIO(t, "qcow2", ov, "write -P 0xcd 1M 64k")
				qemuIO(t, "qcow2", ov, "read -P 0xcd 1M 64k")
				qemuIO(t, "qcow2", ov, "read -P 0xab 0 4k")   // untouched, from base
				qemuIO(t, "qcow2", ov, "read -P 0 4k 60k")    // base's zero tail
				qemuIO(t, "qcow2", ov, "read -P 0 2M 64k")    // untouched, from base
				qemuIO(t, "qcow2", ov, "write -P 0x11 4k 4k") // COW inside the base cluster
				qemuIO(t, "qcow2", ov, "read -P 0xab 0 4k")
				qemuIO(t, "qcow2", ov, "read -P 0x11 4k 4k")
				// The last L1 entry works, beyond the end of the base.
				qemuIO(t, "qcow2", ov, "write -P 0xee "+off(size-64*kib)+" 64k")
				qemuIO(t, "qcow2", ov, "read -P 0xee "+off(size-64*kib)+" 64k")
				qemuIO(t, "qcow2", ov, "read -P 0 "+off(size-128*kib)+" 64k")
				requireClean(t, ov)

				if got := sha(t, base); got != baseSum {
					t.Errorf("base changed: sha256 %s -> %s", baseSum, got)
				}
				info, err := ReadInfo(ov)
				if err != nil {
					t.Fatal(err)
				}
				if want := (Info{3, size, 16, base, format, false}); info != want {
					t.Errorf("ReadInfo after qemu writes = %+v, want %+v", info, want)
				}
			})
		}
	}
}

// TestQemuLargeSizes covers L1 tables spanning one full cluster (4 TiB),
// several clusters (64 TiB) and qemu's maximum (2 PiB, 512 clusters); the
// refcount block must cover every one of them or qemu-img check reports
// corruption.
func TestQemuLargeSizes(t *testing.T) {
	requireQemu(t)
	for _, size := range []int64{4 * tib, 4*tib + 512, 64 * tib, MaxVirtualSize} {
		t.Run(off(size), func(t *testing.T) {
			t.Parallel()
			dir := t.TempDir()
			base := makeBase(t, dir, "raw")
			ov := filepath.Join(dir, "overlay.qcow2")
			if err := CreateOverlay(ov, base, "raw", size); err != nil {
				t.Fatal(err)
			}
			requireClean(t, ov)
			if chain := qemuInfoChain(t, ov); chain[0].VirtualSize != size || chain[0].BackingFilename != base {
				t.Errorf("qemu-img info: %+v", chain[0])
			}
			qemuIO(t, "qcow2", ov, "read -P 0xab 0 4k")
			qemuIO(t, "qcow2", ov, "write -P 0xee "+off(size-64*kib)+" 64k")
			qemuIO(t, "qcow2", ov, "read -P 0xee "+off(size-64*kib)+" 64k")
			requireClean(t, ov)
		})
	}
}

// TestQemuChain builds base.raw <- layer.qcow2 <- top.qcow2, with both qcow2
// layers written by CreateOverlay, and checks reads resolve through all
// three levels while the lower two stay unchanged.
func TestQemuChain(t *testing.T) {
	requireQemu(t)
	dir := t.TempDir()
	base := makeBase(t, dir, "raw")
	baseSum := sha(t, base)

	layer := filepath.Join(dir, "layer.qcow2")
	if err := CreateOverlay(layer, base, "raw", 10*mib); err != nil {
		t.Fatal(err)
	}
	qemuIO(t, "qcow2", layer, "write -P 0xcd 1M 64k")
	requireClean(t, layer)
	// Freeze the layer as vws does with published images.
	if err := os.Chmod(layer, 0o444); err != nil {
		t.Fatal(err)
	}
	layerSum := sha(t, layer)

	// The top is larger than the layer: the extra range reads as zeros.
	top := filepath.Join(dir, "top.qcow2")
	if err := CreateOverlay(top, layer, "qcow2", 20*mib); err != nil {
		t.Fatal(err)
	}
	requireClean(t, top)
	qemuIO(t, "qcow2", top, "read -P 0xab 0 4k")   // from base
	qemuIO(t, "qcow2", top, "read -P 0xcd 1M 64k") // from layer
	qemuIO(t, "qcow2", top, "read -P 0 2M 64k")    // unallocated everywhere
	qemuIO(t, "qcow2", top, "read -P 0 15M 64k")   // beyond the layer's size
	qemuIO(t, "qcow2", top, "write -P 0x11 1M 4k") // partial COW over the layer
	qemuIO(t, "qcow2", top, "read -P 0x11 1M 4k")
	qemuIO(t, "qcow2", top, "read -P 0xcd 1028k 60k")
	qemuIO(t, "qcow2", top, "write -P 0xef 3M 4k")
	qemuIO(t, "qcow2", top, "read -P 0xef 3M 4k")
	qemuIO(t, "qcow2", top, "read -P 0xab 0 4k")
	requireClean(t, top)

	chain := qemuInfoChain(t, top)
	if len(chain) != 3 {
		t.Fatalf("backing chain has %d images, want 3: %+v", len(chain), chain)
	}
	want := []struct {
		file, format, backing, backingFmt string
		size                              int64
	}{
		{top, "qcow2", layer, "qcow2", 20 * mib},
		{layer, "qcow2", base, "raw", 10 * mib},
		{base, "raw", "", "", 4 * mib},
	}
	for i, w := range want {
		c := chain[i]
		if c.Filename != w.file || c.Format != w.format || c.BackingFilename != w.backing ||
			c.BackingFormat != w.backingFmt || c.VirtualSize != w.size {
			t.Errorf("chain[%d] = %+v, want %+v", i, c, w)
		}
	}
	if got := sha(t, base); got != baseSum {
		t.Error("base changed")
	}
	if got := sha(t, layer); got != layerSum {
		t.Error("frozen layer changed")
	}
}

// TestQemuMatchesQemuImg compares our files with `qemu-img create` output for
// the same inputs: header fields, refcount table and refcount block must be
// identical; only the backing name position differs (qemu also writes a
// feature name table extension, which is optional).
func TestQemuMatchesQemuImg(t *testing.T) {
	requireQemu(t)
	dir := t.TempDir()
	for _, format := range []string{"raw", "qcow2"} {
		for _, size := range []int64{10 * mib, 64 * tib} {
			backing := "/nonexistent/base." + format
			ours := filepath.Join(dir, fmt.Sprintf("ours-%s-%d", format, size))
			theirs := filepath.Join(dir, fmt.Sprintf("theirs-%s-%d", format, size))
			if err := CreateOverlay(ours, backing, format, size); err != nil {
				t.Fatal(err)
			}
			// -u: don't open the (nonexistent) backing file.
			run(t, "qemu-img", "create", "-q", "-u", "-f", "qcow2", "-o", "compat=1.1",
				"-F", format, "-b", backing, theirs, off(size))
			a, err := os.ReadFile(ours)
			if err != nil {
				t.Fatal(err)
			}
			b, err := os.ReadFile(theirs)
			if err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(a[:8], b[:8]) || !bytes.Equal(a[16:headerLength], b[16:headerLength]) {
				t.Errorf("%s %d: header differs\nours   %x\nqemu's %x", format, size, a[:headerLength], b[:headerLength])
			}
			for _, r := range []struct {
				name       string
				start, end int
			}{{"refcount table", clusterSize, 2 * clusterSize}, {"refcount block", 2 * clusterSize, 3 * clusterSize}} {
				if !bytes.Equal(a[r.start:r.end], b[r.start:r.end]) {
					t.Errorf("%s %d: %s differs", format, size, r.name)
				}
			}
			if !allZero(b[3*clusterSize:]) || len(a) < len(b) {
				t.Errorf("%s %d: L1 area: qemu's %d bytes, ours %d", format, size, len(b), len(a))
			}
			ia, err := ReadInfo(ours)
			if err != nil {
				t.Fatal(err)
			}
			ib, err := ReadInfo(theirs)
			if err != nil {
				t.Fatal(err)
			}
			if ia != ib {
				t.Errorf("ReadInfo: ours %+v, qemu's %+v", ia, ib)
			}
		}
	}
}

// TestQemuReadInfoOnQemuImages reads images made by qemu-img, including v2,
// no backing file, and the smallest and largest cluster sizes (the latter
// exercises reading a 2 MiB cluster 0).
func TestQemuReadInfoOnQemuImages(t *testing.T) {
	requireQemu(t)
	dir := t.TempDir()
	raw := makeBase(t, dir, "raw")
	q := makeBase(t, dir, "qcow2")
	for i, args := range [][]string{
		{"-f", "qcow2", "%s", "1G"},
		{"-f", "qcow2", "-F", "raw", "-b", raw, "%s"},
		{"-f", "qcow2", "-F", "qcow2", "-b", q, "%s", "8G"},
		{"-f", "qcow2", "-o", "compat=0.10", "-F", "raw", "-b", raw, "%s", "2G"},
		{"-f", "qcow2", "-o", "compat=0.10", "%s", "1M"},
		{"-f", "qcow2", "-o", "cluster_size=512", "-F", "raw", "-b", raw, "%s", "1M"},
		{"-f", "qcow2", "-o", "cluster_size=2M", "-F", "qcow2", "-b", q, "%s", "1T"},
		{"-f", "qcow2", "-o", "cluster_size=2M", "%s", "1T"},
	} {
		path := filepath.Join(dir, fmt.Sprintf("q%d.qcow2", i))
		full := []string{"create", "-q"}
		for _, a := range args {
			full = append(full, strings.ReplaceAll(a, "%s", path))
		}
		run(t, "qemu-img", full...)
		got, err := ReadInfo(path)
		if err != nil {
			t.Fatalf("qemu-img %v: ReadInfo: %v", full, err)
		}
		qi := qemuInfoChain(t, path)[0]
		want := Info{
			Version:       map[string]uint32{"0.10": 2, "1.1": 3}[qi.FormatSpecific.Data.Compat],
			VirtualSize:   qi.VirtualSize,
			BackingFile:   qi.BackingFilename,
			BackingFormat: qi.BackingFormat,
		}
		for cs := qi.ClusterSize; cs > 1; cs >>= 1 {
			want.ClusterBits++
		}
		if got != want {
			t.Errorf("qemu-img %v:\nReadInfo %+v\nqemu     %+v", full, got, want)
		}
	}
}

// TestQemuCheckCatchesBadRefcounts is the negative control for requireClean:
// an overlay whose refcount block misses its last L1 cluster (the mistake a
// one-cluster assumption would make for 64 TiB) must fail qemu-img check.
func TestQemuCheckCatchesBadRefcounts(t *testing.T) {
	requireQemu(t)
	dir := t.TempDir()
	path := filepath.Join(dir, "ov.qcow2")
	if err := CreateOverlay(path, makeBase(t, dir, "raw"), "raw", 64*tib); err != nil {
		t.Fatal(err)
	}
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	last := len(b)/clusterSize - 1
	binary.BigEndian.PutUint16(b[2*clusterSize+2*last:], 0)
	if err := os.WriteFile(path, b, 0o644); err != nil {
		t.Fatal(err)
	}
	if r, err := qemuCheck(t, path); err == nil || r.Corruptions == 0 {
		t.Fatalf("qemu-img check accepted a missing L1 refcount: %+v, %v", r, err)
	}
}

// TestQemuEmpty: the blank image CreateEmpty writes (a scratch disk) is one qemu
// opens clean, with the size asked for, no backing file, reading zeros, and
// writable; EmptySize is its length, and it allocates a few KiB whatever its size.
func TestQemuEmpty(t *testing.T) {
	requireQemu(t)
	for _, size := range []int64{1 * mib, 4 * gib, 64 * tib} {
		t.Run(off(size), func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "scratch.qcow2")
			if err := CreateEmpty(path, size); err != nil {
				t.Fatal(err)
			}
			requireClean(t, path)
			chain := qemuInfoChain(t, path)
			if len(chain) != 1 || chain[0].VirtualSize != size || chain[0].BackingFilename != "" || chain[0].Format != "qcow2" {
				t.Fatalf("qemu-img info: %+v; want one qcow2 image of %d bytes on no backing file", chain, size)
			}
			info, err := ReadInfo(path)
			if err != nil || info.VirtualSize != size || info.BackingFile != "" || info.BackingFormat != "" {
				t.Fatalf("ReadInfo: %+v, %v", info, err)
			}
			fi, err := os.Stat(path)
			if err != nil {
				t.Fatal(err)
			}
			if want, err := EmptySize(size); err != nil || fi.Size() != want {
				t.Errorf("file is %d bytes; EmptySize says %d (%v)", fi.Size(), want, err)
			}
			qemuIO(t, "qcow2", path, "read -P 0 0 64k")
			qemuIO(t, "qcow2", path, "write -P 0x5a 512k 4k")
			qemuIO(t, "qcow2", path, "read -P 0x5a 512k 4k")
			requireClean(t, path)
		})
	}
	if err := CreateEmpty(filepath.Join(t.TempDir(), "odd.qcow2"), 1000); err == nil {
		t.Error("a size that is not a multiple of 512 was taken")
	}
	path := filepath.Join(t.TempDir(), "taken.qcow2")
	if err := os.WriteFile(path, []byte("data"), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := CreateEmpty(path, mib); !errors.Is(err, fs.ErrExist) {
		t.Errorf("CreateEmpty over an existing file: %v; want fs.ErrExist", err)
	}
}
