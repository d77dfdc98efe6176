package vmm

import (
	"bufio"
	"bytes"
	"errors"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"testing"

	"github.com/vws-grid/vws/internal/errdefs"
)

// disconnectOurClients makes libvirtd drop every connection of this process, as a
// libvirtd restart would, without disturbing anyone else's.
func disconnectOurClients(t *testing.T) {
	t.Helper()
	out, err := exec.Command("virt-admin", "srv-clients-list", "libvirtd").Output()
	if err != nil {
		t.Skipf("virt-admin cannot list libvirtd's clients: %v", err)
	}
	n := 0
	for _, line := range strings.Split(string(out), "\n") {
		f := strings.Fields(line)
		if len(f) == 0 {
			continue
		}
		if _, err := strconv.Atoi(f[0]); err != nil {
			continue
		}
		info, err := exec.Command("virt-admin", "client-info", "libvirtd", f[0]).Output()
		if err != nil {
			continue // gone meanwhile
		}
		sc := bufio.NewScanner(bytes.NewReader(info))
		for sc.Scan() {
			k, v, _ := strings.Cut(sc.Text(), ":")
			if strings.TrimSpace(k) == "unix_process_id" && strings.TrimSpace(v) == strconv.Itoa(os.Getpid()) {
				if out, err := exec.Command("virt-admin", "client-disconnect", "libvirtd", f[0]).CombinedOutput(); err != nil {
					t.Fatalf("client-disconnect %s: %v: %s", f[0], err, out)
				}
				n++
			}
		}
	}
	if n == 0 {
		t.Fatal("found no libvirtd client of this process")
	}
}

// TestReconnect: after libvirtd drops the connection, read-only and mutating calls
// re-dial; when libvirtd stays unreachable, calls fail with ErrHypervisor saying so.
func TestReconnect(t *testing.T) {
	l := openQEMU(t)
	if _, err := exec.LookPath("virt-admin"); err != nil {
		t.Skip("virt-admin not installed")
	}
	ctx := t.Context()
	s := newTestSpec(t, l, "qemu", emptyQcow2)
	if err := l.Define(ctx, s); err != nil {
		t.Fatal(err)
	}

	disconnectOurClients(t)
	if st, err := l.State(ctx, s.Name); err != nil || st != StateShutOff {
		t.Fatalf("read after disconnect: %v, %v", st, err)
	}
	disconnectOurClients(t)
	if _, err := l.List(ctx, testPrefix); err != nil {
		t.Fatalf("list after disconnect: %v", err)
	}
	disconnectOurClients(t)
	if err := l.Start(ctx, s.Name); err != nil { // the lookup notices and re-dials first
		t.Fatalf("start after disconnect: %v", err)
	}
	disconnectOurClients(t)
	if err := l.Stop(ctx, s.Name); err != nil {
		t.Fatalf("stop after disconnect: %v", err)
	}

	// libvirtd "gone for good": point the Libvirt at a socket nobody listens on.
	good := l.uri
	l.uri = "qemu+unix:///system?socket=/nonexistent/libvirt-sock"
	disconnectOurClients(t)
	for name, err := range map[string]error{
		"state":  func() error { _, err := l.State(ctx, s.Name); return err }(),
		"start":  l.Start(ctx, s.Name),
		"define": l.Define(ctx, s),
	} {
		if !errors.Is(err, errdefs.ErrHypervisor) || !strings.Contains(err.Error(), "unreachable") ||
			!strings.Contains(err.Error(), "start it") {
			t.Errorf("%s with libvirtd unreachable: %v", name, err)
		}
	}
	l.uri = good
	if st, err := l.State(ctx, s.Name); err != nil || st != StateShutOff {
		t.Fatalf("after libvirtd is back: %v, %v", st, err)
	}
}

func TestOpenUnreachable(t *testing.T) {
	_, err := Open(t.Context(), Config{URI: "qemu+unix:///system?socket=/nonexistent/libvirt-sock"})
	if !errors.Is(err, errdefs.ErrHypervisor) || !strings.Contains(err.Error(), "unreachable") {
		t.Fatalf("open: %v", err)
	}
	t.Log(err)
}

func TestOpenExplicitKVMWithoutCaps(t *testing.T) {
	// The test driver offers no kvm domains.
	if _, err := Open(t.Context(), Config{URI: "test:///default", DomainType: "kvm"}); !errors.Is(err, ErrInvalidSpec) {
		t.Fatalf("open with kvm on the test driver: %v", err)
	}
}

func TestClosed(t *testing.T) {
	l, err := Open(t.Context(), Config{URI: "test:///default"})
	if err != nil {
		t.Fatal(err)
	}
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	if _, err := l.State(t.Context(), "x"); !errors.Is(err, errClosed) || !errors.Is(err, errdefs.ErrHypervisor) {
		t.Errorf("state after Close: %v", err)
	}
	if err := l.Close(); err != nil {
		t.Errorf("second Close: %v", err)
	}
}
