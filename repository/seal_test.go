package repository

import (
	"bytes"
	"context"
	"crypto/x509"
	"errors"
	"fmt"
	"io/fs"
	"net/http"
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
	"github.com/vws-grid/vws/internal/qcow2"
	"github.com/vws-grid/vws/internal/wsrf"
)

// The manifest a check-out hands out is the one signed when the images were decided,
// and it verifies; an edit of the store made afterwards is refused at check-out.
func TestManifestSealedAtCreateAndCheckedAtCheckOut(t *testing.T) {
	ctx := context.Background()
	f := newFixture(t)
	key := f.create("sealed", f.kernel, "")
	m, err := f.r.CheckOut(ctx, key, "node1", "", nil, &tester)
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
	_, err = f.r.CheckOut(ctx, key, "node1", "", nil, &tester)
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
	_, err = f.r.CheckOut(ctx, key2, "node1", "", nil, &tester)
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
		m, err := f.r.CheckOut(ctx, k, "node1", "", nil, &tester)
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
		// Each has a fresh overlay of its own, published as the manifest names it.
		if got, want := f.imageDigest(k, "overlay"), image(m, "overlay").Digest; got != want || got == "" {
			t.Errorf("%s publishes overlay digest %q, its manifest names %q", k, got, want)
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
	f.editRow(key2, func(c *diskChain) { c.Seal = spoiled(c.Seal) })
	os.RemoveAll(filepath.Join(f.dir, "keys")) // the renewal: a new key on the next start
	f.reopen()
	if f.r.signer.Certificate().Equal(oldSigner) {
		t.Fatal("the reopened repository kept the old key")
	}
	m, err := f.r.CheckOut(ctx, key, "node1", "", nil, &tester)
	if err != nil {
		t.Fatal(err)
	}
	if _, cert, err := manifestsig.Verify(m.Signed, nil); err != nil || !cert.Equal(f.r.signer.Certificate()) {
		t.Fatalf("after the renewal the manifest is signed by %v (%v)", cert.Subject, err)
	}
	if _, err := f.r.CheckOut(ctx, key2, "node1", "", nil, &tester); !errors.Is(err, errdefs.ErrImageIntegrity) {
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
		c.Seal = f.reseal(c.Seal, signer, func(me *etree.Element) *etree.Element {
			if edit == nil {
				return me
			}
			edit(c)
			imgs, ierr := f.r.manifestImages(ctx, key, c)
			if ierr != nil {
				err = ierr
				return me
			}
			return manifestElement(key, text(s, PropName), text(s, PropOwner), text(s, PropCreationTime), me.SelectElement("Issued").Text(), imgs)
		})
		if err != nil {
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
	_, err = f.r.CheckOut(ctx, same, "node1", "", nil, &tester)
	f.wantRefusedSigner(same, err, attacker.Certificate(), because)

	renewed := f.create("renewed", "", "")
	edited := f.create("edited", "", "")
	own := f.create("own", "", "")
	os.RemoveAll(filepath.Join(f.dir, "keys")) // the renewal
	f.reopen()
	f.resign(renewed, attacker, nil)
	f.resign(edited, attacker, func(c *diskChain) { c.Base = f.kernel })
	for _, key := range []string{renewed, edited} {
		_, err := f.r.CheckOut(ctx, key, "node1", "", nil, &tester)
		f.wantRefusedSigner(key, err, attacker.Certificate(), because)
	}
	if f.chain(edited).Base != f.kernel {
		t.Fatal("the record edit did not take")
	}
	// The repository's own earlier key still counts.
	m, err := f.r.CheckOut(ctx, own, "node1", "", nil, &tester)
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

	m, err := f.r.CheckOut(ctx, renewed, "node1", "", nil, &tester)
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
		if _, err := f.db.SQL().Exec(`INSERT INTO manifest_signers (fingerprint, subject, first_used) VALUES ($1, $2, 0)`,
			fingerprint(s.Certificate()), identity.OneLineDN(s.Certificate().Subject)); err != nil {
			t.Fatal(err)
		}
	}
	_, err = f.r.CheckOut(ctx, other, "node1", "", nil, &tester)
	f.wantRefusedSigner(other, err, intruder.Certificate(), "not this host")
	_, err = f.r.CheckOut(ctx, untrusted, "node1", "", nil, &tester)
	f.wantRefusedSigner(untrusted, err, rogue.Certificate(), "the site's CAs do not vouch for")
}

// storeState is what a refused clone or check-in must leave as it was: every
// workspace record as the database holds it (properties, private data, termination,
// last update) and every file under the workspace and layer directories.
func (f *fixture) storeState() string {
	f.t.Helper()
	var b strings.Builder
	rows, err := f.db.SQL().Query(`SELECT service, key, properties, private, coalesce(termination, -1), updated FROM resources ORDER BY service, key`)
	if err != nil {
		f.t.Fatal(err)
	}
	defer rows.Close()
	for rows.Next() {
		var service, key string
		var props, private []byte
		var term, updated int64
		if err := rows.Scan(&service, &key, &props, &private, &term, &updated); err != nil {
			f.t.Fatal(err)
		}
		fmt.Fprintf(&b, "record %s %s %d %d\n%s\n%s\n", service, key, term, updated, props, private)
	}
	if err := rows.Err(); err != nil {
		f.t.Fatal(err)
	}
	for _, d := range []string{"workspaces", "layers"} {
		err := filepath.WalkDir(filepath.Join(f.dir, d), func(p string, e fs.DirEntry, err error) error {
			if err != nil {
				return err
			}
			fi, err := e.Info()
			if err != nil {
				return err
			}
			fmt.Fprintf(&b, "file %s %d\n", strings.TrimPrefix(p, f.dir), fi.Size())
			return nil
		})
		if err != nil {
			f.t.Fatal(err)
		}
	}
	return b.String()
}

// wantRefusedEdit fails unless err refuses op on workspace key with an image
// integrity fault naming the workspace and the mismatch (because) and advising to
// restore the record from a backup or destroy the workspace (advice).
func wantRefusedEdit(t *testing.T, op, key string, err error, because, advice string) {
	t.Helper()
	if !errors.Is(err, errdefs.ErrImageIntegrity) {
		t.Fatalf("%s of %s: %v, want an image integrity fault", op, key, err)
	}
	if msg := err.Error(); !strings.Contains(msg, key) || !strings.Contains(msg, because) {
		t.Errorf("%s of %s: the refusal does not name the workspace and %q: %v", op, key, because, err)
	}
	if a := errdefs.Advice(err); !strings.Contains(a, advice) || !strings.Contains(a, "destroy") {
		t.Errorf("%s of %s: the refusal's advice %q, want %q and destroying", op, key, a, advice)
	}
}

// forge renames workspace key in its record and in its stored manifest alike, behind
// the repository's back (see setRow): the two agree, and only the manifest's
// signature, no longer valid, tells.
func (f *fixture) forge(key, from, to string) {
	f.t.Helper()
	props, private := f.row(key)
	c, err := decodeChain(private)
	if err != nil {
		f.t.Fatal(err)
	}
	old := c.Seal
	c.Seal = strings.Replace(c.Seal, "<r:name>"+from+"</r:name>", "<r:name>"+to+"</r:name>", 1)
	edited := bytes.Replace(props, []byte(">"+from+"<"), []byte(">"+to+"<"), 1)
	if c.Seal == old || bytes.Equal(edited, props) {
		f.t.Fatalf("no name %q to forge in the record of %s", from, key)
	}
	f.setRow(key, edited, c.encode())
}

// A clone signs the source's record into two manifests (the clone's and the source's
// next one), so it clones only a record the repository signed: one edited after it
// was sealed, one edited alike in its manifest (the signature no longer verifies), one
// whose manifest someone signed again with a key of their own over their edit, and
// one whose overlay was rewritten are refused with an image integrity fault naming
// the workspace, and nothing is made: no record, no file, no layer, no quota held, the
// name still free. An unedited record still clones.
func TestCloneOnlyOfSignedRecords(t *testing.T) {
	f := newFixture(t)
	attacker, err := manifestsig.LoadOrCreate(t.TempDir(), "test repository")
	if err != nil {
		t.Fatal(err)
	}
	// Five sources and room for exactly one clone.
	const rules = "quota /O=Grid/CN=alice workspaces=6\n"
	f.quotaOpen(rules)
	legit := f.mustCreateFor(alice, "legit", 0)
	edited := f.mustCreateFor(alice, "edited", 0)
	forged := f.mustCreateFor(alice, "forged", 0)
	foreign := f.mustCreateFor(alice, "foreign", 0)
	rewritten := f.mustCreateFor(alice, "rewritten", 0)
	f.editRow(edited, func(c *diskChain) { c.Kernel = f.kernel })
	f.forge(forged, "forged", "forged-x")
	f.quotaOpen(rules) // the repository sees the edits
	f.resign(foreign, attacker, func(c *diskChain) { c.Base = f.kernel })
	fh, err := os.OpenFile(filepath.Join(f.r.workspaceDir(rewritten), f.chain(rewritten).Overlay), os.O_WRONLY|os.O_APPEND, 0)
	if err != nil {
		t.Fatal(err)
	}
	fh.Write([]byte("tampered"))
	fh.Close()

	ctx := identity.With(context.Background(), alice)
	held := f.r.ledger.Usage("dn:" + alice.DN)
	if held.Workspaces != 5 {
		t.Fatalf("alice holds %+v, want 5 workspaces", held)
	}
	const restore = "restore"
	for _, c := range []struct{ key, because string }{
		{edited, "no longer matches its signed manifest"},
		{forged, manifestsig.ErrInvalid.Error()},
		{foreign, "never signed with"},
		{rewritten, "its overlay changed in the repository's store"},
	} {
		before := f.storeState()
		_, err := f.r.Clone(ctx, c.key, "copy", alice.DN, time.Now().Add(30*time.Minute))
		wantRefusedEdit(t, "clone", c.key, err, c.because, restore)
		if after := f.storeState(); after != before {
			t.Errorf("the refused clone of %s changed the store:\n%s\nwas:\n%s", c.key, after, before)
		}
		if u := f.r.ledger.Usage("dn:" + alice.DN); u != held {
			t.Errorf("after the refused clone of %s alice holds %+v, not %+v", c.key, u, held)
		}
	}
	if f.chain(edited).Kernel != f.kernel || f.prop(forged, PropName) != "forged-x" || f.chain(foreign).Base != f.kernel {
		t.Fatal("the edits did not take")
	}

	// The intact record clones, under the name the refused clones asked for, into
	// the one workspace alice's quota has left.
	cl, err := f.r.Clone(ctx, legit, "copy", alice.DN, time.Now().Add(30*time.Minute))
	if err != nil {
		t.Fatalf("clone of an intact record: %v", err)
	}
	f.wantSignedByRepository(legit)
	f.wantSignedByRepository(cl.Key)
	for _, k := range []string{legit, cl.Key} {
		m, err := f.r.CheckOut(ctx, k, "node1", "", nil, &alice)
		if err != nil || roles(m) != "base,layer,overlay" {
			t.Fatalf("check-out of %s after the clone: %v", k, err)
		}
	}
}

// A check-in signs the record as it was checked out, with the new overlay and memory
// image, so it checks in only a record the repository signed: one edited while the
// workspace was out on its host (its record alone, its record and manifest alike, or
// its manifest signed again with a foreign key over the edit) is refused with an
// image integrity fault naming the workspace and the mismatch; the store is left
// exactly as it was (still checked out, the lock held) and the check-out's upload is
// neither adopted nor lost: restoring the record from a backup checks it in with the
// upload, and destroying the workspace removes it. An unedited record checks in.
func TestCheckInOnlyOfSignedRecords(t *testing.T) {
	ctx := context.Background()
	f := newFixture(t)
	attacker, err := manifestsig.LoadOrCreate(t.TempDir(), "test repository")
	if err != nil {
		t.Fatal(err)
	}
	type out struct {
		m   *Manifest
		ram UploadResult
	}
	deployed := map[string]out{}
	keys := map[string]string{}
	for _, name := range []string{"legit", "edited", "forged", "foreign"} {
		key := f.create(name, "", "")
		m, err := f.r.CheckOut(ctx, key, "node1", "", nil, &tester)
		if err != nil {
			t.Fatal(err)
		}
		ram := bytes.Repeat([]byte("RAM of "+name), 1000)
		res, rs := f.upload(key, "memory", m.Token, ram, SHA256Header, sha(ram))
		if rs.code != http.StatusOK {
			t.Fatalf("memory upload: %d %s", rs.code, rs.body)
		}
		keys[name], deployed[key] = key, out{m, res}
	}
	legit, edited, forged, foreign := keys["legit"], keys["edited"], keys["forged"], keys["foreign"]
	backupProps, backupPrivate := f.row(edited) // as it was checked out
	f.editRow(edited, func(c *diskChain) { c.Base = f.kernel })
	f.forge(forged, "forged", "forged-x")
	f.reopen() // the repository sees the edits; the uploads of check-outs stay
	f.resign(foreign, attacker, func(c *diskChain) { c.Kernel = f.kernel })

	checkIn := func(key string, withRAM bool) error {
		d := deployed[key]
		req := CheckInRequest{Token: d.m.Token, OverlayDigest: image(d.m, "overlay").Digest, OverlaySize: -1, MemorySize: -1}
		if withRAM {
			req.MemoryDigest, req.MemorySize, req.State = d.ram.Digest, d.ram.Size, "paused"
		}
		_, _, err := f.r.CheckIn(ctx, key, req)
		return err
	}
	const restore = "restore the record from a backup"
	for _, c := range []struct{ key, because string }{
		{edited, "no longer matches its signed manifest"},
		{forged, manifestsig.ErrInvalid.Error()},
		{foreign, "never signed with"},
	} {
		before := f.storeState()
		err := checkIn(c.key, true)
		wantRefusedEdit(t, "check-in", c.key, err, c.because, restore)
		if after := f.storeState(); after != before {
			t.Errorf("the refused check-in of %s changed the store:\n%s\nwas:\n%s", c.key, after, before)
		}
		if f.prop(c.key, PropDeployment) != "staging" || f.chain(c.key).Lock != deployed[c.key].m.Token {
			t.Errorf("%s is no longer checked out after the refused check-in", c.key)
		}
		if got := strings.Join(f.files(c.key), ","); got != "disk-1.qcow2,"+pendingMemoryName(deployed[c.key].ram.Digest) {
			t.Errorf("files of %s after the refused check-in: %s", c.key, got)
		}
	}

	// Handed back unchanged (a manager that refused to deploy it): the lock is
	// released and nothing is signed — the foreign manifest stays, so the record is
	// still refused at the next check-out.
	sealBefore := f.chain(foreign).Seal
	if err := checkIn(foreign, false); err != nil {
		t.Fatalf("hand-back of an edited record: %v", err)
	}
	if c := f.chain(foreign); c.Lock != "" || c.Seal != sealBefore || f.prop(foreign, PropDeployment) != "in-repository" {
		t.Fatalf("after the hand-back: lock %q, deployment %s, seal changed %v", c.Lock, f.prop(foreign, PropDeployment), c.Seal != sealBefore)
	}
	if _, err := f.r.CheckOut(ctx, foreign, "node1", "", nil, &tester); !errors.Is(err, errdefs.ErrImageIntegrity) {
		t.Fatalf("check-out of the handed-back edited record: %v", err)
	}

	// The intact record checks in, adopting its upload.
	if err := checkIn(legit, true); err != nil {
		t.Fatalf("check-in of an intact record: %v", err)
	}
	if c := f.chain(legit); c.MemoryDigest != deployed[legit].ram.Digest || strings.Join(f.files(legit), ",") != "disk-1.qcow2,memory-1.save" {
		t.Fatalf("the intact check-in: memory %s, files %v", c.MemoryDigest, f.files(legit))
	}
	f.wantSignedByRepository(legit)

	// Restored from the backup, the edited record checks in with the upload it kept.
	f.setRow(edited, backupProps, backupPrivate)
	f.reopen()
	if err := checkIn(edited, true); err != nil {
		t.Fatalf("check-in of the restored record: %v", err)
	}
	if c := f.chain(edited); c.Base != f.base || c.MemoryDigest != deployed[edited].ram.Digest || strings.Join(f.files(edited), ",") != "disk-1.qcow2,memory-1.save" {
		t.Fatalf("the restored check-in: base %s, memory %s, files %v", c.Base, c.MemoryDigest, f.files(edited))
	}
	f.wantSignedByRepository(edited)

	// Destroyed while checked out: the record and the upload go.
	if err := f.r.Workspaces.Destroy(ctx, forged); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(f.r.workspaceDir(forged)); !os.IsNotExist(err) {
		t.Fatalf("the destroyed workspace's directory: %v", err)
	}
}

// TestRepeatedClonesDoNotDeepenTheChain: a workspace cloned again and again without
// changing in between (a golden image cloned for every job) keeps one frozen layer,
// and so do its clones; a change of the source, checked in, is frozen into a second
// layer at the next clone; a source overlay changed outside vws is still refused.
func TestRepeatedClonesDoNotDeepenTheChain(t *testing.T) {
	needQemu(t)
	f := newFixture(t)
	ctx := context.Background()
	key := f.create("golden", "", "")
	clone := func(name string) string {
		t.Helper()
		c, err := f.r.Clone(ctx, key, name, "o", time.Now().Add(time.Hour))
		if err != nil {
			t.Fatalf("clone %s: %v", name, err)
		}
		return c.Key
	}
	var clones []string
	for i := range 4 {
		clones = append(clones, clone(fmt.Sprintf("job-%d", i)))
	}
	src := f.chain(key)
	if len(src.Layers) != 1 {
		t.Fatalf("after 4 clones the source stands on %d layers, want 1", len(src.Layers))
	}
	layerFile := f.r.layerPath(src.Layers[0].ID)
	for _, c := range clones {
		ch := f.chain(c)
		if len(ch.Layers) != 1 || ch.Layers[0].ID != src.Layers[0].ID {
			t.Fatalf("clone %s stands on %+v, want the source's one layer", c, ch.Layers)
		}
		info, err := qcow2.ReadInfo(filepath.Join(f.r.workspaceDir(c), ch.Overlay))
		if err != nil || info.BackingFile != layerFile {
			t.Fatalf("clone %s's overlay is backed by %+v (%v)", c, info, err)
		}
		if m, err := f.r.CheckOut(ctx, c, "host-a", "", nil, &tester); err != nil || len(m.Images) != 3 {
			t.Fatalf("check-out of clone %s: %+v, %v", c, m, err)
		}
	}
	ents, _ := os.ReadDir(filepath.Join(f.r.dir, "layers"))
	if len(ents) != 1 {
		t.Fatalf("%d layer files, want 1", len(ents))
	}

	// A change checked in is frozen at the next clone.
	m, err := f.r.CheckOut(ctx, key, "host-a", "", nil, &tester)
	if err != nil {
		t.Fatal(err)
	}
	changed := f.managerOverlay(key, m.Token, m, "write -P 0xcd 0 64k")
	res, rs := f.upload(key, "overlay", m.Token, changed)
	if rs.code != http.StatusOK {
		t.Fatalf("upload: %d %s", rs.code, rs.body)
	}
	if _, _, err := f.r.CheckIn(ctx, key, CheckInRequest{Token: m.Token, OverlayDigest: res.Digest, OverlaySize: -1, MemorySize: -1}); err != nil {
		t.Fatal(err)
	}
	clone("after-change")
	if n := len(f.chain(key).Layers); n != 2 {
		t.Fatalf("a clone after a change leaves the source on %d layers, want 2", n)
	}

	// An unwritten overlay changed outside vws is refused, as a written one is.
	clone("again") // the source's overlay is unwritten now
	ov := filepath.Join(f.r.workspaceDir(key), f.chain(key).Overlay)
	fh, err := os.OpenFile(ov, os.O_APPEND|os.O_WRONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	fh.Write(make([]byte, 512))
	fh.Close()
	if _, err := f.r.Clone(ctx, key, "tampered", "o", time.Now().Add(time.Hour)); !errors.Is(err, errdefs.ErrImageIntegrity) {
		t.Fatalf("a clone of a source whose overlay changed outside vws: %v", err)
	}
}
