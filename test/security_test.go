package test

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math/big"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/beevik/etree"

	"github.com/vws-grid/vws/internal/audit"
	"github.com/vws-grid/vws/internal/client"
	"github.com/vws-grid/vws/internal/identity"
	"github.com/vws-grid/vws/internal/pki"
	"github.com/vws-grid/vws/internal/server"
	"github.com/vws-grid/vws/internal/soap"
	"github.com/vws-grid/vws/internal/tlsutil"
	"github.com/vws-grid/vws/internal/vwsns"
	"github.com/vws-grid/vws/internal/wsa"
	"github.com/vws-grid/vws/internal/wssec"
)

// secSite is a site with its own CA, a vws server over mutual TLS with a rules file,
// and users.
type secSite struct {
	t      *testing.T
	dir    string
	caDir  string
	rules  string
	ca     *pki.Credential
	trust  *pki.Trust
	url    string
	srv    *server.Server
	users  map[string]*pki.Credential
	hostDN string
}

const secRules = `allow host  /O=Grid/OU=vws/CN=host/127.0.0.1
allow admin /O=Grid/OU=vws/CN=admin
deny  admin *
allow *     *
quota /O=Grid/OU=vws/CN=quota workspaces=10 memory=1MiB
require-signature WorkspaceRepositoryService ListWorkspaces
`

func newSecSite(t *testing.T) *secSite {
	t.Helper()
	s := &secSite{t: t, dir: t.TempDir(), users: map[string]*pki.Credential{}}
	must := func(err error) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
	}
	var err error
	s.ca, err = pki.NewCA(pki.CAOptions{})
	must(err)
	host, err := s.ca.IssueHost(pki.HostOptions{Name: "127.0.0.1"})
	must(err)
	s.hostDN = pki.DN(host.Certificate)
	for _, cn := range []string{"alice", "bob", "admin", "quota", "carol"} {
		s.users[cn], err = s.ca.IssueUser(pki.UserOptions{CN: cn})
		must(err)
	}
	// carol is revoked.
	crl, err := s.ca.CRL([]pki.RevokedSerial{{Serial: s.users["carol"].Certificate.SerialNumber, At: time.Now().Add(-time.Minute)}},
		time.Now().Add(-time.Minute), time.Now().Add(24*time.Hour), 1)
	must(err)
	s.caDir = filepath.Join(s.dir, "certificates")
	_, err = pki.WriteCADir(s.caDir, s.ca.Certificate, crl)
	must(err)
	hostCert, hostKey := filepath.Join(s.dir, "hostcert.pem"), filepath.Join(s.dir, "hostkey.pem")
	must(pki.WriteCredential(hostCert, hostKey, host))
	s.trust, err = pki.LoadTrust(s.caDir)
	must(err)
	s.rules = filepath.Join(s.dir, "rules")
	must(os.WriteFile(s.rules, []byte(secRules), 0o644))

	s.srv, err = server.New(context.Background(), server.Config{
		DataDir: filepath.Join(s.dir, "data"), PolicyFile: s.rules, HostCertFile: hostCert, HostKeyFile: hostKey, Trust: s.trust,
		Logger:   slog.New(slog.NewTextHandler(io.Discard, nil)),
		Manager:  server.ManagerConfig{LibvirtURI: "test:///default", Host: "sec-host"},
		Database: testDatabase(t),
	})
	must(err)
	tlsCfg, err := tlsutil.Server(hostCert, hostKey, s.caDir, tlsutil.WithTrust(s.trust))
	must(err)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	must(err)
	s.url = "https://" + ln.Addr().String()
	s.srv.SetBaseURL(s.url)
	hs := &http.Server{Handler: s.srv.Handler(), ErrorLog: nil}
	go hs.Serve(tls.NewListener(ln, tlsCfg))
	t.Cleanup(func() {
		hs.Close()
		s.srv.Close()
	})
	return s
}

// httpAs is an HTTPS client presenting cred (nil: no certificate).
func (s *secSite) httpAs(cred *pki.Credential) *http.Client {
	cfg := &tls.Config{RootCAs: s.trust.Roots(), MinVersion: tls.VersionTLS12}
	if cred != nil {
		var raw [][]byte
		for _, c := range cred.FullChain() {
			raw = append(raw, c.Raw)
		}
		cfg.Certificates = []tls.Certificate{{Certificate: raw, PrivateKey: cred.Key}}
	}
	return &http.Client{Transport: &http.Transport{TLSClientConfig: cfg}, Timeout: time.Minute}
}

func (s *secSite) as(cred *pki.Credential) *client.Client { return client.New(s.httpAs(cred)) }

func (s *secSite) epr(service string) *wsa.EPR {
	return &wsa.EPR{Version: wsa.V200508, Address: s.url + "/wsrf/services/" + service}
}

func (s *secSite) importImage(name string) {
	s.t.Helper()
	req, _ := http.NewRequest(http.MethodPut, s.url+"/images?name="+name+"&os=linux&arch=x86_64", bytes.NewReader(bytes.Repeat([]byte{9}, 1<<20)))
	resp, err := s.httpAs(s.users["admin"]).Do(req)
	if err != nil {
		s.t.Fatal(err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	if resp.StatusCode/100 != 2 {
		s.t.Fatalf("import as admin: HTTP %d: %s", resp.StatusCode, body)
	}
	var out struct{ Digest string }
	json.Unmarshal(body, &out)
}

func (s *secSite) create(c *client.Client, name string) (*wsa.EPR, error) {
	doc := etree.NewDocument()
	if err := doc.ReadFromString(vmDescription(`<sw:image><sw:name>sec</sw:name></sw:image>`)); err != nil {
		s.t.Fatal(err)
	}
	body := etree.NewElement("fac:Create")
	body.CreateAttr("xmlns:fac", vwsns.Factory)
	body.AddChild(doc.Root())
	body.CreateElement("fac:Name").SetText(name)
	resp, err := c.Invoke(context.Background(), s.epr(vwsns.FactoryService), "Create", body)
	if err != nil {
		return nil, err
	}
	return wsa.ParseEPR(resp.SelectElement("WorkspaceReference"))
}

func wantFaultType(t *testing.T, what string, err error, typ string, mentions ...string) {
	t.Helper()
	var fe *client.FaultError
	if !errors.As(err, &fe) {
		t.Fatalf("%s: want %s, got %v", what, typ, err)
	}
	if fe.Type != typ {
		t.Fatalf("%s: want %s, got %s: %s", what, typ, fe.Type, fe.Description)
	}
	for _, m := range mentions {
		if !strings.Contains(fe.Description, m) {
			t.Fatalf("%s: %s does not mention %q: %s", what, typ, m, fe.Description)
		}
	}
}

// TestSecurityEndToEnd: mutual TLS with the site's CAs, proxies, per-owner
// authorization, quotas under concurrency, rules reloaded without a restart, signed
// requests and responses, and the audit chain — against one real server over HTTPS.
func TestSecurityEndToEnd(t *testing.T) {
	s := newSecSite(t)
	ctx := context.Background()
	alice, bob := s.users["alice"], s.users["bob"]
	aliceDN, bobDN := pki.DN(alice.Certificate), pki.DN(bob.Certificate)

	// --- who gets in ---
	expired, err := s.ca.IssueUser(pki.UserOptions{CN: "old", Validity: pki.Validity{NotBefore: time.Now().Add(-48 * time.Hour), Lifetime: time.Hour}})
	if err != nil {
		t.Fatal(err)
	}
	otherCA, _ := pki.NewCA(pki.CAOptions{Subject: "/O=Elsewhere/CN=Other CA"})
	stranger, _ := otherCA.IssueUser(pki.UserOptions{CN: "stranger"})
	impostor, err := pki.IssueProxy(bob, pki.ProxyOptions{Subject: aliceDN + "/CN=123"})
	if err != nil {
		t.Fatal(err)
	}
	factoryRP := func(c *client.Client) error {
		_, err := c.GetResourceProperty(ctx, s.epr(vwsns.FactoryService), wsa.QName{Space: vwsns.Factory, Local: "ImagePool"})
		return err
	}
	for name, cred := range map[string]*pki.Credential{"no certificate": nil, "untrusted CA": stranger, "expired": expired,
		"revoked (CRL)": s.users["carol"], "impersonating proxy": impostor} {
		err := factoryRP(s.as(cred))
		var fe *client.FaultError
		if err == nil || errors.As(err, &fe) {
			t.Errorf("%s: the TLS handshake let it in (err %v)", name, err)
		}
	}
	proxy, err := pki.IssueProxy(alice, pki.ProxyOptions{})
	if err != nil {
		t.Fatal(err)
	}
	aliceProxy := s.as(proxy)
	if err := factoryRP(aliceProxy); err != nil {
		t.Fatalf("a valid proxy was refused: %v", err)
	}

	// --- owners ---
	s.importImage("sec")
	epr, err := s.create(aliceProxy, "alices")
	if err != nil {
		t.Fatal(err)
	}
	key := keyOf(epr)
	owner, err := aliceProxy.GetResourceProperty(ctx, epr, wsa.QName{Space: vwsns.Workspace, Local: "owner"})
	if err != nil || len(owner) != 1 || owner[0].Text() != aliceDN {
		t.Fatalf("owner of a workspace made with alice's proxy: %v %v (want %s)", owner, err, aliceDN)
	}
	asBob := s.as(bob)
	notAlices := []struct {
		op   string
		call func() error
	}{
		{"GetResourceProperty", func() error {
			_, err := asBob.GetResourceProperty(ctx, epr, wsa.QName{Space: vwsns.Workspace, Local: "state"})
			return err
		}},
		{"Destroy", func() error { return asBob.Destroy(ctx, epr) }},
		{"SetTerminationTime", func() error {
			tt := time.Now().Add(time.Hour)
			_, _, err := asBob.SetTerminationTime(ctx, epr, &tt)
			return err
		}},
		{"Clone", func() error {
			b := etree.NewElement("vw:Clone")
			b.CreateAttr("xmlns:vw", vwsns.Workspace)
			_, err := asBob.Invoke(ctx, epr, "Clone", b)
			return err
		}},
		{"Deploy", func() error {
			b := etree.NewElement("mgr:Deploy")
			b.CreateAttr("xmlns:mgr", vwsns.Manager)
			epr.ChildElement(b, "mgr:WorkspaceReference", "wsa")
			_, err := asBob.Invoke(ctx, s.epr(vwsns.ManagerService), "Deploy", b)
			return err
		}},
	}
	for _, c := range notAlices {
		wantFaultType(t, "bob "+c.op+"s alice's workspace", c.call(), "WorkspaceAuthorizationFault", bobDN, aliceDN)
	}
	if st, err := aliceProxy.GetResourceProperty(ctx, epr, wsa.QName{Space: vwsns.Workspace, Local: "deployment"}); err != nil || st[0].Text() != "in-repository" {
		t.Fatalf("after bob's refused Deploy the workspace is %v (%v)", st, err)
	}

	// --- a share rule takes effect without a restart ---
	f, _ := os.OpenFile(s.rules, os.O_APPEND|os.O_WRONLY, 0)
	fmt.Fprintf(f, "share inspect key:%s %s\n", key, bobDN)
	f.Close()
	deadline := time.Now().Add(10 * time.Second)
	for {
		_, err := asBob.GetResourceProperty(ctx, epr, wsa.QName{Space: vwsns.Workspace, Local: "state"})
		if err == nil {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the share rule did not take effect: %v", err)
		}
		time.Sleep(100 * time.Millisecond)
	}
	wantFaultType(t, "bob destroys with only an inspect share", asBob.Destroy(ctx, epr), "WorkspaceAuthorizationFault")

	// --- 50 concurrent creates against workspaces=10 ---
	asQuota := s.as(s.users["quota"])
	var wg sync.WaitGroup
	var mu sync.Mutex
	made, refused := 0, 0
	var other []error
	var quotas *wsa.EPR
	for i := 0; i < 50; i++ {
		wg.Add(1)
		go func(i int) {
			defer wg.Done()
			made1, err := s.create(asQuota, fmt.Sprintf("q-%02d", i))
			var fe *client.FaultError
			mu.Lock()
			defer mu.Unlock()
			switch {
			case err == nil:
				made++
				quotas = made1
			case errors.As(err, &fe) && fe.Type == "WorkspaceQuotaExceededFault" && strings.Contains(fe.Description, "workspaces=10"):
				refused++
			default:
				other = append(other, err)
			}
		}(i)
	}
	wg.Wait()
	if made != 10 || refused != 40 || len(other) > 0 {
		t.Fatalf("50 creates against a quota of 10: %d made, %d refused, others %v", made, refused, other)
	}
	// The memory quota is counted at check-out: the Manager passes the Repository's
	// refusal on as the caller's quota fault, and nothing stays deployed or locked.
	deploy := etree.NewElement("mgr:Deploy")
	deploy.CreateAttr("xmlns:mgr", vwsns.Manager)
	quotas.ChildElement(deploy, "mgr:WorkspaceReference", "wsa")
	_, err = asQuota.Invoke(ctx, s.epr(vwsns.ManagerService), "Deploy", deploy)
	wantFaultType(t, "a Deploy past the owner's memory quota", err, "WorkspaceQuotaExceededFault", "memory=1MiB", "larger quota")
	if strings.Contains(err.Error(), "failed internally") {
		t.Errorf("a quota refusal reads as a failure of the service: %v", err)
	}
	if st, err := asQuota.GetResourceProperty(ctx, quotas, wsa.QName{Space: vwsns.Workspace, Local: "deployment"}); err != nil || st[0].Text() != "in-repository" {
		t.Fatalf("after the Deploy refused for its quota the workspace is %v (%v)", st, err)
	}

	// --- signatures ---
	var listed []string
	list := func(c *client.Client) error {
		b := etree.NewElement("repo:ListWorkspaces")
		b.CreateAttr("xmlns:repo", vwsns.Repository)
		resp, err := c.Invoke(ctx, s.epr(vwsns.RepositoryService), "ListWorkspaces", b)
		listed = nil
		if err == nil {
			for _, w := range resp.SelectElements("Workspace") {
				listed = append(listed, w.SelectElement("Name").Text())
			}
		}
		return err
	}
	wantFaultType(t, "unsigned ListWorkspaces", list(aliceProxy), "WorkspaceAuthorizationFault", "signed")
	signed := s.as(proxy)
	signed.Signer = &wssec.Signer{Key: proxy.Key, Chain: proxy.FullChain()}
	signed.Verifier = wssec.NewVerifier(func(chain []*x509.Certificate) (identity.Identity, error) { return s.trust.Verify(chain, time.Now()) })
	if err := list(signed); err != nil {
		t.Fatalf("a signed ListWorkspaces (answer verified): %v", err)
	}
	// Alice sees her workspace, not the ten of the quota user.
	if strings.Join(listed, ",") != "alices" {
		t.Fatalf("alice's listing: %v", listed)
	}
	// The same signed bytes twice: the second is a replay.
	b := etree.NewElement("repo:ListWorkspaces")
	b.CreateAttr("xmlns:repo", vwsns.Repository)
	msg := (&soap.Message{Headers: []*etree.Element{
		addrHeader("To", s.epr(vwsns.RepositoryService).Address),
		addrHeader("MessageID", "urn:uuid:replay-"+big.NewInt(time.Now().UnixNano()).String())}, Body: b}).Document()
	if err := signed.Signer.Sign(msg); err != nil {
		t.Fatal(err)
	}
	raw, _ := msg.WriteToBytes()
	post := func() (int, string) {
		resp, err := s.httpAs(proxy).Post(s.epr(vwsns.RepositoryService).Address, "text/xml; charset=utf-8", bytes.NewReader(raw))
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		body, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(body)
	}
	if code, body := post(); code != 200 {
		t.Fatalf("first sending of a signed message: HTTP %d: %.400s", code, body)
	}
	if code, body := post(); code == 200 || !strings.Contains(body, "replay") {
		t.Fatalf("a replayed message: HTTP %d: %.400s", code, body)
	}
	tampered := bytes.Replace(raw, []byte("replay-"), []byte("altered-"), 1)
	resp, err := s.httpAs(proxy).Post(s.epr(vwsns.RepositoryService).Address, "text/xml; charset=utf-8", bytes.NewReader(tampered))
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode == 200 || !strings.Contains(string(body), "WorkspaceAuthorizationFault") {
		t.Fatalf("a message altered after signing: HTTP %d: %.400s", resp.StatusCode, body)
	}

	// --- the audit chain holds every decision ---
	log := audit.New(s.srv.DB(), nil)
	if n, err := log.Verify(ctx); err != nil || n < 60 {
		t.Fatalf("audit chain: %d records, %v", n, err)
	}
	denials, err := log.Query(ctx, audit.Filter{Caller: bobDN, Decision: "denied"})
	if err != nil {
		t.Fatal(err)
	}
	if len(denials) < len(notAlices) || !strings.Contains(denials[0].Rule, "not the owner") {
		t.Fatalf("bob's denials in the audit log: %+v", denials)
	}
}

func addrHeader(local, text string) *etree.Element {
	e := etree.NewElement("wsa:" + local)
	e.CreateAttr("xmlns:wsa", wsa.NS200508)
	e.SetText(text)
	return e
}

// TestSignedRequestsArePinned: what a signed request acts on cannot be changed by
// whoever passes it on (a portal, a relay): not the workspace its key header names,
// not the server its wsa:To names, and its signature cannot be re-encoded into a
// second message. Refusals are audited under the caller that delivered them.
func TestSignedRequestsArePinned(t *testing.T) {
	s := newSecSite(t)
	s.importImage("sec")
	ctx := context.Background()
	alice, bob := s.users["alice"], s.users["bob"]
	a, err := s.create(s.as(alice), "pinned-a")
	if err != nil {
		t.Fatal(err)
	}
	b, err := s.create(s.as(alice), "pinned-b")
	if err != nil {
		t.Fatal(err)
	}
	keyA, keyB := a.References[0].Text(), b.References[0].Text()
	signer := &wssec.Signer{Key: alice.Key, Chain: alice.FullChain()}
	wsURL := s.epr(vwsns.WorkspaceService).Address
	// signedMsg is alice's request to, with the key header of key; late headers are
	// added after signing; no MessageID when id is "".
	signedMsg := func(to, id, key string, body *etree.Element, late ...*etree.Element) []byte {
		t.Helper()
		hs := []*etree.Element{addrHeader("To", to)}
		if id != "" {
			hs = append(hs, addrHeader("MessageID", id))
		}
		if key != "" {
			k := etree.NewElement("vw:WorkspaceKey")
			k.CreateAttr("xmlns:vw", vwsns.Workspace)
			k.SetText(key)
			hs = append(hs, k)
		}
		doc := (&soap.Message{Headers: hs, Body: body}).Document()
		if err := signer.Sign(doc); err != nil {
			t.Fatal(err)
		}
		for _, h := range late {
			doc.Root().SelectElement("Header").AddChild(h)
		}
		raw, err := doc.WriteToBytes()
		if err != nil {
			t.Fatal(err)
		}
		return raw
	}
	post := func(raw []byte) (int, string) {
		t.Helper()
		resp, err := s.httpAs(bob).Post(wsURL, "text/xml; charset=utf-8", bytes.NewReader(raw))
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		body, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(body)
	}
	destroy := func() *etree.Element {
		d := etree.NewElement("wsrl:Destroy")
		d.CreateAttr("xmlns:wsrl", "http://docs.oasis-open.org/wsrf/rl-2")
		return d
	}
	getName := func() *etree.Element {
		g := etree.NewElement("wsrp:GetResourceProperty")
		g.CreateAttr("xmlns:wsrp", "http://docs.oasis-open.org/wsrf/rp-2")
		g.CreateAttr("xmlns:vw", vwsns.Workspace)
		g.SetText("vw:name")
		return g
	}
	exists := func(epr *wsa.EPR) bool {
		_, err := s.as(alice).GetResourceProperty(ctx, epr, wsa.QName{Space: vwsns.Workspace, Local: "name"})
		return err == nil
	}

	// Alice's Destroy of A, its key header turned into B's on the way.
	raw := signedMsg(wsURL, "urn:uuid:pin-destroy", keyA, destroy())
	swapped := bytes.Replace(raw, []byte(">"+keyA+"<"), []byte(">"+keyB+"<"), 1)
	if code, body := post(swapped); code == 200 || !strings.Contains(body, "changed after signing") {
		t.Fatalf("a signed Destroy pointed at another workspace: HTTP %d: %.400s", code, body)
	}
	if !exists(a) || !exists(b) {
		t.Fatalf("after the retargeted Destroy: A exists %v, B exists %v", exists(a), exists(b))
	}
	// A key header the signature does not cover is not acted on.
	lateKey := etree.NewElement("vw:WorkspaceKey")
	lateKey.CreateAttr("xmlns:vw", vwsns.Workspace)
	lateKey.SetText(keyB)
	if code, body := post(signedMsg(wsURL, "urn:uuid:pin-late", "", destroy(), lateKey)); code == 200 || !strings.Contains(body, "does not cover the resource key") {
		t.Fatalf("a signed Destroy with an unsigned key header: HTTP %d: %.400s", code, body)
	}
	if !exists(b) {
		t.Fatal("the unsigned key header's workspace was destroyed")
	}
	// A message signed for another server is not carried out here.
	other := "https://other.example.org:8443/wsrf/services/" + vwsns.WorkspaceService
	if code, body := post(signedMsg(other, "urn:uuid:pin-other", keyA, getName())); code == 200 || !strings.Contains(body, "addressed to "+other) {
		t.Fatalf("a message signed for another server: HTTP %d: %.400s", code, body)
	}
	// Without a MessageID, the signature's base64 written another way is a replay.
	raw = signedMsg(wsURL, "", keyA, getName())
	if code, body := post(raw); code != 200 {
		t.Fatalf("a signed request without MessageID: HTTP %d: %.400s", code, body)
	}
	i := bytes.Index(raw, []byte("==</ds:SignatureValue>"))
	if i < 1 {
		t.Fatalf("no padded SignatureValue in %s", raw)
	}
	const alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/"
	reencoded := bytes.Clone(raw)
	reencoded[i-1] = alphabet[strings.IndexByte(alphabet, raw[i-1])^1] // an unused bit
	if code, body := post(reencoded); code == 200 || !strings.Contains(body, "replay") {
		t.Fatalf("the same signature re-encoded: HTTP %d: %.400s", code, body)
	}
	// The refusals are in the audit trail, under bob, who delivered them.
	refused, err := audit.New(s.srv.DB(), nil).Query(ctx, audit.Filter{Caller: pki.DN(bob.Certificate), Decision: "denied"})
	if err != nil {
		t.Fatal(err)
	}
	if len(refused) < 4 || !strings.HasPrefix(refused[0].Operation, "security ") {
		t.Fatalf("bob's refused deliveries in the audit trail: %+v", refused)
	}
	// Alice's accepted request, which bob delivered, names them both.
	alices, err := audit.New(s.srv.DB(), nil).Query(ctx, audit.Filter{Caller: pki.DN(alice.Certificate), Resource: keyA})
	if err != nil {
		t.Fatal(err)
	}
	delivered := false
	for _, e := range alices {
		delivered = delivered || strings.Contains(e.Detail, "delivered by "+pki.DN(bob.Certificate))
	}
	if !delivered {
		t.Fatalf("alice's signed request that bob delivered: %+v", alices)
	}
}
