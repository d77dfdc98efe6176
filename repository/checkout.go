package repository

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"time"

	"github.com/beevik/etree"

	"github.com/vws-grid/vws/internal/chunkhash"
	"github.com/vws-grid/vws/internal/container"
	"github.com/vws-grid/vws/internal/dialect"
	"github.com/vws-grid/vws/internal/errdefs"
	"github.com/vws-grid/vws/internal/identity"
	"github.com/vws-grid/vws/internal/vwsns"
	"github.com/vws-grid/vws/internal/wsa"
	"github.com/vws-grid/vws/internal/wsrf"
	"github.com/vws-grid/vws/policy"
)

// hostRE is the schema's HostName.
var hostRE = regexp.MustCompile(`^[A-Za-z0-9\[][A-Za-z0-9.:\[\]\-]{0,259}$`)

var deploymentStates = map[string]bool{"in-repository": true, "staging": true, "deployed": true, "unstaging": true}
var workspaceStates = map[string]bool{"shutdown": true, "paused": true, "running": true, "corrupted": true}

// ImageRef is one image file a manager must stage, by content. Path is where the
// repository serves it, relative to its base URL: /images/<digest> for pool images,
// /workspaces/<key>/files/<digest> (lock token required) for the workspace's own.
// Chunks, for pool images (base, kernel, initrd), lists the digests of the file's
// pieces, so that a manager checks them on every core; empty for the others.
type ImageRef struct {
	Role, Digest, Format, Backing string
	Size                          int64
	Path                          string
	Chunks                        chunkhash.List
}

// Manifest is what CheckOut hands a manager: who owns the workspace, the lock, every
// image by digest and size (base, layers bottom first, overlay), and the description.
type Manifest struct {
	Key, Name, Owner string
	Issued           time.Time
	Holder, Token    string
	Images           []ImageRef
	Description      *etree.Element
	// Signed is the vw:Manifest as the Repository signed it.
	Signed *etree.Element
}

// maxRequestIDLen bounds a CheckOut's RequestID (workspace-service.xsd says so too).
const maxRequestIDLen = 128

// CheckOut locks workspace key for deployment on host and returns its manifest. A
// workspace is checked out to one host at a time. manager, the EPR of the host's VW
// Manager, becomes the workspace's vw:managerReference (nil: none).
//
// user is the grid user the manager acts for: the user must be allowed to manage the
// workspace (decided before its state is told), and, unless the call asks again for a
// lock this holder already has, the deployment must fit the owner's running and memory
// quotas; nil only for that re-ask.
//
// requestID, when not "", is the manager's name for this check-out, the same when it
// asks again: once the check-out it took is checked in, a CheckOut under that name is
// a late copy and is refused.
func (r *Repository) CheckOut(ctx context.Context, key, host, requestID string, manager *wsa.EPR, user *identity.Identity) (*Manifest, error) {
	if !hostRE.MatchString(host) {
		return nil, errdefs.WithAdvice(fmt.Errorf("%w: host %q is not a host name", errdefs.ErrBadRequest, host), "send the manager's host name")
	}
	// The record keeps the latest ended names: bounded, so no host can grow it.
	if len(requestID) > maxRequestIDLen {
		return nil, errdefs.WithAdvice(fmt.Errorf("%w: RequestID is %d characters; at most %d are taken", errdefs.ErrBadRequest, len(requestID), maxRequestIDLen),
			"name the check-out with a short unique id (a UUID); nothing was changed")
	}
	holder := host
	if id := identity.From(ctx); !id.IsAnonymous() {
		holder = id.DN
		// A new check-out names where the workspace goes (vw:host, the host's offer is
		// charged): not a name another identity announces, as an announcement could
		// not. A re-ask (no user) only gets back, or withdraws, its holder's own lock.
		if by := r.hosts.AnnouncedBy(host, r.now()); user != nil && by != "" && by != id.String() {
			r.audit.Record(ctx, "check-out", key, "denied", "host name "+host+" is announced by "+by)
			return nil, errdefs.WithAdvice(fmt.Errorf("%w: host name %q is announced by %s, not by %s", errdefs.ErrAuthorization, host, by, id.DN),
				"a manager checks workspaces out under its own host name (vws serve --host-name); nothing was changed")
		}
	}
	var m *Manifest
	release := func() {}
	withdrawn := false
	var lockedElsewhere error // a re-ask that met another holder's lock: withdrawn all the same
	var charged int64         // memory of a new check-out, for placement
	var deployment string     // the workspace's deployment state, which a refusal names
	err := r.Workspaces.Modify(ctx, key, func(s *wsrf.Snapshot) error {
		release() // a retried fn must not count twice
		release = func() {}
		withdrawn, lockedElsewhere, charged = false, nil, 0
		deployment = text(s, PropDeployment)
		chain, err := decodeChain(s.Private)
		if err != nil {
			return err
		}
		if requestID != "" && chain.ended(holder, requestID) {
			return errdefs.WithAdvice(&errdefs.StateError{Current: deployment, Requested: "staging",
				Err: fmt.Errorf("%w: check-out %s of workspace %s has ended (checked in, or withdrawn by its host); this is a late copy of a request its manager gave up on",
					errdefs.ErrState, requestID, key)}, "nothing was changed; a manager that deploys the workspace sends a new CheckOut")
		}
		// A manager that lost the answer to its CheckOut (it crashed, or the connection
		// dropped) asks again: the same holder on the same host, still staging, gets the
		// same lock back, so it can finish or undo the deploy. Under the check-out's
		// own RequestID when both name one: another name is another deploy (a second
		// machine under the same host name and credential), which meets the lock.
		sameRequest := requestID == "" || chain.LockRequest == "" || requestID == chain.LockRequest
		reissue := chain.Lock != "" && sameRequest && text(s, PropHost) == host && text(s, PropLockHolder) == holder && text(s, PropDeployment) == "staging"
		// The user is decided on before anything is said of the workspace's state: a
		// user who may not manage it must not learn where it is deployed, or that it is.
		// Also on a re-ask that names one: a lock is handed back only to its user.
		if user != nil {
			if err := r.authorizeFor(ctx, *user, s); err != nil {
				return err
			}
		}
		if chain.Lock != "" && !reissue {
			locked := errdefs.WithAdvice(&errdefs.LockedError{Holder: text(s, PropLockHolder) + " on " + text(s, PropHost)},
				"wait until that manager undeploys the workspace")
			if user != nil || requestID == "" {
				return locked
			}
			// Asked again for a lock another holds: the manager undoes its deploy on
			// this answer too, so its first request, should it arrive once that lock
			// is released, must not lock the workspace for nobody.
			chain.endRequest(holder, requestID)
			s.Private = chain.encode()
			lockedElsewhere = locked
			return nil
		}
		if !reissue && user == nil && requestID != "" {
			// Asked again for a lock it does not hold: the first request never arrived,
			// or has not yet. The manager undoes its deploy on this answer, so the
			// request is withdrawn, and its copy refused should it arrive later.
			chain.endRequest(holder, requestID)
			s.Private = chain.encode()
			withdrawn = true
			return nil
		}
		if !reissue {
			if user == nil {
				return errdefs.WithAdvice(fmt.Errorf("%w: CheckOut names no OnBehalfOf user", errdefs.ErrAuthorization),
					"a manager checks a workspace out for the user whose Deploy it serves: send OnBehalfOf")
			}
			if err := inRepository(s, "staging"); err != nil {
				return err
			}
		}
		// Only the start-up sweep signs a record without a signed manifest (the upgrade
		// from before manifests were signed): one here is refused, not signed.
		if chain.Seal == "" {
			return r.unsealedError(ctx, key)
		}
		// The overlay is hashed again: its bytes, not just the record, must still be
		// what the manifest was signed over.
		overlay := filepath.Join(r.workspaceDir(key), chain.Overlay)
		od, osize, err := fileDigest(overlay)
		if err != nil {
			return fmt.Errorf("digest overlay: %w", err)
		}
		now := r.now().UTC()
		if !reissue {
			chain.Lock, chain.LockRequest = newID(), requestID
		}
		stored := chain.OverlayDigest
		chain.OverlayDigest, chain.OverlaySize = od, osize
		imgs, err := r.manifestImages(ctx, key, chain)
		if err != nil {
			return err
		}
		if stored != "" && stored != od {
			return errdefs.WithAdvice(fmt.Errorf("%w: the overlay of workspace %s changed in the repository's store (it hashes to %s; %s was signed)", errdefs.ErrImageIntegrity, key, od, stored),
				"the file was changed outside vws: restore it from a backup, or destroy the workspace")
		}
		signed, unlisted, err := sealed(s, chain, imgs)
		if err != nil {
			return err
		}
		if signed, err = r.renewed(ctx, s, chain, signed, unlisted); err != nil {
			return err
		}
		if !reissue {
			// The deployment counts as running, with its memory, against the owner's
			// quotas until it is checked in.
			owner := ownerIdentity(text(s, PropOwner), chain.OwnerAttributes)
			quotas := r.rules().Quotas(owner)
			mem := memoryMiB(s)
			rel, err := r.ledger.Reserve(quotas, policy.Usage{Running: 1, MemoryMiB: mem})
			if err != nil {
				return err
			}
			release = rel
			chain.RunScopes, chain.RunMemoryMiB = policy.Scopes(quotas), mem
			charged = mem
		}
		m = &Manifest{Key: key, Name: text(s, PropName), Owner: text(s, PropOwner), Issued: now, Holder: holder, Token: chain.Lock,
			Description: describeSnapshot(s), Images: imgs, Signed: signed}
		setText(s, PropDeployment, "staging")
		setText(s, PropHost, host)
		setText(s, PropLockHolder, holder)
		setText(s, PropLastModified, wsrf.FormatTime(now))
		removeProp(s, PropStateDetail)
		removeProp(s, PropHostSilentSince)
		// A re-ask without a reference (a manager's reconciler asking again) is still
		// the manager the lock was taken for: its reference stays, so the workspace
		// still names it (and that manager can still disown it).
		if !reissue || manager != nil {
			removeProp(s, PropManagerRef)
			if manager != nil {
				s.Props = append(s.Props, managerRefElement(manager))
			}
		}
		s.Private = chain.encode()
		return nil
	})
	if err != nil {
		release()
		return nil, err
	}
	if lockedElsewhere != nil {
		r.audit.Record(ctx, "check-out", key, "withdrawn", "host="+host+" request="+requestID+" (locked to another holder)")
		return nil, lockedElsewhere
	}
	if withdrawn {
		r.audit.Record(ctx, "check-out", key, "withdrawn", "host="+host+" request="+requestID)
		return nil, errdefs.WithAdvice(&errdefs.StateError{Current: deployment, Requested: "staging",
			Err: fmt.Errorf("%w: workspace %s is not checked out to %s on %s: check-out %s never arrived, or has not yet; it is withdrawn, and refused should it arrive",
				errdefs.ErrState, key, holder, host, requestID)}, "nothing is locked for this host; a manager that deploys the workspace sends a new CheckOut")
	}
	if charged > 0 {
		var cacheable []string
		for _, img := range m.Images {
			if img.Role != "overlay" && img.Role != "memory" {
				cacheable = append(cacheable, img.Digest)
			}
		}
		r.hosts.Charge(host, charged, cacheable)
	}
	r.audit.Record(ctx, "check-out", key, "done", "host="+host)
	return m, nil
}

// managerRefElement is the vw:managerReference property: the children of the
// manager's EPR (as every EndpointReferenceContainerType element carries an EPR), in
// the WS-Addressing version of epr; renderManagerRef gives it in the reader's.
func managerRefElement(epr *wsa.EPR) *etree.Element {
	holder := etree.NewElement("holder")
	el := epr.ChildElement(holder, "vw:managerReference", "wsa")
	el.CreateAttr("xmlns:vw", vwsns.Workspace)
	holder.RemoveChild(el)
	return el
}

// renderManagerRef gives a stored vw:managerReference in the WS-Addressing version
// of dialect d: it is stored in the version its manager sent it in, and a GT4
// client reading it must get a 2004/03 EPR to call the manager with. Other
// properties pass as they are.
func renderManagerRef(d *dialect.Dialect, p *etree.Element) *etree.Element {
	if p.Tag != PropManagerRef.Local || p.NamespaceURI() != PropManagerRef.Space {
		return p
	}
	epr, err := wsa.ParseEPR(p)
	if err != nil || epr.Version == d.WSA {
		return p
	}
	epr.Version = d.WSA
	return managerRefElement(epr)
}

// describeSnapshot rebuilds the vw:virtualWorkspace description from a workspace's
// properties. Every instance goes in: a second hw:hardware that a SetResourceProperties
// Insert added is then refused by the schema, not left unchecked beside the first.
func describeSnapshot(s *wsrf.Snapshot) *etree.Element {
	d := etree.NewElement("vw:virtualWorkspace")
	d.CreateAttr("xmlns:vw", vwsns.Workspace)
	for _, q := range []wsa.QName{PropCategory, PropState, PropCreationTime, PropLifeCycle, PropLastModified, PropHardware, PropNetwork, PropSoftware, PropCapability} {
		for _, p := range s.Props {
			if p.Tag == q.Local && p.NamespaceURI() == q.Space {
				d.AddChild(p.Copy())
			}
		}
	}
	return d
}

// CheckInRequest is what the lock holder returns a workspace with.
type CheckInRequest struct {
	Token string
	// OverlayDigest is the overlay the workspace continues on: the one the repository
	// holds (unchanged), or one uploaded with PUT /workspaces/<key>/overlay during this
	// check-out. OverlaySize, when >= 0, must be its size.
	OverlayDigest string
	OverlaySize   int64
	// MemoryDigest is the saved RAM of a serialized workspace (State paused): the
	// memory image the repository holds, or one uploaded with PUT …/memory. "": none,
	// and any previous memory image is dropped. MemorySize, when >= 0, must be its size.
	MemoryDigest string
	MemorySize   int64
	// State is the state the workspace was left in; "" means shutdown.
	State string
	// takeBack, set by Reclaim and Disown, hands the workspace back without the
	// upload of a deployment that ended well, when it holds under the workspace's lock:
	// the silence of its host (Reclaim; the host's credentials are not needed), the
	// manager it is checked out to saying it holds no record of it (Disown).
	takeBack func(*wsrf.Snapshot) error
	detail   string // vw:stateDetail after the check-in
}

// CheckIn returns a checked-out workspace to the repository and releases its lock.
// The overlay (and memory image) it continues with must be the repository's own or an
// upload of this check-out; adopting an upload links the pending file in under the next
// generation's name, and the superseded files go once the record is committed.
func (r *Repository) CheckIn(ctx context.Context, key string, req CheckInRequest) (string, time.Time, error) {
	state := req.State
	if state == "" {
		state = "shutdown"
	}
	if !workspaceStates[state] {
		return "", time.Time{}, fmt.Errorf("%w: state %q is not shutdown, paused, running or corrupted", errdefs.ErrBadRequest, state)
	}
	// A workspace in the repository runs nowhere: it comes back shut down, serialized
	// (paused, with its memory image), or corrupted — never running, or its properties
	// would say so of a workspace no host deploys.
	if state == "running" {
		return "", time.Time{}, errdefs.WithAdvice(fmt.Errorf("%w: a workspace checks in shut down, serialized (paused, with its memory image) or corrupted, not running", errdefs.ErrBadRequest),
			"shut the workspace down or serialize it first, and check it in in the state that left it; nothing was changed")
	}
	if req.MemoryDigest != "" && state != "paused" {
		return "", time.Time{}, errdefs.WithAdvice(fmt.Errorf("%w: a memory image comes with state paused (a serialized workspace), not %s", errdefs.ErrBadRequest, state),
			"check in with State paused, or without MemoryDigest")
	}
	if req.MemoryDigest == "" && state == "paused" {
		return "", time.Time{}, errdefs.WithAdvice(fmt.Errorf("%w: a paused workspace checks in with its saved memory image, and MemoryDigest is missing", errdefs.ErrBadRequest),
			"upload the saved RAM (PUT /workspaces/"+key+"/memory) and send its digest as MemoryDigest, or shut the workspace down and check it in as shutdown")
	}
	for _, d := range []string{req.OverlayDigest, req.MemoryDigest} {
		if d != "" && !digestRE.MatchString(d) {
			return "", time.Time{}, fmt.Errorf("%w: %q is not a digest (sha256:<64 lowercase hex>)", errdefs.ErrBadRequest, d)
		}
	}
	now := r.now().UTC()
	dir := r.workspaceDir(key)
	var linked []string          // made by fn: removed if the commit fails
	var drop []string            // superseded: removed after the commit
	var dropIfSame []os.FileInfo // pending files: removed after the commit unless replaced meanwhile
	var ranScopes []string       // the deployment's quota charge, given back after the commit
	var ranMemory int64
	// committing: fn is done and the record is being written. A write that fails may
	// still have committed (its answer lost): the record may name what fn linked.
	committing := false
	err := r.Workspaces.Modify(ctx, key, func(s *wsrf.Snapshot) error {
		linked, drop, dropIfSame, committing = nil, nil, nil, false
		chain, err := decodeChain(s.Private)
		if err != nil {
			return err
		}
		if chain.Lock == "" || chain.Lock != req.Token {
			holder := text(s, PropLockHolder)
			if holder == "" {
				holder = "nobody"
			}
			return refuse(errdefs.WithAdvice(&errdefs.LockedError{Holder: holder}, "only the manager that checked the workspace out may check it in, with its lock token"),
				tokenMismatch(s, chain))
		}
		if req.takeBack != nil {
			if err := req.takeBack(s); err != nil {
				return err
			}
		} else if err := heldByCaller(ctx, s); err != nil {
			return err
		}
		if chain.Seal == "" { // see CheckOut: a record changed outside vws meanwhile
			return r.unsealedError(ctx, key)
		}
		if chain.OverlayDigest == "" { // a record from before the digest was kept
			if chain.OverlayDigest, chain.OverlaySize, err = fileDigest(filepath.Join(dir, chain.Overlay)); err != nil {
				return fmt.Errorf("digest overlay: %w", err)
			}
		}
		// The manifest signed below restates the record (base, kernel, initrd, layers,
		// name, owner, …) beside the new overlay and memory image: the record must be
		// the one the repository signed. Compared as it was checked out, before this
		// check-in changes anything: nothing a deployment legitimately changes (lock,
		// state, deployment, host) is in the manifest, and the overlay and memory
		// image are still the checked-out ones (CheckOut compared the record with its
		// manifest, signed it again if need be, and stored both). Nothing is adopted
		// yet, so a refusal leaves the store and the workspace directory as they were:
		// the lock stays, and with it the check-out's uploads, until the record is
		// restored or the workspace is destroyed (which removes its directory; the
		// start-up sweep removes the uploads of a record restored without the lock).
		// A check-in that changes no image (a manager handing back a workspace it
		// refused to deploy, or one whose disk did not change) signs nothing: it only
		// releases the lock, and the stored manifest stays as it was — so a record
		// edited outside vws is handed back, still refused wherever it is signed or
		// deployed, rather than kept locked on a host that never ran it.
		// (Its sizes are checked below, as for any image that stays.)
		handBack := req.OverlayDigest == chain.OverlayDigest && req.MemoryDigest == chain.MemoryDigest
		if !handBack {
			if err := r.verifySeal(ctx, s, chain); err != nil {
				if !errors.Is(err, errdefs.ErrImageIntegrity) {
					return err
				}
				return errdefs.WithAdvice(fmt.Errorf("workspace %s cannot be checked in, its record is not the one the repository signed: %w", key, err),
					"the workspace's record was changed outside vws while it was deployed; nothing was checked in, and it stays checked out to its host: restore the record from a backup and check it in again, or destroy the workspace (destroying works in any state)")
			}
		}
		adopt := func(what, digest string, size int64, pendingName, next string) (int64, error) {
			fi, err := os.Stat(filepath.Join(dir, pendingName))
			if err != nil {
				return 0, errdefs.WithAdvice(fmt.Errorf("%w: %s %s has not been uploaded to the repository", errdefs.ErrImageIntegrity, what, digest),
					"upload it first: PUT /workspaces/"+key+"/"+what+" with the lock token, then check in with the digest that answer gives")
			}
			if size >= 0 && size != fi.Size() {
				return 0, fmt.Errorf("%w: %s %s is %d bytes, not %d", errdefs.ErrImageIntegrity, what, digest, fi.Size(), size)
			}
			os.Remove(filepath.Join(dir, next)) // a leftover of a check-in that did not commit
			if err := os.Link(filepath.Join(dir, pendingName), filepath.Join(dir, next)); err != nil {
				return 0, fmt.Errorf("adopt the uploaded %s: %w", what, err)
			}
			linked = append(linked, filepath.Join(dir, next))
			return fi.Size(), nil
		}
		// The overlay.
		if req.OverlayDigest == chain.OverlayDigest {
			if req.OverlaySize >= 0 && req.OverlaySize != chain.OverlaySize {
				return fmt.Errorf("%w: overlay %s is %d bytes, not %d", errdefs.ErrImageIntegrity, req.OverlayDigest, chain.OverlaySize, req.OverlaySize)
			}
		} else {
			if req.OverlayDigest == "" {
				return errdefs.WithAdvice(fmt.Errorf("%w: CheckIn names no overlay (the repository holds %s)", errdefs.ErrImageIntegrity, chain.OverlayDigest),
					"send OverlayDigest: the manifest's overlay digest if the disk is unchanged, else the digest the overlay upload answered")
			}
			next := nextOverlayName(chain.Overlay)
			size, err := adopt("overlay", req.OverlayDigest, req.OverlaySize, pendingOverlayName(req.OverlayDigest), next)
			if err != nil {
				return err
			}
			drop = append(drop, filepath.Join(dir, chain.Overlay))
			chain.Overlay, chain.OverlayDigest, chain.OverlaySize = next, req.OverlayDigest, size
		}
		// The memory image.
		switch {
		case req.MemoryDigest == "":
			if chain.Memory != "" {
				drop = append(drop, filepath.Join(dir, chain.Memory))
			}
			chain.Memory, chain.MemoryDigest, chain.MemorySize = "", "", 0
		case req.MemoryDigest == chain.MemoryDigest && chain.Memory != "":
			if req.MemorySize >= 0 && req.MemorySize != chain.MemorySize {
				return fmt.Errorf("%w: memory image %s is %d bytes, not %d", errdefs.ErrImageIntegrity, req.MemoryDigest, chain.MemorySize, req.MemorySize)
			}
		default:
			next := nextMemoryName(chain.Memory)
			size, err := adopt("memory", req.MemoryDigest, req.MemorySize, pendingMemoryName(req.MemoryDigest), next)
			if err != nil {
				return err
			}
			if chain.Memory != "" {
				drop = append(drop, filepath.Join(dir, chain.Memory))
			}
			chain.Memory, chain.MemoryDigest, chain.MemorySize = next, req.MemoryDigest, size
		}
		if len(linked) > 0 {
			if err := syncDir(dir); err != nil {
				return err
			}
		}
		// Every upload of this check-out is adopted or garbage once the lock is gone.
		entries, _ := os.ReadDir(dir)
		for _, e := range entries {
			if pendingRE.MatchString(e.Name()) {
				if fi, err := os.Stat(filepath.Join(dir, e.Name())); err == nil {
					dropIfSame = append(dropIfSame, fi)
				}
			}
		}
		chain.endRequest(text(s, PropLockHolder), chain.LockRequest)
		chain.Lock, chain.LockRequest = "", ""
		ranScopes, ranMemory = chain.RunScopes, chain.RunMemoryMiB
		chain.RunScopes, chain.RunMemoryMiB = nil, 0
		if !handBack {
			if err := r.seal(ctx, s, chain); err != nil {
				return fmt.Errorf("sign the checked-in manifest: %w", err)
			}
		}
		s.Private = chain.encode()
		setImageDigest(s, "memory", chain.MemoryDigest)
		setText(s, PropDeployment, "in-repository")
		setText(s, PropState, state)
		setText(s, PropLastModified, wsrf.FormatTime(now))
		removeProp(s, PropHost)
		removeProp(s, PropLockHolder)
		removeProp(s, PropManagerRef)
		removeProp(s, PropHostSilentSince)
		if state != "corrupted" {
			removeProp(s, PropStateDetail) // a host's explanation ends with its deployment
		}
		if req.detail != "" {
			setText(s, PropStateDetail, req.detail)
		}
		committing = true
		return nil
	})
	if err != nil {
		// After a failed write the linked files stay (links to the uploads, no room
		// taken): a retry links them again, and the start-up sweep removes those no
		// record names.
		for _, f := range linked {
			if !committing {
				os.Remove(f)
			}
		}
		r.auditRefusal(ctx, "check-in", key, err)
		return "", time.Time{}, err
	}
	r.ledger.Add(ranScopes, policy.Usage{Running: -1, MemoryMiB: -ranMemory})
	if !r.durable(ctx, "check-in") {
		drop, dropIfSame = nil, nil // the start-up sweep removes them
	}
	for _, f := range drop {
		if err := os.Remove(f); err != nil && !os.IsNotExist(err) {
			r.log.Warn("check-in: could not remove a superseded file; the next start removes it", "key", key, "file", f, "err", err)
		}
	}
	for _, fi := range dropIfSame {
		// A new check-out may have uploaded a file of the same name meanwhile.
		p := filepath.Join(dir, fi.Name())
		if cur, err := os.Stat(p); err == nil && os.SameFile(fi, cur) {
			os.Remove(p)
		}
	}
	r.audit.Record(ctx, "check-in", key, "done", "state="+state)
	return state, now, nil
}

// ReportState records a state change a manager observed on its host, and why
// (detail; "" when there is nothing to add).
func (r *Repository) ReportState(ctx context.Context, key, token, host, state, deployment, detail string, observed time.Time) (string, string, time.Time, error) {
	if !workspaceStates[state] {
		return "", "", time.Time{}, fmt.Errorf("%w: state %q is not shutdown, paused, running or corrupted", errdefs.ErrBadRequest, state)
	}
	if deployment != "" && !deploymentStates[deployment] {
		return "", "", time.Time{}, fmt.Errorf("%w: deployment %q is not in-repository, staging, deployed or unstaging", errdefs.ErrBadRequest, deployment)
	}
	now := r.now().UTC()
	var dep string
	stale := false
	err := r.Workspaces.Modify(ctx, key, func(s *wsrf.Snapshot) error {
		chain, err := decodeChain(s.Private)
		if err != nil {
			return err
		}
		if err := heldByCaller(ctx, s); err != nil {
			return err
		}
		if chain.Lock == "" || chain.Lock != token || text(s, PropHost) != host {
			why := tokenMismatch(s, chain)
			if chain.Lock != "" && chain.Lock == token {
				why = fmt.Sprintf("the report names host %q; the workspace is checked out on %s", host, text(s, PropHost))
			}
			return refuse(errdefs.WithAdvice(&errdefs.LockedError{Holder: text(s, PropLockHolder) + " on " + text(s, PropHost)},
				"only the manager holding the workspace reports its state, with its lock token"), why)
		}
		if deployment == "in-repository" {
			return fmt.Errorf("%w: a workspace returns to the repository by CheckIn, not ReportState", errdefs.ErrBadRequest)
		}
		if !observed.IsZero() {
			at := observed.UnixMilli()
			if chain.ReportedLock == chain.Lock && at < chain.ReportedAt {
				// A newer report of this manager's is applied already: this one
				// arrived late. Answered with what the workspace says, unchanged.
				stale = true
				return errUnchanged
			}
			chain.ReportedAt, chain.ReportedLock = at, chain.Lock
			s.Private = chain.encode()
		}
		setText(s, PropState, state)
		if detail != "" {
			setText(s, PropStateDetail, detail)
		} else {
			removeProp(s, PropStateDetail)
		}
		if deployment != "" {
			setText(s, PropDeployment, deployment)
		}
		setText(s, PropLastModified, wsrf.FormatTime(now))
		dep = text(s, PropDeployment)
		return nil
	})
	if stale {
		return r.currentState(ctx, key)
	}
	if err != nil {
		r.auditRefusal(ctx, "report-state", key, err)
		return "", "", time.Time{}, err
	}
	if r.hosts.Heard(host, now) {
		// Its announcements stopped, yet it reports: it stays silent (placement passes
		// it over), last heard from now, which the marks of its workspaces then say.
		if _, err := r.db.ExecContext(ctx, `UPDATE known_hosts SET last_seen = $1 WHERE name = $2 AND last_seen < $1`, now.UnixMilli(), host); err != nil {
			r.log.Warn("could not keep when a silent host was last heard from", "host", host, "err", err)
		}
	}
	return state, dep, now, nil
}

// errUnchanged ends a Modify that leaves the workspace as it is.
var errUnchanged = errors.New("unchanged")

// currentState is the workspace's state, deployment and last modification, as a
// ReportState answer gives them.
func (r *Repository) currentState(ctx context.Context, key string) (state, deployment string, modified time.Time, err error) {
	err = r.Workspaces.View(ctx, key, func(s *wsrf.Snapshot) error {
		state, deployment = text(s, PropState), text(s, PropDeployment)
		modified, _ = wsrf.ParseDateTime(text(s, PropLastModified))
		return nil
	})
	return state, deployment, modified, err
}

// SOAP adapters.

func (r *Repository) checkOutHandler(ctx context.Context, req *container.Request) (*etree.Element, error) {
	key, ok := req.ResourceKey()
	if !ok {
		return nil, fmt.Errorf("%w: CheckOut needs the workspace's key header", errdefs.ErrResourceUnknown)
	}
	var manager *wsa.EPR
	if ref := child(req.Payload, vwsns.Workspace, "ManagerReference"); ref != nil {
		var err error
		if manager, err = wsa.ParseEPR(ref); err != nil {
			return nil, errdefs.WithAdvice(fmt.Errorf("%w: ManagerReference: %w", errdefs.ErrBadRequest, err),
				"send the manager's endpoint reference (wsa:Address and its reference parameters), or leave ManagerReference out")
		}
		if err := nameVouchesFor(identity.From(ctx), manager.Address); err != nil {
			r.audit.Record(ctx, "check-out", key, "denied", err.Error())
			return nil, errdefs.WithAdvice(fmt.Errorf("%w: CheckOut: %w", errdefs.ErrAuthorization, err), managerNameAdvice)
		}
	}
	var user *identity.Identity
	if dn := childText(req.Payload, vwsns.Workspace, "OnBehalfOf"); dn != "" {
		user = &identity.Identity{DN: dn}
		if dn == identity.Anonymous.String() { // a Deploy over plain HTTP
			user.DN = ""
		}
		for _, c := range req.Payload.ChildElements() {
			if c.Tag == "OnBehalfOfAttribute" && c.NamespaceURI() == vwsns.Workspace {
				user.Attributes = append(user.Attributes, strings.TrimSpace(c.Text()))
			}
		}
	}
	m, err := r.CheckOut(ctx, key, childText(req.Payload, vwsns.Workspace, "Host"), childText(req.Payload, vwsns.Workspace, "RequestID"), manager, user)
	if err != nil {
		return nil, err
	}
	out := response(vwsns.Workspace, "CheckOutResponse")
	out.AddChild(m.Signed)
	lock := out.CreateElement("r:Lock")
	lock.CreateElement("r:Holder").SetText(m.Holder)
	lock.CreateElement("r:Token").SetText(m.Token)
	lock.CreateElement("r:Acquired").SetText(wsrf.FormatTime(m.Issued))
	out.AddChild(m.Description)
	return out, nil
}

func (r *Repository) checkInHandler(ctx context.Context, req *container.Request) (*etree.Element, error) {
	key, ok := req.ResourceKey()
	if !ok {
		return nil, fmt.Errorf("%w: CheckIn needs the workspace's key header", errdefs.ErrResourceUnknown)
	}
	p := req.Payload
	in := CheckInRequest{
		Token: childText(p, vwsns.Workspace, "LockToken"), OverlayDigest: childText(p, vwsns.Workspace, "OverlayDigest"),
		MemoryDigest: childText(p, vwsns.Workspace, "MemoryDigest"), State: childText(p, vwsns.Workspace, "State"),
		OverlaySize: -1, MemorySize: -1,
	}
	for _, f := range []struct {
		name string
		v    *int64
	}{{"OverlaySizeBytes", &in.OverlaySize}, {"MemorySizeBytes", &in.MemorySize}} {
		if t := childText(p, vwsns.Workspace, f.name); t != "" {
			n, err := strconv.ParseInt(t, 10, 64)
			if err != nil || n < 0 {
				return nil, fmt.Errorf("%w: %s %q is not a byte count", errdefs.ErrBadRequest, f.name, t)
			}
			*f.v = n
		}
	}
	state, at, err := r.CheckIn(ctx, key, in)
	if err != nil {
		return nil, err
	}
	out := response(vwsns.Workspace, "CheckInResponse")
	out.CreateElement("r:State").SetText(state)
	out.CreateElement("r:Deployment").SetText("in-repository")
	out.CreateElement("r:LastModified").SetText(wsrf.FormatTime(at))
	return out, nil
}

func (r *Repository) reportStateHandler(ctx context.Context, req *container.Request) (*etree.Element, error) {
	key, ok := req.ResourceKey()
	if !ok {
		return nil, fmt.Errorf("%w: ReportState needs the workspace's key header", errdefs.ErrResourceUnknown)
	}
	p := req.Payload
	var observed time.Time
	if s := childText(p, vwsns.Workspace, "ObservedAt"); s != "" {
		var err error
		if observed, err = wsrf.ParseDateTime(s); err != nil {
			return nil, errdefs.WithAdvice(fmt.Errorf("%w: ObservedAt: %w", errdefs.ErrBadRequest, err), "send when the state was observed as an xs:dateTime")
		}
	}
	state, dep, at, err := r.ReportState(ctx, key, childText(p, vwsns.Workspace, "LockToken"), childText(p, vwsns.Workspace, "Host"),
		childText(p, vwsns.Workspace, "State"), childText(p, vwsns.Workspace, "Deployment"), childText(p, vwsns.Workspace, "Detail"), observed)
	if err != nil {
		return nil, err
	}
	out := response(vwsns.Workspace, "ReportStateResponse")
	out.CreateElement("r:State").SetText(state)
	out.CreateElement("r:Deployment").SetText(dep)
	out.CreateElement("r:LastModified").SetText(wsrf.FormatTime(at))
	return out, nil
}

// heldByCaller refuses an authenticated host that is not the one the workspace is
// checked out to: a manager touches only its own check-outs, whatever token it has.
func heldByCaller(ctx context.Context, s *wsrf.Snapshot) error {
	id := identity.From(ctx)
	if id.IsAnonymous() {
		return nil // plain HTTP (--insecure): the lock token alone decides
	}
	if holder := text(s, PropLockHolder); holder != id.DN {
		if holder == "" {
			holder = "nobody"
		}
		return refuse(errdefs.WithAdvice(fmt.Errorf("%w: workspace %s is checked out to %s, not to %s", errdefs.ErrAuthorization, s.Key, holder, id.DN),
			"only the manager holding the workspace may report on it, fetch its files or check it in"),
			"the workspace is checked out to "+holder+", not to the caller")
	}
	return nil
}

// lockRefusal is a host's request refused, after the policy allowed it, for the lock
// token it presented or for not being the lock's holder. The policy's "allowed" is
// already in the audit trail: the refusal must be too, with why.
type lockRefusal struct {
	err    error
	reason string
}

func (e *lockRefusal) Error() string { return e.err.Error() }
func (e *lockRefusal) Unwrap() error { return e.err }

// refuse marks err as a lock refusal for the audit, which records reason.
func refuse(err error, reason string) error { return &lockRefusal{err: err, reason: reason} }

// auditRefusal records err as operation denied on workspace key when it is a lock
// refusal; other failures (bad input, an unknown workspace) are not decisions.
// Called once the workspace's lock is released, so an audit write never holds it.
func (r *Repository) auditRefusal(ctx context.Context, operation, key string, err error) {
	var lr *lockRefusal
	if errors.As(err, &lr) {
		r.audit.Record(ctx, operation, key, "denied", lr.reason)
	}
}

// tokenMismatch says, for the audit, why a lock token does not open workspace s.
func tokenMismatch(s *wsrf.Snapshot, chain *diskChain) string {
	if chain.Lock == "" {
		return "the workspace is not checked out (" + text(s, PropDeployment) + "): the lock token is stale, or was never issued"
	}
	return "the lock token is not the workspace's, which is checked out to " + text(s, PropLockHolder) + " on " + text(s, PropHost)
}
