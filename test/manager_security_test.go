package test

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/vws-grid/vws/internal/pki"
)

// mgrSite makes a CA, a host certificate for 127.0.0.1, proxies for the given users
// and a rules file, for a TLS test server.
func mgrSite(t *testing.T, rules string, users ...string) (*MgrTLS, map[string]string) {
	t.Helper()
	dir := t.TempDir()
	ca, err := pki.NewCA(pki.CAOptions{})
	if err != nil {
		t.Fatal(err)
	}
	host, err := ca.IssueHost(pki.HostOptions{Name: "127.0.0.1"})
	if err != nil {
		t.Fatal(err)
	}
	site := &MgrTLS{CADir: filepath.Join(dir, "certificates"), HostCert: filepath.Join(dir, "hostcert.pem"),
		HostKey: filepath.Join(dir, "hostkey.pem"), Policy: filepath.Join(dir, "rules")}
	if _, err := pki.WriteCADir(site.CADir, ca.Certificate, nil); err != nil {
		t.Fatal(err)
	}
	if err := pki.WriteCredential(site.HostCert, site.HostKey, host); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(site.Policy, []byte(rules), 0o644); err != nil {
		t.Fatal(err)
	}
	proxies := map[string]string{}
	for _, u := range users {
		cred, err := ca.IssueUser(pki.UserOptions{CN: u})
		if err != nil {
			t.Fatal(err)
		}
		px, err := pki.IssueProxy(cred, pki.ProxyOptions{})
		if err != nil {
			t.Fatal(err)
		}
		proxies[u] = filepath.Join(dir, u+".proxy")
		if err := pki.WriteProxyFile(proxies[u], px); err != nil {
			t.Fatal(err)
		}
	}
	site.Proxy = proxies[users[0]]
	return site, proxies
}

// TestManagerOverTLSOwnersOnly: a real server over mutual TLS deploys a user's
// workspace (the Manager stages over mutual TLS as the host and accepts the manifest
// because its signer is a host the site's CA vouches for), and every Manager
// operation of another user on it is a WorkspaceAuthorizationFault that changes
// nothing; the host's properties show each user only their own workspaces.
func TestManagerOverTLSOwnersOnly(t *testing.T) {
	if testing.Short() {
		t.Skip("starts real vws processes with libvirt (make test)")
	}
	t.Parallel()
	rules := `allow host  /O=Grid/OU=vws/CN=host/127.0.0.1
allow admin /O=Grid/OU=vws/CN=admin
deny  admin *
allow *     *
`
	const share = "share inspect owner:/O=Grid/OU=vws/CN=alice /O=Grid/OU=vws/CN=carol\n"
	site, px := mgrSite(t, rules+share, "admin", "alice", "bob", "carol")
	s := StartMgrServer(t, MgrServerOptions{HostName: "tls-host", TLS: site})
	ImportGuest(t, s) // as admin: the site's default credential here
	eprFile := filepath.Join(t.TempDir(), "ws.xml")
	if r := s.CLIAs(t, px["alice"], "create", "-f", TickerDescription(t), "-o", eprFile); r.code != 0 {
		t.Fatalf("alice creates: %s", r.stderr)
	}
	w := workspaceFromEPRFile(t, eprFile)
	// Alice follows her workspace; its notifications must be signed by the host. Bob
	// may not subscribe to it.
	as := func(who string) []string {
		return []string{"VWS_URL=" + s.URL, "X509_USER_PROXY=" + px[who], "X509_CERT_DIR=" + site.CADir}
	}
	follower := StartSubscriber(t, as("alice"), "-e", eprFile)
	if r := runVWS(t, as("bob"), "wsrf", "subscribe", "-e", eprFile, "--wait", "1s"); r.code != 2 || !strings.Contains(r.stderr, "WorkspaceAuthorizationFault") {
		t.Fatalf("bob subscribes to alice's workspace: exit %d, stderr %q", r.code, r.stderr)
	}
	// Carol may read it by a share rule, and follows it until the share is withdrawn.
	carol := StartSubscriber(t, as("carol"), "-e", eprFile)

	if r := s.CLIAs(t, px["alice"], "deploy", eprFile, "--host", s.URL); r.code != 0 {
		t.Fatalf("alice deploys over TLS: %s\n%s", r.stderr, s.Logs())
	}
	for deadline := time.Now().Add(20 * time.Second); !strings.Contains(carol.Output(), "-> deployed"); {
		if time.Now().After(deadline) {
			t.Fatalf("carol, sharing alice's workspace, was not told of its deployment:\n%s\n%s", carol.Output(), carol.stderr())
		}
		time.Sleep(50 * time.Millisecond)
	}
	if err := os.WriteFile(site.Policy, []byte(rules), 0o644); err != nil {
		t.Fatal(err)
	}
	time.Sleep(time.Second) // the rules are re-read at most every 500 ms
	if st := DomainState(w.Domain()); st != "shut off" {
		t.Fatalf("alice's domain after deploy: %q", st)
	}
	for _, op := range [][]string{{"start", eprFile}, {"pause", eprFile}, {"unpause", eprFile},
		{"shutdown", eprFile, "--mode", "trash"}, {"undeploy", eprFile}, {"console", eprFile}} {
		r := s.CLIAs(t, px["bob"], op...)
		WantFault(t, r, "WorkspaceAuthorizationFault", "CN=bob", "CN=alice")
	}
	if st := DomainState(w.Domain()); st != "shut off" {
		t.Fatalf("bob's refused operations changed alice's domain: %q", st)
	}
	if r := s.CLIAs(t, px["bob"], "host", "status", s.URL); r.code != 0 || strings.Contains(r.stdout, w.Key) {
		t.Fatalf("bob's host status shows alice's workspace (exit %d):\n%s%s", r.code, r.stdout, r.stderr)
	}
	if r := s.CLIAs(t, px["alice"], "host", "status", s.URL); r.code != 0 || !strings.Contains(r.stdout, w.Key) {
		t.Fatalf("alice's host status lacks her workspace (exit %d):\n%s%s", r.code, r.stdout, r.stderr)
	}
	if r := s.CLIAs(t, px["alice"], "undeploy", eprFile); r.code != 0 {
		t.Fatalf("alice undeploys: %s", r.stderr)
	}
	if DomainDefined(w.Domain()) {
		t.Fatal("the domain outlived the undeploy")
	}
	if r := s.CLIAs(t, px["alice"], "destroy", eprFile); r.code != 0 {
		t.Fatalf("alice destroys: %s", r.stderr)
	}
	if code := follower.Wait(t, 30*time.Second); code != 0 {
		t.Fatalf("alice's subscriber: exit %d, stderr %q", code, follower.stderr())
	}
	chains, ended := follower.Changes(t)
	WantChain(t, "deployment", chains["deployment"], []string{"in-repository", "deployed", "in-repository"})
	if ended != "destroyed at a client's request" {
		t.Fatalf("alice's subscriber: the workspace ended with %q\n%s", ended, follower.Output())
	}
	// Carol's subscription ended with her right to read: nothing after the share went.
	carol.cmd.Process.Signal(os.Interrupt)
	carol.Wait(t, 30*time.Second)
	chains, ended = carol.Changes(t)
	if d := chains["deployment"]; len(d) == 0 || d[len(d)-1] != "deployed" || ended != "" {
		t.Fatalf("carol was told after her share was withdrawn: deployment %v, end %q\n%s", d, ended, carol.Output())
	}
}
