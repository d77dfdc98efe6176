package qcow2

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"syscall"
	"testing"
	"time"
)

// benchDir returns an empty directory on the filesystem vws images live on,
// because fsync cost depends on it. The package directory is under /work;
// os.TempDir is used only when it is on the same device.
func benchDir(b *testing.B) string {
	b.Helper()
	wd, err := os.Getwd()
	if err != nil {
		b.Fatal(err)
	}
	if sameDevice(wd, os.TempDir()) {
		return b.TempDir()
	}
	dir, err := os.MkdirTemp(wd, ".bench-")
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { os.RemoveAll(dir) })
	return dir
}

func sameDevice(a, b string) bool {
	var sa, sb syscall.Stat_t
	return syscall.Stat(a, &sa) == nil && syscall.Stat(b, &sb) == nil && sa.Dev == sb.Dev
}

// latencies records per-call durations so benchmarks can report p50/p99,
// which is what the workspace Create budget is stated in.
type latencies []time.Duration

func (l latencies) report(b *testing.B) {
	if len(l) == 0 {
		return
	}
	slices.Sort(l)
	b.ReportMetric(float64(l[len(l)/2].Microseconds())/1000, "p50-ms")
	b.ReportMetric(float64(l[len(l)*99/100].Microseconds())/1000, "p99-ms")
}

// BenchmarkCreateOverlay measures CreateOverlay, fsync included, for small
// to maximal virtual sizes: the cost must not depend on the size.
func BenchmarkCreateOverlay(b *testing.B) {
	for _, size := range []int64{10 * mib, 1 * tib, 64 * tib, MaxVirtualSize} {
		b.Run(fmt.Sprintf("size=%d", size), func(b *testing.B) {
			dir := benchDir(b)
			base := filepath.Join(dir, "base.raw")
			var lat latencies
			for i := 0; b.Loop(); i++ {
				start := time.Now()
				if err := CreateOverlay(filepath.Join(dir, fmt.Sprintf("ov-%d.qcow2", i)), base, "raw", size); err != nil {
					b.Fatal(err)
				}
				lat = append(lat, time.Since(start))
			}
			lat.report(b)
		})
	}
}

// BenchmarkQemuImgCreate is the baseline CreateOverlay replaces.
func BenchmarkQemuImgCreate(b *testing.B) {
	requireQemu(b)
	dir := benchDir(b)
	base := filepath.Join(dir, "base.raw")
	if err := os.WriteFile(base, nil, 0o644); err != nil {
		b.Fatal(err)
	}
	if err := os.Truncate(base, 10*mib); err != nil {
		b.Fatal(err)
	}
	var lat latencies
	for i := 0; b.Loop(); i++ {
		start := time.Now()
		out, err := exec.Command("qemu-img", "create", "-q", "-f", "qcow2", "-F", "raw", "-b", base,
			filepath.Join(dir, fmt.Sprintf("ov-%d.qcow2", i))).CombinedOutput()
		if err != nil {
			b.Fatalf("qemu-img create: %v\n%s", err, out)
		}
		lat = append(lat, time.Since(start))
	}
	lat.report(b)
}
