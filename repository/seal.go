package repository

import (
	"context"
	"crypto/x509"
	"fmt"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/beevik/etree"

	"github.com/vws-grid/vws/internal/errdefs"
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
// the chain. Every change of a workspace's images (create, clone, check-in, the
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
		return nil, false, errdefs.WithAdvice(fmt.Errorf("%w: workspace %s in the repository's store no longer matches its signed manifest: signed %s, stored %s",
			errdefs.ErrImageIntegrity, s.Key, truncateFact(signed), truncateFact(stored)),
			"the store was changed outside vws: restore the workspace's files and record from a backup, or destroy it")
	}
	return me, unlisted, nil
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
// The old signature must verify as of when it was made, and the content has been
// compared with the store, so nothing unsigned is re-signed.
func (r *Repository) renewed(ctx context.Context, s *wsrf.Snapshot, chain *diskChain, me *etree.Element, unlisted bool) (*etree.Element, error) {
	old, err := manifestsig.SignerOf(me)
	if err != nil {
		return nil, fmt.Errorf("%w: the stored manifest of workspace %s: %w", errdefs.ErrImageIntegrity, s.Key, err)
	}
	sameKey := old.Equal(r.signer.Certificate())
	if sameKey && !unlisted {
		return me, nil
	}
	issued := time.Now()
	if is := me.SelectElement("Issued"); is != nil {
		if t, err := wsrf.ParseDateTime(strings.TrimSpace(is.Text())); err == nil {
			issued = t
		}
	}
	if _, _, err := manifestsig.VerifyAt(me, nil, issued); err != nil {
		return nil, errdefs.WithAdvice(fmt.Errorf("%w: the stored manifest of workspace %s: %w", errdefs.ErrImageIntegrity, s.Key, err),
			"the store was changed outside vws: restore the workspace's record from a backup, or destroy it")
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
		r.log.Info("manifest signed again with the current key", "key", s.Key, "previous signer", old.Subject.String())
	}
	return doc.Root(), nil
}
