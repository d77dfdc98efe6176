package manager

import (
	"context"
	"net/http"
	"net/http/httptest"
	"os"
	"testing"
	"time"

	"github.com/vws-grid/vws/vmm"
)

// ctxHV is crashHV whose List gives up once its context is done, as libvirt's does.
type ctxHV struct{ *crashHV }

func (h ctxHV) List(ctx context.Context, prefix string) ([]vmm.Domain, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	return h.crashHV.List(ctx, prefix)
}

// hungServer is a Repository that accepts connections and never answers while the
// test runs.
func hungServer(t *testing.T) *httptest.Server {
	release := make(chan struct{})
	hs := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		<-release
	}))
	t.Cleanup(func() { close(release); hs.Close() })
	return hs
}

// TestHungRepositoryDoesNotStopTheReconciler: a Repository that accepts connections
// and never answers (a stopped process, a server stuck on its database) must not
// take the reconciler's whole round with the question whether a workspace still
// exists there: a guest that powered off meanwhile is still recorded shut down, and
// its memory no longer counted.
func TestHungRepositoryDoesNotStopTheReconciler(t *testing.T) {
	const k = "ws-hung-repository"
	m, hv, rec := crashManager(t, k, stateRunning, false)
	m.hv = ctxHV{hv}
	hs := hungServer(t)
	m.repo = &repoClient{soap: clientFor(hs), http: hs.Client()}
	rec.WorkspaceAddress, rec.Token, rec.CheckedOutAs = hs.URL+"/wsrf/services/WorkspaceService", "tok", "h"
	if err := m.journal.put(rec); err != nil {
		t.Fatal(err)
	}
	hv.set(vmm.StateShutOff, false, false) // the guest powered off

	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second) // a round's bound, shortened
	defer cancel()
	m.reconcile(ctx)

	cur, err := m.journal.get(k)
	if err != nil {
		t.Fatal(err)
	}
	if cur.State != stateShutdown {
		t.Fatalf("after a round with the workspace's Repository hung, the journal still says %s/%s of a guest that powered off: "+
			"the round went waiting for the Repository and had no time left for the hypervisor", cur.Phase, cur.State)
	}
}

// TestHungRepositoryOfAnUnfinishedDeployDoesNotStopTheReconciler: the same for a
// deploy a crash left unfinished (its check-out unanswered): asking that Repository
// again for the lock, to give it back, must not take the whole round either, or a
// guest of another workspace that powered off goes unrecorded for as long as the
// Repository hangs.
func TestHungRepositoryOfAnUnfinishedDeployDoesNotStopTheReconciler(t *testing.T) {
	const k = "ws-powered-off"
	m, hv, _ := crashManager(t, k, stateRunning, false)
	m.hv = ctxHV{hv}
	hs := hungServer(t)
	m.repo = &repoClient{soap: clientFor(hs), http: hs.Client()}
	// Listed (and planned) before the other: killed between journal and check-out answer.
	staging := &record{Key: "ws-a-staging", WorkspaceAddress: hs.URL + "/wsrf/services/WorkspaceService", CheckedOutAs: "h",
		Phase: phaseStaging, CheckOutID: "id"}
	if err := m.journal.put(staging); err != nil {
		t.Fatal(err)
	}
	hv.set(vmm.StateShutOff, false, false) // the other workspace's guest powered off

	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second) // a round's bound, shortened
	defer cancel()
	m.reconcile(ctx)

	cur, err := m.journal.get(k)
	if err != nil {
		t.Fatal(err)
	}
	if cur.State != stateShutdown {
		t.Fatalf("after a round with an unfinished deploy's Repository hung, the journal still says %s/%s of a guest that powered off: "+
			"the round went waiting for the Repository and had no time left for the hypervisor", cur.Phase, cur.State)
	}
	if _, err := m.journal.get(staging.Key); err != nil {
		t.Fatalf("the unfinished deploy's record: %v; want it kept for the next round", err)
	}
}

// TestHungRepositoryDoesNotKeepAnotherOnesWorkspacesHere: a host that deploys the
// workspaces of two Repositories asks each whether its workspaces are still out
// here. While one accepts connections and never answers, the other's answer that
// it took a workspace back (or destroyed it) must still be acted on: the workspace's
// domain and files leave this host, not linger for as long as the first one hangs
// because its workspace is listed first.
func TestHungRepositoryDoesNotKeepAnotherOnesWorkspacesHere(t *testing.T) {
	m, hv, recA := crashManager(t, "ws-a-of-hung", stateShutdown, false)
	m.hv = ctxHV{hv}
	hung := hungServer(t)
	repoB := &fakeRepo{deployment: "in-repository"} // took B back while this host was silent
	b := httptest.NewServer(repoB)
	defer b.Close()
	m.repo = &repoClient{soap: clientFor(b), http: b.Client()}

	recA.WorkspaceAddress, recA.Token, recA.CheckedOutAs = hung.URL+"/wsrf/services/WorkspaceService", "tok-a", "h"
	recB := recA.clone()
	recB.Key, recB.WorkspaceAddress, recB.Token = "ws-b-of-healthy", b.URL+"/wsrf/services/WorkspaceService", "tok-b"
	if err := os.MkdirAll(m.workspaceDir(recB.Key), 0o700); err != nil {
		t.Fatal(err)
	}
	for _, r := range []*record{recA, recB} {
		if err := m.journal.put(r); err != nil {
			t.Fatal(err)
		}
	}
	for range 3 { // rounds, their bound shortened
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		m.reconcile(ctx)
		cancel()
	}
	if !repoB.seen("GetMultipleResourceProperties") {
		t.Errorf("in 3 rounds the healthy Repository was never asked about its workspace: every round's questions waited on the hung one")
	}
	if _, err := m.journal.get(recB.Key); err == nil {
		t.Fatalf("a workspace its Repository took back is still deployed here after 3 rounds, while another Repository hangs")
	}
	if _, err := os.Stat(m.workspaceDir(recB.Key)); err == nil {
		t.Fatalf("the files of a workspace its Repository took back are still here")
	}
}
