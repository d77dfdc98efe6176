package manager

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/vws-grid/vws/internal/errdefs"
)

// TestLockWorkspaceGivesUp: an operation waiting for its workspace gives up when its
// request ends (the caller hangs up, or the container's bound on it passes), with a
// state error naming what holds the workspace; it never takes the lock afterwards.
func TestLockWorkspaceGivesUp(t *testing.T) {
	m := &Manager{}
	unlock, err := m.lockWorkspace(context.Background(), "k", "Shutdown (Normal)")
	if err != nil {
		t.Fatal(err)
	}
	if _, ok := m.locks.tryLock("k"); ok {
		t.Fatal("tryLock took a held lock")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel()
	_, err = m.lockWorkspace(ctx, "k", "Pause")
	if !errors.Is(err, errdefs.ErrState) || !errors.Is(err, context.DeadlineExceeded) ||
		!strings.Contains(err.Error(), "Pause of workspace k was not begun: Shutdown (Normal) has been under way") ||
		!strings.Contains(errdefs.Advice(err), "retry") {
		t.Fatalf("a wait that ran out: %v (advice %q)", err, errdefs.Advice(err))
	}

	// A waiter still waiting gets the lock once it is released.
	got := make(chan error, 1)
	go func() {
		u, err := m.lockWorkspace(context.Background(), "k", "Start")
		if err == nil {
			u()
		}
		got <- err
	}()
	time.Sleep(20 * time.Millisecond)
	unlock()
	if err := <-got; err != nil {
		t.Fatalf("a waiter after the release: %v", err)
	}

	// A request that already ended does not begin, even with the lock free.
	done, cancelDone := context.WithCancel(context.Background())
	cancelDone()
	if _, err := m.lockWorkspace(done, "k", "Undeploy"); !errors.Is(err, context.Canceled) {
		t.Fatalf("a request that ended: %v", err)
	}
	if u, ok := m.locks.tryLock("k"); !ok {
		t.Fatal("the lock was left held")
	} else {
		u()
	}
}
