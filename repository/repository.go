// Package repository is the VW Repository: it owns workspace metadata (each
// workspace a WS-Resource) and, from the image-pool issue on, the image pool.
package repository

import (
	"context"
	"crypto/x509"
	"database/sql"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/beevik/etree"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/vws-grid/vws/internal/chunkhash"
	"github.com/vws-grid/vws/internal/container"
	"github.com/vws-grid/vws/internal/describe"
	"github.com/vws-grid/vws/internal/dialect"
	"github.com/vws-grid/vws/internal/errdefs"
	"github.com/vws-grid/vws/internal/hostfit"
	"github.com/vws-grid/vws/internal/notify"
	"github.com/vws-grid/vws/internal/vwsns"
	"github.com/vws-grid/vws/internal/wsa"
	"github.com/vws-grid/vws/internal/wsrf"
	"github.com/vws-grid/vws/policy"
	"github.com/vws-grid/vws/repository/imagepool"
	"github.com/vws-grid/vws/repository/placement"
)

var vw = func(local string) wsa.QName { return vwsns.Q(vwsns.Workspace, local) }

// The workspace resource-property document and its properties.
var (
	WorkspaceDocument = vw("WorkspaceResourceProperties")
	PropName          = vw("name")
	PropCategory      = vw("category")
	PropState         = vw("state")
	PropCreationTime  = vw("creationTime")
	PropLifeCycle     = vw("lifeCycle")
	PropLastModified  = vw("lastModified")
	PropHardware      = vwsns.Q(vwsns.Hardware, "hardware")
	PropNetwork       = vwsns.Q(vwsns.Network, "network")
	PropSoftware      = vwsns.Q(vwsns.Software, "software")
	PropCapability    = vwsns.Q(vwsns.Capability, "capability")
	PropDeployment    = vw("deployment")
	PropHost          = vw("host")
	PropLockHolder    = vw("lockHolder")
	PropImageDigest   = vw("imageDigest")
	PropOwner         = vw("owner")
	PropEPR           = vw("EPR")
	PropManagerRef    = vw("managerReference")
	PropStateDetail   = vw("stateDetail")
	// PropHostSilentSince: the workspace's host stopped announcing itself (watchHosts).
	PropHostSilentSince = vw("hostSilentSince")
)

// WorkspaceProperties lists every property of a workspace document, in the order the
// WSDL's document sequence declares them.
var WorkspaceProperties = []wsa.QName{PropCategory, PropState, PropEPR, PropCreationTime, PropLifeCycle,
	PropLastModified, PropHardware, PropNetwork, PropSoftware, PropCapability, PropDeployment, PropHost,
	PropManagerRef, PropLockHolder, PropStateDetail, PropHostSilentSince, PropImageDigest, PropOwner, PropName}

// writable: what a client may change of a workspace it manages. Resource requests and
// the startup job can change while the workspace sits in the repository; identity,
// state and deployment facts belong to the services.
// writable are the parts of a workspace's description its owner may change while it is
// in the repository. Not lifeCycle: its termination time mirrors the resource's, which
// SetTerminationTime changes within the site's bounds.
var writable = map[wsa.QName]bool{PropHardware: true, PropCapability: true}

// ImagePool is what the Repository needs of the image pool.
type ImagePool interface {
	Get(ctx context.Context, nameOrDigest string) (imagepool.Image, error)
	Hold(ctx context.Context, nameOrDigest string, fn func(img imagepool.Image, path string) error) error
	List(ctx context.Context) ([]imagepool.Image, error)
	Path(digest string) (string, error)
	// Chunks is the chunk list of a pool image, computed from bytes that had its
	// digest; errdefs.ErrImageIntegrity when the pool's copy no longer has it.
	Chunks(ctx context.Context, digest string) (chunkhash.List, error)
}

// Auditor records what happened, with the caller in ctx.
type Auditor interface {
	Record(ctx context.Context, operation, resource, decision, detail string)
}

// Config tunes the Repository.
type Config struct {
	// Dir holds workspace overlays (workspaces/) and shared clone layers (layers/).
	Dir string
	// MaxLifetime bounds SetTerminationTime on workspaces; zero: unbounded.
	MaxLifetime time.Duration
	Store       wsrf.Store
	Pool        ImagePool
	Audit       Auditor
	// DB is the database Store keeps its records in; the Repository records there
	// every certificate Signer has used (manifest_signers). Required.
	DB *sql.DB
	// Signer signs every workspace manifest; required.
	Signer ManifestSigner
	// EarlierSigner, on a server with CAs, says whether the site's CAs vouch for the
	// certificate chain (signer first) of a stored manifest's earlier signer as of
	// when it signed (signedAt): a renewed host certificate has often replaced an
	// expired one. The Repository also requires the signer's subject to be its current
	// certificate's before it signs such a manifest again (see renewed). nil (no CAs):
	// only a certificate recorded in DB as one Signer used is accepted.
	EarlierSigner func(chain []*x509.Certificate, signedAt time.Time) error
	// Policy holds the quotas and decides for the users managers act for; nil: no
	// quotas, every user may manage every workspace.
	Policy Policy
	// Auditor, when set, records the decisions made for users managers act for.
	Decisions DecisionAuditor
	// Validator, when set, checks a workspace's description as a SetResourceProperties
	// leaves it, as the Factory checked it at Create; nil: not checked.
	Validator Validator
	// Metrics registers the Repository's Prometheus instruments (nil: kept
	// unregistered).
	Metrics prometheus.Registerer
	// Subscriptions, when set, takes Subscribe and is told of every change of a
	// workspace's NotifiedTopics and of its end; nil: Subscribe is refused.
	Subscriptions Subscriptions
	// StorageName names the database when it is not in Dir (PostgreSQL), for the
	// administrator told it is full.
	StorageName string
	Logger      *slog.Logger
	Now         func() time.Time
}

// NotifiedTopics are the workspace properties whose changes subscribers are told of
// (besides a workspace's end): where it is and what it does.
var NotifiedTopics = []wsa.QName{PropState, PropDeployment}

// Subscriptions holds the subscriptions to workspaces (notify.Broker).
type Subscriptions interface {
	// Subscribe answers WS-BaseNotification Subscribe; workspace reads the workspace.
	Subscribe(workspace notify.Producer) container.Handler
	// ProducerProperties are the topic properties of every workspace document.
	ProducerProperties(d *dialect.Dialect) []*etree.Element
	// Changed is told of each committed change of a workspace's properties, in order.
	Changed(key string, before, after []*etree.Element)
	// Terminated is told that a workspace ended, and why.
	Terminated(key, reason string)
}

// Repository is the workspace home and the services over it.
type Repository struct {
	Workspaces *wsrf.Home
	dir        string
	storage    string // Config.StorageName
	pool       ImagePool
	audit      Auditor
	signer     ManifestSigner
	db         *sql.DB
	earlier    func(chain []*x509.Certificate, signedAt time.Time) error
	policy     Policy
	decisions  DecisionAuditor
	validator  Validator
	subs       Subscriptions
	ledger     *policy.Ledger
	log        *slog.Logger
	now        func() time.Time

	namesMu sync.Mutex
	names   map[string]string // workspace name → key; names are unique
	// layersMu keeps the layer collector away from clones that have frozen a layer
	// not yet recorded in any workspace.
	layersMu sync.RWMutex
	// collectMu guards collecting (a collector goroutine runs) and collectAgain (a
	// destroy asked for a pass after the one under way began): see collectSoon.
	collectMu    sync.Mutex
	collecting   bool
	collectAgain bool
	// collectClosed (Close) starts no more collectors; collectDone is the one running,
	// which Close waits for: it uses the database the server closes next.
	collectClosed bool
	collectDone   sync.WaitGroup
	// heldUntil is, by workspace key, until when the latest announcement that listed
	// it held, from the manager address it is checked out to, vouches for it (its
	// Expires): see notHeld.
	heldMu    sync.Mutex
	heldUntil map[string]time.Time
	// destroyed is told the key of a workspace destroyed while deployed (NotifyDestroyed).
	destroyed atomic.Pointer[func(key string)]
	// destroying holds, from beforeDestroy to afterDestroy, who destroys a workspace
	// and why (key → destroyer), for the audit record of the outcome.
	destroying sync.Map
	// gone remembers, for a while, the owner and name of destroyed workspaces
	// (key → formerOwner): their end is announced to subscribers after they are gone,
	// and only to those who may still read them (FormerOwner).
	gone sync.Map
	// hosts are the hosts whose managers announced themselves, for Place.
	hosts *placement.Directory
	// placements counts Place answers by outcome.
	placements *prometheus.CounterVec
	// watch marks the workspaces on hosts that stopped announcing themselves.
	watch hostWatch
}

// New loads the workspace home and reconciles the files on disk with it.
func New(ctx context.Context, cfg Config) (*Repository, error) {
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	if cfg.Signer == nil {
		return nil, fmt.Errorf("repository: no manifest signer configured")
	}
	if cfg.DB == nil {
		return nil, fmt.Errorf("repository: no database configured")
	}
	// Absolute: layer and base paths are written into qcow2 headers as backing files,
	// which must be absolute (qemu reads a relative one from the overlay's directory).
	dir, err := filepath.Abs(cfg.Dir)
	if err != nil {
		return nil, fmt.Errorf("repository directory %s: %w", cfg.Dir, err)
	}
	r := &Repository{dir: dir, storage: cfg.StorageName, pool: cfg.Pool, audit: cfg.Audit, signer: cfg.Signer, log: cfg.Logger, now: cfg.Now, names: map[string]string{},
		db: cfg.DB, earlier: cfg.EarlierSigner, policy: cfg.Policy, decisions: cfg.Decisions, validator: cfg.Validator, ledger: policy.NewLedger(), hosts: placement.NewDirectory(),
		subs: cfg.Subscriptions}
	if err := r.recordSigner(ctx); err != nil {
		return nil, fmt.Errorf("repository: %w", err)
	}
	if err := r.loadHosts(ctx); err != nil {
		return nil, fmt.Errorf("repository: %w", err)
	}
	if r.audit == nil {
		r.audit = nopAudit{}
	}
	r.placements = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "vws_repository_placements_total",
		Help: "Place answers by outcome: placed (a host fits), none-fit (hosts announced, none fits), no-hosts (none announced), deployed (the workspace's own host).",
	}, []string{"result"})
	if cfg.Metrics != nil {
		known := prometheus.NewGaugeFunc(prometheus.GaugeOpts{
			Name: "vws_repository_known_hosts", Help: "Hosts whose announcement has not expired: what Place chooses from (vws host list).",
		}, func() float64 { return float64(len(r.hosts.Live(r.now()))) })
		if err := cfg.Metrics.Register(known); err != nil {
			return nil, fmt.Errorf("repository metrics: %w", err)
		}
		if err := cfg.Metrics.Register(r.placements); err != nil {
			return nil, fmt.Errorf("repository metrics: %w", err)
		}
	}
	for _, sub := range []string{"workspaces", "layers"} {
		if err := os.MkdirAll(filepath.Join(r.dir, sub), 0o700); err != nil {
			return nil, fmt.Errorf("repository: %w", err)
		}
	}
	hc := wsrf.HomeConfig{
		Service:          vwsns.WorkspaceService,
		Document:         WorkspaceDocument,
		Declared:         WorkspaceProperties,
		MaxLifetime:      cfg.MaxLifetime,
		Store:            cfg.Store,
		Now:              cfg.Now,
		Logger:           cfg.Logger,
		Writable:         r.writable,
		Validate:         r.validateDescription,
		OnDestroy:        r.beforeDestroy,
		AfterDestroy:     r.afterDestroy,
		Render:           renderManagerRef,
		CheckTermination: r.checkTermination,
		// Expired while the Repository was down: destroyed once the ledger counts
		// them, so that their quota is given back from a count that holds it.
		DeferExpiry: true,
		OnTerminationChange: func(s *wsrf.Snapshot) {
			setLifeCycleTermination(s, r.now())
		},
	}
	if r.subs != nil {
		hc.OnChange, hc.Fixed = r.subs.Changed, r.subs.ProducerProperties
	}
	home, err := wsrf.NewHome(ctx, hc)
	if err != nil {
		return nil, err
	}
	r.Workspaces = home
	home.Range(func(s *wsrf.Snapshot) bool {
		if n := s.Property(PropName); n != nil {
			r.names[n.Text()] = s.Key
		}
		return true
	})
	if err := r.sweep(ctx); err != nil {
		home.Close()
		return nil, fmt.Errorf("repository start-up sweep: %w", err)
	}
	r.rebuildLedger(ctx)
	home.StartExpiry()
	r.markSilentHosts(ctx) // hosts that went quiet while the Repository was down
	r.watchHosts()
	return r, nil
}

type nopAudit struct{}

func (nopAudit) Record(context.Context, string, string, string, string) {}

// Close stops the workspace expiry scheduler.
func (r *Repository) Close() {
	r.stopWatchingHosts()
	r.Workspaces.Close()
	r.collectMu.Lock()
	r.collectClosed = true // layers freed from now on are the start-up sweep's
	r.collectMu.Unlock()
	r.collectDone.Wait()
}

// writable allows the writable properties while the workspace is in the repository.
func (r *Repository) writable(s *wsrf.Snapshot, q wsa.QName) error {
	if !writable[q] {
		return errdefs.WithAdvice(fmt.Errorf("%w: %s", errdefs.ErrUnableToModify, q.Local),
			q.Local+" is maintained by vws; writable are hardware and capability (SetTerminationTime changes when the workspace ends)")
	}
	if d := text(s, PropDeployment); d != "in-repository" {
		return errdefs.WithAdvice(fmt.Errorf("%w: %s while the workspace is %s", errdefs.ErrUnableToModify, q.Local, d),
			"undeploy the workspace first")
	}
	// Saved RAM restores only on the hardware it ran on: changed, the next hot deploy
	// would stage everything and then fail, or leave the guest paused for good.
	if q == PropHardware {
		if chain, err := decodeChain(s.Private); err == nil && chain.Memory != "" {
			return errdefs.WithAdvice(fmt.Errorf("%w: hardware of a serialized workspace: its saved RAM restores only on the hardware it ran on", errdefs.ErrUnableToModify),
				"nothing was changed; to change it, discard the saved RAM first: deploy the workspace, shut it down normally (vws shutdown --mode normal) and undeploy it")
		}
	}
	return nil
}

// Validator checks a workspace description (describe.Validator does).
type Validator interface {
	ValidateElement(el *etree.Element) (*describe.Description, error)
}

// validateDescription refuses a change of a workspace's properties that leaves its
// description invalid (hardware out of the schema's ranges, say), which would
// otherwise only fail its next deploy, or untrue (a root disk on another image).
func (r *Repository) validateDescription(ctx context.Context, before []*etree.Element, s *wsrf.Snapshot) error {
	if r.validator == nil {
		return nil
	}
	d, err := r.validator.ValidateElement(describeSnapshot(s))
	if err != nil {
		return errdefs.WithAdvice(err, "nothing was changed; send a description part that the workspace schema allows (GetResourceProperty shows the current one)")
	}
	// Nor hardware or a disk layout no manager deploys, which Create refuses.
	if d.Hardware != nil {
		if err := hostfit.Defined(d.Hardware); err != nil {
			return fmt.Errorf("nothing was changed: %w", err)
		}
		root, err := hostfit.Disks(d.Hardware.Disks)
		if err != nil {
			return fmt.Errorf("nothing was changed: %w", err)
		}
		if root >= 0 {
			return r.checkRootImage(ctx, before, s, root, d.Hardware.Disks[root].Image)
		}
	}
	return nil
}

// checkRootImage refuses a root disk image reference that names another image than
// the workspace's base: the overlay stands on the base, fixed at Create, and a manager
// boots it whatever the description says, which would then name an image the
// workspace does not run. A reference the change leaves as it was is taken as it is
// (its name may since have left the pool).
func (r *Repository) checkRootImage(ctx context.Context, before []*etree.Element, s *wsrf.Snapshot, root int, ref *describe.Image) error {
	if old, err := r.validator.ValidateElement(describeSnapshot(&wsrf.Snapshot{Props: before})); err == nil && old.Hardware != nil {
		if i, err := hostfit.Disks(old.Hardware.Disks); err == nil && i >= 0 && *old.Hardware.Disks[i].Image == *ref {
			return nil
		}
	}
	chain, err := decodeChain(s.Private)
	if err != nil {
		return fmt.Errorf("nothing was changed: %w", err)
	}
	path := fmt.Sprintf("/vw:virtualWorkspace/hw:hardware/hw:disk[%d]/hw:image", root+1)
	named := ref.Digest // the image the reference names; "" for none the pool holds
	if ref.Name != "" {
		img, err := r.pool.Get(ctx, ref.Name)
		switch {
		case errors.Is(err, errdefs.ErrResourceUnknown):
			named = ""
		case err != nil:
			return fmt.Errorf("nothing was changed: %w", err)
		case ref.Digest == "":
			named = img.Digest
		case img.Digest != ref.Digest:
			named = "" // a name and a digest of two images, which Create refuses too
		}
	}
	if named != chain.Base {
		id := ref.Name
		if id == "" {
			id = ref.Digest
		}
		return errdefs.WithAdvice(&errdefs.MetadataError{Path: path,
			Reason: fmt.Sprintf("the root disk's image %q is not the workspace's base image (%s), on which its disk stands since Create", id, chain.Base)},
			"nothing was changed; leave the root disk's image as it is, or name the base (vw:imageDigest with role base shows it); vws create makes a workspace on another image")
	}
	return nil
}

// WorkspaceService builds the per-workspace WS-Resource service.
func (r *Repository) WorkspaceService(contract fs.FS, lt wsrf.LifetimePolicy) (*container.Service, error) {
	svc, err := container.NewService(contract, "wsdl", vwsns.WorkspaceService, vwsns.WorkspaceKey)
	if err != nil {
		return nil, err
	}
	wsrf.HandleProperties(svc, r.Workspaces)
	wsrf.HandleModify(svc, r.Workspaces)
	wsrf.HandleLifetime(svc, r.Workspaces, r.now)
	svc.Handle("Clone", r.clone(lt))
	svc.Handle("CheckOut", r.checkOutHandler)
	svc.Handle("CheckIn", r.checkInHandler)
	svc.Handle("ReportState", r.reportStateHandler)
	svc.Handle("Place", r.place)
	svc.Handle("Reclaim", r.reclaimHandler)
	svc.Handle("Disown", r.disownHandler)
	if r.subs != nil {
		svc.Handle("Subscribe", r.subs.Subscribe(r.Properties))
	} else {
		svc.Handle("Subscribe", container.NotImplemented("Subscribe"))
	}
	return svc, nil
}

// RepositoryService builds the repository-wide service.
func (r *Repository) RepositoryService(contract fs.FS, version string) (*container.Service, error) {
	svc, err := container.NewService(contract, "wsdl", vwsns.RepositoryService, wsa.QName{})
	if err != nil {
		return nil, err
	}
	rq := func(l string) wsa.QName { return vwsns.Q(vwsns.Repository, l) }
	props := &wsrf.Singleton{
		DocName:  rq("WorkspaceRepositoryResourceProperties"),
		Declared: []wsa.QName{rq("WorkspaceCount"), rq("ImageCount"), rq("Version"), rq("Workspace"), rq("KnownHost"), rq("SilentHost")},
		Now:      r.now,
		Build: func(ctx context.Context, d *dialect.Dialect) ([]*etree.Element, error) {
			imgs, err := r.pool.List(ctx)
			if err != nil {
				return nil, err
			}
			all := r.visible(ctx, r.List(Filter{}))
			props := []*etree.Element{
				wsrf.TextProperty(rq("WorkspaceCount"), strconv.Itoa(len(all))),
				wsrf.TextProperty(rq("ImageCount"), strconv.Itoa(len(imgs))),
				wsrf.TextProperty(rq("Version"), version),
			}
			for _, sum := range all {
				w := etree.NewElement("r:Workspace")
				w.CreateAttr("xmlns:r", vwsns.Repository)
				summaryElement(w, d, serviceBase(ctx), sum)
				props = append(props, w)
			}
			for _, h := range r.hosts.Live(r.now()) {
				props = append(props, hostElement("KnownHost", h, d, true))
			}
			return append(props, r.silentHostElements(all)...), nil
		},
	}
	wsrf.HandleProperties(svc, props)
	svc.Handle("ListWorkspaces", r.listWorkspaces)
	svc.Handle("ListImages", r.listImages)
	svc.Handle("RegisterWorkspace", r.registerWorkspace)
	svc.Handle("AnnounceHost", r.announceHost)
	return svc, nil
}

// Properties returns copies of workspace key's stored properties
// (errdefs.ErrResourceUnknown when there is no such workspace).
func (r *Repository) Properties(ctx context.Context, key string) ([]*etree.Element, error) {
	var props []*etree.Element
	err := r.Workspaces.View(ctx, key, func(s *wsrf.Snapshot) error {
		for _, p := range s.Props {
			props = append(props, p.Copy())
		}
		return nil
	})
	return props, err
}

// Owner returns workspace key's owner, name and lock holder, for authorization.
// formerOwner is a destroyed workspace's owner and name, and when it went.
type formerOwner struct {
	owner, name string
	at          time.Time
}

// goneFor is how long FormerOwner remembers a destroyed workspace: its subscribers'
// termination messages are on their way within seconds.
const goneFor = 10 * time.Minute

// FormerOwner is the owner and name of workspace key if it was destroyed in the last
// ten minutes (since this process started).
func (r *Repository) FormerOwner(key string) (owner, name string, ok bool) {
	v, ok := r.gone.Load(key)
	if !ok {
		return "", "", false
	}
	f := v.(formerOwner)
	return f.owner, f.name, true
}

// rememberGone records a destroyed workspace for FormerOwner, forgetting those gone
// longer than goneFor.
func (r *Repository) rememberGone(key, owner, name string) {
	now := time.Now()
	r.gone.Store(key, formerOwner{owner: owner, name: name, at: now})
	r.gone.Range(func(k, v any) bool {
		if now.Sub(v.(formerOwner).at) > goneFor {
			r.gone.Delete(k)
		}
		return true
	})
}

// ViewAny: a workspace past its termination time, not destroyed yet, is still its
// owner's alone to Destroy (every other operation finds it unknown).
func (r *Repository) Owner(ctx context.Context, key string) (owner, name, holder string, err error) {
	err = r.Workspaces.ViewAny(ctx, key, func(s *wsrf.Snapshot) error {
		owner, name, holder = text(s, PropOwner), text(s, PropName), text(s, PropLockHolder)
		return nil
	})
	return owner, name, holder, err
}
