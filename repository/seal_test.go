package repository

import (
	"context"
	"crypto/x509"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/beevik/etree"

	"github.com/vws-grid/vws/internal/errdefs"
	"github.com/vws-grid/vws/internal/identity"
	"github.com/vws-grid/vws/internal/manifestsig"
	"github.com/vws-grid/vws/internal/pki"
	"github.com/vws-grid/vws/internal/wsrf"
)

// The manifest a check-out hands out is the one signed when the images were decided,
// and it verifies; an edit of the store made afterwards is refused at check-out.
func TestManifestSealedAtCreateAndCheckedAtCheckOut(t *testing.T) {
	ctx := context.Background()
	f := newFixture(t)
	key := f.create("sealed", f.kernel, "")
	m, err := f.r.CheckOut(ctx, key, "node1", nil, &tester)
	if err != nil {
		t.Fatal(err)
	}
	signed, cert, err := manifestsig.Verify(m.Signed, nil)
	if err != nil {
		t.Fatalf("the check-out's manifest does not verify: %v", err)
	}
	if cert.Subject.CommonName != "test repository" {
		t.Errorf("signed by %v", cert.Subject)
	}
	var roles []string
	for _, ie := range signed.SelectElements("Image") {
		roles = append(roles, ie.SelectElement("Role").Text()+"@"+ie.SelectElement("Location").Text())
	}
	if got := strings.Join(roles, " "); !strings.Contains(got, "base@/images/"+f.base) || !strings.Contains(got, "kernel@/images/"+f.kernel) ||
		!strings.Contains(got, "overlay@/workspaces/"+key+"/files/sha256:") {
		t.Errorf("signed images: %s", got)
	}
	if _, _, err := f.r.CheckIn(ctx, key, CheckInRequest{Token: m.Token, OverlayDigest: m.Images[len(m.Images)-1].Digest, OverlaySize: -1, MemorySize: -1}); err != nil {
		t.Fatal(err)
	}

	// The overlay's bytes change behind vws's back.
	overlay := filepath.Join(f.r.workspaceDir(key), f.chain(key).Overlay)
	fh, err := os.OpenFile(overlay, os.O_WRONLY|os.O_APPEND, 0)
	if err != nil {
		t.Fatal(err)
	}
	fh.Write([]byte("tampered"))
	fh.Close()
	_, err = f.r.CheckOut(ctx, key, "node1", nil, &tester)
	if !errors.Is(err, errdefs.ErrImageIntegrity) || !strings.Contains(err.Error(), "changed in the repository's store") {
		t.Fatalf("check-out after the overlay changed: %v", err)
	}
	if d := f.prop(key, PropDeployment); d != "in-repository" {
		t.Errorf("a refused check-out left deployment %q", d)
	}

	// The record is edited instead: its base now names the kernel's bytes.
	key2 := f.create("sealed2", "", "")
	err = f.r.Workspaces.Modify(ctx, key2, func(s *wsrf.Snapshot) error {
		c, err := decodeChain(s.Private)
		if err != nil {
			return err
		}
		c.Base = f.kernel
		s.Private = c.encode()
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	f.reopen()
	_, err = f.r.CheckOut(ctx, key2, "node1", nil, &tester)
	if !errors.Is(err, errdefs.ErrImageIntegrity) || !strings.Contains(err.Error(), "no longer matches its signed manifest") {
		t.Fatalf("check-out after the record changed: %v", err)
	}
}

// Clone and check-in seal again: the new manifests name the new layers and overlay.
func TestManifestResealedByCloneAndCheckIn(t *testing.T) {
	ctx := context.Background()
	f := newFixture(t)
	key := f.create("src", "", "")
	c, err := f.r.Clone(ctx, key, "copy", "o2", time.Now().Add(time.Hour))
	if err != nil {
		t.Fatal(err)
	}
	for _, k := range []string{key, c.Key} {
		m, err := f.r.CheckOut(ctx, k, "node1", nil, &tester)
		if err != nil {
			t.Fatalf("check out %s after the clone: %v", k, err)
		}
		signed, _, err := manifestsig.Verify(m.Signed, nil)
		if err != nil {
			t.Fatal(err)
		}
		if n := len(signed.SelectElements("Image")); n != 3 { // base, layer, overlay
			t.Errorf("%s: %d images signed, want 3", k, n)
		}
		if k == c.Key && signed.SelectElement("owner").Text() != "o2" {
			t.Errorf("the clone's manifest names owner %q", signed.SelectElement("owner").Text())
		}
	}
}

// tester is the user the tests' check-outs act for (no policy: allowed everything).
var tester = identity.Identity{DN: "/O=Grid/OU=vws/CN=tester"}

// The host key is renewed: a workspace sealed with the old one is handed out signed
// with the new one (after its old signature checked out), so workspaces outlive host
// certificates; an old signature that does not verify is refused instead.
func TestManifestSignedAgainAfterKeyRenewal(t *testing.T) {
	ctx := context.Background()
	f := newFixture(t)
	key := f.create("renewed", "", "")
	key2 := f.create("forged", "", "")
	oldSigner := f.r.signer.Certificate()
	// A forged "old" manifest for key2: right content, signature value broken.
	err := f.r.Workspaces.Modify(ctx, key2, func(s *wsrf.Snapshot) error {
		c, err := decodeChain(s.Private)
		if err != nil {
			return err
		}
		i := strings.Index(c.Seal, "<ds:SignatureValue>") + len("<ds:SignatureValue>")
		c.Seal = c.Seal[:i] + "AAAA" + c.Seal[i+4:]
		s.Private = c.encode()
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	os.RemoveAll(filepath.Join(f.dir, "keys")) // the renewal: a new key on the next start
	f.reopen()
	if f.r.signer.Certificate().Equal(oldSigner) {
		t.Fatal("the reopened repository kept the old key")
	}
	m, err := f.r.CheckOut(ctx, key, "node1", nil, &tester)
	if err != nil {
		t.Fatal(err)
	}
	if _, cert, err := manifestsig.Verify(m.Signed, nil); err != nil || !cert.Equal(f.r.signer.Certificate()) {
		t.Fatalf("after the renewal the manifest is signed by %v (%v)", cert.Subject, err)
	}
	if _, err := f.r.CheckOut(ctx, key2, "node1", nil, &tester); !errors.Is(err, errdefs.ErrImageIntegrity) {
		t.Fatalf("a stored manifest whose old signature is broken was signed again: %v", err)
	}
}

// resign replaces workspace key's stored manifest with one signed by signer, as
// someone who can write the store but lacks the repository's key would: the stored
// manifest with its signature replaced, or, after edit changed the record, a manifest
// of the edited record. Its r:Issued stays the stored one's.
func (f *fixture) resign(key string, signer ManifestSigner, edit func(c *diskChain)) {
	f.t.Helper()
	ctx := context.Background()
	err := f.r.Workspaces.Modify(ctx, key, func(s *wsrf.Snapshot) error {
		c, err := decodeChain(s.Private)
		if err != nil {
			return err
		}
		doc := etree.NewDocument()
		if err := doc.ReadFromString(c.Seal); err != nil {
			return err
		}
		me := doc.Root()
		me.RemoveChild(me.SelectElement("Signature"))
		if edit != nil {
			edit(c)
			imgs, err := f.r.manifestImages(ctx, key, c)
			if err != nil {
				return err
			}
			me = manifestElement(key, text(s, PropName), text(s, PropOwner), text(s, PropCreationTime), me.SelectElement("Issued").Text(), imgs)
		}
		signed, err := signer.Sign(me)
		if err != nil {
			return err
		}
		out := etree.NewDocument()
		out.SetRoot(signed)
		if c.Seal, err = out.WriteToString(); err != nil {
			return err
		}
		s.Private = c.encode()
		return nil
	})
	if err != nil {
		f.t.Fatal(err)
	}
}

// sealSigner is the certificate workspace key's stored manifest names as its signer.
func (f *fixture) sealSigner(key string) *x509.Certificate {
	f.t.Helper()
	doc := etree.NewDocument()
	if err := doc.ReadFromString(f.chain(key).Seal); err != nil {
		f.t.Fatal(err)
	}
	c, err := manifestsig.SignerOf(doc.Root())
	if err != nil {
		f.t.Fatal(err)
	}
	return c
}

// wantRefusedSigner fails unless err is the refusal to sign again a manifest by an
// unproven signer, naming it, saying why (because) and what to do, and the check-out
// left the workspace and its stored manifest (by signer) as they were.
func (f *fixture) wantRefusedSigner(key string, err error, signer *x509.Certificate, because string) {
	f.t.Helper()
	if !errors.Is(err, errdefs.ErrImageIntegrity) {
		f.t.Fatalf("check-out of %s: %v, want an image integrity fault", key, err)
	}
	if msg, dn := err.Error(), identity.OneLineDN(signer.Subject); !strings.Contains(msg, "signed by "+dn) || !strings.Contains(msg, because) {
		f.t.Errorf("the refusal does not name the signer %s and %q: %v", dn, because, err)
	}
	if a := errdefs.Advice(err); !strings.Contains(a, "restore the workspace's record from a backup") {
		f.t.Errorf("the refusal's advice: %q", a)
	}
	f.wantUntouched(key)
	if !f.sealSigner(key).Equal(signer) {
		f.t.Errorf("the refused manifest of %s was replaced", key)
	}
}

// Someone who can write the store (the record and its signed manifest) but does not
// hold the repository's key signs a manifest with a key of their own: the repository
// does not sign it again with its key — neither while it signs with the key it always
// had, nor after a renewal — whether the manifest describes the workspace as it is or
// as they edited it. Without CAs only a key the repository recorded as its own is
// an earlier key (TestManifestSignedAgainAfterKeyRenewal).
func TestManifestOfForeignKeyNotSignedAgain(t *testing.T) {
	ctx := context.Background()
	f := newFixture(t)
	// A fresh key, under the very name the repository's own key has.
	attacker, err := manifestsig.LoadOrCreate(t.TempDir(), "test repository")
	if err != nil {
		t.Fatal(err)
	}
	const because = "never signed with"
	same := f.create("same-key", "", "")
	f.resign(same, attacker, nil)
	_, err = f.r.CheckOut(ctx, same, "node1", nil, &tester)
	f.wantRefusedSigner(same, err, attacker.Certificate(), because)

	renewed := f.create("renewed", "", "")
	edited := f.create("edited", "", "")
	own := f.create("own", "", "")
	os.RemoveAll(filepath.Join(f.dir, "keys")) // the renewal
	f.reopen()
	f.resign(renewed, attacker, nil)
	f.resign(edited, attacker, func(c *diskChain) { c.Base = f.kernel })
	for _, key := range []string{renewed, edited} {
		_, err := f.r.CheckOut(ctx, key, "node1", nil, &tester)
		f.wantRefusedSigner(key, err, attacker.Certificate(), because)
	}
	if f.chain(edited).Base != f.kernel {
		t.Fatal("the record edit did not take")
	}
	// The repository's own earlier key still counts.
	m, err := f.r.CheckOut(ctx, own, "node1", nil, &tester)
	if err != nil {
		t.Fatal(err)
	}
	if _, cert, err := manifestsig.Verify(m.Signed, nil); err != nil || !cert.Equal(f.r.signer.Certificate()) {
		t.Fatalf("the manifest of the earlier key is signed by %v (%v)", cert.Subject, err)
	}
}

// With the site's CAs, an earlier signer is the repository's when the CAs vouch for it
// as of when it signed and it names the same host: a manifest of the host's earlier
// certificate, expired since, is signed again with the renewed one; one of a
// certificate for another host, or of one for this host's name from a CA the site
// does not trust, is refused — also when the store's list of signers names it.
func TestManifestSignedAgainAfterHostCertificateRenewal(t *testing.T) {
	ctx := context.Background()
	now := time.Now()
	day := 24 * time.Hour
	newCA := func() *pki.Credential {
		ca, err := pki.NewCA(pki.CAOptions{Validity: pki.Validity{NotBefore: now.Add(-30 * day)}, KeyType: pki.KeyTypeECDSA})
		if err != nil {
			t.Fatal(err)
		}
		return ca
	}
	host := func(ca *pki.Credential, name string, notBefore time.Time, lifetime time.Duration) *manifestsig.Signer {
		c, err := ca.IssueHost(pki.HostOptions{Name: name, Validity: pki.Validity{NotBefore: notBefore, Lifetime: lifetime}, KeyType: pki.KeyTypeECDSA})
		if err != nil {
			t.Fatal(err)
		}
		s, err := manifestsig.NewSigner(c.Key, c.FullChain())
		if err != nil {
			t.Fatal(err)
		}
		return s
	}
	ca, rogueCA := newCA(), newCA()                          // the same subject; the site trusts the first
	old := host(ca, "repo.example", now.Add(-10*day), 5*day) // expired five days ago
	current := host(ca, "repo.example", now.Add(-time.Hour), 0)
	intruder := host(ca, "intruder.example", now.Add(-10*day), 0)
	rogue := host(rogueCA, "repo.example", now.Add(-10*day), 0)
	if !sameSubject(old.Certificate(), current.Certificate()) || !sameSubject(rogue.Certificate(), current.Certificate()) {
		t.Fatal("the host certificates do not name the same subject")
	}
	caDir := t.TempDir()
	if _, err := pki.WriteCADir(caDir, ca.Certificate, nil); err != nil {
		t.Fatal(err)
	}
	trust, err := pki.LoadTrust(caDir)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := trust.Verify([]*x509.Certificate{old.Certificate()}, now); !errors.Is(err, pki.ErrExpired) {
		t.Fatalf("the earlier host certificate is not expired now: %v", err)
	}

	f := newFixture(t)
	// A week ago the repository signed with the earlier certificate.
	f.signer, f.now = old, func() time.Time { return now.Add(-7 * day) }
	f.earlier = func(chain []*x509.Certificate, at time.Time) error {
		_, err := trust.Verify(chain, at)
		return err
	}
	f.reopen()
	renewed := f.create("renewed", "", "")
	other := f.create("other-host", "", "")
	untrusted := f.create("untrusted-ca", "", "")
	f.resign(other, intruder, nil)
	f.resign(untrusted, rogue, nil)
	// Now it signs with the renewed one.
	f.signer, f.now = current, nil
	f.reopen()

	m, err := f.r.CheckOut(ctx, renewed, "node1", nil, &tester)
	if err != nil {
		t.Fatalf("check-out of a manifest of the earlier host certificate: %v", err)
	}
	byCA := func(chain []*x509.Certificate) error { _, err := trust.Verify(chain, time.Now()); return err }
	if _, cert, err := manifestsig.Verify(m.Signed, byCA); err != nil || !cert.Equal(current.Certificate()) {
		t.Fatalf("after the renewal the manifest is signed by %v (%v)", cert.Subject, err)
	}
	if !f.sealSigner(renewed).Equal(current.Certificate()) {
		t.Error("the stored manifest was not signed again")
	}

	// The store's list of signers is no evidence where CAs are.
	for _, s := range []*manifestsig.Signer{intruder, rogue} {
		if _, err := f.db.SQL().Exec(`INSERT INTO manifest_signers (fingerprint, subject, first_used) VALUES (?, ?, 0)`,
			fingerprint(s.Certificate()), identity.OneLineDN(s.Certificate().Subject)); err != nil {
			t.Fatal(err)
		}
	}
	_, err = f.r.CheckOut(ctx, other, "node1", nil, &tester)
	f.wantRefusedSigner(other, err, intruder.Certificate(), "not this host")
	_, err = f.r.CheckOut(ctx, untrusted, "node1", nil, &tester)
	f.wantRefusedSigner(untrusted, err, rogue.Certificate(), "the site's CAs do not vouch for")
}
