package manager

import (
	"fmt"
	"io"
	"net"
	"net/url"
	"os"
	"strings"
	"syscall"
	"testing"

	"github.com/vws-grid/vws/internal/container"
	"github.com/vws-grid/vws/internal/dialect"
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
