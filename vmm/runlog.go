package vmm

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"net/url"
	"os"
	"path/filepath"
	"strings"
)

// After a host restart libvirt's API cannot tell how a guest's last run ended: the
// QEMU driver keeps the state of running domains under /run, which is gone. The log
// it keeps of each domain (/var/log/libvirt/qemu/NAME.log) survives: libvirtd writes
// "starting up" when it starts QEMU and "shutting down, reason=R" when it stops it.
// A run without that last line ended with libvirtd no longer there to see it: the
// host lost power, or killed QEMU after libvirtd had stopped (QEMU's own line then
// says which signal from whom).

// systemDomainLogDir is where libvirt's system-wide QEMU driver logs its domains.
const systemDomainLogDir = "/var/log/libvirt/qemu"

// runLogTail bounds how much of a domain's log is read: one run's start-up block and
// end lines are a few KiB, the rest of the file is earlier runs.
const runLogTail = 256 << 10

// LastRun is what libvirt's log of a domain says of the domain's latest run.
type LastRun struct {
	// Ended: libvirtd logged the run's end, at EndedAt, with Reason, its shut-off
	// reason ("shutdown": the guest powered itself off; "destroyed", "crashed",
	// "saved", "failed", …).
	Ended   bool
	Reason  string
	EndedAt string
	// Killed is QEMU's own line when a signal terminated it ("terminating on signal
	// 15 from pid 1 (systemd)"), "" when it logged none.
	Killed string
}

// ErrNoRunLog: this host keeps no log of the domain's latest run that vws can read
// (another URI than a local system QEMU driver, no such domain, the file rolled over
// since the run began).
var ErrNoRunLog = errors.New("no libvirt log of the domain's latest run")

// domainLogDir is where the QEMU driver of uri logs its domains, "" when vws cannot
// read it (a remote or session driver, Xen, the test driver).
func domainLogDir(uri string) string {
	u, err := url.Parse(uri)
	if err != nil || u.Host != "" || u.Path != "/system" {
		return ""
	}
	switch u.Scheme {
	case "qemu", "qemu+unix":
		return systemDomainLogDir
	}
	return ""
}

// LastRun reads how the latest run of domain name ended from libvirt's log of it.
func (l *Libvirt) LastRun(name string) (LastRun, error) {
	dir := l.logDir
	if dir == "" {
		return LastRun{}, fmt.Errorf("%w: libvirt at %s keeps no domain logs on this host", ErrNoRunLog, l.uri)
	}
	if !nameRE.MatchString(name) {
		return LastRun{}, fmt.Errorf("%w: %q is not a domain name vws defines", ErrNoRunLog, name)
	}
	path := filepath.Join(dir, name+".log")
	tail, err := readTail(path, runLogTail)
	if err != nil {
		return LastRun{}, fmt.Errorf("%w: %w", ErrNoRunLog, err)
	}
	run, ok := parseLastRun(tail)
	if !ok {
		return LastRun{}, fmt.Errorf("%w: %s has no start of a run in its last %d KiB", ErrNoRunLog, path, runLogTail>>10)
	}
	return run, nil
}

func readTail(path string, n int64) ([]byte, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return nil, err
	}
	off := max(fi.Size()-n, 0)
	return io.ReadAll(io.NewSectionReader(f, off, fi.Size()-off))
}

// parseLastRun reads the latest run from the tail of a domain log; false when the
// tail holds no run's start.
func parseLastRun(tail []byte) (LastRun, bool) {
	const (
		startMark = ": starting up libvirt version:"
		endMark   = ": shutting down, reason="
		killMark  = ": terminating on signal"
	)
	start := bytes.LastIndex(tail, []byte(startMark))
	if start < 0 {
		return LastRun{}, false
	}
	var run LastRun
	sc := bufio.NewScanner(bytes.NewReader(tail[start:]))
	sc.Buffer(make([]byte, 0, 64<<10), len(tail))
	for sc.Scan() {
		line := sc.Text()
		switch {
		case strings.Contains(line, endMark):
			at, reason, _ := strings.Cut(line, endMark)
			run.Ended, run.EndedAt, run.Reason = true, at, strings.TrimSpace(reason)
		case strings.Contains(line, killMark):
			// "2026-…Z qemu-system-x86_64: terminating on signal 15 from pid 1 (systemd)"
			if i := strings.Index(line, killMark); i >= 0 {
				run.Killed = line[i+2:]
			}
		}
	}
	return run, true
}
