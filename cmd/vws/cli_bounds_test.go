package main

import (
	"context"
	"crypto/x509"
	"encoding/pem"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/beevik/etree"

	"github.com/vws-grid/vws/internal/soap"
	"github.com/vws-grid/vws/internal/vwsns"
	"github.com/vws-grid/vws/internal/wsa"
	"github.com/vws-grid/vws/internal/wsrf"
)

// captureSOAP answers every request with respond's payload and records the request payloads.
func captureSOAP(t *testing.T, respond func(p *etree.Element) *etree.Element) (*httptest.Server, func() []*etree.Element) {
	var mu sync.Mutex
	var got []*etree.Element
	s := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		data, _ := io.ReadAll(r.Body)
		env, err := soap.Parse(data)
		if err != nil || env.Payload == nil {
			http.Error(w, "not soap", 400)
			return
		}
		mu.Lock()
		got = append(got, env.Payload.Copy())
		mu.Unlock()
		b, _ := (&soap.Message{Body: respond(env.Payload)}).Bytes()
		w.Header().Set("Content-Type", "text/xml; charset=utf-8")
		w.Write(b)
	}))
	t.Cleanup(s.Close)
	return s, func() []*etree.Element { mu.Lock(); defer mu.Unlock(); return got }
}

func pkiCA(t *testing.T) (string, string) {
	dir := t.TempDir()
	ca, user := filepath.Join(dir, "ca"), filepath.Join(dir, "alice")
	for _, s := range [][]string{
		{"pki", "ca", "--dir", ca, "--key-type", "ecdsa"},
		{"pki", "user", "--ca-dir", ca, "--cn", "alice", "--out", user, "--key-type", "ecdsa"},
	} {
		if r := vwsRun(t, context.Background(), s...); r.code != 0 {
			t.Fatalf("vws %v: %+v", s, r)
		}
	}
	return ca, user
}

func readCRL(t *testing.T, ca string) *x509.RevocationList {
	files, _ := filepath.Glob(filepath.Join(ca, "*.r0"))
	data, err := os.ReadFile(files[0])
	if err != nil {
		t.Fatal(err)
	}
	if b, _ := pem.Decode(data); b != nil {
		data = b.Bytes
	}
	crl, err := x509.ParseRevocationList(data)
	if err != nil {
		t.Fatal(err)
	}
	return crl
}

// vws wsrf set-termination-time: seconds past what a time.Duration holds are refused
// before anything is sent (they used to wrap round to a time within a second).
func TestSetTerminationTimeBeyondADurationIsRefused(t *testing.T) {
	s, got := captureSOAP(t, func(p *etree.Element) *etree.Element {
		return el("wsrl:SetTerminationTimeResponse", "http://docs.oasis-open.org/wsrf/rl-2", "")
	})
	r := vwsRun(t, context.Background(), "wsrf", "set-termination-time", "-s", s.URL+"/wsrf/services/WorkspaceService",
		"-k", "vw:WorkspaceKey", "k1", "18446744074") // ~585 years
	if r.code == 0 || len(got()) != 0 || !strings.Contains(r.stderr, "for no termination time give infinity") {
		t.Fatalf("585 years: exit %d, %d requests sent, stderr %q; want refused before sending", r.code, len(got()), r.stderr)
	}
}

// vws shutdown --grace sends an xs:duration, never an exponent, however long the grace.
func TestShutdownLongGraceIsAnXSDuration(t *testing.T) {
	s, got := captureSOAP(t, func(p *etree.Element) *etree.Element {
		out := el("mgr:ShutdownResponse", vwsns.Manager, "")
		out.CreateElement("mgr:State").SetText("shutdown")
		return out
	})
	for grace, want := range map[string]time.Duration{"300h": 300 * time.Hour, "1.5s": 1500 * time.Millisecond} {
		before := len(got())
		vwsRun(t, context.Background(), "shutdown", "k1", "--host", s.URL, "--grace", grace)
		reqs := got()
		if len(reqs) != before+1 {
			t.Fatalf("--grace %s: nothing sent", grace)
		}
		g := strings.TrimSpace(reqs[len(reqs)-1].FindElement(".//GracePeriod").Text())
		if d, err := wsrf.ParseDuration(g); err != nil || d != want {
			t.Fatalf("--grace %s sent GracePeriod %q (%v, %v), want %s", grace, g, d, err, want)
		}
	}
}

// Ctrl-C during vws host evacuate ends it with exit 130 and says what is where.
func TestEvacuateInterruptedExits130(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	repo := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		io.Copy(io.Discard, r.Body)
		cancel() // the user's Ctrl-C, while the first workspace's move is under way
		<-r.Context().Done()
	}))
	defer repo.Close()
	mgr := &fakeSOAP{}
	mgrHS := httptest.NewServer(mgr)
	defer mgrHS.Close()
	mgr.handle = func(op string, p *etree.Element) (*etree.Element, string) {
		switch op {
		case "GetResourceProperty":
			out := el("wsrp:GetResourcePropertyResponse", "http://docs.oasis-open.org/wsrf/rp-2", "")
			d := out.CreateElement("mgr:DeployedWorkspaces")
			d.CreateAttr("xmlns:mgr", vwsns.Manager)
			for _, key := range []string{"ws-1", "ws-2"} {
				w := d.CreateElement("mgr:Workspace")
				w.CreateElement("mgr:Key").SetText(key)
				w.CreateElement("mgr:State").SetText("running")
				k := el("vw:WorkspaceKey", vwsns.Workspace, key)
				(&wsa.EPR{Version: wsa.V200508, Address: repo.URL + "/wsrf/services/WorkspaceService", References: []*etree.Element{k}}).
					ChildElement(w, "mgr:WorkspaceReference", "wsa")
			}
			return out, ""
		}
		return el("wsrp:"+op+"Response", "http://docs.oasis-open.org/wsrf/rp-2", ""), ""
	}
	r := vwsRun(t, ctx, "host", "evacuate", mgrHS.URL)
	if r.code != exitInterrupted || !strings.Contains(r.stderr, "the evacuation was cancelled while moving ws-1") ||
		!strings.Contains(r.stderr, "not tried, still on the host: ws-2") || strings.Contains(r.stderr, "refused") {
		t.Fatalf("want exit 130 saying what is where after Ctrl-C, got exit %d\nstdout: %q\nstderr: %q", r.code, r.stdout, r.stderr)
	}
}

// vws pki revoke CERT BAD fails on BAD before writing the CRL, and says nothing was
// revoked rather than "revoked serial" for CERT.
func TestRevokeSaysNothingRevokedWhenAnArgumentIsBad(t *testing.T) {
	ca, user := pkiCA(t)
	r := vwsRun(t, context.Background(), "pki", "revoke", "--ca-dir", ca, user+"-cert.pem", "not-a-serial")
	n := len(readCRL(t, ca).RevokedCertificateEntries)
	if r.code == 0 || n != 0 || strings.Contains(r.stdout, "revoked serial") || !strings.Contains(r.stderr, "nothing was revoked") {
		t.Fatalf("exit %d, the CRL revokes %d certificates, stdout %q, stderr %q", r.code, n, r.stdout, r.stderr)
	}
	r = vwsRun(t, context.Background(), "pki", "revoke", "--ca-dir", ca, user+"-cert.pem")
	if r.code != 0 || !strings.Contains(r.stdout, "revoked serial") || len(readCRL(t, ca).RevokedCertificateEntries) != 1 {
		t.Fatalf("revoking alice: exit %d, stdout %q, stderr %q", r.code, r.stdout, r.stderr)
	}
}

// --crl-days and --days below one day are refused: a CRL whose next update is now is
// stale at once, and verifiers then refuse every certificate of the CA.
func TestPKIRefusesValiditiesUnderADay(t *testing.T) {
	ca, _ := pkiCA(t)
	before := readCRL(t, ca)
	for _, args := range [][]string{
		{"pki", "revoke", "--ca-dir", ca, "--crl-days", "0"},
		{"pki", "revoke", "--ca-dir", ca, "--crl-days", "-1"},
		{"pki", "ca", "--dir", filepath.Join(t.TempDir(), "ca2"), "--crl-days", "0"},
		{"pki", "user", "--ca-dir", ca, "--cn", "bob", "--out", filepath.Join(t.TempDir(), "bob"), "--days", "0"},
	} {
		r := vwsRun(t, context.Background(), args...)
		if r.code == 0 || !strings.Contains(r.stderr, "give between 1 and 36500 days") {
			t.Errorf("vws %v: exit %d, stderr %q", args, r.code, r.stderr)
		}
	}
	if after := readCRL(t, ca); after.Number.Cmp(before.Number) != 0 {
		t.Fatalf("a refused revoke rewrote the CRL (number %s → %s)", before.Number, after.Number)
	}
}

// vws audit --verify checks the whole chain and prints a line of text: the filters
// and --json, which it would ignore, are refused.
func TestAuditVerifyRefusesFiltersAndJSON(t *testing.T) {
	dir, db, _ := openAudit(t)
	db.Close()
	for _, flag := range [][]string{{"--json"}, {"--caller", "x"}, {"--limit", "3"}} {
		r := vwsRun(t, context.Background(), append([]string{"audit", "--data", dir, "--verify"}, flag...)...)
		if r.code == 0 || !strings.Contains(r.stderr, "--verify checks the whole chain") {
			t.Errorf("--verify %v: exit %d, stdout %q, stderr %q", flag, r.code, r.stdout, r.stderr)
		}
	}
}

// vws serve --public-url must be a URL: it goes into every EPR the server hands out.
func TestServeRefusesAPublicURLThatIsNoURL(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	r := vwsRun(t, ctx, "serve", "--insecure", "--role", "factory,repository", "--data", t.TempDir(),
		"--listen", "127.0.0.1:0", "--public-url", "127.0.0.1:8080")
	if r.code != exitError || !strings.Contains(r.stderr, `--public-url "127.0.0.1:8080" is not a vws URL`) {
		t.Fatalf("--public-url 127.0.0.1:8080 (no scheme): want exit 1 naming --public-url before serving, got exit %d; stderr %q", r.code, r.stderr)
	}
}

// vws pki proxy --hours that no lifetime can be (NaN, infinite, past what a
// time.Duration holds) is refused: it used to make a 12-hour proxy, the default,
// and exit 0 as if the request had been met.
func TestProxyRefusesHoursNoLifetimeCanBe(t *testing.T) {
	_, user := pkiCA(t)
	for _, hours := range []string{"NaN", "inf", "1e10"} {
		out := filepath.Join(t.TempDir(), "x509up")
		r := vwsRun(t, context.Background(), "pki", "proxy", "--cert", user+"-cert.pem", "--key", user+"-key.pem", "--hours", hours, "--out", out)
		_, statErr := os.Stat(out)
		if r.code == 0 || statErr == nil || !strings.Contains(r.stderr, "--hours ") || !strings.Contains(r.stderr, "to 876000 hours") {
			t.Errorf("--hours %s: exit %d, proxy written: %v, stdout %q, stderr %q; want it refused", hours, r.code, statErr == nil, r.stdout, r.stderr)
		}
	}
}

// vws pki user (or host) --out PREFIX does not write over the credential already
// there (the prefix of another user, mistyped): it replaced PREFIX-key.pem, and the
// certificate issued for that key was left without it. --force replaces them.
func TestPKIIssueKeepsAnExistingCredential(t *testing.T) {
	ca, alice := pkiCA(t)
	key := fileSum(t, alice+"-key.pem")
	r := vwsRun(t, context.Background(), "pki", "user", "--ca-dir", ca, "--cn", "bob", "--out", alice)
	if r.code == 0 || fileSum(t, alice+"-key.pem") != key || !strings.Contains(r.stderr, "--force") {
		t.Fatalf("issuing bob over alice's files: exit %d, alice's key kept: %v, stderr %q", r.code, fileSum(t, alice+"-key.pem") == key, r.stderr)
	}
	r = vwsRun(t, context.Background(), "pki", "host", "--ca-dir", ca, "--name", "node7", "--out", alice)
	if r.code == 0 || fileSum(t, alice+"-key.pem") != key {
		t.Fatalf("issuing a host over alice's files: exit %d, stderr %q", r.code, r.stderr)
	}
	r = vwsRun(t, context.Background(), "pki", "user", "--ca-dir", ca, "--cn", "bob", "--out", alice, "--force")
	if r.code != 0 || fileSum(t, alice+"-key.pem") == key {
		t.Fatalf("--force: exit %d, stderr %q", r.code, r.stderr)
	}
}

// vws serve --public-url with a query, fragment or user name is refused: the service
// paths appended to it in every EPR would land in the query or fragment, and a user
// name (or password) would go out in every EPR.
func TestServeRefusesAPublicURLWithQueryFragmentOrUser(t *testing.T) {
	for _, u := range []string{"http://127.0.0.1:8080/?x=1", "http://127.0.0.1:8080/?", "http://127.0.0.1:8080/#top", "http://admin:secret@127.0.0.1:8080"} {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		r := vwsRun(t, ctx, "serve", "--insecure", "--role", "factory,repository", "--data", t.TempDir(),
			"--listen", "127.0.0.1:0", "--public-url", u)
		cancel()
		if r.code != exitError || !strings.Contains(r.stderr, "--public-url") || !strings.Contains(r.stderr, "give http://127.0.0.1:8080") || strings.Contains(r.stderr, "secret") {
			t.Errorf("--public-url %s: want exit 1 naming --public-url and the URL to give instead (no password) before serving, got exit %d; stderr %q", u, r.code, r.stderr)
		}
	}
}
