package repository

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/vws-grid/vws/internal/errdefs"
	"github.com/vws-grid/vws/internal/identity"
	"github.com/vws-grid/vws/internal/manifestsig"
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
