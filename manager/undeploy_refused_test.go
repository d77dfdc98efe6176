package manager

import (
	"context"
	"errors"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"github.com/vws-grid/vws/internal/errdefs"
)

// refusingRepo is fakeRepo whose uploads of one kind (overlay, memory) are answered
// with status and reason, until accept.
type refusingRepo struct {
	*fakeRepo
	mu     sync.Mutex
	kind   string
	status int
	reason string
	puts   int
}

// serveRefusingRepo has m reach repo as rec's workspace's Repository, as serveFakeRepo.
func serveRefusingRepo(t *testing.T, m *Manager, rec *record, repo *refusingRepo) {
	hs := httptest.NewServer(repo)
	t.Cleanup(hs.Close)
	m.repo = &repoClient{soap: clientFor(hs), http: hs.Client()}
	rec.WorkspaceAddress = hs.URL + "/wsrf/services/WorkspaceService"
}

func (r *refusingRepo) accept() {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.status = 0
}

func (r *refusingRepo) ServeHTTP(w http.ResponseWriter, req *http.Request) {
	r.mu.Lock()
	if req.Method == http.MethodPut {
		r.puts++
	}
	refuse := req.Method == http.MethodPut && strings.HasSuffix(req.URL.Path, "/"+r.kind) && r.status != 0
	status, reason := r.status, r.reason
	r.mu.Unlock()
	if refuse {
		http.Error(w, reason, status)
		return
	}
	r.fakeRepo.ServeHTTP(w, req)
}

// TestUndeployRefusedByTheRepositoryStaysDeployed: an upload the Repository refuses
// for what it is (400: a corrupt overlay, a checksum that does not match; 413: too
// large) would be refused again, byte for byte, at every retry. The Undeploy ends
// with a fault giving the Repository's reason, and the workspace stays deployed here
// with its changes, for its owner to act on and undeploy again; not unstaging, with
// every operation refused while the manager sends the same bytes for ever. A 5xx
// is the Repository's own trouble, and the manager still retries by itself.
func TestUndeployRefusedByTheRepositoryStaysDeployed(t *testing.T) {
	for _, tc := range []struct {
		name   string
		hot    bool
		kind   string
		status int
		reason string
	}{
		{"corrupt overlay", false, "overlay", http.StatusBadRequest,
			"the uploaded overlay is marked corrupt by qemu (its metadata is inconsistent): repair it (qemu-img check -r all) and upload it again; nothing was kept"},
		{"memory too large", true, "memory", http.StatusRequestEntityTooLarge,
			"a memory of 9999 bytes is larger than the 10 bytes this workspace's memory may have; nothing was read"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			k := "ws-refused-" + tc.kind
			state := stateShutdown
			if tc.hot {
				state = statePaused
			}
			m, _, rec := crashManager(t, k, state, tc.hot)
			if err := os.WriteFile(filepath.Join(m.cfg.Dir, "base.img"), make([]byte, 1<<20), 0o600); err != nil {
				t.Fatal(err)
			}
			repo := &refusingRepo{fakeRepo: &fakeRepo{deployment: "deployed", host: "h"}, kind: tc.kind, status: tc.status, reason: tc.reason}
			serveRefusingRepo(t, m, rec, repo)
			rec.Token, rec.CheckedOutAs = "tok", "h"
			if err := m.journal.put(rec); err != nil {
				t.Fatal(err)
			}
			_, err := m.Undeploy(context.Background(), workspaceEPR(rec))
			if err == nil || !strings.Contains(err.Error(), tc.reason) {
				t.Fatalf("Undeploy whose %s the repository refused (HTTP %d) answered %v; want a fault giving the repository's reason", tc.kind, tc.status, err)
			}
			if advice := errdefs.Advice(err); strings.Contains(advice, "retries") {
				t.Errorf("a permanent refusal is advised as retried by the manager: %q", advice)
			}
			r, _ := m.journal.get(k)
			if r == nil || r.Phase != phaseDeployed || r.State != state {
				t.Fatalf("after the repository refused the %s the record is %+v; want it deployed, %s, as before", tc.kind, r, state)
			}
			for _, f := range []string{rec.Overlay, rec.Run, rec.MemoryFile} {
				if _, err := os.Stat(f); f != "" && err != nil {
					t.Errorf("the workspace's %s is gone: %v", f, err)
				}
			}
			if repo.seen("CheckIn") {
				t.Fatalf("checked in after a refused upload: the repository saw %v", repo.calls)
			}
			// The reconciler does not send the refused bytes again.
			before := repo.puts
			m.reconcile(context.Background())
			m.wg.Wait()
			if repo.puts != before {
				t.Errorf("the reconciler sent the refused upload again (%d PUTs, %d before)", repo.puts, before)
			}
			// Once the cause is seen to, the workspace undeploys.
			repo.accept()
			if res, err := m.Undeploy(context.Background(), workspaceEPR(rec)); err != nil || res.Deployment != "in-repository" {
				t.Fatalf("Undeploy once the repository accepts: %+v, %v", res, err)
			}
		})
	}

	// An undeploy a crash cut short is finished by the reconciler: refused, it too
	// leaves the workspace deployed, and sends nothing again.
	t.Run("reconciler", func(t *testing.T) {
		const k = "ws-refused-reconciled"
		m, _, rec := crashManager(t, k, stateShutdown, false)
		if err := os.WriteFile(filepath.Join(m.cfg.Dir, "base.img"), make([]byte, 1<<20), 0o600); err != nil {
			t.Fatal(err)
		}
		repo := &refusingRepo{fakeRepo: &fakeRepo{deployment: "deployed", host: "h"}, kind: "overlay", status: http.StatusBadRequest, reason: "the uploaded overlay is encrypted; nothing was kept"}
		serveRefusingRepo(t, m, rec, repo)
		rec.Token, rec.CheckedOutAs, rec.Phase = "tok", "h", phaseUnstaging
		if err := m.journal.put(rec); err != nil {
			t.Fatal(err)
		}
		for range 2 {
			m.retries = retryBackoff{} // each round may retry at once
			m.reconcile(context.Background())
			m.wg.Wait()
		}
		if repo.puts != 1 {
			t.Errorf("the reconciler sent the refused overlay %d times, want once", repo.puts)
		}
		if r, _ := m.journal.get(k); r == nil || r.Phase != phaseDeployed {
			t.Fatalf("after the repository refused the reconciler's upload the record is %+v; want it deployed", r)
		}
	})

	t.Run("5xx is retried", func(t *testing.T) {
		const k = "ws-refused-5xx"
		m, _, rec := crashManager(t, k, stateShutdown, false)
		if err := os.WriteFile(filepath.Join(m.cfg.Dir, "base.img"), make([]byte, 1<<20), 0o600); err != nil {
			t.Fatal(err)
		}
		repo := &refusingRepo{fakeRepo: &fakeRepo{deployment: "deployed", host: "h"}, kind: "overlay", status: http.StatusServiceUnavailable, reason: "busy"}
		serveRefusingRepo(t, m, rec, repo)
		rec.Token, rec.CheckedOutAs = "tok", "h"
		if err := m.journal.put(rec); err != nil {
			t.Fatal(err)
		}
		_, err := m.Undeploy(context.Background(), workspaceEPR(rec))
		if err == nil || errors.Is(err, errdefs.ErrImageIntegrity) || !strings.Contains(errdefs.Advice(err), "the manager retries the hand-back by itself") {
			t.Fatalf("Undeploy against a Repository answering 503: %v (advice %q); want the manager to retry by itself", err, errdefs.Advice(err))
		}
		if r, _ := m.journal.get(k); r == nil || r.Phase != phaseUnstaging {
			t.Fatalf("after a 503 the record is %+v; want it unstaging, for the reconciler to finish", r)
		}
	})
}
