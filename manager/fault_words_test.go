package manager

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/url"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"syscall"
	"testing"

	"github.com/beevik/etree"

	"github.com/vws-grid/vws/internal/client"
	"github.com/vws-grid/vws/internal/container"
	"github.com/vws-grid/vws/internal/dialect"
	"github.com/vws-grid/vws/internal/soap"
)

// TestCallerWordsReachTheCaller: the manager's refusals written for the caller and
// named by no other fault kind (the Repository unreachable, a disk without room) keep
// their words in their fault, in both dialects, instead of becoming an incident.
func TestCallerWordsReachTheCaller(t *testing.T) {
	_, dialErr := net.Dial("tcp", "127.0.0.1:1") // nothing listens on port 1
	if dialErr == nil {
		t.Skip("something listens on 127.0.0.1:1")
	}
	dir := t.TempDir()
	m := &Manager{cfg: Config{Dir: dir}, freeBytes: func(string) (int64, error) { return 4096, nil }}
	for _, tc := range []struct {
		err  error
		says []string
	}{
		{remoteErr("check the workspace out", fmt.Errorf("call x: %w", &url.Error{Op: "Post", URL: "x", Err: dialErr})),
			[]string{"cannot reach the repository to check the workspace out", "nothing was changed"}},
		{remoteErr("check the workspace in", fmt.Errorf("call x: %w", &url.Error{Op: "Post", URL: "x", Err: io.ErrUnexpectedEOF})),
			[]string{"cannot reach the repository to check the workspace in"}},
		{fmt.Errorf("%w on host h: deploying workspace k needs 2 MiB, but %s has 4 KiB free", errNoRoom, dir),
			[]string{"not enough free disk space on host h", dir}},
		{m.adviseOnFullDisk(fmt.Errorf("write %s/run.qcow2: %w", dir, &os.PathError{Op: "write", Path: "run.qcow2", Err: syscall.ENOSPC}), ""),
			[]string{"no space left on device", "the disk filled up", "free space in " + dir}},
	} {
		for _, d := range dialect.Dialects {
			desc := container.FaultDetail(tc.err, d).SelectElement("Description").Text()
			for _, s := range append(tc.says, "") {
				if !strings.Contains(desc, s) || strings.Contains(desc, "incident") {
					t.Errorf("%s: %q, want it to say %q and to name no incident", d.Name, desc, s)
				}
			}
		}
	}
}

// TestRepositoryFailureReachesTheCaller: the Repository's own failure (a Server
// ServiceFault: an incident there) reaches the Manager's caller in the Repository's
// words, naming the Repository's incident id, which that Repository's administrator
// looks up, and no incident of the Manager's; an Undeploy it cut short still says
// that the manager carries the hand-back on by itself.
func TestRepositoryFailureReachesTheCaller(t *testing.T) {
	repoDetail := container.FaultDetail(errors.New("insert lock: disk I/O error"), dialect.WSRF12)
	repoDesc := repoDetail.SelectElement("Description").Text()
	ids := regexp.MustCompile(`incident ([0-9a-f]+)`)
	m := ids.FindStringSubmatch(repoDesc)
	if m == nil {
		t.Fatalf("the Repository's fault %q names no incident", repoDesc)
	}
	repoID := m[1]
	fault := &soap.Fault{Code: soap.CodeServer, String: repoDesc, Detail: []*etree.Element{repoDetail}}
	// namesOnlyTheRepositorys fails unless desc names the Repository's incident and
	// no other.
	namesOnlyTheRepositorys := func(what, desc string) {
		t.Helper()
		found := ids.FindAllStringSubmatch(desc, -1)
		if len(found) == 0 {
			t.Errorf("%s: %q names no incident, want the Repository's %s", what, desc, repoID)
		}
		for _, f := range found {
			if f[1] != repoID {
				t.Errorf("%s: %q names incident %s, want only the Repository's %s", what, desc, f[1], repoID)
			}
		}
		if strings.Contains(desc, "disk I/O error") {
			t.Errorf("%s: %q has the Repository's internal words", what, desc)
		}
	}

	err := remoteErr("check the workspace out", &client.FaultError{Type: "ServiceFault", Fault: fault, Description: repoDesc})
	for _, d := range dialect.Dialects {
		desc := container.FaultDetail(err, d).SelectElement("Description").Text()
		namesOnlyTheRepositorys(d.Name, desc)
		if !strings.Contains(desc, "the repository failed to check the workspace out") {
			t.Errorf("%s: %q, want it to say the repository failed to check the workspace out", d.Name, desc)
		}
	}

	const k = "ws-repo-failed"
	mgr, _, rec := crashManager(t, k, stateShutdown, false)
	if err := os.WriteFile(filepath.Join(mgr.cfg.Dir, "base.img"), make([]byte, 1<<20), 0o600); err != nil {
		t.Fatal(err)
	}
	serveFakeRepo(t, mgr, rec, &fakeRepo{deployment: "deployed", host: "h", checkInFault: fault})
	rec.Token = "tok"
	if err := mgr.journal.put(rec); err != nil {
		t.Fatal(err)
	}
	_, err = mgr.Undeploy(context.Background(), workspaceEPR(rec))
	if err == nil {
		t.Fatal("Undeploy succeeded though the Repository failed the check-in")
	}
	desc := container.FaultDetail(err, dialect.WSRF12).SelectElement("Description").Text()
	namesOnlyTheRepositorys("Undeploy", desc)
	if !strings.Contains(desc, "the repository failed to check the workspace in") || !strings.Contains(desc, "the manager retries the hand-back by itself") {
		t.Errorf("Undeploy: %q, want it to say the repository failed the check-in and that the manager retries", desc)
	}
}
