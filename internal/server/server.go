// Package server assembles the vws roles into one HTTP handler: the services on the
// container, /healthz and /metrics, over the embedded store.
package server

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"net/http"
	"os"
	"path/filepath"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/vws-grid/vws/factory"
	"github.com/vws-grid/vws/internal/audit"
	"github.com/vws-grid/vws/internal/authz"
	"github.com/vws-grid/vws/internal/container"
	"github.com/vws-grid/vws/internal/contract"
	"github.com/vws-grid/vws/internal/describe"
	"github.com/vws-grid/vws/internal/manifestsig"
	"github.com/vws-grid/vws/internal/notify"
	"github.com/vws-grid/vws/internal/pki"
	"github.com/vws-grid/vws/internal/store"
	"github.com/vws-grid/vws/internal/tlsutil"
	"github.com/vws-grid/vws/internal/transfer"
	"github.com/vws-grid/vws/internal/wsrf"
	"github.com/vws-grid/vws/internal/wssec"
	"github.com/vws-grid/vws/manager"
	"github.com/vws-grid/vws/policy"
	"github.com/vws-grid/vws/repository"
	"github.com/vws-grid/vws/repository/imagepool"
	"github.com/vws-grid/vws/vmm"
)

// Version is the vws release.
var Version = "0.1.0-dev"

// ConfigVersion is the version of Config's layout.
const ConfigVersion = 1

// Config describes one vws server process.
type Config struct {
	// Version of this config's layout; 0 means current.
	Version int
	// DataDir holds the database (unless Database names one), the image pool, keys and
	// the manager's files; required.
	DataDir string
	// Database is a PostgreSQL URL (postgres://…) for the records SQLite keeps in
	// DataDir by default: workspaces, subscriptions, the image pool's index and the
	// audit trail. One server per database: a second is refused.
	Database string
	// Roles to run: any of "factory", "repository", "manager". Empty: all three.
	Roles []string
	// MaxBodyBytes bounds SOAP request bodies (HTTP 413 beyond). Default 1 MiB.
	MaxBodyBytes int64
	// ParseBudget bounds the body bytes of the SOAP requests parsed and in process at
	// once (container.Config.ParseBudget; 0: container.DefaultParseBudget).
	ParseBudget int64
	// Factory is what the Factory offers.
	Factory factory.Config
	// PolicyFile holds the rules (policy package); empty with GridMapFile empty: every
	// caller may do everything (logged as a warning at start). Both reload on change.
	PolicyFile string
	// GridMapFile maps DNs to local accounts (Globus grid-mapfile); optional.
	GridMapFile string
	// HostCertFile and HostKeyFile are the host's X.509 certificate (chain) and key:
	// the Repository signs manifests with them. Empty: a key of its own in DataDir/keys.
	HostCertFile, HostKeyFile string
	// Trust is the site's CAs (proxy-aware): with it, signed requests are verified,
	// responses to them signed with the host key, the server calls itself and other
	// services over mutual TLS, and managers accept manifests only from hosts policy
	// allows. nil: plain HTTP (--insecure).
	Trust *pki.Trust
	// NotifyNetworks, if set, are the only networks (CIDRs or addresses) the
	// Repository sends notifications to; default: any address but link-local and
	// multicast ones.
	NotifyNetworks []string
	// SubscriptionMaxLifetime bounds a subscription's lifetime (0: notify's default,
	// 30 days).
	SubscriptionMaxLifetime time.Duration
	// Manager configures the host manager role.
	Manager ManagerConfig
	// Logger for request and service logs; default slog.Default().
	Logger *slog.Logger
	// Now is the clock, callers' certificates on each request included; default time.Now.
	Now func() time.Time
}

// ManagerConfig is the manager role's part of Config.
type ManagerConfig struct {
	// LibvirtURI is the hypervisor connection ("" → qemu:///system; xen:///system for Xen).
	LibvirtURI string
	// LibvirtTimeout is how long libvirtd may stay silent before a call fails with a
	// HypervisorFault (0 → vmm.DefaultTimeout).
	LibvirtTimeout time.Duration
	// DomainType is kvm, qemu, xen or auto ("" → auto: never KVM on a kvm_pvm host).
	DomainType string
	// Host is the name workspaces are checked out under ("" → the host name).
	Host string
	// GracePeriod bounds a Normal shutdown's wait for the guest (0 → 30 s).
	GracePeriod time.Duration
	// ReconcileEvery is how often the manager compares its journal with libvirt besides
	// libvirt's stop and crash events (0 → 2 s).
	ReconcileEvery time.Duration
	// CacheMaxBytes bounds the image bytes the host cache alone holds (0: no bound).
	CacheMaxBytes int64
	// MinFreeBytes is the room deploys and serializes leave free on the manager's file
	// system (0 → manager.DefaultMinFreeBytes; negative: no floor).
	MinFreeBytes int64
	// MemoryReserveMiB is the host memory no guest is given (0 →
	// manager.DefaultMemoryReserveMiB; negative: no account of the guests' memory).
	MemoryReserveMiB int64
	// FetchStreams is how many parallel range requests stage an image the manifest
	// lists the pieces of (0 → manager.DefaultFetchStreams; 1: one GET).
	FetchStreams int
	// AnnounceEvery is how often the manager announces the host to its Repositories
	// for placement (0 → manager.DefaultAnnounceEvery; negative: never).
	AnnounceEvery time.Duration
	// RepositoryTimeout bounds one SOAP call to a Repository (0 →
	// manager.DefaultRepositoryTimeout).
	RepositoryTimeout time.Duration
	// Repositories are the base URLs of the Repositories whose workspaces the manager
	// deploys, besides this server's own when it runs the repository role.
	Repositories []string
	// Bridges are the host bridges guests may join (manager.Config.Bridges).
	Bridges []string
}

// Server is a running set of roles.
type Server struct {
	Repository *repository.Repository
	images     *imagepool.Pool
	validator  *describe.Validator
	replay     *wssec.ReplayCache // its log on disk, closed with the server
	baseURL    atomic.Value       // string: how this server reaches itself
	unlock     func()             // releases the data directory (LockDataDir)
	fenced     atomic.Bool        // Fence: the database is another server's now
	handler    http.Handler
	db         *store.DB
	audit      *audit.Log
	Manager    *manager.Manager
	hv         *lazyHypervisor
	// subscriptions are the WS-BaseNotification subscriptions to workspaces.
	subscriptions *notify.Broker
	policy        *policy.Engine
	log           *slog.Logger
}

// New opens the store and builds every configured role's services.
func New(ctx context.Context, cfg Config) (*Server, error) {
	if cfg.Version != 0 && cfg.Version != ConfigVersion {
		return nil, fmt.Errorf("config version %d is not supported (this vws reads version %d)", cfg.Version, ConfigVersion)
	}
	if cfg.DataDir == "" {
		return nil, fmt.Errorf("no data directory configured")
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	roles := map[string]bool{}
	if len(cfg.Roles) == 0 {
		cfg.Roles = []string{"factory", "repository", "manager"}
	}
	for _, r := range cfg.Roles {
		switch r {
		case "factory", "repository", "manager":
			roles[r] = true
		default:
			return nil, fmt.Errorf("unknown role %q: roles are factory, repository and manager", r)
		}
	}
	cfg.Factory.Version = Version
	cfg.Factory.Defaults()

	// The rules before the data directory: a mistyped --policy or --grid-mapfile
	// fails the start without creating or migrating a database.
	// Told by their flags: the engine's words name neither.
	for _, f := range []struct {
		flag, path string
		load       func(string) error
	}{
		{"--policy", cfg.PolicyFile, func(p string) error { _, err := policy.Load(p); return err }},
		{"--grid-mapfile", cfg.GridMapFile, func(p string) error { _, err := policy.LoadGridMap(p); return err }},
	} {
		if f.path == "" {
			continue
		}
		if _, err := os.Stat(f.path); errors.Is(err, fs.ErrNotExist) {
			return nil, fmt.Errorf("%s %s: %w: give the path of an existing file", f.flag, f.path, fs.ErrNotExist)
		} else if err != nil {
			return nil, fmt.Errorf("%s %s: %w", f.flag, f.path, err)
		}
		// Each on its own: read together, a fault could be either flag's.
		if err := f.load(f.path); err != nil {
			return nil, fmt.Errorf("%s %s: %w: correct it and start again", f.flag, f.path, err)
		}
	}
	pol, err := policy.NewEngine(cfg.PolicyFile, cfg.GridMapFile, cfg.Logger)
	if err != nil {
		return nil, err
	}
	if roles["manager"] {
		// Only non-nil matters here: New is given the real one.
		var local func() string
		if roles["repository"] {
			local = func() string { return "" }
		}
		if err := manager.CheckConfig(manager.Config{Host: cfg.Manager.Host, Repositories: cfg.Manager.Repositories,
			Bridges: cfg.Manager.Bridges, LocalRepository: local}); err != nil {
			return nil, err
		}
	}
	if err := checkHostCredential(cfg, roles["repository"]); err != nil {
		return nil, err
	}
	// A file there would otherwise be told by whichever file in it vws opened first.
	if fi, err := os.Stat(cfg.DataDir); err == nil && !fi.IsDir() || errors.Is(err, syscall.ENOTDIR) {
		return nil, fmt.Errorf("--data %s is not a directory: give the path of the data directory (it is made if missing)", cfg.DataDir)
	}
	if cfg.Database == "" {
		if err := CheckRecordsHere(cfg.DataDir); err != nil {
			return nil, err
		}
	} else {
		if !store.IsPostgresURL(cfg.Database) {
			return nil, fmt.Errorf("--database %q: want a PostgreSQL URL, postgres://USER@HOST:PORT/DATABASE (without it, SQLite in the data directory)", store.RedactURL(cfg.Database))
		}
		// Before the data directory is locked (or made): a database that is down or
		// mistyped leaves it as it was. Opening it below still fails should it go
		// away meanwhile.
		if err := store.PingPostgres(ctx, cfg.Database); err != nil {
			var ce *store.ConnectError
			if errors.As(err, &ce) {
				return nil, fmt.Errorf("--database %s could not be reached: %w", store.RedactURL(cfg.Database), err)
			}
			return nil, fmt.Errorf("--database %s: %w", store.RedactURL(cfg.Database), err)
		}
	}
	unlock, err := LockDataDir(cfg.DataDir)
	if err != nil {
		var inUse *DataDirInUseError
		if errors.As(err, &inUse) {
			return nil, fmt.Errorf("%w: stop that one first, or give this one another --data", err)
		}
		return nil, err
	}
	var db *store.DB
	if cfg.Database != "" {
		db, err = store.OpenPostgres(ctx, cfg.Database)
	} else {
		db, err = store.Open(ctx, cfg.DataDir)
	}
	if err != nil {
		unlock()
		return nil, err
	}
	cfg.Logger.Info("database", "store", db.String())
	s := &Server{db: db, unlock: unlock, log: cfg.Logger}
	ok := false
	defer func() {
		if !ok {
			s.Close()
		}
	}()
	if roles["repository"] {
		if err := checkFilesHaveRecords(ctx, db, cfg.DataDir); err != nil {
			return nil, err
		}
	}

	s.policy = pol
	switch {
	case cfg.PolicyFile != "" || cfg.GridMapFile != "":
	case cfg.Trust != nil:
		// Callers are authenticated: keep them to their own workspaces by default.
		s.policy.UseDefault(policy.Authenticated)
		cfg.Logger.Warn("no policy file: authenticated callers may create and manage their own workspaces, hosts are …/CN=host/ certificates, and nobody is admin (pass --policy FILE to name admins)")
	default:
		cfg.Logger.Warn("no policy file: every caller may do everything (pass --policy FILE)")
	}
	if s.validator, err = describe.NewValidator(); err != nil {
		return nil, err
	}
	auditLog := audit.New(db.SQL(), cfg.Logger)
	if err := auditLog.Start(ctx); err != nil { // logs the head: an anchor before any append
		return nil, err
	}
	s.audit = auditLog
	auditWhere := cfg.DataDir // where an administrator makes room when the trail is full
	if cfg.Database != "" {
		auditWhere = db.String()
	}
	az := &authz.Authorizer{Policy: s.policy, Audit: auditLog, AuditStore: auditWhere, Log: cfg.Logger}
	sec, err := newSecurity(cfg, s.policy)
	if err != nil {
		return nil, err
	}
	if sec.verifier != nil {
		s.replay = sec.verifier.Replay
	}
	s.baseURL.Store("")
	registry := &factory.SOAPRegistry{Client: sec.client(), URL: s.BaseURL}
	deps := &factory.Deps{
		Validator: s.validator, Audit: auditLog, Now: cfg.Now, Log: cfg.Logger,
		Registry: registry, Hosts: registry,
	}
	lifetimes := wsrf.LifetimePolicy{Default: cfg.Factory.DefaultLifetime, Maximum: cfg.Factory.MaximumLifetime, Refuse: cfg.Factory.RefuseLongLifetimes}

	reg := prometheus.NewRegistry()
	reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	var services []*container.Service
	add := func(svc *container.Service, err error) error {
		if err != nil {
			return err
		}
		services = append(services, svc)
		return nil
	}
	var cf fs.FS = contract.FS
	if roles["repository"] {
		pool, err := imagepool.Open(ctx, filepath.Join(cfg.DataDir, "images"), db.SQL(), cfg.Logger)
		if err != nil {
			return nil, err
		}
		signer, err := manifestSigner(cfg)
		if err != nil {
			return nil, err
		}
		// Subscriptions to workspaces live beside them: the Repository tells them
		// of every change it records.
		nets, err := notify.ParseNetworks(cfg.NotifyNetworks)
		if err != nil {
			return nil, fmt.Errorf("notify networks: %w", err)
		}
		s.subscriptions, err = notify.New(ctx, notify.Config{Topics: repository.NotifiedTopics, Store: db,
			TLS: sec.tls, Signer: sec.signer, Networks: nets, Metrics: reg, Logger: cfg.Logger, Now: cfg.Now,
			MayRead: az.MayStillRead, MaxLifetime: cfg.SubscriptionMaxLifetime})
		if err != nil {
			return nil, err
		}
		s.Repository, err = repository.New(ctx, repository.Config{
			Dir: cfg.DataDir, MaxLifetime: cfg.Factory.MaximumLifetime, Store: db, DB: db.SQL(), Pool: pool,
			Audit: auditLog, Signer: signer, EarlierSigner: sec.earlierManifestSigner(cfg),
			Policy: s.policy, Decisions: auditLog, Validator: s.validator, Subscriptions: s.subscriptions,
			Metrics: reg, Logger: cfg.Logger, Now: cfg.Now, StorageName: auditWhere,
		})
		if err != nil {
			return nil, err
		}
		s.subscriptions.Resync(ctx, s.Repository.Properties)
		if err := add(s.subscriptions.Service(cf)); err != nil {
			return nil, err
		}
		pool.SetInUse(s.Repository.InUse)
		pool.SetAudit(auditLog)
		s.images = pool
		if err := add(s.Repository.WorkspaceService(cf, lifetimes)); err != nil {
			return nil, err
		}
		if err := add(s.Repository.RepositoryService(cf, Version)); err != nil {
			return nil, err
		}
	}
	if roles["factory"] {
		if err := add(factory.NewService(cf, cfg.Factory, deps)); err != nil {
			return nil, err
		}
	}
	if roles["manager"] {
		s.hv = &lazyHypervisor{cfg: vmm.Config{URI: cfg.Manager.LibvirtURI, DomainType: cfg.Manager.DomainType, Logger: cfg.Logger,
			Timeout: cfg.Manager.LibvirtTimeout}}
		// A first look, not a wait: a libvirtd that accepts connections but does not
		// answer (stopped, deadlocked) must not hold up the Factory and the Repository
		// for --libvirt-timeout; the connection goes on opening in the background.
		probe, cancel := context.WithTimeout(ctx, hypervisorProbe)
		if _, err := s.hv.get(probe); err != nil {
			cfg.Logger.Error("the manager cannot reach the hypervisor yet; its operations fail until it can", "err", err)
		}
		cancel()
		mcfg := manager.Config{
			Dir: filepath.Join(cfg.DataDir, "manager"), Host: cfg.Manager.Host, GracePeriod: cfg.Manager.GracePeriod,
			ReconcileEvery: cfg.Manager.ReconcileEvery, CacheMaxBytes: cfg.Manager.CacheMaxBytes,
			MinFreeBytes: cfg.Manager.MinFreeBytes, FetchStreams: cfg.Manager.FetchStreams, RepositoryTimeout: cfg.Manager.RepositoryTimeout,
			MemoryReserveMiB: cfg.Manager.MemoryReserveMiB,
			AnnounceEvery:    cfg.Manager.AnnounceEvery,
			Repositories:     cfg.Manager.Repositories,
			Bridges:          cfg.Manager.Bridges,
			Self:             func() string { return s.BaseURL() + "/wsrf/services/WorkspaceManagerService" },
			Authorize:        az.Check, Visible: az.MayInspect, Logger: cfg.Logger, HTTP: sec.httpClient(), ManifestTrust: sec.manifestTrustFunc(),
			Metrics: reg,
		}
		if s.images != nil {
			// The pool is in this process: stage its images without an HTTP transfer.
			mcfg.LocalImages = s.images
		}
		if roles["repository"] {
			mcfg.LocalRepository = s.BaseURL
		}
		s.Manager, err = manager.New(mcfg, s.hv, s.validator)
		if err != nil {
			return nil, err
		}
		if s.Repository != nil {
			s.Repository.NotifyDestroyed(s.Manager.WorkspaceDestroyed)
		}
		if err := add(s.Manager.Service(cf)); err != nil {
			return nil, err
		}
	}
	if s.Repository != nil {
		az.Owners = s.Repository
		az.Subscriptions = s.subscriptions
	}
	c, err := container.New(container.Config{
		MaxBodyBytes: cfg.MaxBodyBytes, ParseBudget: cfg.ParseBudget, Logger: cfg.Logger, ContractFS: cf,
		Metrics: container.NewMetrics(reg), Now: cfg.Now, Authorize: az.Authorize,
		Verifier: sec.verifier, Signer: sec.signer, RequireSignature: sec.requireSignature,
		BaseURL: s.BaseURL,
		AuditRefusal: func(ctx context.Context, operation, resource, reason string) {
			auditLog.RecordDecision(ctx, operation, resource, false, "message security", reason)
		},
	}, services...)
	if err != nil {
		return nil, err
	}
	inspect := func(*http.Request) []policy.Operation { return []policy.Operation{policy.Inspect} }
	c.Handle("/metrics", az.HTTP("metrics", inspect, promhttp.HandlerFor(reg, promhttp.HandlerOpts{})))
	if s.images != nil {
		// Reading the pool is for users and hosts (managers stage from it); changing it
		// is the site's.
		images := az.HTTP("images", func(r *http.Request) []policy.Operation {
			if r.Method == http.MethodGet || r.Method == http.MethodHead {
				return []policy.Operation{policy.Inspect, policy.Host}
			}
			return []policy.Operation{policy.Admin}
		}, s.images)
		images = transfer.StallGuard(transfer.DefaultUploadStall, transfer.LimitRanges(transfer.MaxRanges, images))
		c.Handle("/images", images)
		c.Handle("/images/", images)
	}
	if s.Repository != nil {
		// Hosts only; the Repository also wants the lock token and the lock holder.
		c.Handle("/workspaces/", transfer.StallGuard(transfer.DefaultUploadStall, transfer.LimitRanges(transfer.MaxRanges,
			az.HTTP("workspace-files", func(*http.Request) []policy.Operation { return []policy.Operation{policy.Host} }, s.Repository.FilesHandler()))))
	}
	if s.Manager != nil {
		c.Handle("/manager/staging/", az.HTTP("staging", inspect, s.Manager.ProgressHandler()))
	}
	c.Handle("/healthz", http.HandlerFunc(s.healthz))
	s.handler = c
	if cfg.Trust != nil {
		// The handshake verified the client's chain once, but a kept-alive connection
		// outlives an expiring proxy or a new CRL: every request, on every endpoint,
		// is checked again.
		s.handler = tlsutil.NewRevalidator(cfg.Trust, cfg.Now, cfg.Logger).Handler(c)
	}
	ok = true
	return s, nil
}

// manifestSigner is the Repository's manifest signing key: the host certificate and
// key when the server has them, else a key of its own made on first start.
func manifestSigner(cfg Config) (*manifestsig.Signer, error) {
	if cfg.HostCertFile != "" {
		return manifestsig.Load(cfg.HostCertFile, cfg.HostKeyFile)
	}
	name, _ := os.Hostname()
	return manifestsig.LoadOrCreate(filepath.Join(cfg.DataDir, "keys"), "vws repository "+name)
}

// SetBaseURL tells the server how it reaches itself ("http://127.0.0.1:8080"): the
// Factory calls the Repository there, over SOAP like any other client.
func (s *Server) SetBaseURL(u string) { s.baseURL.Store(u) }

// BaseURL is the URL set by SetBaseURL.
func (s *Server) BaseURL() string { return s.baseURL.Load().(string) }

// Lost delivers an error once another server took this one's database (PostgreSQL):
// the server must stop.
func (s *Server) Lost() <-chan error { return s.db.Lost() }

// DB is the server's database (tests read the audit trail from it).
func (s *Server) DB() *sql.DB { return s.db.SQL() }

// Handler serves every mounted endpoint.
func (s *Server) Handler() http.Handler { return s.handler }

func (s *Server) healthz(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodGet && r.Method != http.MethodHead {
		w.Header().Set("Allow", "GET, HEAD")
		http.Error(w, "use GET", http.StatusMethodNotAllowed)
		return
	}
	if s.fenced.Load() {
		http.Error(w, "stopping: another vws server took this server's database", http.StatusServiceUnavailable)
		return
	}
	if err := s.db.Ping(r.Context()); err != nil {
		// The error goes to the log, not to any caller past TLS: PostgreSQL's names the
		// database's host and user.
		s.log.Error("health check: the database does not answer", "err", err)
		http.Error(w, "the database does not answer (the server's log says why)", http.StatusServiceUnavailable)
		return
	}
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	fmt.Fprintln(w, "ok")
}

// Fence stops this server's use of its database at once, before it shuts down: when
// another server has taken the database (Lost), whatever this one would still write —
// a request in flight, a lifetime expiring, a report — would overwrite the records
// that server now keeps. Later calls fail; Close still releases the rest.
func (s *Server) Fence() {
	s.fenced.Store(true)
	if s.db != nil {
		s.db.SQL().Close()
	}
}

// Close stops background work and closes the store.
func (s *Server) Close() {
	if s.Manager != nil {
		s.Manager.Close()
	}
	if s.hv != nil {
		s.hv.Close()
	}
	if s.Repository != nil {
		s.Repository.Close()
	}
	if s.subscriptions != nil {
		s.subscriptions.Close() // deliveries in flight end before the database closes
	}
	if s.validator != nil {
		s.validator.Close()
	}
	if s.replay != nil {
		s.replay.Close()
	}
	if s.policy != nil {
		s.policy.Close()
	}
	if s.images != nil {
		s.images.Close() // its background chunk lists write to the database
	}
	if s.audit != nil {
		s.audit.Stop() // logs the head, with what was appended since the last anchor
	}
	if s.db != nil {
		s.db.Close()
	}
	if s.unlock != nil {
		s.unlock()
	}
}
