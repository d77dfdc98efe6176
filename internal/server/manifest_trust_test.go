package server

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/vws-grid/vws/internal/pki"
	"github.com/vws-grid/vws/policy"
)

// TestManifestTrustRefusesALimitedHostProxy: a limited proxy of a host certificate
// (what a host hands a data mover) may not act as the host, so it may not sign the
// manifests a Manager deploys, as authz refuses it every host operation.
func TestManifestTrustRefusesALimitedHostProxy(t *testing.T) {
	dir := t.TempDir()
	ca, err := pki.NewCA(pki.CAOptions{KeyType: pki.KeyTypeECDSA})
	if err != nil {
		t.Fatal(err)
	}
	host, err := ca.IssueHost(pki.HostOptions{Name: "node1.example.org", KeyType: pki.KeyTypeECDSA})
	if err != nil {
		t.Fatal(err)
	}
	caDir := filepath.Join(dir, "certificates")
	if _, err := pki.WriteCADir(caDir, ca.Certificate, nil); err != nil {
		t.Fatal(err)
	}
	trust, err := pki.LoadTrust(caDir)
	if err != nil {
		t.Fatal(err)
	}
	rules := filepath.Join(dir, "rules")
	if err := os.WriteFile(rules, []byte("allow host "+pki.DN(host.Certificate)+"\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	pol, err := policy.NewEngine(rules, "", nil)
	if err != nil {
		t.Fatal(err)
	}
	sec, err := newSecurity(Config{Trust: trust}, pol)
	if err != nil {
		t.Fatal(err)
	}
	if err := sec.manifestTrust(host.FullChain()); err != nil {
		t.Fatalf("the host itself may not sign manifests: %v", err)
	}
	full, err := pki.IssueProxy(host, pki.ProxyOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if err := sec.manifestTrust(full.FullChain()); err != nil {
		t.Fatalf("a full proxy of the host may not sign manifests: %v", err)
	}
	limited, err := pki.IssueProxy(host, pki.ProxyOptions{Limited: true})
	if err != nil {
		t.Fatal(err)
	}
	err = sec.manifestTrust(limited.FullChain())
	if err == nil {
		t.Fatal("ATTACK SUCCEEDED: a limited proxy of a host certificate signs manifests a Manager accepts")
	}
	if !strings.Contains(err.Error(), "limited proxy") {
		t.Fatalf("refused, but not saying why: %v", err)
	}
}
