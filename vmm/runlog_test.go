package vmm

import (
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

// Lines as libvirt 9.0 and QEMU 7.2 write them (Debian 12), environment cut short.
const (
	logStart = "2026-11-30 18:21:36.186+0000: starting up libvirt version: 9.0.0, package: 9.0.0-4+deb12u2 (Debian), qemu version: 7.2.22, kernel: 6.1.0, hostname: vm\n" +
		"LC_ALL=C \\\nPATH=/usr/bin \\\n/usr/bin/qemu-system-x86_64 \\\n-name guest=vws-x,debug-threads=on \\\n-msg timestamp=on\n"
	logKilledByLibvirtd = "2026-11-30T18:21:53.839894Z qemu-system-x86_64: terminating on signal 15 from pid 27154 (libvirtd)\n"
	logKilledBySystemd  = "2026-11-30T18:21:53.839894Z qemu-system-x86_64: terminating on signal 15 from pid 1 (systemd)\n"
)

func logEnd(reason string) string {
	return "2026-11-30 18:21:55.442+0000: shutting down, reason=" + reason + "\n"
}

func TestParseLastRun(t *testing.T) {
	for _, c := range []struct {
		name, log string
		want      LastRun
		found     bool
	}{
		{"guest powered off", logStart + logEnd("shutdown"),
			LastRun{Ended: true, Reason: "shutdown", EndedAt: "2026-11-30 18:21:55.442+0000"}, true},
		{"destroyed", logStart + logKilledByLibvirtd + logEnd("destroyed"),
			LastRun{Ended: true, Reason: "destroyed", EndedAt: "2026-11-30 18:21:55.442+0000",
				Killed: "terminating on signal 15 from pid 27154 (libvirtd)"}, true},
		{"killed with the host, libvirtd gone", logStart + logKilledBySystemd,
			LastRun{Killed: "terminating on signal 15 from pid 1 (systemd)"}, true},
		{"power failure: no end", logStart, LastRun{}, true},
		// The end of an earlier run is not the latest run's.
		{"earlier run ended, latest did not", logStart + logEnd("shutdown") + logStart, LastRun{}, true},
		{"rolled over: no start", logKilledBySystemd + logEnd("shutdown"), LastRun{}, false},
		{"empty", "", LastRun{}, false},
	} {
		got, found := parseLastRun([]byte(c.log))
		if got != c.want || found != c.found {
			t.Errorf("%s: %+v, %v; want %+v, %v", c.name, got, found, c.want, c.found)
		}
	}
}

func TestDomainLogDir(t *testing.T) {
	for uri, want := range map[string]string{
		"qemu:///system": systemDomainLogDir,
		"qemu+unix:///system?socket=/tmp/x/libvirt-s": systemDomainLogDir,
		"qemu:///session":        "",
		"qemu+ssh://host/system": "",
		"xen:///system":          "",
		"test:///default":        "",
	} {
		if got := domainLogDir(uri); got != want {
			t.Errorf("domainLogDir(%q) = %q, want %q", uri, got, want)
		}
	}
}

func TestLastRunRefuses(t *testing.T) {
	dir := t.TempDir()
	l := &Libvirt{uri: "qemu:///system", logDir: dir}
	if _, err := l.LastRun("../etc/passwd"); !errors.Is(err, ErrNoRunLog) {
		t.Errorf("a name that is a path: %v", err)
	}
	if _, err := l.LastRun("vws-none"); !errors.Is(err, ErrNoRunLog) {
		t.Errorf("no log: %v", err)
	}
	// A long log: only its tail is read, and the latest run is found in it.
	long := strings.Repeat(logStart+logEnd("destroyed"), 2*runLogTail/len(logStart)) + logStart + logKilledBySystemd
	if err := os.WriteFile(filepath.Join(dir, "vws-long.log"), []byte(long), 0o600); err != nil {
		t.Fatal(err)
	}
	if run, err := l.LastRun("vws-long"); err != nil || run.Ended || !strings.Contains(run.Killed, "(systemd)") {
		t.Errorf("long log: %+v, %v", run, err)
	}
	if _, err := (&Libvirt{uri: "test:///default"}).LastRun("vws-long"); !errors.Is(err, ErrNoRunLog) {
		t.Errorf("a driver without domain logs: %v", err)
	}
}

// TestLastRunQEMU reads what the real libvirtd logged of a domain's runs.
func TestLastRunQEMU(t *testing.T) {
	l := openQEMU(t)
	ctx := t.Context()
	s := newTestSpec(t, l, "qemu", emptyQcow2)
	defineAndStart(t, l, s)
	if run, err := l.LastRun(s.Name); err != nil || run.Ended || run.Killed != "" {
		t.Fatalf("a running domain's run: %+v, %v; want not ended", run, err)
	}
	if err := l.Stop(ctx, s.Name); err != nil {
		t.Fatal(err)
	}
	if run, err := l.LastRun(s.Name); err != nil || !run.Ended || run.Reason != "destroyed" || !strings.Contains(run.Killed, "(libvirtd)") {
		t.Fatalf("after a forced stop: %+v, %v; want ended, destroyed, QEMU killed by libvirtd", run, err)
	}
	// QEMU dying under libvirtd: logged as a crash, and the run before it does not count.
	if err := l.Start(ctx, s.Name); err != nil {
		t.Fatal(err)
	}
	out, err := exec.Command("pgrep", "-f", "guest="+s.Name+",").Output()
	if err != nil {
		t.Fatalf("QEMU of %s: %v", s.Name, err)
	}
	for _, field := range strings.Fields(string(out)) {
		pid, err := strconv.Atoi(field)
		if err != nil {
			t.Fatal(err)
		}
		if err := syscall.Kill(pid, syscall.SIGKILL); err != nil {
			t.Fatal(err)
		}
	}
	deadline := time.Now().Add(30 * time.Second)
	for {
		run, err := l.LastRun(s.Name)
		if err == nil && run.Ended {
			if run.Reason != "crashed" || run.Killed != "" {
				t.Fatalf("after QEMU was killed: %+v; want ended, crashed, no line of QEMU's", run)
			}
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("libvirtd logged no end of the run QEMU was killed in: %+v, %v", run, err)
		}
		time.Sleep(50 * time.Millisecond)
	}
}
