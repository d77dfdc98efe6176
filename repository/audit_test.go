package repository

import (
	"context"
	"crypto/tls"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/beevik/etree"

	"github.com/vws-grid/vws/internal/client"
	"github.com/vws-grid/vws/internal/container"
	"github.com/vws-grid/vws/internal/contract"
	"github.com/vws-grid/vws/internal/identity"
	"github.com/vws-grid/vws/internal/pki"
	"github.com/vws-grid/vws/internal/vwsns"
	"github.com/vws-grid/vws/internal/wsa"
	"github.com/vws-grid/vws/internal/wsrf"
)

// auditRecorder keeps what the Repository audits, one line per record:
// "caller operation resource decision: detail".
type auditRecorder struct {
	mu  sync.Mutex
	got []string
}

func (a *auditRecorder) Record(ctx context.Context, operation, resource, decision, detail string) {
	a.mu.Lock()
	defer a.mu.Unlock()
	a.got = append(a.got, identity.From(ctx).String()+" "+operation+" "+resource+" "+decision+": "+detail)
}

// take returns the records since the last take.
func (a *auditRecorder) take() []string {
	a.mu.Lock()
	defer a.mu.Unlock()
	got := a.got
	a.got = nil
	return got
}

// recordAudit has f's repository audit to a recorder, from now on.
func (f *fixture) recordAudit() *auditRecorder {
	rec := &auditRecorder{}
	f.r.audit = rec
	return rec
}

// doAs is do for an authenticated caller, as the HTTP guard hands the request on.
func (f *fixture) doAs(who identity.Identity, method, path, token string) resp {
	f.t.Helper()
	req := httptest.NewRequest(method, path, nil)
	req = req.WithContext(identity.With(req.Context(), who))
	if token != "" {
		req.Header.Set(LockTokenHeader, token)
	}
	rec := httptest.NewRecorder()
	f.r.FilesHandler().ServeHTTP(rec, req)
	return resp{rec.Code, rec.Body.Bytes(), rec.Header()}
}

// wantAudited fails unless got is one record per want, each holding every part of it.
func wantAudited(t *testing.T, what string, got []string, want ...[]string) {
	t.Helper()
	if len(got) != len(want) {
		t.Errorf("%s: audited %d records, want %d:\n%s", what, len(got), len(want), strings.Join(got, "\n"))
		return
	}
	for i, parts := range want {
		for _, p := range parts {
			if !strings.Contains(got[i], p) {
				t.Errorf("%s: record %q does not say %q", what, got[i], p)
			}
		}
	}
}

// A host the policy let through, refused afterwards for the lock it uses (another
// host's, a wrong one, or its own after check-in), is audited as denied with why:
// otherwise the trail shows only the "allowed" before it.
func TestLockRefusalsAudited(t *testing.T) {
	f := newFixture(t)
	hostA := identity.Identity{DN: "/O=Grid/OU=vws/CN=host/a.example.org"}
	hostB := identity.Identity{DN: "/O=Grid/OU=vws/CN=host/b.example.org"}
	asA := identity.With(context.Background(), hostA)
	asB := identity.With(context.Background(), hostB)
	key := f.create("locked", "", "")
	m, err := f.r.CheckOut(asA, key, "a.example.org", "", nil, &tester)
	if err != nil {
		t.Fatal(err)
	}
	ov := image(m, "overlay")
	rec := f.recordAudit()

	// Host B with host A's token.
	if _, _, _, err := f.r.ReportState(asB, key, m.Token, "a.example.org", "running", "deployed", "", time.Time{}); err == nil {
		t.Fatal("host B reported on host A's check-out")
	}
	wantAudited(t, "B's report", rec.take(), []string{hostB.DN, "report-state " + key + " denied", "checked out to " + hostA.DN})
	if _, _, err := f.r.CheckIn(asB, key, CheckInRequest{Token: m.Token, OverlayDigest: ov.Digest, OverlaySize: -1, MemorySize: -1}); err == nil {
		t.Fatal("host B checked in host A's check-out")
	}
	wantAudited(t, "B's check-in", rec.take(), []string{hostB.DN, "check-in " + key + " denied", "checked out to " + hostA.DN})
	if rs := f.doAs(hostB, http.MethodGet, ov.Path, m.Token); rs.code != http.StatusForbidden {
		t.Fatalf("host B fetched host A's overlay: %d %s", rs.code, rs.body)
	}
	wantAudited(t, "B's fetch", rec.take(), []string{hostB.DN, "fetch-file " + key + " denied", "checked out to " + hostA.DN})
	if rs := f.doAs(hostB, http.MethodPut, "/workspaces/"+key+"/overlay", m.Token); rs.code != http.StatusForbidden {
		t.Fatalf("host B uploaded to host A's check-out: %d %s", rs.code, rs.body)
	}
	wantAudited(t, "B's upload", rec.take(), []string{hostB.DN, "upload-overlay " + key + " denied", "checked out to " + hostA.DN})

	// Host A with a wrong token, or another host's name.
	wrong := strings.Repeat("f", 32)
	if _, _, _, err := f.r.ReportState(asA, key, wrong, "a.example.org", "running", "deployed", "", time.Time{}); err == nil {
		t.Fatal("a report with a wrong token was taken")
	}
	wantAudited(t, "a wrong token", rec.take(), []string{hostA.DN, "report-state " + key + " denied", "lock token is not the workspace's"})
	if _, _, _, err := f.r.ReportState(asA, key, m.Token, "c.example.org", "running", "deployed", "", time.Time{}); err == nil {
		t.Fatal("a report for another host was taken")
	}
	wantAudited(t, "another host's name", rec.take(), []string{hostA.DN, "report-state " + key + " denied", `"c.example.org"`})
	if rs := f.doAs(hostA, http.MethodGet, ov.Path, ""); rs.code != http.StatusForbidden {
		t.Fatalf("a fetch without a token: %d %s", rs.code, rs.body)
	}
	wantAudited(t, "no token", rec.take(), []string{hostA.DN, "fetch-file " + key + " denied", "no lock token"})

	// Bad input and unknown paths are not decisions: nothing is audited.
	if _, _, _, err := f.r.ReportState(asA, key, m.Token, "a.example.org", "bogus", "", "", time.Time{}); err == nil {
		t.Fatal("state bogus was taken")
	}
	if rs := f.doAs(hostA, http.MethodGet, "/workspaces/"+key+"/files/nonsense", m.Token); rs.code != http.StatusNotFound {
		t.Fatalf("a fetch of no digest: %d", rs.code)
	}
	wantAudited(t, "bad input", rec.take())

	// The holder's own requests pass; after check-in, its old token opens nothing.
	if _, _, err := f.r.CheckIn(asA, key, CheckInRequest{Token: m.Token, OverlayDigest: ov.Digest, OverlaySize: -1, MemorySize: -1}); err != nil {
		t.Fatal(err)
	}
	wantAudited(t, "the check-in", rec.take(), []string{hostA.DN, "check-in " + key + " done"})
	if _, _, err := f.r.CheckIn(asA, key, CheckInRequest{Token: m.Token, OverlayDigest: ov.Digest, OverlaySize: -1, MemorySize: -1}); err == nil {
		t.Fatal("checked in twice with one token")
	}
	if _, _, _, err := f.r.ReportState(asA, key, m.Token, "a.example.org", "running", "deployed", "", time.Time{}); err == nil {
		t.Fatal("a report with a spent token was taken")
	}
	if rs := f.doAs(hostA, http.MethodGet, ov.Path, m.Token); rs.code != http.StatusConflict {
		t.Fatalf("a fetch with a spent token: %d %s", rs.code, rs.body)
	}
	spent := "not checked out (in-repository)"
	wantAudited(t, "a spent token", rec.take(),
		[]string{hostA.DN, "check-in " + key + " denied", spent},
		[]string{hostA.DN, "report-state " + key + " denied"},
		[]string{hostA.DN, "fetch-file " + key + " denied", spent})
}

// serveWorkspaces serves f's WorkspaceService over HTTP as a container does, to a
// caller presenting cred's certificate (as if over mutual TLS), and returns the EPR
// of workspace key there.
func (f *fixture) serveWorkspaces(cred *pki.Credential, key string) *wsa.EPR {
	f.t.Helper()
	svc, err := f.r.WorkspaceService(contract.FS, wsrf.LifetimePolicy{Maximum: 24 * time.Hour})
	if err != nil {
		f.t.Fatal(err)
	}
	c, err := container.New(container.Config{ContractFS: contract.FS, Logger: slog.New(slog.NewTextHandler(io.Discard, nil))}, svc)
	if err != nil {
		f.t.Fatal(err)
	}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		r.TLS = &tls.ConnectionState{PeerCertificates: cred.FullChain()}
		c.ServeHTTP(w, r)
	}))
	f.t.Cleanup(srv.Close)
	k := etree.NewElement("vw:WorkspaceKey")
	k.CreateAttr("xmlns:vw", vwsns.Workspace)
	k.SetText(key)
	return &wsa.EPR{Version: wsa.V200508, Address: srv.URL + container.ServicesPath + vwsns.WorkspaceService, References: []*etree.Element{k}}
}

// A create record names the owner the Factory creates for; a destroy record names
// who destroyed the workspace and why: a client's Destroy, or its lifetime running out.
func TestCreateAndDestroyAuditedWithOwnerCallerAndCause(t *testing.T) {
	f := newFixture(t)
	rec := f.recordAudit()
	factory := identity.With(context.Background(), identity.Identity{DN: "/O=Grid/OU=vws/CN=host/factory.example.org"})
	ca, err := pki.NewCA(pki.CAOptions{KeyType: pki.KeyTypeECDSA})
	if err != nil {
		t.Fatal(err)
	}
	alice, err := ca.IssueUser(pki.UserOptions{CN: "alice", KeyType: pki.KeyTypeECDSA})
	if err != nil {
		t.Fatal(err)
	}
	aliceDN := "/O=Grid/OU=vws/CN=alice"
	create := func(name string, lifetime time.Duration) string {
		t.Helper()
		c, err := f.r.Create(factory, CreateSpec{Name: name, Owner: aliceDN, Description: description(), BaseImage: f.base, Termination: time.Now().Add(lifetime)})
		if err != nil {
			t.Fatal(err)
		}
		return c.Key
	}

	key := create("by-hand", time.Hour)
	wantAudited(t, "create", rec.take(), []string{"/CN=host/factory.example.org create " + key + " done", "owner=" + aliceDN})
	if err := client.New(nil).Destroy(context.Background(), f.serveWorkspaces(alice, key)); err != nil {
		t.Fatal(err)
	}
	wantAudited(t, "alice's Destroy", rec.take(), []string{aliceDN + " destroy " + key + " done", "owner=" + aliceDN, "cause=destroy-request"})

	// The lifetime runs out: nobody called; the record says so.
	key = create("short-lived", time.Second)
	rec.take()
	var got []string
	for deadline := time.Now().Add(10 * time.Second); len(got) == 0; got = rec.take() {
		if time.Now().After(deadline) {
			t.Fatal("the workspace outlived its lifetime by 10s")
		}
		time.Sleep(50 * time.Millisecond)
	}
	wantAudited(t, "expiry", got, []string{"<anonymous> destroy " + key + " done", "owner=" + aliceDN, "cause=lifetime-expired"})
}
