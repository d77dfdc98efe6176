package vmm

import (
	"context"
	"path/filepath"
	"slices"
	"testing"
	"time"

	"libvirt.org/go/libvirt"
)

// benchDomain defines and starts a no-OS TCG guest on qemu:///system and returns the
// Libvirt, its spec, and a raw libvirt handle to the same domain.
func benchDomain(b *testing.B) (*Libvirt, Spec, *libvirt.Connect, *libvirt.Domain) {
	b.Helper()
	l := openQEMU(b)
	dir := b.TempDir()
	s := Spec{
		Name: testPrefix + "bench-" + randomHex(4), UUID: randomUUID(), Type: "qemu",
		MemoryMiB: 64, CPUs: 1,
		Disks:      []Disk{{Path: qcow2In(b, dir), Format: "qcow2", Target: "vda", Boot: true}},
		ConsoleLog: filepath.Join(dir, "console.log"),
	}
	b.Cleanup(func() { cleanupDomain(b, l, s.Name) })
	defineAndStart(b, l, s)
	ctx := context.Background()
	c, err := l.acquire(ctx)
	if err != nil {
		b.Fatal(err)
	}
	d, err := c.LookupDomainByName(s.Name)
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { d.Free(); release(c) })
	return l, s, c, d
}

// alternate times a and raw one after the other b.N times each and reports a's median
// as ns/op beside raw's median and their ratio. Alternating, not one sub-benchmark
// after the other: the guest is busiest right after it starts, and whichever ran
// first would pay for that.
func alternate(b *testing.B, a, raw func() error) {
	var ta, tr []time.Duration
	for b.Loop() {
		t0 := time.Now()
		if err := a(); err != nil {
			b.Fatal(err)
		}
		ta = append(ta, time.Since(t0))
		t0 = time.Now()
		if err := raw(); err != nil {
			b.Fatal(err)
		}
		tr = append(tr, time.Since(t0))
	}
	slices.Sort(ta)
	slices.Sort(tr)
	ma, mr := ta[len(ta)/2], tr[len(tr)/2]
	b.ReportMetric(float64(ma.Nanoseconds()), "vws-median-ns")
	b.ReportMetric(float64(mr.Nanoseconds()), "raw-median-ns")
	b.ReportMetric(float64(ma)/float64(mr), "vws/raw")
}

// BenchmarkPauseResume: vws's Pause+Resume beside libvirt's Suspend+Resume on the
// same domain.
func BenchmarkPauseResume(b *testing.B) {
	l, s, _, d := benchDomain(b)
	ctx := context.Background()
	alternate(b, func() error {
		if err := l.Pause(ctx, s.Name); err != nil {
			return err
		}
		return l.Resume(ctx, s.Name)
	}, func() error {
		if err := d.Suspend(); err != nil {
			return err
		}
		return d.Resume()
	})
}

// BenchmarkSaveRestore: vws's Save+Restore beside libvirt's Save+DomainRestore.
func BenchmarkSaveRestore(b *testing.B) {
	l, s, c, d := benchDomain(b)
	ctx := context.Background()
	img := filepath.Join(b.TempDir(), "bench.save")
	alternate(b, func() error {
		if err := l.Save(ctx, s.Name, img); err != nil {
			return err
		}
		return l.Restore(ctx, img, s, false)
	}, func() error {
		if err := d.Save(img); err != nil {
			return err
		}
		return c.DomainRestore(img)
	})
}
