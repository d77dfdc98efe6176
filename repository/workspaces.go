package repository

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"time"

	"github.com/beevik/etree"

	"github.com/vws-grid/vws/internal/container"
	"github.com/vws-grid/vws/internal/errdefs"
	"github.com/vws-grid/vws/internal/identity"
	"github.com/vws-grid/vws/internal/qcow2"
	"github.com/vws-grid/vws/internal/store"
	"github.com/vws-grid/vws/internal/vwsns"
	"github.com/vws-grid/vws/internal/wsa"
	"github.com/vws-grid/vws/internal/wsrf"
	"github.com/vws-grid/vws/policy"
	"github.com/vws-grid/vws/repository/imagepool"
)

// NameRE is what a workspace name may look like: no path-like or odd names, since
// names reach file listings, logs and (later) libvirt domain names. 1 to 64
// characters, as vw:WorkspaceNameType (fac:Create/fac:Name) allows.
var NameRE = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$`)

// CreateSpec is an authorized, validated request for a new workspace.
type CreateSpec struct {
	Name  string
	Owner string
	// Description is the validated vw:virtualWorkspace element.
	Description *etree.Element
	// BaseImage is the pool digest of the image the workspace starts from.
	BaseImage string
	// KernelImage and InitrdImage are the pool digests of the kernel and initial
	// ramdisk of a direct-kernel-boot workspace; "" when it boots its own loader.
	KernelImage, InitrdImage string
	Termination              time.Time
	RequestedLifetime        time.Duration
	// OwnerAttributes are the creator's VO attributes (group quotas may count by them).
	OwnerAttributes []string
	// RequestID is the Factory's name for this registration ("" none): a repeat
	// whose answer was lost is answered with the workspace the first one made.
	RequestID string
	// PreferredHosts are the host names Place ranks first, in this order, when they
	// fit (fac:PreferredHost).
	PreferredHosts []string
}

// Created is what Create and Clone return.
type Created struct {
	Key         string
	Name        string
	Termination time.Time
}

// reserveName claims name for key, for the workspace's owner-to-be who.
func (r *Repository) reserveName(ctx context.Context, name, key string, who identity.Identity) error {
	if !NameRE.MatchString(name) {
		return errdefs.WithAdvice(&errdefs.MetadataError{Path: "Name", Reason: fmt.Sprintf("%q is not a valid workspace name", name)},
			"use 1–64 letters, digits, '.', '_' or '-', starting with a letter or digit")
	}
	r.namesMu.Lock()
	other, taken := r.names[name]
	if !taken {
		r.names[name] = key
	}
	r.namesMu.Unlock()
	if taken {
		return r.nameTaken(ctx, name, other, who)
	}
	return nil
}

// nameTaken refuses name, held by workspace other. Only someone who may inspect that
// workspace (its owner, an admin, a share) is told its key: to anyone else a key is a
// handle on another user's workspace. Called without namesMu, which afterDestroy takes
// under a workspace's lock.
func (r *Repository) nameTaken(ctx context.Context, name, other string, who identity.Identity) error {
	owner, _, _, err := r.Owner(ctx, other)
	res := policy.Resource{Service: vwsns.WorkspaceService, Action: "Create", Key: other, Name: name, Owner: owner}
	if err == nil && r.rules().Decide(who, policy.Inspect, res).Allowed {
		return errdefs.WithAdvice(&errdefs.MetadataError{Path: "Name", Reason: fmt.Sprintf("a workspace named %q already exists (key %s)", name, other)},
			"choose another name, or destroy the existing workspace first")
	}
	return errdefs.WithAdvice(&errdefs.MetadataError{Path: "Name", Reason: fmt.Sprintf("a workspace named %q already exists", name)},
		"choose another name: workspace names are unique across the site")
}

func (r *Repository) releaseName(name, key string) {
	r.namesMu.Lock()
	defer r.namesMu.Unlock()
	if r.names[name] == key {
		delete(r.names, name)
	}
}

// Create makes a workspace: a copy-on-write overlay on the base image (its cost does
// not depend on the image's size) and the WS-Resource. The database commit is the last
// step, so a crash before it leaves only files the start-up sweep removes.
func (r *Repository) Create(ctx context.Context, spec CreateSpec) (*Created, error) {
	key := newID()
	if spec.Name == "" {
		spec.Name = "ws-" + key[:12]
	}
	// Before the quota: the workspace a lost answer told of counts against it already.
	if c, ok := r.createdBefore(ctx, spec); ok {
		return c, nil
	}
	owner := ownerIdentity(spec.Owner, spec.OwnerAttributes)
	scopes, release, err := r.reserveWorkspace(owner, spec.Termination.Sub(r.now()))
	if err != nil {
		return nil, err
	}
	// The Factory calls for the owner: whether the name's holder may be named is
	// decided for the owner, not for the Factory's host.
	if err := r.reserveName(ctx, spec.Name, key, owner); err != nil {
		release()
		if c, ok := r.createdBefore(ctx, spec); ok { // committed since the look above
			return c, nil
		}
		return nil, err
	}
	ok := false
	defer func() {
		if !ok {
			r.releaseName(spec.Name, key)
			release()
		}
	}()
	// Hold keeps the image from being removed between finding its blob and committing
	// the workspace that stands on it.
	var img imagepool.Image
	err = r.pool.Hold(ctx, spec.BaseImage, func(held imagepool.Image, basePath string) error {
		img = held
		// The hold covers the kernel and initrd too: no removal runs until the commit.
		for _, ref := range []*string{&spec.KernelImage, &spec.InitrdImage} {
			if *ref == "" {
				continue
			}
			boot, err := r.pool.Get(ctx, *ref)
			if err != nil {
				return err
			}
			if _, err := r.pool.Path(boot.Digest); err != nil {
				return err
			}
			*ref = boot.Digest
		}
		return r.createOn(ctx, key, spec, img, basePath, scopes)
	})
	if err != nil {
		return nil, r.noRoom("create", key, "create the workspace again", err)
	}
	term := spec.Termination
	ok = true
	// The caller is the Factory, which creates for the owner: the owner is named.
	r.audit.Record(ctx, "create", key, "done", "name="+spec.Name+" owner="+spec.Owner+" base="+img.Digest)
	return &Created{Key: key, Name: spec.Name, Termination: term}, nil
}

// createdBefore finds the workspace an earlier RegisterWorkspace with spec's RequestID
// made for the same owner under the same name: the Factory asks again when that
// answer was lost, and must not be told the name is taken by its own workspace. One
// still being made is not found; the Factory's next repeat finds it.
func (r *Repository) createdBefore(ctx context.Context, spec CreateSpec) (*Created, bool) {
	if spec.RequestID == "" {
		return nil, false
	}
	r.namesMu.Lock()
	key, ok := r.names[spec.Name]
	r.namesMu.Unlock()
	if !ok {
		return nil, false
	}
	var c *Created
	err := r.Workspaces.View(ctx, key, func(s *wsrf.Snapshot) error {
		chain, err := decodeChain(s.Private)
		if err != nil {
			return err
		}
		if chain.CreateRequest == spec.RequestID && text(s, PropOwner) == spec.Owner && text(s, PropName) == spec.Name {
			c = &Created{Key: key, Name: spec.Name}
			if s.Termination != nil {
				c.Termination = *s.Termination
			}
		}
		return nil
	})
	if err != nil || c == nil {
		return nil, false
	}
	r.audit.Record(ctx, "create", key, "done", "repeated registration "+spec.RequestID+" answered with the workspace it made")
	return c, true
}

// createOn makes workspace key's overlay on the base image at basePath and commits it.
func (r *Repository) createOn(ctx context.Context, key string, spec CreateSpec, img imagepool.Image, basePath string, scopes []string) error {
	// qcow2 sizes are whole sectors; round a raw base up as qemu-img does.
	vsize := (img.VirtualSize + 511) &^ 511
	chain := &diskChain{Version: chainVersion, Base: img.Digest, BaseFormat: img.Format, VirtualSize: vsize, Overlay: overlayName(1),
		Kernel: spec.KernelImage, Initrd: spec.InitrdImage, OwnerAttributes: spec.OwnerAttributes, QuotaScopes: scopes,
		CreateRequest: spec.RequestID, PreferredHosts: spec.PreferredHosts}
	dir := r.workspaceDir(key)
	if err := os.Mkdir(dir, 0o700); err != nil {
		return fmt.Errorf("%w: workspace directory: %w", errdefs.ErrCreation, err)
	}
	ok := false
	defer func() {
		if !ok {
			os.RemoveAll(dir)
		}
	}()
	if err := qcow2.CreateOverlay(filepath.Join(dir, chain.Overlay), basePath, img.Format, vsize); err != nil {
		return fmt.Errorf("%w: overlay: %w", errdefs.ErrCreation, err)
	}
	// The directory's entry in workspaces/ too: a record committed for a directory an
	// OS crash took away would be a workspace lost.
	for _, d := range []string{dir, r.workspaceDir("")} {
		if err := syncDir(d); err != nil {
			return fmt.Errorf("%w: %w", errdefs.ErrCreation, err)
		}
	}
	snap := &wsrf.Snapshot{Key: key, Props: r.initialProperties(spec, img.Digest, r.now().UTC())}
	if err := r.seal(ctx, snap, chain); err != nil {
		return fmt.Errorf("%w: sign the manifest: %w", errdefs.ErrCreation, err)
	}
	term := spec.Termination
	if err := r.Workspaces.CreatePrivate(ctx, key, snap.Props, chain.encode(), &term); err != nil {
		return fmt.Errorf("%w: %w", errdefs.ErrCreation, err)
	}
	ok = true
	return nil
}

// initialProperties builds a new workspace's property document from its description.
func (r *Repository) initialProperties(spec CreateSpec, base string, now time.Time) []*etree.Element {
	var props []*etree.Element
	for _, c := range spec.Description.ChildElements() {
		q := wsa.QName{Space: c.NamespaceURI(), Local: c.Tag}
		switch q {
		case PropCategory, PropHardware, PropNetwork, PropSoftware, PropCapability:
			props = append(props, wsa.Detach(c))
		}
	}
	lc := etree.NewElement("p:lifeCycle")
	lc.CreateAttr("xmlns:p", vwsns.Workspace)
	if spec.RequestedLifetime > 0 {
		lc.CreateElement("p:requestedLifetime").SetText(wsrf.FormatDuration(spec.RequestedLifetime))
	}
	lc.CreateElement("p:terminationTime").SetText(wsrf.FormatTime(spec.Termination))
	props = append(props, imageDigestProp("base", base))
	if spec.KernelImage != "" {
		props = append(props, imageDigestProp("kernel", spec.KernelImage))
	}
	if spec.InitrdImage != "" {
		props = append(props, imageDigestProp("initrd", spec.InitrdImage))
	}
	return append(props,
		wsrf.TextProperty(PropState, "shutdown"),
		wsrf.TextProperty(PropCreationTime, wsrf.FormatTime(now)),
		lc,
		wsrf.TextProperty(PropLastModified, wsrf.FormatTime(now)),
		wsrf.TextProperty(PropDeployment, "in-repository"),
		wsrf.TextProperty(PropOwner, spec.Owner),
		wsrf.TextProperty(PropName, spec.Name),
	)
}

// imageDigestProp is a vw:imageDigest property.
func imageDigestProp(role, digest string) *etree.Element {
	e := etree.NewElement("p:imageDigest")
	e.CreateAttr("xmlns:p", vwsns.Workspace)
	e.CreateElement("p:role").SetText(role)
	e.CreateElement("p:digest").SetText(digest)
	return e
}

// setImageDigest replaces the vw:imageDigest properties of role by one for digest
// ("": none).
func setImageDigest(s *wsrf.Snapshot, role, digest string) {
	kept := s.Props[:0]
	for _, p := range s.Props {
		if p.Tag == PropImageDigest.Local && p.NamespaceURI() == PropImageDigest.Space {
			if r := p.SelectElement("role"); r != nil && strings.TrimSpace(r.Text()) == role {
				continue
			}
		}
		kept = append(kept, p)
	}
	s.Props = kept
	if digest != "" {
		s.Props = append(s.Props, imageDigestProp(role, digest))
	}
}

func text(s *wsrf.Snapshot, q wsa.QName) string {
	if p := s.Property(q); p != nil {
		return strings.TrimSpace(p.Text())
	}
	return ""
}

func setText(s *wsrf.Snapshot, q wsa.QName, v string) {
	for _, p := range s.Props {
		if p.Tag == q.Local && p.NamespaceURI() == q.Space {
			p.SetText(v)
			return
		}
	}
	s.Props = append(s.Props, wsrf.TextProperty(q, v))
}

func removeProp(s *wsrf.Snapshot, q wsa.QName) {
	kept := s.Props[:0]
	for _, p := range s.Props {
		if !(p.Tag == q.Local && p.NamespaceURI() == q.Space) {
			kept = append(kept, p)
		}
	}
	s.Props = kept
}

// inRepository refuses operations on a workspace that is out on a host.
func inRepository(s *wsrf.Snapshot, requested string) error {
	if d := text(s, PropDeployment); d != "in-repository" {
		return errdefs.WithAdvice(&errdefs.StateError{Current: d, Requested: requested}, "undeploy the workspace first")
	}
	return nil
}

// Clone copies workspace key under a new name, copy-on-write: the source's overlay is
// frozen into a shared read-only layer and both workspaces continue on fresh overlays
// above it, so their content is equal and later changes stay apart.
//
// Crash safety: the layer is a hard link of the source's overlay; the clone's row is
// committed first, then the source's; a crash between the two leaves the source on an
// overlay that is also a layer, which the start-up sweep rolls forward.
func (r *Repository) Clone(ctx context.Context, key, name, owner string, termination time.Time) (*Created, error) {
	return r.CloneRequesting(ctx, key, name, owner, termination, 0)
}

// CloneRequesting is Clone for a caller who asked for requested as the clone's
// lifetime (0: none), which its vw:lifeCycle records, as Create's does.
func (r *Repository) CloneRequesting(ctx context.Context, key, name, owner string, termination time.Time, requested time.Duration) (*Created, error) {
	cloneKey := newID()
	if name == "" {
		name = "ws-" + cloneKey[:12]
	}
	caller := identity.From(ctx)
	scopes, release, err := r.reserveWorkspace(caller, termination.Sub(r.now()))
	if err != nil {
		return nil, err
	}
	if err := r.reserveName(ctx, name, cloneKey, caller); err != nil {
		release()
		return nil, err
	}
	r.layersMu.RLock()
	defer r.layersMu.RUnlock()
	var oldOverlay, srcNew, layerFile string
	cloneCreated := false
	err = r.Workspaces.Modify(ctx, key, func(s *wsrf.Snapshot) (err error) {
		if err := inRepository(s, "cloned"); err != nil {
			return err
		}
		chain, err := decodeChain(s.Private)
		if err != nil {
			return err
		}
		if chain.Seal == "" { // see CheckOut: only the start-up sweep signs such a record
			return r.unsealedError(ctx, key)
		}
		// Both manifests signed below, the clone's and the source's, restate the
		// source's record (base, kernel, initrd, layers, …): it must be the one the
		// repository signed, or an edit of the store would be signed into both.
		// Checked before anything is made, so a refusal leaves nothing behind.
		if err := r.verifySeal(ctx, s, chain); err != nil {
			if !errors.Is(err, errdefs.ErrImageIntegrity) {
				return err
			}
			return errdefs.WithAdvice(fmt.Errorf("workspace %s cannot be cloned, its record is not the one the repository signed: %w", key, err),
				"the source's record was changed outside vws, and no clone was made: restore the source workspace's record from a backup, or destroy it")
		}
		srcDir := r.workspaceDir(key)
		oldOverlay = chain.Overlay
		var made []string // undone on failure, newest first
		defer func() {
			if err != nil {
				for i := len(made) - 1; i >= 0; i-- {
					os.RemoveAll(made[i])
				}
				if layerFile != "" {
					os.Remove(layerFile)
				}
			}
		}()
		// The source's overlay bytes, too, must be the ones signed: the clone starts
		// from them (checked on the frozen layer, or here when nothing is frozen).
		changedOverlay := func(d string) error {
			return errdefs.WithAdvice(fmt.Errorf("%w: workspace %s cannot be cloned: its overlay changed in the repository's store (it hashes to %s; %s was signed)",
				errdefs.ErrImageIntegrity, key, d, chain.OverlayDigest),
				"the file was changed outside vws, and no clone was made: restore it from a backup, or destroy the workspace")
		}
		// A source cloned before whose overlay holds nothing of its own since (its
		// last clone froze what it had) is not frozen into another layer: the clone
		// stands on the same top layer, and the source stays as it is. A workspace
		// cloned for every job keeps its chain as deep as its changes made it, not one
		// layer deeper per clone (every deploy opens every layer).
		unwritten, err := qcow2.Unwritten(filepath.Join(srcDir, chain.Overlay))
		if err != nil {
			return fmt.Errorf("%w: read the source's overlay: %w", errdefs.ErrCreation, err)
		}
		unwritten = unwritten && len(chain.Layers) > 0
		below, belowFormat := "", "qcow2"
		if unwritten {
			if d, _, err := fileDigest(filepath.Join(srcDir, chain.Overlay)); err != nil {
				return fmt.Errorf("%w: digest the source's overlay: %w", errdefs.ErrCreation, err)
			} else if d != chain.OverlayDigest {
				return changedOverlay(d)
			}
			if below, belowFormat, err = chain.top(r); err != nil {
				return fmt.Errorf("%w: the image below the source's overlay: %w", errdefs.ErrCreation, err)
			}
		} else {
			lay := layer{ID: newID()}
			layerFile = r.layerPath(lay.ID)
			if err := os.Link(filepath.Join(srcDir, chain.Overlay), layerFile); err != nil {
				layerFile = ""
				return fmt.Errorf("%w: freeze layer: %w", errdefs.ErrCreation, err)
			}
			if lay.Digest, lay.Size, err = fileDigest(layerFile); err != nil {
				return fmt.Errorf("%w: digest layer: %w", errdefs.ErrCreation, err)
			}
			if lay.Digest != chain.OverlayDigest {
				return changedOverlay(lay.Digest)
			}
			chain.Layers = append(chain.Layers, lay)
			below = layerFile
		}

		// The clone: a fresh overlay on the layer.
		cloneDir := r.workspaceDir(cloneKey)
		if err := os.Mkdir(cloneDir, 0o700); err != nil {
			return fmt.Errorf("%w: %w", errdefs.ErrCreation, err)
		}
		made = append(made, cloneDir)
		cloneChain := *chain
		cloneChain.Overlay, cloneChain.Lock = overlayName(1), ""
		// A clone starts without the source's saved RAM: a hypervisor's save file names
		// the source's domain, and two workspaces resuming one memory image would be
		// one machine twice. Its disk is what the source's was when it was saved.
		cloneChain.Memory, cloneChain.MemoryDigest, cloneChain.MemorySize = "", "", 0
		cloneChain.OverlayDigest, cloneChain.OverlaySize = "", 0
		cloneChain.OwnerAttributes, cloneChain.QuotaScopes, cloneChain.RunScopes, cloneChain.RunMemoryMiB = caller.Attributes, scopes, nil, 0
		if err := qcow2.CreateOverlay(filepath.Join(cloneDir, cloneChain.Overlay), below, belowFormat, chain.VirtualSize); err != nil {
			return fmt.Errorf("%w: clone overlay: %w", errdefs.ErrCreation, err)
		}
		synced := []string{r.workspaceDir(""), cloneDir}
		if !unwritten {
			// The source: a fresh overlay on the same layer.
			chain.Overlay = nextOverlayName(chain.Overlay)
			chain.OverlayDigest, chain.OverlaySize = "", 0
			srcNew = filepath.Join(srcDir, chain.Overlay)
			if err := qcow2.CreateOverlay(srcNew, layerFile, "qcow2", chain.VirtualSize); err != nil {
				return fmt.Errorf("%w: source overlay: %w", errdefs.ErrCreation, err)
			}
			made = append(made, srcNew)
			synced = append(synced, srcDir, filepath.Dir(layerFile))
		}
		for _, d := range synced {
			if err := syncDir(d); err != nil {
				return fmt.Errorf("%w: %w", errdefs.ErrCreation, err)
			}
		}

		now := r.now().UTC()
		props := make([]*etree.Element, 0, len(s.Props))
		for _, p := range s.Props {
			q := wsa.QName{Space: p.NamespaceURI(), Local: p.Tag}
			switch q {
			case PropName, PropOwner, PropCreationTime, PropLastModified, PropLifeCycle:
				continue
			}
			props = append(props, p.Copy())
		}
		lc := etree.NewElement("p:lifeCycle")
		lc.CreateAttr("xmlns:p", vwsns.Workspace)
		if requested > 0 {
			lc.CreateElement("p:requestedLifetime").SetText(wsrf.FormatDuration(requested))
		}
		lc.CreateElement("p:terminationTime").SetText(wsrf.FormatTime(termination))
		props = append(props, lc, wsrf.TextProperty(PropCreationTime, wsrf.FormatTime(now)), wsrf.TextProperty(PropLastModified, wsrf.FormatTime(now)),
			wsrf.TextProperty(PropOwner, owner), wsrf.TextProperty(PropName, name))
		cs := &wsrf.Snapshot{Key: cloneKey, Props: props}
		setImageDigest(cs, "memory", "")
		if chain.Memory != "" {
			setText(cs, PropState, "shutdown")
		}
		if err := r.seal(ctx, cs, &cloneChain); err != nil {
			return fmt.Errorf("%w: sign the clone's manifest: %w", errdefs.ErrCreation, err)
		}
		if !unwritten {
			if err := r.seal(ctx, s, chain); err != nil {
				return fmt.Errorf("%w: sign the source's manifest: %w", errdefs.ErrCreation, err)
			}
		}
		if err := r.Workspaces.CreatePrivate(ctx, cloneKey, cs.Props, cloneChain.encode(), &termination); err != nil {
			return fmt.Errorf("%w: %w", errdefs.ErrCreation, err)
		}
		cloneCreated = true
		if !unwritten {
			s.Private = chain.encode()
		} else {
			oldOverlay = "" // the source keeps it
		}
		return nil
	})
	if err != nil {
		undone := true
		if cloneCreated {
			// The clone's row was committed but the source's was not: undo the clone, so
			// the source keeps its overlay and nothing shares it.
			if derr := r.Workspaces.Destroy(context.WithoutCancel(ctx), cloneKey); derr != nil {
				r.log.Error("undo clone", "clone", cloneKey, "err", derr)
				undone = false
			}
			os.Remove(srcNew) // the source's next overlay, which its unwritten row named
			// The layer is left to the collector the destroy started: the clone's record
			// was listed, so a clone of the clone may stand on it by now.
		}
		if undone {
			r.releaseName(name, cloneKey) // else the clone's record still bears it
		}
		if !cloneCreated {
			// A clone whose row was written gave its quota back when it was destroyed
			// (or still holds it, if that failed): released once, not twice.
			release()
		}
		if !undone {
			return nil, err // the clone's record stays: not "nothing was created"
		}
		return nil, r.noRoom("clone", cloneKey, "clone the workspace again", err)
	}
	// The old overlay's inode lives on as the layer; drop its workspace name — once
	// the commits that replaced it are on disk (else the start-up sweep drops it).
	if oldOverlay != "" && r.durable(ctx, "clone") {
		os.Remove(filepath.Join(r.workspaceDir(key), oldOverlay))
	}
	r.audit.Record(ctx, "clone", cloneKey, "done", "source="+key+" name="+name)
	return &Created{Key: cloneKey, Name: name, Termination: termination}, nil
}

// noRoom turns a Create or Clone that failed for want of room in the repository's
// storage (its files or its database, both in the data directory) into a failure
// that says so, where, and who can make room; other errors are returned as they are.
// Both undo what they made before returning, so nothing was created. The cause names
// a file only the site administrator can act on: it goes to the log.
func (r *Repository) noRoom(op, key, again string, err error) error {
	if !store.IsFull(err) {
		return err
	}
	where := "its data directory, " + r.dir
	if store.IsDatabaseServerFull(err) {
		where = "the disk of its database, " + r.storage
	}
	r.log.Error(op+": the repository's storage is full; nothing was created", "key", key, "where", where, "err", err)
	return errdefs.WithAdvice(&storageFullError{where: where, cause: err}, "the site administrator must free space there, then "+again)
}

// storageFullError is a workspace the repository's storage had no room for.
type storageFullError struct {
	where string
	cause error
}

func (e *storageFullError) Error() string {
	return fmt.Sprintf("%s: the repository's storage is full (no room left in %s); nothing was created", errdefs.ErrCreation, e.where)
}

func (e *storageFullError) Unwrap() []error { return []error{errdefs.ErrCreation, e.cause} }

// beforeDestroy lets any workspace be destroyed, also one a manager holds (a grid
// client's Destroy, or its lifetime running out, ends the workspace wherever it is):
// the record and files go, the lock with them, and the manager, finding the
// workspace unknown, stops its domain and removes its files.
func (r *Repository) beforeDestroy(ctx context.Context, s *wsrf.Snapshot) error {
	cause := r.destroyCause(ctx, s)
	if d := text(s, PropDeployment); d != "in-repository" {
		r.audit.Record(ctx, "destroy", s.Key, "while-deployed", "deployment="+d+" host="+text(s, PropHost)+" cause="+cause)
	}
	// afterDestroy, which records the outcome, is not given ctx: the caller and cause
	// wait for it here (it runs next, under the same resource lock, if the record goes).
	r.destroying.Store(s.Key, destroyer{caller: identity.From(ctx), cause: cause})
	return nil
}

// destroyer is who destroys a workspace, and why.
type destroyer struct {
	caller identity.Identity
	cause  string
}

// destroyCause tells a client's Destroy from the lifetime running out (the expiry
// scheduler destroys outside any request) and from the undo of a Clone whose source
// could not be committed.
func (r *Repository) destroyCause(ctx context.Context, s *wsrf.Snapshot) string {
	if req, ok := container.RequestFrom(ctx); ok && req.Operation != nil {
		switch req.Operation.Name {
		case "Destroy":
			return "destroy-request"
		case "Clone":
			return "clone-undone"
		}
		return "request-" + req.Operation.Name
	}
	if s.Termination != nil && !s.Termination.After(r.now()) {
		return "lifetime-expired"
	}
	return "repository" // in-process, outside any request
}

// afterDestroy removes a destroyed workspace's files, its name, and layers nobody
// uses any more. The record is already gone, so a crash here leaves only files the
// start-up sweep removes.
func (r *Repository) afterDestroy(s *wsrf.Snapshot) {
	if n := text(s, PropName); n != "" {
		r.releaseName(n, s.Key)
	}
	if chain, err := decodeChain(s.Private); err == nil {
		r.ledger.Add(chain.QuotaScopes, policy.Usage{Workspaces: -1})
		r.ledger.Add(chain.RunScopes, policy.Usage{Running: -1, MemoryMiB: -chain.RunMemoryMiB})
	}
	// Once the record's removal is on disk: an OS crash must not bring back a record
	// whose files are gone (if this fails, the start-up sweep removes them).
	if r.durable(context.Background(), "destroy") {
		if err := os.RemoveAll(r.workspaceDir(s.Key)); err != nil {
			r.log.Error("remove destroyed workspace's files", "key", s.Key, "err", err)
		}
	}
	ctx, cause := context.Background(), "unknown"
	if d, ok := r.destroying.LoadAndDelete(s.Key); ok {
		ctx, cause = identity.With(ctx, d.(destroyer).caller), d.(destroyer).cause
	}
	r.audit.Record(ctx, "destroy", s.Key, "done", "name="+text(s, PropName)+" owner="+text(s, PropOwner)+" cause="+cause)
	if r.subs != nil {
		r.rememberGone(s.Key, text(s, PropOwner), text(s, PropName))
		r.subs.Terminated(s.Key, terminationReason(cause))
	}
	r.collectSoon() // not under the destroyed resource's lock
	if f := r.destroyed.Load(); f != nil && text(s, PropDeployment) != "in-repository" {
		(*f)(s.Key)
	}
}

// terminationReason says why a workspace ended, to its subscribers.
func terminationReason(cause string) string {
	switch cause {
	case "destroy-request":
		return "destroyed at a client's request"
	case "lifetime-expired":
		return "its lifetime expired"
	case "clone-undone":
		return "the clone that made it failed"
	}
	return "destroyed (" + cause + ")"
}

// NotifyDestroyed has f told the key of every workspace destroyed while deployed:
// a Manager in this process then removes it at once, rather than when it next asks.
func (r *Repository) NotifyDestroyed(f func(key string)) { r.destroyed.Store(&f) }

// collectSoon has the layer collector pass once more, after this call, in the
// background. One collector runs at a time, and the destroys that come while it runs
// share its next pass: a mass expiry then costs a few passes over the workspaces, not
// one per destroy (N² work, and N writers queued on layersMu ahead of every Clone).
// A pass begins after the request, so it sees the record the caller removed as gone,
// and collectLayers makes that removal durable before deleting a layer it freed.
func (r *Repository) collectSoon() {
	r.collectMu.Lock()
	defer r.collectMu.Unlock()
	if r.collecting {
		r.collectAgain = true
		return
	}
	if r.collectClosed {
		return
	}
	r.collecting = true
	r.collectDone.Add(1)
	go func() {
		defer r.collectDone.Done()
		for {
			r.collectLayers()
			r.collectMu.Lock()
			if !r.collectAgain {
				r.collecting = false
				r.collectMu.Unlock()
				return
			}
			r.collectAgain = false
			r.collectMu.Unlock()
		}
	}()
}

// collectLayers removes layer files no workspace's chain names.
func (r *Repository) collectLayers() {
	r.layersMu.Lock()
	defer r.layersMu.Unlock()
	used := r.usedLayers()
	entries, err := os.ReadDir(filepath.Join(r.dir, "layers"))
	if err != nil {
		return
	}
	unused := slices.DeleteFunc(entries, func(e os.DirEntry) bool { return used[strings.TrimSuffix(e.Name(), ".qcow2")] })
	// A layer goes unused when the last record naming it is removed: like that
	// workspace's directory, it goes only once the removal is on disk, else an OS crash
	// could bring back a record whose layer is gone (the start-up sweep removes it).
	if len(unused) == 0 || !r.durable(context.Background(), "layer collection") {
		return
	}
	for _, e := range unused {
		os.Remove(filepath.Join(r.dir, "layers", e.Name()))
		r.log.Info("removed unused layer", "layer", strings.TrimSuffix(e.Name(), ".qcow2"))
	}
}

func (r *Repository) usedLayers() map[string]bool {
	used := map[string]bool{}
	r.Workspaces.Range(func(s *wsrf.Snapshot) bool {
		if c, err := decodeChain(s.Private); err == nil {
			for _, l := range c.Layers {
				used[l.ID] = true
			}
		}
		return true
	})
	return used
}

// InUse reports whether any workspace stands on the pool image digest: as its base, or
// as the kernel or initrd it boots.
func (r *Repository) InUse(ctx context.Context, digest string) ([]string, error) {
	const shown = 5 // enough to say which; the count says how many more
	var users []string
	n := 0
	r.Workspaces.Range(func(s *wsrf.Snapshot) bool {
		if c, err := decodeChain(s.Private); err == nil && (c.Base == digest || c.Kernel == digest || c.Initrd == digest) {
			if n++; n <= shown {
				users = append(users, fmt.Sprintf("%s %s", text(s, PropName), s.Key))
			}
		}
		return true
	})
	if n > shown {
		users = append(users, fmt.Sprintf("and %d more", n-shown))
	}
	return users, nil
}

// setLifeCycleTermination mirrors the WS-ResourceLifetime termination time in the
// description's vw:lifeCycle, so both properties tell the same story.
func setLifeCycleTermination(s *wsrf.Snapshot, now time.Time) {
	lc := s.Property(PropLifeCycle)
	if lc == nil {
		lc = etree.NewElement("p:lifeCycle")
		lc.CreateAttr("xmlns:p", vwsns.Workspace)
		s.Props = append(s.Props, lc)
	}
	prefix := lc.Space
	if t := lc.SelectElement("terminationTime"); t != nil {
		lc.RemoveChild(t)
	}
	if s.Termination != nil {
		lc.CreateElement(qualify(prefix, "terminationTime")).SetText(wsrf.FormatTime(*s.Termination))
	}
	setText(s, PropLastModified, wsrf.FormatTime(now.UTC()))
}

func qualify(prefix, local string) string {
	if prefix == "" {
		return local
	}
	return prefix + ":" + local
}

// durable makes the database's commits so far survive an operating-system crash
// before op removes files they made obsolete; false (logged) when it cannot: the
// files are then left to the start-up sweep, which removes what no record names.
func (r *Repository) durable(ctx context.Context, op string) bool {
	if err := makeDurable(ctx, r.db); err != nil {
		r.log.Warn(op+": the database's commit is not yet durable; obsolete files are left to the next start", "err", err)
		return false
	}
	return true
}
