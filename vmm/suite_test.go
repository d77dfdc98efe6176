package vmm

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"libvirt.org/go/libvirt"
	"libvirt.org/go/libvirtxml"

	"github.com/vws-grid/vws/internal/errdefs"
)

const testPrefix = "vws-vmmtest-"

// TestTestDriver runs the shared suite against libvirt's in-memory test driver.
func TestTestDriver(t *testing.T) {
	l, err := Open(t.Context(), Config{URI: "test:///default"})
	if err != nil {
		t.Fatalf("open test:///default: %v", err)
	}
	t.Cleanup(func() { l.Close() })
	if got := l.DomainType(); got != "qemu" {
		t.Errorf("auto domain type on the test driver = %q, want qemu", got)
	}
	testSuite(t, l, "qemu", func(t *testing.T) string {
		return filepath.Join(t.TempDir(), "root.qcow2") // the test driver never opens it
	})
}

// TestHostNetworks: the host's libvirt networks are listed with whether they are
// started, as a deploy checks its NICs against them.
func TestHostNetworks(t *testing.T) {
	l, err := Open(t.Context(), Config{URI: "test:///default"})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { l.Close() })
	c, err := libvirt.NewConnect("test:///default")
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	n, err := c.NetworkDefineXML(`<network><name>` + testPrefix + `off</name><bridge name="vwstestbr0"/></network>`)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { n.Undefine(); n.Free() })
	h, err := l.Host(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	want := []Network{{Name: "default", Active: true}, {Name: testPrefix + "off", Active: false}}
	if !h.NetworksKnown || !slices.Equal(h.Networks, want) {
		t.Errorf("networks %+v (known %v); want %+v", h.Networks, h.NetworksKnown, want)
	}
}

// TestQEMU runs the shared suite against the real qemu:///system with TCG guests.
func TestQEMU(t *testing.T) {
	l := openQEMU(t)
	testSuite(t, l, "qemu", emptyQcow2)
}

// openQEMU opens qemu:///system or skips the test with the reason.
func openQEMU(t testing.TB) *Libvirt {
	t.Helper()
	if testing.Short() {
		t.Skip("real QEMU guests are skipped in -short mode")
	}
	if os.Geteuid() != 0 {
		t.Skip("real QEMU tests need root (qemu:///system)")
	}
	if _, err := exec.LookPath("qemu-img"); err != nil {
		t.Skip("qemu-img not installed (apt-get install qemu-utils)")
	}
	l, err := Open(context.Background(), Config{URI: "qemu:///system", DomainType: "qemu"})
	if err != nil {
		t.Skipf("libvirtd unreachable, skipping real QEMU tests (start virtlogd -d && libvirtd -d): %v", err)
	}
	t.Cleanup(func() { l.Close() })
	return l
}

// emptyQcow2 creates an empty 64 MiB qcow2 image: a guest with no OS that starts,
// pauses, saves and restores fine on TCG.
func emptyQcow2(t *testing.T) string { return qcow2In(t, t.TempDir()) }

func qcow2In(t testing.TB, dir string) string {
	t.Helper()
	p := filepath.Join(dir, "root.qcow2")
	if out, err := exec.Command("qemu-img", "create", "-q", "-f", "qcow2", p, "64M").CombinedOutput(); err != nil {
		t.Fatalf("qemu-img create: %v: %s", err, out)
	}
	return p
}

func randomHex(n int) string {
	b := make([]byte, n)
	rand.Read(b)
	return hex.EncodeToString(b)
}

func randomUUID() string {
	b := make([]byte, 16)
	rand.Read(b)
	b[6] = b[6]&0x0f | 0x40
	b[8] = b[8]&0x3f | 0x80
	h := hex.EncodeToString(b)
	return h[:8] + "-" + h[8:12] + "-" + h[12:16] + "-" + h[16:20] + "-" + h[20:]
}

// newTestSpec returns a spec for a no-OS guest with a unique name, and removes the
// domain (destroy + undefine) when the test ends, also on failure.
func newTestSpec(t *testing.T, l *Libvirt, domType string, diskPath func(*testing.T) string) Spec {
	t.Helper()
	s := Spec{
		Name: testPrefix + randomHex(6), UUID: randomUUID(), Type: domType,
		MemoryMiB: 64, CPUs: 1,
		Disks:      []Disk{{Path: diskPath(t), Format: "qcow2", Target: "vda", Boot: true}},
		ConsoleLog: filepath.Join(t.TempDir(), "console.log"),
	}
	t.Cleanup(func() { cleanupDomain(t, l, s.Name) })
	return s
}

// defineAndStart defines the guest s and boots it.
func defineAndStart(t testing.TB, l *Libvirt, s Spec) {
	t.Helper()
	ctx := context.Background()
	if err := l.Define(ctx, s); err != nil {
		t.Fatal(err)
	}
	if err := l.Start(ctx, s.Name); err != nil {
		t.Fatal(err)
	}
}

func cleanupDomain(t testing.TB, l *Libvirt, name string) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := l.Stop(ctx, name); err != nil && !errors.Is(err, ErrNoDomain) {
		t.Errorf("cleanup: stop %s: %v", name, err)
	}
	if err := l.Undefine(ctx, name); err != nil {
		t.Errorf("cleanup: undefine %s: %v", name, err)
	}
}

func isTestDriver(l *Libvirt) bool { return strings.HasPrefix(l.uri, "test:") }

// liveXML returns the domain's current XML, parsed.
func liveXML(t *testing.T, l *Libvirt, name string) *libvirtxml.Domain {
	t.Helper()
	c, err := l.acquire(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	defer release(c)
	d, err := c.LookupDomainByName(name)
	if err != nil {
		t.Fatal(err)
	}
	defer d.Free()
	x, err := d.GetXMLDesc(0)
	if err != nil {
		t.Fatal(err)
	}
	var dom libvirtxml.Domain
	if err := dom.Unmarshal(x); err != nil {
		t.Fatal(err)
	}
	return &dom
}

// testSuite is the behaviour every hypervisor connection must show; domType is the
// domain type guests are defined with, diskPath makes a disk image for one guest.
func testSuite(t *testing.T, l *Libvirt, domType string, diskPath func(*testing.T) string) {
	t.Run("Host", func(t *testing.T) {
		h, err := l.Host(t.Context())
		if err != nil {
			t.Fatal(err)
		}
		if h.VMMType != domType || h.DomainType != domType || h.VMMVersion == "" || h.LibvirtVersion == "" ||
			h.Arch == "" || h.CPUs < 1 || h.MemoryMiB < 1 || !h.NetworksKnown {
			t.Errorf("host info incomplete: %+v", h)
		}
		t.Logf("host: %+v", h)
	})

	t.Run("Lifecycle", func(t *testing.T) {
		ctx := t.Context()
		s := newTestSpec(t, l, domType, diskPath)
		expect := func(want State) {
			t.Helper()
			got, err := l.State(ctx, s.Name)
			if err != nil || got != want {
				t.Fatalf("state = %v, %v; want %v", got, err, want)
			}
		}
		must := func(what string, err error) {
			t.Helper()
			if err != nil {
				t.Fatalf("%s: %v", what, err)
			}
		}

		must("define", l.Define(ctx, s))
		expect(StateShutOff)
		must("redefine (same name and UUID)", l.Define(ctx, s))
		other := s
		other.UUID = randomUUID()
		if err := l.Define(ctx, other); !errors.Is(err, errdefs.ErrHypervisor) {
			t.Errorf("define same name, other UUID: %v, want ErrHypervisor", err)
		}
		must("start", l.Start(ctx, s.Name))
		expect(StateRunning)
		if err := l.Start(ctx, s.Name); !errors.Is(err, errdefs.ErrHypervisor) || !strings.Contains(err.Error(), s.Name) {
			t.Errorf("start a running domain: %v, want ErrHypervisor naming the domain", err)
		}
		must("pause", l.Pause(ctx, s.Name))
		expect(StatePaused)
		must("resume", l.Resume(ctx, s.Name))
		expect(StateRunning)
		must("stop", l.Stop(ctx, s.Name))
		must("start paused", l.StartPaused(ctx, s.Name))
		expect(StatePaused)
		must("resume", l.Resume(ctx, s.Name))
		expect(StateRunning)

		doms, err := l.List(ctx, s.Name)
		if err != nil || len(doms) != 1 || doms[0] != (Domain{Name: s.Name, UUID: s.UUID, State: StateRunning}) {
			t.Errorf("list = %+v, %v", doms, err)
		}
		if err := l.Undefine(ctx, s.Name); !errors.Is(err, errdefs.ErrState) {
			t.Errorf("undefine a running domain: %v, want ErrState", err)
		}

		img := filepath.Join(t.TempDir(), "ws.save")
		must("save", l.Save(ctx, s.Name, img))
		expect(StateShutOff)
		must("restore", l.Restore(ctx, img, s, false))
		expect(StateRunning)

		must("save again", l.Save(ctx, s.Name, img))
		must("restore paused", l.Restore(ctx, img, s, true))
		expect(StatePaused)
		must("resume restored", l.Resume(ctx, s.Name))

		wrong := s
		wrong.UUID = randomUUID()
		must("save for mismatch", l.Save(ctx, s.Name, img))
		if err := l.Restore(ctx, img, wrong, false); !errors.Is(err, ErrInvalidSpec) {
			t.Errorf("restore with another UUID: %v, want ErrInvalidSpec", err)
		}
		must("restore after mismatch", l.Restore(ctx, img, s, false))

		t.Run("RestoreRewritesPaths", func(t *testing.T) { restoreMoved(t, l, s) })

		must("stop", l.Stop(ctx, s.Name))
		expect(StateShutOff)
		must("stop when off", l.Stop(ctx, s.Name))
		must("undefine", l.Undefine(ctx, s.Name))
		if _, err := l.State(ctx, s.Name); !errors.Is(err, ErrNoDomain) {
			t.Errorf("state after undefine: %v, want ErrNoDomain", err)
		}
		must("undefine when absent", l.Undefine(ctx, s.Name))
		if err := l.Start(ctx, s.Name); !errors.Is(err, ErrNoDomain) {
			t.Errorf("start an absent domain: %v, want ErrNoDomain", err)
		}
	})

	t.Run("ManagedSave", func(t *testing.T) {
		ctx := t.Context()
		s := newTestSpec(t, l, domType, diskPath)
		managedSave := func() {
			t.Helper()
			c, err := l.acquire(t.Context())
			if err != nil {
				t.Fatal(err)
			}
			defer release(c)
			d, err := c.LookupDomainByName(s.Name)
			if err != nil {
				t.Fatal(err)
			}
			defer d.Free()
			if err := d.ManagedSave(0); err != nil { // as virsh managedsave, libvirt-guests
				t.Fatal(err)
			}
		}
		listed := func(want Domain) {
			t.Helper()
			doms, err := l.List(ctx, s.Name)
			if err != nil || len(doms) != 1 || doms[0] != want {
				t.Fatalf("list = %+v, %v; want %+v", doms, err, want)
			}
		}
		for _, step := range []func() error{
			func() error { return l.Define(ctx, s) },
			func() error { return l.Start(ctx, s.Name) },
		} {
			if err := step(); err != nil {
				t.Fatal(err)
			}
		}
		if err := l.RestoreManagedSave(ctx, s.Name, false); !errors.Is(err, ErrNoManagedSave) || !errors.Is(err, errdefs.ErrState) || errdefs.Advice(err) == "" {
			t.Errorf("restore a managed save the domain lacks: %v, want ErrNoManagedSave, a state error with advice", err)
		}
		managedSave()
		listed(Domain{Name: s.Name, UUID: s.UUID, State: StateShutOff, Saved: true, ManagedSave: true})
		if err := l.RestoreManagedSave(ctx, s.Name, true); err != nil {
			t.Fatal(err)
		}
		// The test driver has no job API: its paused domain counts as busy (List
		// concludes nothing it cannot ask).
		listed(Domain{Name: s.Name, UUID: s.UUID, State: StatePaused, Busy: strings.HasPrefix(l.uri, "test:")})
		if err := l.Resume(ctx, s.Name); err != nil {
			t.Fatal(err)
		}
		managedSave()
		if err := l.RestoreManagedSave(ctx, s.Name, false); err != nil {
			t.Fatal(err)
		}
		listed(Domain{Name: s.Name, UUID: s.UUID, State: StateRunning})

		// Removed, or discarded by a cold start: never resumed after that.
		managedSave()
		if err := l.RemoveManagedSave(ctx, s.Name); err != nil {
			t.Fatal(err)
		}
		if err := l.RemoveManagedSave(ctx, s.Name); err != nil {
			t.Errorf("remove a managed save twice: %v", err)
		}
		if err := l.RestoreManagedSave(ctx, s.Name, false); !errors.Is(err, ErrNoManagedSave) {
			t.Errorf("restore a removed managed save: %v, want ErrNoManagedSave", err)
		}
		if err := l.Start(ctx, s.Name); err != nil {
			t.Fatal(err)
		}
		if isTestDriver(l) {
			return // it has no START_FORCE_BOOT
		}
		// A cold Start over a managed save succeeds and leaves none behind (that it
		// boots afresh rather than resuming shows only with a guest that prints:
		// TestManagerManagedSave).
		managedSave()
		if err := l.Start(ctx, s.Name); err != nil {
			t.Fatal(err)
		}
		if err := l.Stop(ctx, s.Name); err != nil {
			t.Fatal(err)
		}
		listed(Domain{Name: s.Name, UUID: s.UUID, State: StateShutOff, Forced: true})
	})

	t.Run("RestoreWithoutDefinition", func(t *testing.T) {
		ctx := t.Context()
		s := newTestSpec(t, l, domType, diskPath)
		img := filepath.Join(t.TempDir(), "ws.save")
		for _, step := range []func() error{
			func() error { return l.Define(ctx, s) },
			func() error { return l.Start(ctx, s.Name) },
			func() error { return l.Save(ctx, s.Name, img) },
			func() error { return l.Undefine(ctx, s.Name) },
			func() error { return l.Restore(ctx, img, s, false) },
		} {
			if err := step(); err != nil {
				t.Fatal(err)
			}
		}
		if st, err := l.State(ctx, s.Name); err != nil || st != StateRunning {
			t.Fatalf("restored transient domain: %v, %v", st, err)
		}
		if err := l.Stop(ctx, s.Name); err != nil {
			t.Fatal(err)
		}
		if _, err := l.State(ctx, s.Name); !errors.Is(err, ErrNoDomain) {
			t.Errorf("a stopped transient domain should vanish: %v", err)
		}
	})

	t.Run("Shutdown", func(t *testing.T) {
		ctx := t.Context()
		s := newTestSpec(t, l, domType, diskPath)
		if err := l.Define(ctx, s); err != nil {
			t.Fatal(err)
		}
		if forced, err := l.Shutdown(ctx, s.Name, time.Second); err != nil || forced {
			t.Errorf("shutdown of a shut-off domain = %v, %v; want false, nil", forced, err)
		}
		if err := l.Start(ctx, s.Name); err != nil {
			t.Fatal(err)
		}
		if !isTestDriver(l) { // a no-OS guest ignores ACPI: cancelling must not force it
			cctx, cancel := context.WithTimeout(ctx, 300*time.Millisecond)
			forced, err := l.Shutdown(cctx, s.Name, time.Minute)
			cancel()
			if !errors.Is(err, context.DeadlineExceeded) || forced {
				t.Errorf("shutdown with a cancelled ctx = %v, %v; want false, DeadlineExceeded", forced, err)
			}
		}
		start := time.Now()
		forced, err := l.Shutdown(ctx, s.Name, 700*time.Millisecond)
		if err != nil {
			t.Fatal(err)
		}
		// The test driver powers a guest off at once; a guest with no OS ignores ACPI.
		if want := !isTestDriver(l); forced != want {
			t.Errorf("forced = %v, want %v", forced, want)
		}
		if forced && time.Since(start) < 700*time.Millisecond {
			t.Errorf("forced after %v, before the grace period", time.Since(start))
		}
		if st, err := l.State(ctx, s.Name); err != nil || st != StateShutOff {
			t.Errorf("after shutdown: %v, %v", st, err)
		}
	})

	t.Run("Errors", func(t *testing.T) {
		ctx := t.Context()
		name := testPrefix + "absent-" + randomHex(4)
		if _, err := l.State(ctx, name); !errors.Is(err, ErrNoDomain) || errors.Is(err, errdefs.ErrHypervisor) {
			t.Errorf("state of absent: %v", err)
		}
		if err := l.Stop(ctx, name); !errors.Is(err, ErrNoDomain) {
			t.Errorf("stop absent: %v", err)
		}
		if _, err := l.Shutdown(ctx, name, time.Second); !errors.Is(err, ErrNoDomain) {
			t.Errorf("shutdown absent: %v", err)
		}
		cctx, cancel := context.WithCancel(ctx)
		cancel()
		if err := l.Start(cctx, name); !errors.Is(err, context.Canceled) {
			t.Errorf("start with a cancelled ctx: %v", err)
		}
		if err := l.Restore(ctx, "/nonexistent/x.save", validSpec(), false); !errors.Is(err, errdefs.ErrHypervisor) {
			t.Errorf("restore a missing image: %v", err)
		}
	})
}

// restoreMoved saves the running domain s, moves its disk and console log as if to
// another host, and restores it from a spec with the new paths.
func restoreMoved(t *testing.T, l *Libvirt, s Spec) {
	ctx := t.Context()
	img := filepath.Join(t.TempDir(), "moved.save")
	if err := l.Save(ctx, s.Name, img); err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	moved := s
	moved.Disks = []Disk{s.Disks[0]}
	moved.Disks[0].Path = filepath.Join(dir, "moved-root.qcow2")
	moved.ConsoleLog = filepath.Join(dir, "moved-console.log")
	for from, to := range map[string]string{s.Disks[0].Path: moved.Disks[0].Path, s.ConsoleLog: moved.ConsoleLog} {
		if err := os.Rename(from, to); err != nil && !errors.Is(err, os.ErrNotExist) {
			t.Fatal(err)
		}
	}
	err := l.Restore(ctx, img, moved, false)
	var lerr libvirt.Error
	if isTestDriver(l) && errors.As(err, &lerr) && lerr.Code == libvirt.ERR_ARGUMENT_UNSUPPORTED {
		// Put the domain back as it was for the rest of the suite.
		if err := l.Restore(ctx, img, s, false); err != nil {
			t.Fatal(err)
		}
		t.Skipf("the test driver cannot restore with changed XML: %v", err)
	}
	if err != nil {
		t.Fatal(err)
	}
	if st, err := l.State(ctx, s.Name); err != nil || st != StateRunning {
		t.Fatalf("after restore: %v, %v", st, err)
	}
	dom := liveXML(t, l, s.Name)
	if got := dom.Devices.Disks[0].Source.File.File; got != moved.Disks[0].Path {
		t.Errorf("running disk source = %s, want %s", got, moved.Disks[0].Path)
	}
	if got := dom.Devices.Serials[0].Source.File.Path; got != moved.ConsoleLog {
		t.Errorf("running console log = %s, want %s", got, moved.ConsoleLog)
	}
	if _, err := os.Stat(s.ConsoleLog); err == nil {
		t.Errorf("the old console log %s was recreated", s.ConsoleLog)
	}
}
