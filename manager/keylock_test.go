package manager

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"sync/atomic"
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

// TestKeyedLocksForgetIdleKeys: a key's lock goes once nobody holds or waits for it,
// whichever way its holders and waiters leave, and it still excludes while it lives.
func TestKeyedLocksForgetIdleKeys(t *testing.T) {
	var k keyedLocks
	var inside [5]atomic.Int32 // holders of each key at once
	var twice atomic.Bool
	var wg sync.WaitGroup
	for i := range 200 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			key := fmt.Sprintf("k%d", i%5)
			var unlock func()
			switch i % 3 {
			case 0:
				unlock = k.lock(key)
			case 1:
				ctx, cancel := context.WithTimeout(context.Background(), time.Millisecond)
				defer cancel()
				var err error
				if unlock, err = k.lockCtx(ctx, key, "test"); err != nil {
					return // gave up waiting
				}
			default:
				var ok bool
				if unlock, ok = k.tryLock(key); !ok {
					return
				}
			}
			if inside[i%5].Add(1) > 1 {
				twice.Store(true)
			}
			time.Sleep(100 * time.Microsecond)
			inside[i%5].Add(-1)
			unlock()
		}()
	}
	wg.Wait()
	if twice.Load() {
		t.Fatal("a key was held twice at once")
	}
	if n := len(k.m); n != 0 {
		t.Fatalf("%d idle keys kept", n)
	}
	unlock := k.lock("held")
	if _, ok := k.tryLock("held"); ok {
		t.Fatal("a held key was taken twice")
	}
	if len(k.m) != 1 {
		t.Fatalf("%d keys while one is held", len(k.m))
	}
	unlock()
	if len(k.m) != 0 {
		t.Fatal("the released key is kept")
	}
}
