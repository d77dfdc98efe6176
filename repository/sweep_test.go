package repository

import (
	"bytes"
	"context"
	"errors"
	"log/slog"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/beevik/etree"

	"github.com/vws-grid/vws/internal/errdefs"
	"github.com/vws-grid/vws/internal/manifestsig"
	"github.com/vws-grid/vws/internal/wsrf"
)

// lockedBuffer collects log output written from any goroutine.
type lockedBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *lockedBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *lockedBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

// logger is the repository's logger in the tests: text lines into f.logs.
func (f *fixture) logger() *slog.Logger { return slog.New(slog.NewTextHandler(&f.logs, nil)) }

// logged counts the log lines that contain all of parts.
func (f *fixture) logged(parts ...string) int {
	n := 0
	for _, line := range strings.Split(f.logs.String(), "\n") {
		all := line != ""
		for _, p := range parts {
			all = all && strings.Contains(line, p)
		}
		if all {
			n++
		}
	}
	return n
}

// wantLogged fails unless a log line contains all of parts.
func (f *fixture) wantLogged(parts ...string) {
	f.t.Helper()
	if f.logged(parts...) == 0 {
		f.t.Errorf("no log line with %q; the log:\n%s", parts, f.logs.String())
	}
}

// marked says whether the store is marked as fully sealed.
func (f *fixture) marked() bool {
	f.t.Helper()
	var n int
	if err := f.db.SQL().QueryRow(`SELECT count(*) FROM manifests_sealed`).Scan(&n); err != nil {
		f.t.Fatal(err)
	}
	return n > 0
}

// row is workspace key's stored record, as the database holds it.
func (f *fixture) row(key string) (props, private []byte) {
	f.t.Helper()
	if err := f.db.SQL().QueryRow(`SELECT properties, private FROM resources WHERE key = $1`, key).Scan(&props, &private); err != nil {
		f.t.Fatal(err)
	}
	return props, private
}

// setRow writes workspace key's stored record behind the repository's back, as someone
// with write access to the database (or a crash) leaves it; the repository sees it
// after reopen.
func (f *fixture) setRow(key string, props, private []byte) {
	f.t.Helper()
	res, err := f.db.SQL().Exec(`UPDATE resources SET properties = $1, private = $2 WHERE key = $3`, props, private, key)
	if n, _ := res.RowsAffected(); err != nil || n != 1 {
		f.t.Fatalf("edit the record of %s: %v (%d rows)", key, err, n)
	}
}

// editRow changes workspace key's stored disk record through edit, behind the
// repository's back (see setRow).
func (f *fixture) editRow(key string, edit func(c *diskChain)) {
	f.t.Helper()
	props, private := f.row(key)
	c, err := decodeChain(private)
	if err != nil {
		f.t.Fatal(err)
	}
	edit(c)
	f.setRow(key, props, c.encode())
}

// storedChain is workspace key's disk record as the database holds it.
func (f *fixture) storedChain(key string) *diskChain {
	f.t.Helper()
	_, private := f.row(key)
	c, err := decodeChain(private)
	if err != nil {
		f.t.Fatal(err)
	}
	return c
}

// foreignSeal is seal (a stored signed manifest) signed again by signer instead, as
// someone who can write the store but lacks the repository's key would.
func (f *fixture) foreignSeal(seal string, signer ManifestSigner) string {
	return f.reseal(seal, signer, nil)
}

// reseal is seal (a stored signed manifest) without its signature, changed by edit
// (nil: unchanged), signed by signer.
func (f *fixture) reseal(seal string, signer ManifestSigner, edit func(me *etree.Element) *etree.Element) string {
	f.t.Helper()
	doc := etree.NewDocument()
	if err := doc.ReadFromString(seal); err != nil {
		f.t.Fatal(err)
	}
	me := doc.Root()
	me.RemoveChild(me.SelectElement("Signature"))
	if edit != nil {
		me = edit(me)
	}
	signed, err := signer.Sign(me)
	if err != nil {
		f.t.Fatal(err)
	}
	out := etree.NewDocument()
	out.SetRoot(signed)
	s, err := out.WriteToString()
	if err != nil {
		f.t.Fatal(err)
	}
	return s
}

// wantSignedByRepository fails unless workspace key's stored manifest verifies and is
// signed with the repository's current key.
func (f *fixture) wantSignedByRepository(key string) {
	f.t.Helper()
	doc := etree.NewDocument()
	if err := doc.ReadFromString(f.chain(key).Seal); err != nil || doc.Root() == nil {
		f.t.Fatalf("the stored manifest of %s does not parse: %v", key, err)
	}
	if _, cert, err := manifestsig.Verify(doc.Root(), nil); err != nil || !cert.Equal(f.r.signer.Certificate()) {
		f.t.Fatalf("the stored manifest of %s does not verify with the repository's key: %v", key, err)
	}
}

// wantUnsealedRefused fails unless err refuses a record without a signed manifest,
// saying because and advising advice, and nothing was checked out.
func (f *fixture) wantUnsealedRefused(key string, err error, because, advice string) {
	f.t.Helper()
	if !errors.Is(err, errdefs.ErrImageIntegrity) || !strings.Contains(err.Error(), "has no signed manifest") || !strings.Contains(err.Error(), because) {
		f.t.Fatalf("%s without a signed manifest: %v, want an image integrity fault saying %q", key, err, because)
	}
	if a := errdefs.Advice(err); !strings.Contains(a, advice) {
		f.t.Errorf("the refusal's advice: %q, want %q", a, advice)
	}
	f.wantUntouched(key)
	if c := f.chain(key); c.Seal != "" {
		f.t.Errorf("%s got a signed manifest", key)
	}
}

// A store marked as fully sealed (a new one is, at its first start) never signs a
// record without a signed manifest: someone who can write the store blanks the
// manifest and edits the record; neither the start-up sweep nor a check-out nor a
// clone signs it, and nothing is checked out.
func TestUnsealedRecordRefusedOnceStoreIsSealed(t *testing.T) {
	ctx := context.Background()
	f := newFixture(t)
	if !f.marked() {
		t.Fatal("a new store is not marked as fully sealed after the start-up sweep")
	}
	edited := f.create("edited", "", "")
	live := f.create("live", "", "")
	other := f.create("other", "", "")
	f.editRow(edited, func(c *diskChain) { c.Seal, c.Base = "", f.kernel })
	f.reopen()
	if f.chain(edited).Seal != "" || f.chain(edited).Base != f.kernel {
		t.Fatal("the start-up sweep signed a record without a signed manifest, or undid the edit")
	}
	f.wantLogged("level=ERROR", "sweep: workspace record has no signed manifest", edited)
	const changed, restore = "its record was changed outside vws", "restore the workspace's record from a backup, or destroy the workspace"
	_, err := f.r.CheckOut(ctx, edited, "node1", "", nil, &tester)
	f.wantUnsealedRefused(edited, err, changed, restore)

	// Blanked while the repository runs: the same at check-out.
	err = f.r.Workspaces.Modify(ctx, live, func(s *wsrf.Snapshot) error {
		c, err := decodeChain(s.Private)
		if err != nil {
			return err
		}
		c.Seal = ""
		s.Private = c.encode()
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	_, err = f.r.CheckOut(ctx, live, "node1", "", nil, &tester)
	f.wantUnsealedRefused(live, err, changed, restore)
	// A clone would sign the source and the copy: refused as well.
	if _, err := f.r.Clone(ctx, live, "live-copy", "o", time.Now().Add(time.Hour)); !errors.Is(err, errdefs.ErrImageIntegrity) {
		t.Fatalf("clone of a record without a signed manifest: %v", err)
	}
	if f.chain(live).Seal != "" || len(f.chain(live).Layers) != 0 {
		t.Fatal("the refused clone changed its source")
	}

	// The others are not affected.
	m, err := f.r.CheckOut(ctx, other, "node1", "", nil, &tester)
	if err != nil {
		t.Fatal(err)
	}
	if _, _, err := manifestsig.Verify(m.Signed, nil); err != nil {
		t.Fatal(err)
	}
	if !f.marked() {
		t.Fatal("the marker went")
	}
}

// A store of the previous version (records without signed manifests, no marker): the
// start-up sweep signs every record it can, once, logging each, and marks the store
// as fully sealed only when none is left; a record it cannot sign (its overlay is
// gone) is refused at check-out with advice, and keeps the store unmarked until it is
// destroyed.
func TestSweepSealsRecordsOfBeforeSigning(t *testing.T) {
	ctx := context.Background()
	f := newFixture(t)
	a := f.create("old-a", f.kernel, "")
	b := f.create("old-b", "", "")
	broken := f.create("old-broken", "", "")
	for _, k := range []string{a, b, broken} {
		f.editRow(k, func(c *diskChain) { c.Seal, c.OverlayDigest, c.OverlaySize = "", "", 0 })
	}
	if _, err := f.db.SQL().Exec(`DELETE FROM manifests_sealed`); err != nil {
		t.Fatal(err)
	}
	if err := os.Remove(filepath.Join(f.r.workspaceDir(broken), f.chain(broken).Overlay)); err != nil {
		t.Fatal(err)
	}
	f.reopen()

	for _, k := range []string{a, b} {
		f.wantSignedByRepository(k)
		if n := f.logged("level=INFO", "sweep: signed the manifest of a workspace record from before manifests were signed", k); n != 1 {
			t.Errorf("the signing of %s was logged %d times", k, n)
		}
	}
	if f.chain(broken).Seal != "" {
		t.Fatal("a record whose overlay is gone was signed")
	}
	f.wantLogged("level=ERROR", "could not sign the manifest", broken)
	if f.marked() {
		t.Fatal("the store was marked as fully sealed with an unsigned record left")
	}
	_, err := f.r.CheckOut(ctx, broken, "node1", "", nil, &tester)
	f.wantUnsealedRefused(broken, err, "the start-up sweep could not sign it", "start-up log")

	m, err := f.r.CheckOut(ctx, a, "node1", "", nil, &tester)
	if err != nil {
		t.Fatalf("check-out of a record the sweep signed: %v", err)
	}
	if _, _, err := manifestsig.Verify(m.Signed, nil); err != nil || roles(m) != "base,kernel,overlay" {
		t.Fatalf("its manifest (%s): %v", roles(m), err)
	}
	f.checkIn(a, m)
	sealA := f.chain(a).Seal // check-in signs again

	if err := f.r.Workspaces.Destroy(ctx, broken); err != nil {
		t.Fatal(err)
	}
	f.reopen()
	if !f.marked() {
		t.Fatalf("the store is not marked as fully sealed once every record is signed; log:\n%s", f.logs.String())
	}
	f.wantLogged("level=INFO", "sweep: every workspace record has a signed manifest")
	if f.chain(a).Seal != sealA || f.logged("sweep: signed the manifest", a) != 1 {
		t.Error("a signed record was signed again by a later start")
	}
	if _, err := f.r.CheckOut(ctx, b, "node1", "", nil, &tester); err != nil {
		t.Fatalf("check-out after the store was marked: %v", err)
	}
}

// paused makes a workspace with a memory image (checked in paused).
func (f *fixture) paused(name string) string {
	f.t.Helper()
	ctx := context.Background()
	key := f.create(name, "", "")
	m, err := f.r.CheckOut(ctx, key, "node1", "", nil, &tester)
	if err != nil {
		f.t.Fatal(err)
	}
	ram := bytes.Repeat([]byte(name), 1000)
	res, rs := f.upload(key, "memory", m.Token, ram, SHA256Header, sha(ram))
	if rs.code != http.StatusOK {
		f.t.Fatalf("memory upload: %d %s", rs.code, rs.body)
	}
	if _, _, err := f.r.CheckIn(ctx, key, CheckInRequest{Token: m.Token, OverlayDigest: image(m, "overlay").Digest, MemoryDigest: res.Digest,
		State: "paused", OverlaySize: -1, MemorySize: -1}); err != nil {
		f.t.Fatal(err)
	}
	if f.chain(key).Memory == "" {
		f.t.Fatal("no memory image")
	}
	return key
}

// The sweep drops a missing memory image and signs the record again only when the
// record, as it was, is the one its stored manifest describes and that manifest is
// the repository's: an edited record, a record and manifest edited to agree (the
// signature no longer verifies) or a manifest signed with a foreign key are left as
// they are, with an error in the log, and check-out refuses them (or, for the one
// whose signature is broken, hands out a manifest no manager accepts).
func TestSweepMemoryRepairOnlyOfSignedRecords(t *testing.T) {
	ctx := context.Background()
	f := newFixture(t)
	legit := f.paused("legit")
	edited := f.paused("edited")
	inconsistent := f.paused("inconsistent")
	forged := f.paused("forged")
	foreign := f.paused("foreign")
	attacker, err := manifestsig.LoadOrCreate(t.TempDir(), "test repository")
	if err != nil {
		t.Fatal(err)
	}
	// The record only.
	f.editRow(edited, func(c *diskChain) { c.Base = f.kernel })
	// The record one way, its manifest another (not signed again).
	f.editRow(inconsistent, func(c *diskChain) {
		c.Base = f.kernel
		c.Seal = strings.Replace(c.Seal, "<r:name>inconsistent</r:name>", "<r:name>renamed</r:name>", 1)
	})
	// The record's name and its manifest's alike: only the signature tells.
	props, private := f.row(forged)
	c, err := decodeChain(private)
	if err != nil {
		t.Fatal(err)
	}
	c.Seal = strings.Replace(c.Seal, "<r:name>forged</r:name>", "<r:name>forged-x</r:name>", 1)
	f.setRow(forged, bytes.Replace(props, []byte(">forged<"), []byte(">forged-x<"), 1), c.encode())
	// Signed with a key of their own.
	f.editRow(foreign, func(c *diskChain) { c.Seal = f.foreignSeal(c.Seal, attacker) })

	before := map[string]string{}
	for _, k := range []string{legit, edited, inconsistent, forged, foreign} {
		before[k] = f.storedChain(k).Seal
		if err := os.Remove(filepath.Join(f.r.workspaceDir(k), f.chain(k).Memory)); err != nil {
			t.Fatal(err)
		}
	}
	f.reopen()

	if c := f.chain(legit); c.Memory != "" || c.MemoryDigest != "" || f.prop(legit, PropState) != "corrupted" || c.Seal == before[legit] {
		t.Fatalf("the memory repair of an intact record: memory %q, state %s, signed again %v", c.Memory, f.prop(legit, PropState), c.Seal != before[legit])
	}
	f.wantSignedByRepository(legit)
	m, err := f.r.CheckOut(ctx, legit, "node1", "", nil, &tester)
	if err != nil || roles(m) != "base,overlay" {
		t.Fatalf("check-out after the memory repair: %v", err)
	}

	for _, k := range []string{edited, inconsistent, forged, foreign} {
		c := f.chain(k)
		if c.Seal != before[k] || c.Memory == "" || f.prop(k, PropState) != "paused" {
			t.Errorf("%s was repaired: signed again %v, memory %q, state %s", k, c.Seal != before[k], c.Memory, f.prop(k, PropState))
		}
		f.wantLogged("level=ERROR", "sweep: workspace memory image missing, but the record does not match its signed manifest", k)
	}
	f.wantLogged("level=ERROR", edited, "no longer matches its signed manifest")
	f.wantLogged("level=ERROR", forged, "manifest signature invalid")
	f.wantLogged("level=ERROR", foreign, "never signed with")

	for _, k := range []string{edited, inconsistent} {
		_, err := f.r.CheckOut(ctx, k, "node1", "", nil, &tester)
		if !errors.Is(err, errdefs.ErrImageIntegrity) || !strings.Contains(err.Error(), "no longer matches its signed manifest") {
			t.Fatalf("check-out of %s: %v", k, err)
		}
		f.wantUntouched(k)
	}
	_, err = f.r.CheckOut(ctx, foreign, "node1", "", nil, &tester)
	f.wantRefusedSigner(foreign, err, attacker.Certificate(), "never signed with")
	// Check-out hands the stored manifest out as it is; the manager verifies it.
	if m, err := f.r.CheckOut(ctx, forged, "node1", "", nil, &tester); err == nil {
		if _, _, err := manifestsig.Verify(m.Signed, nil); !errors.Is(err, manifestsig.ErrInvalid) {
			t.Fatalf("the forged manifest verifies: %v", err)
		}
	} else if !errors.Is(err, errdefs.ErrImageIntegrity) {
		t.Fatal(err)
	}
}

// interruptClone clones src and then puts back what a crash between committing the
// clone and committing the source leaves: the source's record from before, its old
// overlay (the layer's inode) and the new one, uncommitted. edit, when set, changes
// the source's record from before (behind the repository's back, see setRow). It
// returns the clone's key and the layer. The repository sees it all after reopen.
func (f *fixture) interruptClone(src string, edit func(c *diskChain)) (string, string) {
	f.t.Helper()
	props, private := f.row(src)
	old := f.chain(src).Overlay
	cl, err := f.r.Clone(context.Background(), src, "", "o", time.Now().Add(time.Hour))
	if err != nil {
		f.t.Fatal(err)
	}
	lays := f.chain(cl.Key).Layers
	layer := lays[len(lays)-1].ID
	if err := os.Link(f.r.layerPath(layer), filepath.Join(f.r.workspaceDir(src), old)); err != nil {
		f.t.Fatal(err)
	}
	if edit != nil {
		c, err := decodeChain(private)
		if err != nil {
			f.t.Fatal(err)
		}
		edit(c)
		private = c.encode()
	}
	f.setRow(src, props, private)
	return cl.Key, layer
}

// A clone interrupted after committing the clone and before committing its source is
// finished by the sweep: the source's record, as the crash left it, is the one its
// manifest describes. A source record edited meanwhile, one whose manifest is signed
// with a foreign key, or one whose overlay (the layer) no longer has the bytes its
// manifest names is left as it is, with an error in the log, and check-out refuses it;
// the clone is not affected.
func TestSweepFinishesOnlySignedInterruptedClones(t *testing.T) {
	ctx := context.Background()
	f := newFixture(t)
	attacker, err := manifestsig.LoadOrCreate(t.TempDir(), "test repository")
	if err != nil {
		t.Fatal(err)
	}
	legit, edited, foreign, rewritten := f.create("legit", "", ""), f.create("edited", "", ""), f.create("foreign", "", ""), f.create("rewritten", "", "")
	legitCopy, legitLayer := f.interruptClone(legit, nil)
	editedCopy, _ := f.interruptClone(edited, func(c *diskChain) { c.Kernel = f.kernel })
	_, _ = f.interruptClone(foreign, func(c *diskChain) { c.Seal = f.foreignSeal(c.Seal, attacker) })
	_, rewrittenLayer := f.interruptClone(rewritten, nil)
	fh, err := os.OpenFile(f.r.layerPath(rewrittenLayer), os.O_WRONLY|os.O_APPEND, 0)
	if err != nil {
		t.Fatal(err)
	}
	fh.Write([]byte("tampered")) // the source's overlay as well: one inode
	fh.Close()
	before := map[string]*diskChain{}
	for _, k := range []string{edited, foreign, rewritten} {
		before[k] = f.storedChain(k)
	}
	f.reopen()

	c := f.chain(legit)
	if len(c.Layers) != 1 || c.Layers[0].ID != legitLayer || c.Overlay != "disk-2.qcow2" {
		t.Fatalf("the interrupted clone was not finished: overlay %s, layers %v", c.Overlay, c.Layers)
	}
	f.wantSignedByRepository(legit)
	f.wantLogged("sweep: finished an interrupted clone", legit)
	for _, k := range []string{legit, legitCopy} {
		m, err := f.r.CheckOut(ctx, k, "node1", "", nil, &tester)
		if err != nil {
			t.Fatalf("check-out of %s after the roll-forward: %v", k, err)
		}
		if roles(m) != "base,layer,overlay" || image(m, "layer").Path != "/workspaces/"+k+"/files/"+c.Layers[0].Digest {
			t.Errorf("%s: %s, layer %+v", k, roles(m), image(m, "layer"))
		}
	}

	for _, k := range []string{edited, foreign, rewritten} {
		c := f.chain(k)
		if c.Seal != before[k].Seal || c.Overlay != before[k].Overlay || len(c.Layers) != 0 {
			t.Errorf("%s was rolled forward: signed again %v, overlay %s, layers %v", k, c.Seal != before[k].Seal, c.Overlay, c.Layers)
		}
	}
	f.wantLogged("level=ERROR", "interrupted clone not finished: the source's record does not match its signed manifest", edited, "no longer matches")
	f.wantLogged("level=ERROR", "interrupted clone not finished: the source's record does not match its signed manifest", foreign, "never signed with")
	f.wantLogged("level=ERROR", "interrupted clone not finished: the source's overlay is not the one its signed manifest names", rewritten)
	_, err = f.r.CheckOut(ctx, edited, "node1", "", nil, &tester)
	if !errors.Is(err, errdefs.ErrImageIntegrity) || !strings.Contains(err.Error(), "no longer matches its signed manifest") {
		t.Fatalf("check-out of the edited source: %v", err)
	}
	f.wantUntouched(edited)
	_, err = f.r.CheckOut(ctx, foreign, "node1", "", nil, &tester)
	f.wantRefusedSigner(foreign, err, attacker.Certificate(), "never signed with")
	_, err = f.r.CheckOut(ctx, rewritten, "node1", "", nil, &tester)
	if !errors.Is(err, errdefs.ErrImageIntegrity) || !strings.Contains(err.Error(), "changed in the repository's store") {
		t.Fatalf("check-out of the source whose overlay changed: %v", err)
	}
	f.wantUntouched(rewritten)
	if _, err := f.r.CheckOut(ctx, editedCopy, "node1", "", nil, &tester); err != nil {
		t.Fatalf("check-out of the clone of an edited source: %v", err)
	}

	// A clone that never committed: its layer is unlinked, nothing is signed.
	lone := f.create("lone", "", "")
	seal := f.chain(lone).Seal
	if err := os.Link(filepath.Join(f.r.workspaceDir(lone), f.chain(lone).Overlay), f.r.layerPath(newID())); err != nil {
		t.Fatal(err)
	}
	f.reopen()
	if c := f.chain(lone); c.Seal != seal || len(c.Layers) != 0 {
		t.Fatalf("an uncommitted clone's source was changed: signed again %v, layers %v", c.Seal != seal, c.Layers)
	}
	f.wantLogged("sweep: unlinking an interrupted clone's layer", lone)
	if _, err := f.r.CheckOut(ctx, lone, "node1", "", nil, &tester); err != nil {
		t.Fatal(err)
	}
}
