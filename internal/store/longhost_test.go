package store_test

import (
	"bufio"
	"context"
	"os"
	"os/exec"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/vws-grid/vws/internal/store"
)

// A dead vws server's lingering session is ended on a host whose name is long, as on
// one whose name is short: PostgreSQL keeps 63 bytes of an application_name, and
// "vws on HOST (pid N)" loses its "(pid N)" once HOST passes about 42 bytes
// (Kubernetes pod names, FQDNs). The test runs itself again in a UTS namespace of its
// own with such a host name; there a real server (another process) takes the
// database through a proxy, the proxy freezes (PostgreSQL never sees the connection
// end) and the server is killed.
func TestPostgresEndsADeadServersSessionOnALongHostName(t *testing.T) {
	const long = "vws-server-production-eu-west-1-7d9f8b6c5d-x2k9p" // 48 bytes
	if os.Getenv("VWS_TEST_LONG_HOSTNAME") == "" {
		if os.Geteuid() != 0 {
			t.Skip("needs root for a UTS namespace")
		}
		postgresURL(t) // skips without PostgreSQL
		cmd := exec.Command(os.Args[0], "-test.run=^TestPostgresEndsADeadServersSessionOnALongHostName$", "-test.v", "-test.count=1")
		cmd.Env = append(os.Environ(), "VWS_TEST_LONG_HOSTNAME=1")
		cmd.SysProcAttr = &syscall.SysProcAttr{Cloneflags: syscall.CLONE_NEWUTS}
		out, err := cmd.CombinedOutput()
		if err != nil || !strings.Contains(string(out), "--- PASS") {
			t.Fatalf("with host name %q: %v\n%s", long, err, out)
		}
		return
	}
	if err := syscall.Sethostname([]byte(long)); err != nil {
		t.Fatal(err)
	}
	url := postgresURL(t)
	purl, proxy := throughProxy(t, url)
	server := exec.Command(os.Args[0], "-test.run=^TestHelperHoldTheLock$")
	server.Env = append(os.Environ(), "VWS_TEST_HOLD_URL="+purl)
	out, err := server.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := server.Start(); err != nil {
		t.Fatal(err)
	}
	line, _ := bufio.NewReader(out).ReadString('\n')
	if !strings.HasPrefix(line, "HELPER-HELD") {
		t.Fatalf("the first server: %q", line)
	}
	proxy.Freeze() // PostgreSQL never learns the first server's connection is gone
	server.Process.Kill()
	server.Wait()

	t0 := time.Now()
	db, err := store.OpenPostgres(context.Background(), url)
	if err != nil {
		t.Fatalf("after %s, a dead server's session, never ending by itself: %v", time.Since(t0).Round(time.Millisecond), err)
	}
	db.Close()
}
