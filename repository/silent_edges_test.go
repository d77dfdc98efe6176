package repository

import (
	"context"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/vws-grid/vws/internal/identity"
	"github.com/vws-grid/vws/internal/wsrf"
)

// asNode7 is a call from node7's host certificate.
func asNode7() context.Context {
	return identity.With(context.Background(), identity.Identity{DN: "/O=Grid/CN=host/node7"})
}

// announceNode7 has node7 announce itself (goodHost) for ten seconds.
func (f *fixture) announceNode7(t *testing.T) {
	t.Helper()
	if _, err := f.r.announceHost(asNode7(), announcement(t, goodHost, "PT10S")); err != nil {
		t.Fatal(err)
	}
}

// outOnNode7 creates a workspace and checks it out to node7, returning its key.
func (f *fixture) outOnNode7(t *testing.T, name string) string {
	t.Helper()
	c, err := f.r.Create(context.Background(), CreateSpec{Name: name, Owner: "o", Description: minimalVM(t), BaseImage: f.base, Termination: f.now().Add(time.Hour)})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := f.r.CheckOut(asNode7(), c.Key, "node7", "", nil, &tester); err != nil {
		t.Fatal(err)
	}
	return c.Key
}

// TestSilentMarkGoesAfterARestartOnceTheHostIsBack: node7 goes silent (its
// workspace is marked), announces itself again, and the Repository restarts before
// its next watch round: the restarted watcher takes the mark away.
func TestSilentMarkGoesAfterARestartOnceTheHostIsBack(t *testing.T) {
	f, advance := newClockedFixture(t)
	ctx := context.Background()
	f.announceNode7(t)
	key := f.outOnNode7(t, "out")
	advance(11 * time.Second)
	f.r.markSilentHosts(ctx)
	if f.prop(key, PropHostSilentSince) == "" {
		t.Fatal("precondition: workspace on silent node7 not marked")
	}
	f.announceNode7(t) // node7 is back
	f.reopen()         // restart before the next 2-second round
	if live := f.r.hosts.Live(f.now()); len(live) != 1 || live[0].Name != "node7" {
		t.Fatalf("precondition: node7 not live after restart: %+v", live)
	}
	f.r.markSilentHosts(ctx)
	f.r.markSilentHosts(ctx)
	if got := f.prop(key, PropHostSilentSince); got != "" {
		t.Fatalf("node7 is live (announced, not silent) after the restart, yet its workspace still says hostSilentSince=%q", got)
	}
}

// TestSilentMarkNeverLandsOnAWorkspaceThatMovedToALiveHost: markSilentHosts picks the
// workspaces to mark in one pass (Range) and marks them one by one later (Modify),
// deciding again under each workspace's lock: one reclaimed from silent node7 and
// checked out to live node8 in between is not marked "host silent" on node8.
func TestSilentMarkNeverLandsOnAWorkspaceThatMovedToALiveHost(t *testing.T) {
	f, advance := newClockedFixture(t)
	st := f.openFailing("")
	ctx := context.Background()
	node8 := identity.With(ctx, identity.Identity{DN: "/O=Grid/CN=host/node8"})
	admin := identity.With(ctx, identity.Identity{DN: "/O=Grid/CN=admin"})
	node8Host := strings.ReplaceAll(goodHost, "node7", "node8")
	f.announceNode7(t)
	keys := []string{f.outOnNode7(t, "w1"), f.outOnNode7(t, "w2")}
	advance(11 * time.Second) // node7 silent
	if _, err := f.r.announceHost(node8, announcement(t, node8Host, "PT3M")); err != nil {
		t.Fatal(err)
	}
	var moved string
	var fired atomic.Bool
	var hookErr error
	st.mu.Lock()
	st.before = func(key string) {
		if key != keys[0] && key != keys[1] {
			return
		}
		if fired.Swap(true) {
			return
		}
		func() {
			// The round is marking one workspace (its lock held); the other is
			// reclaimed and deployed on node8 meanwhile.
			moved = keys[0]
			if key == keys[0] {
				moved = keys[1]
			}
			if _, _, err := f.r.Reclaim(admin, moved); err != nil {
				hookErr = err
				return
			}
			if _, err := f.r.CheckOut(node8, moved, "node8", "", nil, &tester); err != nil {
				hookErr = err
			}
		}()
	}
	st.mu.Unlock()
	f.r.markSilentHosts(ctx)
	st.mu.Lock()
	st.before = nil
	st.mu.Unlock()
	if hookErr != nil {
		t.Fatal(hookErr)
	}
	if moved == "" {
		t.Fatal("precondition: no round marked a workspace")
	}
	f.r.markSilentHosts(ctx)
	if h := f.prop(moved, PropHost); h != "node8" {
		t.Fatalf("precondition: the moved workspace is on %q", h)
	}
	if got := f.prop(moved, PropHostSilentSince); got != "" {
		t.Fatalf("the workspace now on live node8 says hostSilentSince=%q (node7's silence)", got)
	}
}

// TestWorkspaceCheckedOutToASilentHostIsMarked: a workspace that lands on a host
// after the host went silent (its manager still checks out, its announcements no
// longer arrive) is marked at the watcher's next round, though the set of silent
// hosts did not change.
func TestWorkspaceCheckedOutToASilentHostIsMarked(t *testing.T) {
	f, advance := newClockedFixture(t)
	ctx := context.Background()
	f.announceNode7(t)
	advance(11 * time.Second)
	f.r.markSilentHosts(ctx) // node7 is silent; nothing deployed there yet
	key := f.outOnNode7(t, "late")
	for i := 0; i < 3; i++ {
		advance(hostWatchEvery)
		f.r.markSilentHosts(ctx)
	}
	if silent, _ := f.r.hosts.Silent(f.now()); silent["node7"].IsZero() {
		t.Fatal("precondition: node7 not silent")
	}
	if got := f.prop(key, PropHostSilentSince); got == "" {
		t.Fatal("workspace deployed on silent node7 has no hostSilentSince after several watch rounds")
	}
}

// TestReclaimWhenAnotherIdentityAnnouncesTheHostName: node7 (host/node7) goes silent with a
// workspace checked out under its DN. host/node9 then announces the name node7 (its
// own manager address): the name is live again, but the host holding the lock has
// not been heard from, so Reclaim takes the workspace back.
func TestReclaimWhenAnotherIdentityAnnouncesTheHostName(t *testing.T) {
	f, advance := newClockedFixture(t)
	ctx := context.Background()
	node9 := identity.With(ctx, identity.Identity{DN: "/O=Grid/CN=host/node9"})
	admin := identity.With(ctx, identity.Identity{DN: "/O=Grid/CN=admin"})
	f.announceNode7(t)
	key := f.outOnNode7(t, "held")
	advance(11 * time.Second)
	f.r.markSilentHosts(ctx)
	impostor := strings.Replace(goodHost, "https://node7:8443", "https://node9:8443", 1)
	if _, err := f.r.announceHost(node9, announcement(t, impostor, "PT3M")); err != nil {
		t.Logf("another identity's announcement of node7 refused: %v", err)
	}
	f.r.markSilentHosts(ctx)
	if _, _, err := f.r.Reclaim(admin, key); err != nil {
		t.Fatalf("node7 (lock holder %s) has not been heard from, yet Reclaim is refused: %v", f.prop(key, PropLockHolder), err)
	}
}

// TestSilentMarkFollowsTheLastHeard: node7 goes silent (mark = T1), announces at
// T2, and the Repository is down until node7's new announcement expired too. After the
// restart node7 is silent since T2, and the workspace's mark says T2.
func TestSilentMarkFollowsTheLastHeard(t *testing.T) {
	f, advance := newClockedFixture(t)
	ctx := context.Background()
	f.announceNode7(t)
	key := f.outOnNode7(t, "out")
	advance(11 * time.Second)
	f.r.markSilentHosts(ctx)
	advance(time.Second)
	f.announceNode7(t)
	t2 := f.now()
	f.r.Close()
	advance(time.Minute) // the Repository is down; node7's announcement expires
	f.open()
	f.r.markSilentHosts(ctx)
	if got, want := f.prop(key, PropHostSilentSince), wsrf.FormatTime(t2); got != want {
		t.Fatalf("after the restart node7 was last heard from at %s, yet its workspace says hostSilentSince=%s", want, got)
	}
}
