package vmm

import (
	"context"
	"path/filepath"
	"testing"

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
	ctx := context.Background()
	if err := l.Define(ctx, s); err != nil {
		b.Fatal(err)
	}
	if err := l.Start(ctx, s.Name); err != nil {
		b.Fatal(err)
	}
	c, err := l.acquire()
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

func BenchmarkPauseResume(b *testing.B) {
	l, s, _, d := benchDomain(b)
	ctx := context.Background()
	b.Run("vws", func(b *testing.B) {
		for b.Loop() {
			if err := l.Pause(ctx, s.Name); err != nil {
				b.Fatal(err)
			}
			if err := l.Resume(ctx, s.Name); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("raw", func(b *testing.B) {
		for b.Loop() {
			if err := d.Suspend(); err != nil {
				b.Fatal(err)
			}
			if err := d.Resume(); err != nil {
				b.Fatal(err)
			}
		}
	})
}

func BenchmarkSaveRestore(b *testing.B) {
	l, s, c, d := benchDomain(b)
	ctx := context.Background()
	img := filepath.Join(b.TempDir(), "bench.save")
	b.Run("vws", func(b *testing.B) {
		for b.Loop() {
			if err := l.Save(ctx, s.Name, img); err != nil {
				b.Fatal(err)
			}
			if err := l.Restore(ctx, img, s, false); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("raw", func(b *testing.B) {
		for b.Loop() {
			if err := d.Save(img); err != nil {
				b.Fatal(err)
			}
			if err := c.DomainRestore(img); err != nil {
				b.Fatal(err)
			}
		}
	})
}
