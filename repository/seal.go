package repository

import (
	"bytes"
	"context"
	"crypto/sha256"
	"crypto/x509"
	"encoding/hex"
	"fmt"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/beevik/etree"

	"github.com/vws-grid/vws/internal/errdefs"
	"github.com/vws-grid/vws/internal/identity"
	"github.com/vws-grid/vws/internal/manifestsig"
	"github.com/vws-grid/vws/internal/vwsns"
	"github.com/vws-grid/vws/internal/wsrf"
)

// ManifestSigner signs a workspace's manifest (an enveloped XML signature).
type ManifestSigner interface {
	Sign(el *etree.Element) (*etree.Element, error)
	// Certificate is the signer's certificate.
	Certificate() *x509.Certificate
}

// manifestImages lists what a manager must stage for the workspace chain describes,
// bottom first: base, kernel and initrd, layers, the overlay, the saved RAM. The
// overlay's digest must be known (chain.OverlayDigest).
func (r *Repository) manifestImages(ctx context.Context, key string, chain *diskChain) ([]ImageRef, error) {
	base, err := r.pool.Get(ctx, chain.Base)
	if err != nil {
		return nil, err
	}
	baseChunks, err := r.pool.Chunks(ctx, base.Digest)
	if err != nil {
		return nil, fmt.Errorf("the workspace's base image: %w", err)
	}
	files := "/workspaces/" + key + "/files/"
	imgs := []ImageRef{{Role: "base", Digest: base.Digest, Format: base.Format, Size: base.Size, Path: "/images/" + base.Digest, Chunks: baseChunks}}
	for _, boot := range []struct{ role, digest string }{{"kernel", chain.Kernel}, {"initrd", chain.Initrd}} {
		if boot.digest == "" {
			continue
		}
		img, err := r.pool.Get(ctx, boot.digest)
		if err != nil {
			return nil, fmt.Errorf("the workspace's %s image: %w", boot.role, err)
		}
		chunks, err := r.pool.Chunks(ctx, img.Digest)
		if err != nil {
			return nil, fmt.Errorf("the workspace's %s image: %w", boot.role, err)
		}
		imgs = append(imgs, ImageRef{Role: boot.role, Digest: img.Digest, Format: "raw", Size: img.Size, Path: "/images/" + img.Digest, Chunks: chunks})
	}
	backing := base.Digest
	for _, l := range chain.Layers {
		imgs = append(imgs, ImageRef{Role: "layer", Digest: l.Digest, Format: "qcow2", Size: l.Size, Backing: backing, Path: files + l.Digest})
		backing = l.Digest
	}
	imgs = append(imgs, ImageRef{Role: "overlay", Digest: chain.OverlayDigest, Format: "qcow2", Size: chain.OverlaySize, Backing: backing, Path: files + chain.OverlayDigest})
	if chain.Memory != "" {
		imgs = append(imgs, ImageRef{Role: "memory", Digest: chain.MemoryDigest, Format: "raw", Size: chain.MemorySize, Path: files + chain.MemoryDigest})
	}
	return imgs, nil
}

// manifestElement is the unsigned vw:Manifest of a workspace. A pool image's chunk
// list follows its Format and BackingDigest, before its Location, as r:ChunkBytes (the
// piece length) and r:ChunkDigests (the pieces' SHA-256 digests, space-separated hex,
// in order); images without a list have neither.
func manifestElement(key, name, owner, created, issued string, imgs []ImageRef) *etree.Element {
	me := etree.NewElement("r:Manifest")
	me.CreateAttr("xmlns:r", vwsns.Workspace)
	me.CreateElement("r:WorkspaceKey").SetText(key)
	if name != "" {
		me.CreateElement("r:name").SetText(name)
	}
	me.CreateElement("r:owner").SetText(owner)
	me.CreateElement("r:Created").SetText(created)
	me.CreateElement("r:Issued").SetText(issued)
	for _, img := range imgs {
		ie := me.CreateElement("r:Image")
		ie.CreateElement("r:Role").SetText(img.Role)
		ie.CreateElement("r:Digest").SetText(img.Digest)
		ie.CreateElement("r:SizeBytes").SetText(strconv.FormatInt(img.Size, 10))
		ie.CreateElement("r:Format").SetText(img.Format)
		if img.Backing != "" {
			ie.CreateElement("r:BackingDigest").SetText(img.Backing)
		}
		if !img.Chunks.Empty() {
			ie.CreateElement("r:ChunkBytes").SetText(strconv.FormatInt(img.Chunks.ChunkBytes, 10))
			ie.CreateElement("r:ChunkDigests").SetText(img.Chunks.Text())
		}
		ie.CreateElement("r:Location").SetText(img.Path)
	}
	return me
}

// seal signs the manifest of workspace s as chain now describes it and keeps it in
// the chain, and sets s's overlay vw:imageDigest. Every change of a workspace's images (create, clone, check-in, the
// start-up sweep) seals again, so the signature is made when the content is decided,
// not when it is handed out: a later edit of the store cannot be signed over.
func (r *Repository) seal(ctx context.Context, s *wsrf.Snapshot, chain *diskChain) error {
	if chain.OverlayDigest == "" {
		var err error
		if chain.OverlayDigest, chain.OverlaySize, err = fileDigest(filepath.Join(r.workspaceDir(s.Key), chain.Overlay)); err != nil {
			return fmt.Errorf("digest overlay: %w", err)
		}
	}
	imgs, err := r.manifestImages(ctx, s.Key, chain)
	if err != nil {
		return err
	}
	me := manifestElement(s.Key, text(s, PropName), text(s, PropOwner), text(s, PropCreationTime), wsrf.FormatTime(r.now().UTC()), imgs)
	signed, err := r.signer.Sign(me)
	if err != nil {
		return err
	}
	doc := etree.NewDocument()
	doc.SetRoot(signed)
	if chain.Seal, err = doc.WriteToString(); err != nil {
		return fmt.Errorf("encode signed manifest: %w", err)
	}
	// The overlay's digest is known from here on: the workspace's properties publish
	// it beside the base (and memory) digests the manifest also names.
	setImageDigest(s, "overlay", chain.OverlayDigest)
	return nil
}

// sealed returns the stored signed manifest of workspace s after checking it still
// describes what the store holds (imgs): a mismatch means the store was changed
// outside vws, and nothing is handed out. A manifest sealed before manifests listed
// chunk digests has none at all: it is compared without them, and unlisted says it
// must be sealed again (after its signature is checked) to carry them.
func sealed(s *wsrf.Snapshot, chain *diskChain, imgs []ImageRef) (me *etree.Element, unlisted bool, err error) {
	doc := etree.NewDocument()
	if err := doc.ReadFromString(chain.Seal); err != nil || doc.Root() == nil {
		return nil, false, fmt.Errorf("%w: the stored signed manifest of workspace %s does not parse", errdefs.ErrImageIntegrity, s.Key)
	}
	me = doc.Root()
	if unlisted, err = matchesRecord(s, me, imgs); err != nil {
		return nil, false, err
	}
	return me, unlisted, nil
}

// matchesRecord compares manifest me (stored or as its signature covers it) with
// workspace s as the store holds it (imgs); see sealed.
func matchesRecord(s *wsrf.Snapshot, me *etree.Element, imgs []ImageRef) (unlisted bool, err error) {
	want := manifestElement(s.Key, text(s, PropName), text(s, PropOwner), text(s, PropCreationTime), "", imgs)
	got, exp := manifestFacts(me), manifestFacts(want)
	if !slices.ContainsFunc(got, isChunkFact) && slices.ContainsFunc(exp, isChunkFact) {
		exp = slices.DeleteFunc(exp, isChunkFact)
		unlisted = true
	}
	for i := 0; i < len(got) || i < len(exp); i++ {
		if i < len(got) && i < len(exp) && got[i] == exp[i] {
			continue
		}
		signed, stored := "nothing", "nothing"
		if i < len(got) {
			signed = got[i]
		}
		if i < len(exp) {
			stored = exp[i]
		}
		return false, errdefs.WithAdvice(fmt.Errorf("%w: workspace %s in the repository's store no longer matches its signed manifest: signed %s, stored %s",
			errdefs.ErrImageIntegrity, s.Key, truncateFact(signed), truncateFact(stored)),
			"the store was changed outside vws: restore the workspace's files and record from a backup, or destroy it")
	}
	return unlisted, nil
}

// verifySeal checks, before the repository signs a changed record of workspace s
// again, that the record as it is (chain) is one it signed: its stored manifest
// describes it (sealed's comparison, also of the content the signature covers) and
// that manifest's signature verifies, by the current key or a provably earlier one
// (verifySigner). A record without a stored manifest fails (unsealedError).
func (r *Repository) verifySeal(ctx context.Context, s *wsrf.Snapshot, chain *diskChain) error {
	if chain.Seal == "" {
		return r.unsealedError(ctx, s.Key)
	}
	imgs, err := r.manifestImages(ctx, s.Key, chain)
	if err != nil {
		return err
	}
	me, _, err := sealed(s, chain, imgs)
	if err != nil {
		return err
	}
	signed, err := r.verifySigner(ctx, s.Key, me)
	if err != nil {
		return err
	}
	_, err = matchesRecord(s, signed, imgs)
	return err
}

// unsealedError refuses workspace key's record without a signed manifest. Only the
// start-up sweep signs a record that has none, and only while the store is not marked
// as fully sealed (manifests_sealed, see sweep): the upgrade from records made before
// manifests were signed. After that such a record was changed outside vws.
func (r *Repository) unsealedError(ctx context.Context, key string) error {
	complete, err := r.sealsComplete(ctx)
	if err != nil {
		return err
	}
	if !complete {
		return errdefs.WithAdvice(fmt.Errorf("%w: workspace %s has no signed manifest: its record is from before manifests were signed, and the start-up sweep could not sign it",
			errdefs.ErrImageIntegrity, key),
			"the repository's start-up log says why (e.g. a missing overlay or pool image): fix that and restart vws, or destroy the workspace")
	}
	return errdefs.WithAdvice(fmt.Errorf("%w: workspace %s has no signed manifest in the repository's store, where every record has had one since the upgrade: its record was changed outside vws",
		errdefs.ErrImageIntegrity, key),
		"restore the workspace's record from a backup, or destroy the workspace")
}

// sealsComplete says whether the store is marked as fully sealed (manifests_sealed).
func (r *Repository) sealsComplete(ctx context.Context) (bool, error) {
	var n int
	if err := r.db.QueryRowContext(ctx, `SELECT count(*) FROM manifests_sealed`).Scan(&n); err != nil {
		return false, fmt.Errorf("read the sealed-store marker: %w", err)
	}
	return n > 0, nil
}

// isChunkFact says whether a manifestFacts fact is an image's chunk list.
func isChunkFact(f string) bool {
	_, rest, _ := strings.Cut(strings.TrimPrefix(f, "image "), " ")
	return strings.HasPrefix(f, "image ") && (strings.HasPrefix(rest, "ChunkBytes=") || strings.HasPrefix(rest, "ChunkDigests="))
}

// truncateFact shortens a fact for an error message (a chunk list has thousands of
// digests).
func truncateFact(f string) string {
	if len(f) <= 200 {
		return f
	}
	return f[:200] + "…"
}

// manifestFacts lists what a manifest vouches for — everything but the signing time
// and the signature — one comparable fact per element ("name=x", "image base
// Digest=sha256:…").
func manifestFacts(me *etree.Element) []string {
	var out []string
	for _, c := range me.ChildElements() {
		switch c.Tag {
		case "Issued", "Signature":
		case "Image":
			role := ""
			if r := c.SelectElement("Role"); r != nil {
				role = strings.TrimSpace(r.Text())
			}
			for _, f := range c.ChildElements() {
				out = append(out, "image "+role+" "+f.Tag+"="+strings.TrimSpace(f.Text()))
			}
		default:
			out = append(out, c.Tag+"="+strings.TrimSpace(c.Text()))
		}
	}
	return out
}

// renewed returns the stored manifest me, signed again with the current key when an
// earlier key signed it (the host certificate was renewed): a manifest verifies only
// while its signer's certificate is valid, and workspaces outlive host certificates.
// unlisted (from sealed) signs it again as well, to add its images' chunk lists.
//
// Signing again vouches for the manifest with the current key, so it is done only
// for a manifest this repository signed itself: its old signature must verify as of
// when it was made (its r:Issued), its content has been compared with the store, and
// its signer must be provably one of this repository's keys (earlierSigner; both
// checks are verifySigner, which the start-up sweep's repairs use too). Anyone
// who can edit the store can sign a manifest of their liking with a key of their own;
// without that last check the repository would launder it with its own signature.
func (r *Repository) renewed(ctx context.Context, s *wsrf.Snapshot, chain *diskChain, me *etree.Element, unlisted bool) (*etree.Element, error) {
	certs, err := manifestsig.ChainOf(me)
	if err != nil {
		return nil, fmt.Errorf("%w: the stored manifest of workspace %s: %w", errdefs.ErrImageIntegrity, s.Key, err)
	}
	old := certs[0]
	sameKey := old.Equal(r.signer.Certificate())
	if sameKey && !unlisted {
		return me, nil
	}
	if _, err := r.verifySigner(ctx, s.Key, me); err != nil {
		return nil, err
	}
	if err := r.seal(ctx, s, chain); err != nil {
		return nil, err
	}
	doc := etree.NewDocument()
	if err := doc.ReadFromString(chain.Seal); err != nil {
		return nil, fmt.Errorf("re-signed manifest: %w", err)
	}
	if sameKey {
		r.log.Info("manifest signed again with its images' chunk digests", "key", s.Key)
	} else {
		r.log.Info("manifest signed again with the current key", "key", s.Key, "previous signer", identity.OneLineDN(old.Subject))
	}
	return doc.Root(), nil
}

// verifySigner checks the stored manifest me of workspace key before the repository
// signs anything that rests on it, and returns the element as its signature covers
// it: its signer must be the current key or provably an earlier one of this
// repository (earlierSigner), and its signature must verify as of when it was made
// (its r:Issued, never later than now). Anything else is ErrImageIntegrity.
func (r *Repository) verifySigner(ctx context.Context, key string, me *etree.Element) (*etree.Element, error) {
	certs, err := manifestsig.ChainOf(me)
	if err != nil {
		return nil, fmt.Errorf("%w: the stored manifest of workspace %s: %w", errdefs.ErrImageIntegrity, key, err)
	}
	// When it was signed, by its own word; never later than now.
	signedAt := r.now()
	if is := me.SelectElement("Issued"); is != nil {
		if t, err := wsrf.ParseDateTime(strings.TrimSpace(is.Text())); err == nil && t.Before(signedAt) {
			signedAt = t
		}
	}
	if !certs[0].Equal(r.signer.Certificate()) {
		if err := r.earlierSigner(ctx, key, certs, signedAt); err != nil {
			return nil, err
		}
	}
	signed, _, err := manifestsig.VerifyAt(me, nil, signedAt)
	if err != nil {
		return nil, errdefs.WithAdvice(fmt.Errorf("%w: the stored manifest of workspace %s: %w", errdefs.ErrImageIntegrity, key, err),
			"the store was changed outside vws: restore the workspace's record from a backup, or destroy it")
	}
	return signed, nil
}

// earlierSigner refuses, with ErrImageIntegrity, a stored manifest's signer (certs,
// signer first, as its KeyInfo carries them; not the current key) that is not
// provably an earlier key of this repository:
//
//   - On a server with CAs (EarlierSigner set), the CAs must vouch for the chain as of
//     signedAt — a renewed host certificate has often replaced an expired one; a
//     revoked one stays refused, since its key may have signed anything — and it must
//     name the host the current certificate names. The store, which an attacker may
//     have edited, is not asked.
//   - Without CAs (--insecure) nothing outside the data directory vouches for a key:
//     the signer's certificate must be one the repository recorded as its own
//     (manifest_signers, at every start). This guards against mistakes and against
//     edits of the store by someone without the key, not against whoever can write
//     the data directory: they can read the current key in <data>/keys as well, and
//     sign with it.
func (r *Repository) earlierSigner(ctx context.Context, key string, certs []*x509.Certificate, signedAt time.Time) error {
	old, cur := certs[0], r.signer.Certificate()
	refuse := func(why, advice string) error {
		return errdefs.WithAdvice(fmt.Errorf("%w: the stored manifest of workspace %s is signed by %s, %s",
			errdefs.ErrImageIntegrity, key, identity.OneLineDN(old.Subject), why), advice)
	}
	const edited = "the store was changed outside vws: restore the workspace's record from a backup, or destroy the workspace"
	if r.earlier != nil {
		if err := r.earlier(certs, signedAt); err != nil {
			return refuse(fmt.Sprintf("which the site's CAs do not vouch for as of its signing time %s (%v), so the repository will not sign it again",
				wsrf.FormatTime(signedAt.UTC()), err),
				"if the host certificate was renewed, the earlier one must chain to the site's CAs (not revoked, valid when it signed) and name the same host as the current one; otherwise "+edited)
		}
		if !sameSubject(old, cur) {
			return refuse(fmt.Sprintf("not this host (%s), so the repository will not sign it again", identity.OneLineDN(cur.Subject)),
				"a renewed host certificate must name the same host as the one it replaced; otherwise "+edited)
		}
		return nil
	}
	var n int
	if err := r.db.QueryRowContext(ctx, `SELECT count(*) FROM manifest_signers WHERE fingerprint = $1`, fingerprint(old)).Scan(&n); err != nil {
		return fmt.Errorf("look up the manifest signers: %w", err)
	}
	if n == 0 {
		return refuse("a key this repository has never signed with (its certificate is not in manifest_signers), so the repository will not sign it again",
			"without CAs the repository signs again only manifests of its own earlier keys; "+edited)
	}
	return nil
}

// recordSigner records the current signer's certificate as one of the repository's
// keys (manifest_signers), so that after a renewal manifests it signed can be signed
// again without CAs.
func (r *Repository) recordSigner(ctx context.Context) error {
	c := r.signer.Certificate()
	if _, err := r.db.ExecContext(ctx, `INSERT INTO manifest_signers (fingerprint, subject, first_used) VALUES ($1, $2, $3) ON CONFLICT DO NOTHING`,
		fingerprint(c), identity.OneLineDN(c.Subject), r.now().UnixMilli()); err != nil {
		return fmt.Errorf("record the manifest signer: %w", err)
	}
	return nil
}

// fingerprint is the hex SHA-256 of a certificate's DER.
func fingerprint(c *x509.Certificate) string {
	sum := sha256.Sum256(c.Raw)
	return hex.EncodeToString(sum[:])
}

// sameSubject says whether two certificates name the same subject: the same
// attributes with the same values in the same order (a CA may encode the strings of a
// renewed certificate differently).
func sameSubject(a, b *x509.Certificate) bool {
	if bytes.Equal(a.RawSubject, b.RawSubject) {
		return true
	}
	an, bn := a.Subject.Names, b.Subject.Names
	if len(an) == 0 || len(an) != len(bn) {
		return false
	}
	for i := range an {
		av, aok := an[i].Value.(string)
		bv, bok := bn[i].Value.(string)
		if !an[i].Type.Equal(bn[i].Type) || !aok || !bok || av != bv {
			return false
		}
	}
	return true
}
