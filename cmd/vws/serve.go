package main

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"log/slog"
	"math"
	"net"
	"net/http"
	"net/url"
	"os"
	"os/signal"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/dustin/go-humanize"
	"github.com/spf13/cobra"

	"github.com/vws-grid/vws/factory"
	"github.com/vws-grid/vws/internal/container"
	"github.com/vws-grid/vws/internal/hostfit"
	"github.com/vws-grid/vws/internal/notify"
	"github.com/vws-grid/vws/internal/pki"
	"github.com/vws-grid/vws/internal/server"
	"github.com/vws-grid/vws/internal/tlsutil"
	"github.com/vws-grid/vws/manager"
	"github.com/vws-grid/vws/vmm"
)

type serveOptions struct {
	listen    string
	dataDir   string
	database  string
	insecure  bool
	certFile  string
	keyFile   string
	caPath    string
	roles     []string
	maxBody   int64
	logLevel  string
	policy    string
	gridMap   string
	publicURL string
	trust     *pki.Trust
	defLife   time.Duration
	maxLife   time.Duration
	lifePol   string
	logJSON   bool
	libvirt   string
	domType   string
	// parseBudget bounds the body bytes of SOAP requests in process at once
	// (container.Config.ParseBudget).
	parseBudget int64
	// libvirtTimeout bounds libvirtd's silence (vmm.Config.Timeout).
	libvirtTimeout time.Duration
	// repoTimeout bounds a SOAP call to a Repository (manager.Config.RepositoryTimeout).
	repoTimeout time.Duration
	// repositories are the Repositories whose workspaces the manager deploys.
	repositories []string
	hostName     string
	grace        time.Duration
	reconcile    time.Duration
	announce     time.Duration
	cacheMax     string
	minFree      string
	memReserve   string
	// bridges are the host bridges the manager lets guests join.
	bridges []string
	// notifyNets are where the Repository may send notifications.
	notifyNets []string
	streams    int
	anon       bool // TLS callers without a client certificate are let in
	// changed says whether a flag was given (nil: none was, as in tests of runServe).
	changed func(name string) bool
}

// roleFlags are the flags that set up one role only (or either of two).
var roleFlags = []struct {
	role  string // "a or b": either
	flags []string
}{
	{"factory or repository", []string{"default-lifetime", "max-lifetime", "lifetime-policy"}},
	{"manager", []string{"repository", "libvirt-uri", "libvirt-timeout", "repository-timeout", "domain-type", "host-name", "grace",
		"reconcile-every", "cache-max", "memory-reserve", "min-free", "fetch-streams", "announce-every", "bridge"}},
	{"repository", []string{"notify-networks"}},
}

func defaultDataDir() string {
	if os.Geteuid() == 0 {
		return "/var/lib/vws"
	}
	if d := os.Getenv("XDG_DATA_HOME"); d != "" {
		return filepath.Join(d, "vws")
	}
	home, _ := os.UserHomeDir()
	return filepath.Join(home, ".local", "share", "vws")
}

func newServeCommand() *cobra.Command {
	o := &serveOptions{}
	cmd := &cobra.Command{
		Use:   "serve",
		Short: "Run vws services (all roles in one process by default)",
		Long: `Run the vws services on one HTTP server: the Factory, the Repository and the host
Manager by default, with embedded storage in --data (or its records in PostgreSQL,
--database). Services are mounted under
/wsrf/services/, with /healthz and /metrics beside them.

HTTPS with mutual X.509 authentication is the default: the host certificate and key
(--cert, --key; default /etc/grid-security/hostcert.pem and hostkey.pem) and the
trusted CAs with their CRLs (--ca; default /etc/grid-security/certificates). Callers'
certificates and RFC 3820 proxies are verified; the identity is the end-entity DN.
With the CAs the server also verifies WS-Security signed requests, signs its answers
to them, signs workspace manifests with the host key, and calls other services as
this host. --policy and --grid-mapfile decide who may do what (re-read on change);
every decision goes to the hash-chained audit log (vws audit). Plain HTTP, everyone
anonymous, only with --insecure. Test credentials: vws pki.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			o.changed = cmd.Flags().Changed
			return runServe(cmd.Context(), o)
		},
	}
	f := cmd.Flags()
	f.StringVar(&o.listen, "listen", "127.0.0.1:8080", "address to listen on")
	f.StringVar(&o.dataDir, "data", defaultDataDir(), "data directory (database, images)")
	f.StringVar(&o.database, "database", "", "PostgreSQL database for the records instead of SQLite in --data: postgres://USER@HOST:PORT/DB (the password from PGPASSWORD or ~/.pgpass; host=/run/postgresql for a socket); one server per database")
	f.BoolVar(&o.insecure, "insecure", false, "serve plain HTTP without authentication (tests, demos)")
	f.StringVar(&o.certFile, "cert", "", "host certificate (PEM) for HTTPS (default "+defaultHostCert+" if it exists)")
	f.StringVar(&o.keyFile, "key", "", "host key (PEM) for HTTPS (default "+defaultHostKey+" if it exists)")
	f.StringVar(&o.caPath, "ca", "", "trusted CAs and CRLs for client certificates: a directory in the grid layout or a PEM file (default "+defaultCADir+" if it exists)")
	f.BoolVar(&o.anon, "allow-anonymous", false, "let TLS clients without a certificate connect (policy decides what they may do); presented certificates are still verified")
	f.StringSliceVar(&o.roles, "role", nil, "roles to run: factory, repository, manager (default all)")
	f.StringArrayVar(&o.repositories, "repository", nil, "manager: base URL of a Repository whose workspaces this host deploys, e.g. https://repo.example.org:8443 (repeatable; this server's own when it runs the repository role); a Deploy naming another is refused before it is called")
	f.StringArrayVar(&o.bridges, "bridge", nil, "manager: a host bridge guests may join, e.g. br-grid (repeatable); a NIC of kind bridge must name one of these, and a workspace joining any other bridge is refused (default: none — guests join libvirt networks only)")
	f.Int64Var(&o.maxBody, "max-body", 1<<20, "largest SOAP request body in bytes (larger: HTTP 413)")
	f.Int64Var(&o.parseBudget, "parse-budget", container.DefaultParseBudget, "body bytes of the SOAP requests parsed and in process at once, server-wide (a parsed body takes up to ~37 times its size in memory); a request that finds no room within 5 s: HTTP 503 with Retry-After")
	f.StringSliceVar(&o.notifyNets, "notify-networks", nil, "repository: the only networks (CIDRs or addresses, comma-separated) notifications may be sent to, e.g. 10.0.0.0/8,127.0.0.1 (default: any address but link-local and multicast ones)")
	f.StringVar(&o.logLevel, "log-level", "info", "debug, info, warn or error")
	f.StringVar(&o.policy, "policy", "", "rules file: allow/deny, groups, shares, quotas, require-signature (see policy/policy.go); reloaded on change; without it (and --grid-mapfile) authenticated callers create and manage their own workspaces, …/CN=host/ certificates are hosts and nobody is admin; with --insecure everyone may do everything")
	f.StringVar(&o.gridMap, "grid-mapfile", "", `Globus grid-mapfile ("DN" account); reloaded on change`)
	f.DurationVar(&o.defLife, "default-lifetime", 24*time.Hour, "lifetime of a workspace whose request names none")
	f.DurationVar(&o.maxLife, "max-lifetime", 30*24*time.Hour, "longest lifetime a workspace may have")
	f.StringVar(&o.lifePol, "lifetime-policy", "clamp", "a request beyond --max-lifetime is clamped (and told so) or refused: clamp|refuse")
	f.BoolVar(&o.logJSON, "log-json", false, "log JSON records instead of text")
	f.StringVar(&o.libvirt, "libvirt-uri", "qemu:///system", "manager: libvirt connection (xen:///system for Xen)")
	f.DurationVar(&o.repoTimeout, "repository-timeout", manager.DefaultRepositoryTimeout, "manager: how long a call to a workspace's Repository (check-out, check-in, state report) may go unanswered before it fails; a Repository that answers at all does so within its own handler bound")
	f.DurationVar(&o.libvirtTimeout, "libvirt-timeout", vmm.DefaultTimeout, "manager: how long libvirtd may stay silent (to a new connection, or to the probes a long call makes) before the call fails with a HypervisorFault; long saves and boots do not count while libvirtd answers, a stopped or deadlocked libvirtd does")
	f.StringVar(&o.domType, "domain-type", "auto", "manager: libvirt domain type kvm|qemu|xen|auto (auto never picks KVM on a kvm_pvm host)")
	f.StringVar(&o.hostName, "host-name", "", "manager: the host name workspaces are checked out under (default: the system's)")
	f.StringVar(&o.publicURL, "public-url", "", "base URL others reach this server at, as in its EPRs and its own calls\n(default: the listen address; over TLS on an unspecified address, the host certificate's name)")
	f.DurationVar(&o.grace, "grace", 30*time.Second, "manager: how long a normal shutdown waits for the guest before forcing it off")
	f.StringVar(&o.cacheMax, "cache-max", "", "manager: bound on the image bytes the host cache alone holds, e.g. 50GiB; past it the least recently used images no deployment uses are evicted (default: no bound)")
	f.StringVar(&o.memReserve, "memory-reserve", "512MiB", "manager: host memory no guest is given; a Start, restore or running deploy whose guest would take the guests held in RAM past the host's memory less this is refused, and a deploy is granted no more (0: no account, guests may be given more than the host has)")
	f.StringVar(&o.minFree, "min-free", "1GiB", "manager: room kept free on the file system of its files (DATA/manager) for guest overlays to grow and for the manager's journal; a deploy or serialize that would not fit with it left over (after evicting cached images no deployment uses) is refused before it writes anything (0: no floor)")
	f.IntVar(&o.streams, "fetch-streams", manager.DefaultFetchStreams, "manager: parallel HTTP range requests (a piece, or a run of pieces of a large image, each) that stage an image from another server's repository when its manifest lists the pieces (1: one GET)")
	f.DurationVar(&o.announce, "announce-every", manager.DefaultAnnounceEvery, "manager: how often to announce this host to its repositories for placement, besides soon after each deploy, start, shutdown or undeploy (an announcement stays valid three times as long; 0: never)")
	f.DurationVar(&o.reconcile, "reconcile-every", 2*time.Second, "manager: how often to compare the journal with what libvirt runs (and retry failed state reports), besides right after libvirt reports a guest stopped or crashed")
	return cmd
}

// check refuses flag values that name nothing vws knows, before any file is read
// or anything starts: a misspelt one would otherwise start a server whose every
// operation then fails (--domain-type), or fail with Go's wording (--listen).
func (o *serveOptions) check() error {
	if _, err := notify.ParseNetworks(o.notifyNets); err != nil {
		return fmt.Errorf("--notify-networks: %w", err)
	}
	for _, b := range o.bridges {
		if err := hostfit.CheckBridgeName(b); err != nil {
			return fmt.Errorf("--bridge: %w", err)
		}
	}
	if _, port, err := net.SplitHostPort(o.listen); err != nil || port == "" {
		example := "8080"
		if _, err := strconv.ParseUint(o.listen, 10, 16); err == nil {
			example = o.listen
		}
		return fmt.Errorf("--listen %q: --listen takes host:port, e.g. 127.0.0.1:%s or :%s", o.listen, example, example)
	}
	for _, e := range []struct {
		flag, value string
		allowed     []string
	}{
		{"--log-level", strings.ToLower(o.logLevel), []string{"debug", "info", "warn", "error"}},
		{"--lifetime-policy", o.lifePol, []string{"clamp", "refuse"}},
		{"--domain-type", o.domType, []string{"auto", "kvm", "qemu", "xen"}},
	} {
		if !slices.Contains(e.allowed, e.value) {
			return fmt.Errorf("%s %q is not valid: give %s", e.flag, e.value, orList(e.allowed))
		}
	}
	// It goes into every EPR and into the server's calls to itself.
	if o.publicURL != "" {
		if err := checkBaseURL("--public-url", o.publicURL); err != nil {
			return err
		}
		if u, _ := url.Parse(o.publicURL); u.User != nil {
			base := *u
			base.User = nil
			return fmt.Errorf("--public-url %q names a user, whom every EPR the server hands out would disclose: give %s", u.Redacted(), base.String())
		}
	}
	for _, r := range o.roles {
		if !slices.Contains(rolesOrAll(nil), r) {
			return fmt.Errorf("--role %q is not valid: give %s (default all)", r, orList(rolesOrAll(nil)))
		}
	}
	// The Factory registers what it creates with this server's Repository (no flag
	// names another): without it every Create would fail.
	if roles := rolesOrAll(o.roles); slices.Contains(roles, "factory") && !slices.Contains(roles, "repository") {
		return fmt.Errorf("--role %s runs the factory without the repository role, with which it registers every workspace it creates: give --role factory,repository (a manager beside them: factory,repository,manager)",
			strings.Join(o.roles, ","))
	}
	// A setting of a role the server does not run would be ignored without a word.
	for _, rf := range roleFlags {
		if o.changed == nil || slices.ContainsFunc(strings.Split(rf.role, " or "), func(r string) bool { return slices.Contains(rolesOrAll(o.roles), r) }) {
			continue
		}
		for _, name := range rf.flags {
			if o.changed(name) {
				return fmt.Errorf("--%s is a setting of the %s role, which this server does not run (--role %s): leave it out, or add %s to --role",
					name, rf.role, strings.Join(o.roles, ","), rf.role)
			}
		}
	}
	return nil
}

// orList writes values as "a, b or c".
func orList(values []string) string {
	if len(values) < 2 {
		return strings.Join(values, "")
	}
	return strings.Join(values[:len(values)-1], ", ") + " or " + values[len(values)-1]
}

func runServe(ctx context.Context, o *serveOptions) error {
	if err := o.check(); err != nil {
		return err
	}
	var tlsCfg *tls.Config
	switch {
	case o.insecure && (o.certFile != "" || o.keyFile != ""):
		return errors.New("--insecure and --cert/--key exclude each other")
	case o.insecure && o.caPath != "":
		// Without TLS the CAs would go unused: signed requests and manifest signers
		// would not be verified against them.
		return errors.New("--insecure and --ca exclude each other: plain HTTP verifies no one; leave --insecure out to serve HTTPS with --cert, --key and --ca")
	case !o.insecure:
		certFile, keyFile, caPath, err := serveTLSFiles(o)
		if err != nil {
			return err
		}
		o.certFile, o.keyFile, o.caPath = certFile, keyFile, caPath
		if err := checkHostKeyMode(keyFile); err != nil {
			return err
		}
		if o.trust, err = pki.LoadTrust(caPath); err != nil {
			return err
		}
		opts := []tlsutil.Option{tlsutil.WithTrust(o.trust)}
		if o.anon {
			opts = append(opts, tlsutil.AllowAnonymous())
		}
		if tlsCfg, err = tlsutil.Server(certFile, keyFile, caPath, opts...); err != nil {
			return err
		}
		if err := checkHostValidity(certFile, tlsCfg.Certificates[0], time.Now()); err != nil {
			return err
		}
	case o.anon:
		return errors.New("--allow-anonymous is about TLS clients; with --insecure every caller is anonymous already")
	}
	var level slog.Level
	if err := level.UnmarshalText([]byte(o.logLevel)); err != nil {
		return fmt.Errorf("--log-level: %w", err)
	}
	hopts := &slog.HandlerOptions{Level: level}
	var handler slog.Handler = slog.NewTextHandler(os.Stderr, hopts)
	if o.logJSON {
		handler = slog.NewJSONHandler(os.Stderr, hopts)
	}
	logger := slog.New(handler)
	slog.SetDefault(logger)

	ctx, stop := signal.NotifyContext(ctxOrBackground(ctx), syscall.SIGINT, syscall.SIGTERM)
	defer stop()
	var cacheMax uint64
	if o.cacheMax != "" {
		var err error
		if cacheMax, err = humanize.ParseBytes(o.cacheMax); err != nil || cacheMax > math.MaxInt64 {
			return fmt.Errorf("--cache-max %q is not a size: give bytes with a unit, e.g. 50GiB or 200GB", o.cacheMax)
		}
	}
	minFree, err := humanize.ParseBytes(o.minFree)
	if err != nil || minFree > math.MaxInt64 {
		return fmt.Errorf("--min-free %q is not a size: give bytes with a unit, e.g. 1GiB or 500MB (0: no floor)", o.minFree)
	}
	// The manager reads 0 as its default floor: an explicit 0 here means none.
	minFreeBytes := int64(minFree)
	if minFreeBytes == 0 {
		minFreeBytes = -1
	}
	memReserve, err := humanize.ParseBytes(o.memReserve)
	if err != nil || memReserve > math.MaxInt64 {
		return fmt.Errorf("--memory-reserve %q is not a size: give bytes with a unit, e.g. 512MiB or 2GiB (0: no account of the guests' memory)", o.memReserve)
	}
	memReserveMiB := int64((memReserve + (1 << 20) - 1) >> 20) // a part MiB counts whole
	if memReserveMiB == 0 {
		memReserveMiB = -1 // likewise: 0 here means no account
	}
	if o.streams < 1 {
		return fmt.Errorf("--fetch-streams %d: give at least 1 (one GET per image)", o.streams)
	}
	if o.announce != 0 && (o.announce < 4*time.Second || o.announce > 20*time.Minute) {
		// A Repository holds an announcement for three periods, from 10 s to 1 h.
		return fmt.Errorf("--announce-every %s: give from 4s to 20m, or 0 for a host the repository does not place workspaces on", o.announce)
	}
	if o.repoTimeout < time.Second {
		return fmt.Errorf("--repository-timeout %s: give at least 1s", o.repoTimeout)
	}
	if o.libvirtTimeout < time.Second {
		return fmt.Errorf("--libvirt-timeout %s: give at least 1s (libvirt probes a silent libvirtd once a second at most)", o.libvirtTimeout)
	}
	// The services read zero or less as their default: 30 s, 2 s or 1 MiB would be
	// used instead of what was given.
	if o.grace <= 0 {
		return fmt.Errorf("--grace %s: give how long a normal shutdown waits for the guest before forcing it off, e.g. 30s", o.grace)
	}
	if o.reconcile <= 0 {
		return fmt.Errorf("--reconcile-every %s: give how often the manager compares its journal with libvirt, e.g. 2s", o.reconcile)
	}
	if o.maxBody <= 0 {
		return fmt.Errorf("--max-body %d: give the largest SOAP request body in bytes, e.g. 1048576 (1 MiB)", o.maxBody)
	}
	if o.parseBudget <= 0 {
		return fmt.Errorf("--parse-budget %d: give the body bytes of SOAP requests in process at once, e.g. %d (8 MiB)", o.parseBudget, container.DefaultParseBudget)
	}
	if o.defLife <= 0 || o.maxLife <= 0 || o.defLife > o.maxLife {
		return errors.New("--default-lifetime and --max-lifetime must be positive, the default no longer than the maximum")
	}
	// Listening first: a port in use fails the start before the server's background
	// work (the recovery sweep, the manager's reconciler) has begun.
	ln, err := net.Listen("tcp", o.listen)
	if err != nil {
		return fmt.Errorf("listen on %s: %w", o.listen, err)
	}
	defer ln.Close()
	srv, err := server.New(ctx, server.Config{DataDir: o.dataDir, Database: o.database, Roles: o.roles, MaxBodyBytes: o.maxBody, ParseBudget: o.parseBudget, Logger: logger,
		PolicyFile: o.policy, GridMapFile: o.gridMap, HostCertFile: o.certFile, HostKeyFile: o.keyFile, Trust: o.trust,
		NotifyNetworks: o.notifyNets,
		Factory:        factory.Config{DefaultLifetime: o.defLife, MaximumLifetime: o.maxLife, RefuseLongLifetimes: o.lifePol == "refuse"},
		Manager: server.ManagerConfig{LibvirtURI: o.libvirt, LibvirtTimeout: o.libvirtTimeout, DomainType: o.domType, Host: o.hostName, GracePeriod: o.grace, ReconcileEvery: o.reconcile,
			CacheMaxBytes: int64(cacheMax), MinFreeBytes: minFreeBytes, MemoryReserveMiB: memReserveMiB, FetchStreams: o.streams, AnnounceEvery: announceEvery(o.announce),
			RepositoryTimeout: o.repoTimeout, Repositories: o.repositories, Bridges: o.bridges}})
	if err != nil {
		return err
	}
	defer srv.Close()
	// Refused handshakes (untrusted, expired, revoked, impersonating certificates) are
	// reported by net/http through ErrorLog: into the structured log with the rest.
	// Handlers are counted: past the shutdown's grace period the store must not close
	// under one still running.
	var inFlight sync.WaitGroup
	served := srv.Handler()
	hs := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		inFlight.Add(1)
		defer inFlight.Done()
		served.ServeHTTP(w, r)
	}), ReadHeaderTimeout: 10 * time.Second, IdleTimeout: 2 * time.Minute,
		// Held per connection before any handler, outside the parse budget; no client
		// of these services sends more than a few KiB (net/http's default is 1 MiB).
		MaxHeaderBytes: 64 << 10,
		ErrorLog:       slog.NewLogLogger(handler, slog.LevelWarn)}
	scheme := "http"
	if tlsCfg != nil {
		ln = tls.NewListener(ln, tlsCfg)
		scheme = "https"
	}
	base := o.publicURL
	if base == "" {
		var leaf *x509.Certificate
		if tlsCfg != nil && len(tlsCfg.Certificates) > 0 {
			leaf, _ = x509.ParseCertificate(tlsCfg.Certificates[0].Certificate[0])
		}
		base = advertisedURL(scheme, ln.Addr(), leaf)
	}
	srv.SetBaseURL(strings.TrimRight(base, "/"))
	errc := make(chan error, 1)
	go func() { errc <- hs.Serve(ln) }()
	// url is where it listens; advertised, what its EPRs and its own calls name (they
	// differ on an unspecified address or behind --public-url).
	logger.Info("vws serving", "url", scheme+"://"+ln.Addr().String(), "advertised", srv.BaseURL(),
		"roles", strings.Join(rolesOrAll(o.roles), ","), "data", o.dataDir)
	var lost error
	select {
	case err := <-errc:
		return err
	case <-ctx.Done():
	case lost = <-srv.Lost():
		logger.Error("stopping: the database is no longer this server's", "err", lost)
		srv.Fence() // not one more write over the records the other server keeps now
	}
	// A second SIGINT or SIGTERM now ends vws at once, as without a handler: the
	// shutdown may wait on requests for as long as their handlers take. Reset, not
	// just stop: main's Ctrl-C handler would otherwise swallow a SIGINT after a
	// SIGTERM.
	stop()
	signal.Reset(syscall.SIGINT, syscall.SIGTERM)
	logger.Info("shutting down")
	sctx, cancel := context.WithTimeout(context.Background(), shutdownGrace)
	defer cancel()
	if err := hs.Shutdown(sctx); err != nil {
		// Requests still running (an upload, a deploy) are cut short: closing their
		// connections cancels them, a deploy is undone, and the store closes only once
		// their handlers have returned.
		logger.Warn("requests still running after the shutdown's grace period are cut short", "grace", shutdownGrace)
		hs.Close()
		inFlight.Wait()
	}
	if lost != nil {
		return fmt.Errorf("stopped, since another vws server took the database while this one's session was cut: %w", lost)
	}
	return nil
}

// shutdownGrace is how long a stopping server lets the requests under way finish.
var shutdownGrace = 10 * time.Second

// checkHostKeyMode refuses a host key others on the machine may read or write, as
// Globus does: any of them could act as this host. (Group access is left to the
// site: a key shared with the group of the account vws runs under.)
func checkHostKeyMode(keyFile string) error {
	fi, err := os.Stat(keyFile)
	if err != nil || fi.IsDir() {
		return nil // loading it says what is wrong
	}
	if fi.Mode().Perm()&0o007 != 0 {
		return fmt.Errorf("host key %s may be read or written by any user of this machine (mode %s), who could act as this host: chmod 600 %s", keyFile, fi.Mode().Perm(), keyFile)
	}
	return nil
}

// checkHostValidity refuses a host certificate outside its validity: every client
// would refuse the server at the handshake, and its log would show only handshake
// errors.
func checkHostValidity(certFile string, cert tls.Certificate, now time.Time) error {
	leaf, err := x509.ParseCertificate(cert.Certificate[0])
	if err != nil {
		return fmt.Errorf("host certificate %s: %w", certFile, err)
	}
	switch {
	case now.After(leaf.NotAfter):
		return fmt.Errorf("host certificate %s expired at %s: renew it (vws pki host makes test ones), clients refuse an expired one", certFile, leaf.NotAfter.UTC().Format(time.RFC3339))
	case now.Before(leaf.NotBefore):
		return fmt.Errorf("host certificate %s is not valid before %s: check this machine's clock, or renew it with a validity starting now", certFile, leaf.NotBefore.UTC().Format(time.RFC3339))
	}
	return nil
}

func rolesOrAll(r []string) []string {
	if len(r) == 0 {
		return []string{"factory", "repository", "manager"}
	}
	return r
}

func ctxOrBackground(ctx context.Context) context.Context {
	if ctx == nil {
		return context.Background()
	}
	return ctx
}

// advertisedURL is the base URL a server listening on addr gives in its EPRs and
// calls itself at. Listening on every address (":8443"), the listen address names no
// host; over TLS the host certificate's first DNS name (else IP) does, and it is
// also the name the certificate is valid for, which a TLS client checks.
func advertisedURL(scheme string, addr net.Addr, leaf *x509.Certificate) string {
	host, port, err := net.SplitHostPort(addr.String())
	if err != nil {
		return scheme + "://" + addr.String()
	}
	if ip := net.ParseIP(host); ip != nil && ip.IsUnspecified() {
		switch {
		case leaf != nil && len(leaf.DNSNames) > 0:
			host = leaf.DNSNames[0]
		case leaf != nil && len(leaf.IPAddresses) > 0:
			host = leaf.IPAddresses[0].String()
		default:
			if h, err := os.Hostname(); err == nil {
				host = h
			}
		}
	}
	return scheme + "://" + net.JoinHostPort(host, port)
}

// announceEvery maps --announce-every to the manager's setting, where 0 means the
// default and negative never.
func announceEvery(d time.Duration) time.Duration {
	if d <= 0 {
		return -1
	}
	return d
}
