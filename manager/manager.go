// Package manager is the VW Manager that runs on every host: it deploys a workspace
// presented by its EPR (check-out, staging, domain definition), drives it through the
// hypervisor (start, pause, unpause, shutdown, serialize, restore), hands it back to
// the Repository (undeploy), and keeps a journal so a restart finishes or undoes what
// a crash interrupted.
package manager

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/beevik/etree"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/vws-grid/vws/internal/client"
	"github.com/vws-grid/vws/internal/describe"
	"github.com/vws-grid/vws/internal/hostfit"
	"github.com/vws-grid/vws/internal/manifestsig"
	"github.com/vws-grid/vws/internal/wsa"
	"github.com/vws-grid/vws/policy"
	"github.com/vws-grid/vws/vmm"
)

// ConfigVersion is the layout version of Config.
const ConfigVersion = 1

// Config describes one host's Manager.
type Config struct {
	// Version of this layout; 0 means current.
	Version int
	// Dir holds the journal, the image cache and the workspaces' files; required.
	Dir string
	// Host is the name this manager checks workspaces out under (default: os.Hostname).
	Host string
	// GracePeriod is how long a Normal shutdown waits for the guest before forcing it
	// off, when the request names none. Default 30 s.
	GracePeriod time.Duration
	// ReconcileEvery is how often the Manager compares its journal with what the
	// hypervisor runs, besides right after libvirt reports a domain stopped or
	// crashed. Default 2 s.
	ReconcileEvery time.Duration
	// Self is this manager's service address; a function because an embedded server
	// learns its own address once it listens.
	Self func() string
	// HTTP reaches the Repository (default: a client with generous timeouts).
	HTTP *http.Client
	// Repositories are the base URLs (scheme://host[:port][/path]) of the Repositories
	// whose workspaces this manager deploys, besides LocalRepository's: a Deploy of
	// another's is refused before anything is sent to it.
	Repositories []string
	// Bridges are the host bridges the site publishes for guests to join (a NIC of
	// kind bridge): a description naming any other bridge is refused, so that no user
	// puts a guest on a bridge the site keeps for itself (its management network, the
	// one behind a filtered libvirt network). Linux interface names.
	Bridges []string
	// LocalRepository gives the base URL of a Repository in this process (an embedded
	// server learns its address once it listens); nil: none.
	LocalRepository func() string
	// ManifestTrust decides whose manifest signatures this host accepts (the site's
	// CAs and policy); nil checks signatures for integrity only, without knowing who
	// signed (a server run with --insecure).
	ManifestTrust manifestsig.TrustFunc
	// Authorize decides an operation on a deployed workspace (its owner known from the
	// manifest) for the caller in ctx; nil allows everything.
	Authorize func(ctx context.Context, op policy.Operation, res policy.Resource) error
	// Visible decides, without auditing, whether the caller in ctx may see a deployed
	// workspace in the host's properties; nil shows all.
	Visible func(ctx context.Context, res policy.Resource) bool
	// CacheMaxBytes bounds the images the host cache alone holds (not hard links to a
	// co-located pool's files); 0: no bound. Past it, the least recently used images
	// no deployment uses are evicted.
	CacheMaxBytes int64
	// MinFreeBytes is the room a deploy or a serialize leaves free on the file system
	// of Dir, for guest overlays to grow and for the journal: one that would not fit
	// with it left over (after evicting cached images no workspace uses) is refused
	// before it writes anything. 0: DefaultMinFreeBytes; negative: no floor.
	MinFreeBytes int64
	// MemoryReserveMiB is the host memory no guest is given: a boot (Start, restore,
	// Deploy running or paused) is refused when the guests this host holds in RAM,
	// with the new one, would have more than the host's memory less this, and a deploy
	// is granted no more (memory.go). 0: DefaultMemoryReserveMiB; negative: no account
	// is kept (overcommit), only the host's free memory is read at deploy.
	MemoryReserveMiB int64
	// FetchStreams is how many parallel range requests stage an image whose manifest
	// lists its pieces, a piece or a run of pieces each (0: DefaultFetchStreams; 1: one
	// GET per image).
	FetchStreams int
	// RepositoryTimeout bounds one SOAP call to a Repository (check-out, check-in,
	// state report): its handlers answer within their own bound, so only one that
	// stopped answering takes longer (0: DefaultRepositoryTimeout). Image transfers
	// are bounded by their stall detection instead.
	RepositoryTimeout time.Duration
	// LocalImages, when set, is the image pool of a Repository in the same process:
	// pool images are staged from it without an HTTP transfer (still checked).
	LocalImages LocalImages
	// AnnounceEvery is how often the manager announces this host to its Repositories
	// (for placement), besides soon after what it offers changes: 0 means
	// DefaultAnnounceEvery; negative, never.
	AnnounceEvery time.Duration
	// Metrics registers the Manager's Prometheus instruments (nil: kept unregistered).
	Metrics prometheus.Registerer
	Logger  *slog.Logger
}

// Validator checks a workspace description (the manifest's) against the schema: the
// Manager re-validates at its own boundary what reaches domain XML.
type Validator interface {
	ValidateElement(el *etree.Element) (*describe.Description, error)
}

// Manager runs workspaces on this host.
type Manager struct {
	cfg     Config
	hv      Hypervisor
	repo    *repoClient
	journal *journal
	cache   *cache
	log     *slog.Logger
	valid   Validator
	metrics *metrics
	// scopes are the Repositories of Config.Repositories.
	scopes []repoScope

	locks keyedLocks // per workspace: one operation at a time
	// progress of deploys in flight, by key (for the CLI's progress bar).
	progress sync.Map

	// reportq carries workspace keys whose state the Repository must be told;
	// queued coalesces them; reported is what it was last told, by key.
	reportq  chan string
	queued   sync.Map
	reported sync.Map

	// freeBytes replaces statfs in unit tests (nil: the file system's own count).
	freeBytes func(dir string) (int64, error)
	// room is the disk space granted to deploys and serializes under way.
	room roomLedger

	// kick asks the reconciler for a round now (a domain stopped or crashed).
	kick chan struct{}
	// announceKick asks for an announcement soon: what this host offers changed.
	announceKick chan struct{}
	// draining: no new workspaces (SetDraining); drainMu orders its changes.
	draining atomic.Bool
	drainMu  sync.Mutex
	// existence paces the reconciler's questions whether a workspace still exists.
	existence existenceChecks
	// retries spaces the reconciler's retries of an undo or hand-back that fails.
	retries retryBackoff
	// boot says whether the host restarted since the last reconcile (reconciler only).
	boot bootState

	// syncs are the background fsyncs of staged cache entries (cachesync.go).
	syncs backgroundSyncs
	// memory accounts for the RAM of the guests in flight to boot (memory.go).
	memory memoryAccount

	stop chan struct{}
	wg   sync.WaitGroup
}

var digestRE = regexp.MustCompile(`^sha256:[0-9a-f]{64}$`)

// New opens the manager's directory and starts the reconciler, whose first round,
// right after start, finishes or undoes what a crash interrupted.
func New(cfg Config, hv Hypervisor, valid Validator) (*Manager, error) {
	if cfg.Version != 0 && cfg.Version != ConfigVersion {
		return nil, fmt.Errorf("manager config version %d is not supported (this vws reads %d)", cfg.Version, ConfigVersion)
	}
	if cfg.Dir == "" {
		return nil, fmt.Errorf("manager: no directory configured")
	}
	// Absolute: cache and workspace paths are written into qcow2 headers as backing
	// files, which qemu reads from the overlay's own directory when relative.
	dir, err := filepath.Abs(cfg.Dir)
	if err != nil {
		return nil, fmt.Errorf("manager directory %s: %w", cfg.Dir, err)
	}
	cfg.Dir = dir
	// Before Host is defaulted: a system host name is told as that, not as --host-name.
	if err := CheckConfig(cfg); err != nil {
		return nil, err
	}
	if cfg.Host == "" {
		h, err := systemHostname()
		if err != nil {
			return nil, fmt.Errorf("manager host name: %w", err)
		}
		cfg.Host = h
	}
	if cfg.GracePeriod <= 0 {
		cfg.GracePeriod = 30 * time.Second
	}
	if cfg.ReconcileEvery <= 0 {
		cfg.ReconcileEvery = 2 * time.Second
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	if cfg.AnnounceEvery == 0 {
		cfg.AnnounceEvery = DefaultAnnounceEvery
	}
	if cfg.HTTP == nil {
		cfg.HTTP = &http.Client{Timeout: 30 * time.Minute}
	}
	var scopes []repoScope
	for _, r := range cfg.Repositories {
		scope, _ := parseRepoScope(r) // CheckConfig took it
		scopes = append(scopes, scope)
	}
	cfg.Bridges, _ = publishedBridges(cfg.Bridges)
	for _, d := range []string{"journal", "cache", "workspaces"} {
		if err := os.MkdirAll(filepath.Join(cfg.Dir, d), 0o700); err != nil {
			return nil, fmt.Errorf("manager directory: %w", err)
		}
	}
	m := &Manager{
		cfg: cfg, hv: hv, log: cfg.Logger, valid: valid, scopes: scopes,
		repo: &repoClient{soap: &client.Client{HTTP: cfg.HTTP}, http: cfg.HTTP, trust: cfg.ManifestTrust, streams: configuredStreams(cfg.FetchStreams),
			timeout: cfg.RepositoryTimeout},
		journal: &journal{dir: filepath.Join(cfg.Dir, "journal")},
		cache:   &cache{dir: filepath.Join(cfg.Dir, "cache")},
		metrics: newMetrics(cfg.Metrics),
		stop:    make(chan struct{}), reportq: make(chan string, 4096), kick: make(chan struct{}, 1),
		announceKick: make(chan struct{}, 1),
		boot:         readBootState(cfg.Dir),
	}
	m.draining.Store(readDraining(cfg.Dir))
	if es, ok := hv.(eventSource); ok {
		es.Watch(m.onEvent)
	}
	m.cache.sweep()
	m.cache.boot = m.boot.current
	m.recheckUnsynced(context.Background())
	m.log.Info("manager ready", "host", cfg.Host, "repositories", cfg.Repositories, "bridges", cfg.Bridges, "own_repository", cfg.LocalRepository != nil)
	m.wg.Add(2)
	go m.loop()
	go m.reporter()
	if cfg.AnnounceEvery > 0 {
		m.wg.Add(1)
		go m.announcer()
	}
	return m, nil
}

// CheckConfig refuses the settings New would refuse for what they say alone. It
// reads and makes nothing: a server runs it before it locks or writes its data
// directory, so that a mistyped flag leaves that as it was.
func CheckConfig(cfg Config) error {
	for _, r := range cfg.Repositories {
		if _, err := parseRepoScope(r); err != nil {
			return fmt.Errorf("manager: --repository: %w", err)
		}
	}
	if _, err := publishedBridges(cfg.Bridges); err != nil {
		return fmt.Errorf("manager: --bridge: %w", err)
	}
	// Repositories refuse a check-out under any other name (the schema's HostName):
	// every deploy would fail.
	if cfg.Host != "" && !checkOutHostRE.MatchString(cfg.Host) {
		return fmt.Errorf("manager: --host-name %q is not a host name: give this host's DNS name or address (letters, digits, '.', '-', ':' and brackets, at most 260)", cfg.Host)
	}
	// Without one, New takes the system's, which nothing else has checked.
	if cfg.Host == "" {
		h, err := systemHostname()
		if err != nil {
			return fmt.Errorf("manager: the system's host name, which workspaces are checked out under without --host-name: %w: pass --host-name with this host's DNS name or address", err)
		}
		if !checkOutHostRE.MatchString(h) {
			return fmt.Errorf("manager: the system's host name %q, which workspaces are checked out under without --host-name, is not one a Repository takes (letters, digits, '.', '-', ':' and brackets, at most 260): pass --host-name with this host's DNS name or address", h)
		}
	}
	if len(cfg.Repositories) == 0 && cfg.LocalRepository == nil {
		return errors.New("manager: no repository whose workspaces it deploys: name one (vws serve --repository URL, repeatable), or run the repository role in this server")
	}
	return nil
}

// systemHostname is the host name a manager without Config.Host checks out under
// (a variable for tests, which must not rename the machine).
var systemHostname = os.Hostname

// checkOutHostRE is the schema's vw:HostName, what a Repository takes as a host's name.
var checkOutHostRE = regexp.MustCompile(`^[A-Za-z0-9\[][A-Za-z0-9.:\[\]\-]{0,259}$`)

// publishedBridges checks the names of the bridges a site publishes and lists them
// sorted, once each, as announcements and resource properties tell them.
func publishedBridges(names []string) ([]string, error) {
	for _, b := range names {
		if err := hostfit.CheckBridgeName(b); err != nil {
			return nil, fmt.Errorf("published %w", err)
		}
	}
	return slices.Compact(slices.Sorted(slices.Values(names))), nil
}

// startupDelay lets an embedded server start listening before the first recovery
// round calls its own Repository.
const startupDelay = 100 * time.Millisecond

// Close stops the reconciler and waits for the background fsyncs of staged images.
// Domains keep running; the next start adopts them.
func (m *Manager) Close() {
	select {
	case <-m.stop:
	default:
		close(m.stop)
		m.wg.Wait()
		m.syncs.close()
	}
}

// loop recovers what a previous run left (once, shortly after start, so that the
// Repository this manager reports to may be in the same process), then reconciles
// on a timer.
func (m *Manager) loop() {
	defer m.wg.Done()
	select {
	case <-m.stop:
		return
	case <-time.After(startupDelay):
	}
	rctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	m.recover(rctx)
	cancel()
	m.dropStaleParts()
	// A budget lowered since the last run (--cache-max) holds from the start, not
	// from the next staging or undeploy; after recovery, whose records say which
	// images the workspaces deployed here stand on (never evicted).
	m.evictCache()
	lastPartSweep := time.Now()
	t := time.NewTicker(m.cfg.ReconcileEvery)
	defer t.Stop()
	for {
		select {
		case <-m.stop:
			return
		case <-t.C:
		case <-m.kick:
			// Let a burst (a host shutting several guests down) make one round.
			select {
			case <-m.stop:
				return
			case <-time.After(eventSettle):
			}
		}
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		m.reconcile(ctx)
		cancel()
		if time.Since(lastPartSweep) >= partSweepEvery {
			m.dropStaleParts()
			lastPartSweep = time.Now()
		}
	}
}

// partSweepEvery: stale .part files are looked for at start and then hourly, not on
// every reconcile round (which reads the cache directory each time).
const partSweepEvery = time.Hour

func (m *Manager) dropStaleParts() {
	for _, name := range m.cache.dropStaleParts(time.Now()) {
		m.log.Info("removed an interrupted transfer no deploy resumed", "file", name, "kept", partKeep)
	}
}

// eventSettle is how long the reconciler waits after an event before its round.
const eventSettle = 20 * time.Millisecond

// onEvent runs on libvirt's event goroutine: it only asks for a round. Stopped and
// crashed are the changes no operation of this manager journals by itself (a guest
// that powered off, a domain destroyed behind its back); the states its own
// operations cause are journaled by them, and reconciling after each of those would
// only cost a hypervisor round trip.
func (m *Manager) onEvent(e vmm.Event) {
	if !strings.HasPrefix(e.Domain, domainPrefix) || (e.Kind != vmm.EventStopped && e.Kind != vmm.EventCrashed) {
		return
	}
	select {
	case m.kick <- struct{}{}:
	default: // a round is already asked for
	}
}

func (m *Manager) workspaceDir(key string) string {
	return filepath.Join(m.cfg.Dir, "workspaces", key)
}

// selfEPR is this manager's endpoint reference, in the dialect of the workspace's.
func (m *Manager) selfEPR(v wsa.Version) *wsa.EPR {
	if m.cfg.Self == nil || m.cfg.Self() == "" {
		return nil
	}
	return &wsa.EPR{Version: v, Address: m.cfg.Self()}
}

// Progress reports how far the deploy of key has staged its images.
type Progress struct {
	Done, Total int64
}

// progressCell is updated by the transfer while handlers read it.
type progressCell struct{ done, total atomic.Int64 }

// StagingProgress returns the staging progress of a deploy in flight.
func (m *Manager) StagingProgress(key string) (Progress, bool) {
	v, ok := m.progress.Load(key)
	if !ok {
		return Progress{}, false
	}
	c := v.(*progressCell)
	return Progress{Done: c.done.Load(), Total: c.total.Load()}, true
}

// ProgressHandler serves GET /manager/staging/<key>: the staging progress of a
// deploy in flight as JSON {"done":N,"total":N}, 404 when none is.
func (m *Manager) ProgressHandler() http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		key := strings.TrimPrefix(r.URL.Path, "/manager/staging/")
		p, ok := m.StagingProgress(key)
		if !ok {
			http.Error(w, "no deploy of that workspace is staging on this host", http.StatusNotFound)
			return
		}
		w.Header().Set("Content-Type", "application/json")
		json.NewEncoder(w).Encode(map[string]int64{"done": p.Done, "total": p.Total})
	})
}
