package store_test

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/vws-grid/vws/internal/store"
)

// TestHelperHoldTheLock is not a test: run by TestPostgresSparesALiveServerInAnotherPIDNamespace
// inside a PID namespace of its own, it is a live vws server on the database
// VWS_TEST_HOLD_URL names, until its lock is lost or 60 s pass.
func TestHelperHoldTheLock(t *testing.T) {
	url := os.Getenv("VWS_TEST_HOLD_URL")
	if url == "" {
		t.Skip("helper")
	}
	db, err := store.OpenPostgres(context.Background(), url)
	if err != nil {
		fmt.Printf("HELPER-ERR %v\n", err)
		os.Exit(1)
	}
	fmt.Printf("HELPER-HELD pid %d\n", os.Getpid())
	select {
	case err := <-db.Lost():
		fmt.Printf("HELPER-LOST %v\n", err)
	case <-time.After(60 * time.Second):
	}
	os.Exit(0)
}

// A live vws server whose process this one cannot see — same host name, another PID
// namespace (two containers with host networking, Kubernetes hostNetwork pods, a
// shared PostgreSQL socket directory) — is not a dead one: a server starting beside
// it must be refused, not end its session and take its database.
func TestPostgresSparesALiveServerInAnotherPIDNamespace(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root for a PID namespace")
	}
	url := postgresURL(t)
	// A pid no process of this namespace has: the other server gets it in its own.
	pid := 0
	for p := 2; p < 1000; p++ {
		if errors.Is(syscall.Kill(p, 0), syscall.ESRCH) {
			pid = p
			break
		}
	}
	if pid == 0 {
		t.Skip("no free low pid")
	}
	// sh is pid 1 of the new namespace; the server it starts gets pid.
	script := fmt.Sprintf(`echo %d > /proc/sys/kernel/ns_last_pid; "$0" -test.run='^TestHelperHoldTheLock$' & wait`, pid-1)
	cmd := exec.Command("sh", "-c", script, os.Args[0])
	cmd.Env = append(os.Environ(), "VWS_TEST_HOLD_URL="+url)
	cmd.SysProcAttr = &syscall.SysProcAttr{Cloneflags: syscall.CLONE_NEWPID}
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	cmd.Stderr = os.Stderr
	if err := cmd.Start(); err != nil {
		t.Skipf("no PID namespace here: %v", err)
	}
	t.Cleanup(func() { cmd.Process.Kill(); cmd.Wait() })
	lines := make(chan string, 10)
	go func() {
		s := bufio.NewScanner(out)
		for s.Scan() {
			lines <- s.Text()
		}
		close(lines)
	}()
	select {
	case l := <-lines:
		if !strings.HasPrefix(l, fmt.Sprintf("HELPER-HELD pid %d", pid)) {
			t.Skipf("the other server did not start as pid %d: %q", pid, l)
		}
	case <-time.After(20 * time.Second):
		t.Fatal("the other server did not start")
	}

	db, err := store.OpenPostgres(context.Background(), url)
	if err == nil {
		lost := "(nothing yet)"
		select {
		case l := <-lines:
			lost = l
		case <-time.After(5 * time.Second):
		}
		db.Close()
		t.Fatalf("a second server took the database of a live one (pid %d in another PID namespace), which then said: %s", pid, lost)
	}
	if !errors.Is(err, store.ErrInUse) {
		t.Fatalf("want ErrInUse, got %v", err)
	}
}
