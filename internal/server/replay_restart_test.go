package server

import (
	"path/filepath"
	"strings"
	"testing"

	"github.com/beevik/etree"

	"github.com/vws-grid/vws/internal/pki"
	"github.com/vws-grid/vws/internal/soap"
	"github.com/vws-grid/vws/internal/wsa"
	"github.com/vws-grid/vws/internal/wssec"
)

// TestSignedMessageRefusedAfterARestart: the README says each signed message is
// accepted once. A server restarted (or killed and started again) while a message's
// Timestamp is live must still refuse it; the replay cache was held in memory only.
func TestSignedMessageRefusedAfterARestart(t *testing.T) {
	dir := t.TempDir()
	ca, err := pki.NewCA(pki.CAOptions{KeyType: pki.KeyTypeECDSA})
	if err != nil {
		t.Fatal(err)
	}
	alice, err := ca.IssueUser(pki.UserOptions{CN: "alice", KeyType: pki.KeyTypeECDSA})
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
	to := etree.NewElement("wsa:To")
	to.CreateAttr("xmlns:wsa", wsa.NS200508)
	to.SetText("https://factory.example.org/wsrf/services/WorkspaceFactoryService")
	body := etree.NewElement("x:Ping")
	body.CreateAttr("xmlns:x", "urn:x")
	msg := (&soap.Message{Headers: []*etree.Element{to}, Body: body}).Document()
	if err := (&wssec.Signer{Key: alice.Key, Chain: alice.FullChain()}).Sign(msg); err != nil {
		t.Fatal(err)
	}
	raw, err := msg.WriteToBytes()
	if err != nil {
		t.Fatal(err)
	}
	verify := func(sec *security) error {
		env, err := soap.Parse(raw)
		if err != nil {
			t.Fatal(err)
		}
		_, err = sec.verifier.Verify(env)
		return err
	}
	cfg := Config{DataDir: dir, Trust: trust}
	before, err := newSecurity(cfg, nil)
	if err != nil {
		t.Fatal(err)
	}
	if err := verify(before); err != nil {
		t.Fatalf("the first delivery: %v", err)
	}
	before.verifier.Replay.Close()
	after, err := newSecurity(cfg, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer after.verifier.Replay.Close()
	if err := verify(after); err == nil || !strings.Contains(err.Error(), "seen before") {
		t.Fatalf("the same signed message after a restart: %v, want it refused as a replay", err)
	}
}
