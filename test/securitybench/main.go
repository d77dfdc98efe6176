// Command securitybench measures GetResourceProperty on the WorkspaceFactoryService (a
// singleton resource) against real vws servers in this process, side by side in one
// run: (1) plain HTTP, (2) mutual TLS with keep-alive, (3) mutual TLS with a
// WS-Security signed request and a signed response. Cases (2) and (3) run twice,
// once with an RSA-2048 PKI (CA, host, user) and once with an ECDSA P-256 one: the
// two signatures of a signed call are the bulk of its cost with RSA. Every case goes
// through internal/client, so client-side work (building, signing, verifying,
// parsing) is counted in each, on the same cores as the server.
//
// Throughput comes from -conns concurrent workers, latency (p50, p99) from a single
// worker. The audit log's share (one SQLite insert per authorization decision) is
// measured on its own at the end.
package main

import (
	"context"
	"crypto"
	"crypto/rand"
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"flag"
	"fmt"
	"io"
	"log"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"runtime"
	"runtime/pprof"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/vws-grid/vws/factory"
	"github.com/vws-grid/vws/internal/audit"
	"github.com/vws-grid/vws/internal/client"
	"github.com/vws-grid/vws/internal/identity"
	"github.com/vws-grid/vws/internal/pki"
	"github.com/vws-grid/vws/internal/server"
	"github.com/vws-grid/vws/internal/store"
	"github.com/vws-grid/vws/internal/tlsutil"
	"github.com/vws-grid/vws/internal/vwsns"
	"github.com/vws-grid/vws/internal/wsa"
	"github.com/vws-grid/vws/internal/wssec"
	"github.com/vws-grid/vws/test/loadgen"
)

func main() {
	duration := flag.Duration("duration", 5*time.Second, "how long each measurement (throughput, then latency) runs per case")
	conns := flag.Int("conns", 2*runtime.NumCPU(), "concurrent workers (keep-alive connections) for req/s")
	warmup := flag.Duration("warmup", time.Second, "warm-up per case before measuring")
	flag.StringVar(&cpuProfile, "cpuprofile", "", "write a CPU profile of case -profilecase's req/s run to this file")
	flag.IntVar(&profileCase, "profilecase", 3, "the case (1 plain, 2/3 RSA TLS/signed, 4/5 ECDSA TLS/signed) -cpuprofile profiles")
	flag.Parse()
	if err := run(*duration, *warmup, *conns); err != nil {
		log.Fatal(err)
	}
}

var (
	cpuProfile  string
	profileCase int
)

// bcase is one way of calling the factory.
type bcase struct {
	name   string
	client *client.Client
	epr    *wsa.EPR
	srv    *server.Server
	// accepted counts the connections srv's listener accepted.
	accepted *atomic.Int64
	// pki is the credentials of a secured case (nil for plain HTTP).
	pki *benchPKI
	// results
	tput, lat    loadgen.Result
	auditPerCall float64
	// connsPerCall is connections accepted per call in the req/s run (the client's
	// and the server's own calls to itself).
	connsPerCall float64
	// latConnsPerCall is the same in the single-worker run.
	latConnsPerCall float64
}

func run(d, warmup time.Duration, conns int) error {
	ctx := context.Background()
	tmp, err := os.MkdirTemp("", "vws-securitybench-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(tmp)
	// Request logs stay on (formatted and discarded) so their cost is counted.
	quiet := slog.New(slog.NewTextHandler(io.Discard, nil))

	keyTypes := []struct {
		kt    pki.KeyType
		label string
	}{{pki.KeyTypeRSA, "RSA-2048"}, {pki.KeyTypeECDSA, "ECDSA P-256"}}
	pkis := make([]*benchPKI, len(keyTypes))
	for i, k := range keyTypes {
		if pkis[i], err = makePKI(filepath.Join(tmp, string(k.kt)), k.kt, k.label); err != nil {
			return fmt.Errorf("%s PKI: %w", k.label, err)
		}
	}

	roles := []string{"factory", "repository"}
	// (1) a plain-HTTP server of its own.
	plainDir := filepath.Join(tmp, "plain")
	plain, err := server.New(ctx, server.Config{DataDir: plainDir, Roles: roles, Logger: quiet})
	if err != nil {
		return err
	}
	defer plain.Close()
	plainAccepted := new(atomic.Int64)
	plainURL, stopPlain, err := serve(plain, nil, plainAccepted)
	if err != nil {
		return err
	}
	defer stopPlain()

	factoryEPR := func(base string) *wsa.EPR {
		return &wsa.EPR{Version: wsa.V200508, Address: base + "/wsrf/services/" + vwsns.FactoryService}
	}
	plainClient := client.New(&http.Client{Transport: transport(conns, nil), Timeout: time.Minute})
	cases := []*bcase{{name: "plain HTTP", client: plainClient, epr: factoryEPR(plainURL), srv: plain, accepted: plainAccepted}}

	// (2) and (3) per key type: one secured server, mutual TLS, verifying and signing
	// messages with its host credential.
	// A key type whose server cannot start is reported as not measured, with the
	// reason, instead of hiding the other rows.
	var notMeasured []string
	for _, bp := range pkis {
		secure, err := server.New(ctx, server.Config{DataDir: filepath.Join(bp.dir, "secure"), Roles: roles, Logger: quiet,
			HostCertFile: bp.hostCert, HostKeyFile: bp.hostKey, Trust: bp.trust})
		if err != nil {
			notMeasured = append(notMeasured, fmt.Sprintf("%s NOT MEASURED — a server with a %s host credential does not start: %v", bp.label, bp.label, err))
			continue
		}
		defer secure.Close()
		tlsServer, err := tlsutil.Server(bp.hostCert, bp.hostKey, bp.caDir, tlsutil.WithTrust(bp.trust))
		if err != nil {
			return err
		}
		secureAccepted := new(atomic.Int64)
		secureURL, stopSecure, err := serve(secure, tlsServer, secureAccepted)
		if err != nil {
			return err
		}
		defer stopSecure()

		tlsClient, err := client.TLSConfig(bp.userCert, bp.userKey, bp.caDir)
		if err != nil {
			return err
		}
		tlsPlainClient := client.New(&http.Client{Transport: transport(conns, tlsClient), Timeout: time.Minute})
		signedClient := client.New(&http.Client{Transport: transport(conns, tlsClient), Timeout: time.Minute})
		signedClient.Signer = &wssec.Signer{Key: bp.user.Key, Chain: bp.user.FullChain()}
		trust := bp.trust
		signedClient.Verifier = wssec.NewVerifier(func(chain []*x509.Certificate) (identity.Identity, error) {
			return trust.Verify(chain, time.Now())
		})
		cases = append(cases,
			&bcase{name: "mutual TLS, " + bp.label, client: tlsPlainClient, epr: factoryEPR(secureURL), srv: secure, accepted: secureAccepted, pki: bp},
			&bcase{name: "mTLS + WS-Sec signed, " + bp.label, client: signedClient, epr: factoryEPR(secureURL), srv: secure, accepted: secureAccepted, pki: bp})
	}

	fmt.Printf("GetResourceProperty fac:Version on %s (singleton; each call also lists the Repository's images over SOAP)\n", vwsns.FactoryService)
	fmt.Printf("in-process server, loopback, keep-alive; req/s with %d workers, p50/p99 with 1 worker; %s each (after %s warm-up), GOMAXPROCS=%d, load average at start %s\n",
		conns, d, warmup, runtime.GOMAXPROCS(0), loadAverage())
	for i, c := range cases {
		if err := check(ctx, c); err != nil {
			return fmt.Errorf("%s: %w", c.name, err)
		}
		measure(ctx, c, conns, warmup) // warm-up, discarded
		before, err := auditRows(ctx, c.srv)
		if err != nil {
			return err
		}
		accepted := c.accepted.Load()
		if cpuProfile != "" && profileCase == i+1 {
			f, err := os.Create(cpuProfile)
			if err != nil {
				return err
			}
			if err := pprof.StartCPUProfile(f); err != nil {
				return err
			}
			c.tput = measure(ctx, c, conns, d)
			pprof.StopCPUProfile()
			f.Close()
		} else {
			c.tput = measure(ctx, c, conns, d)
		}
		newConns := c.accepted.Load() - accepted
		after, err := auditRows(ctx, c.srv)
		if err != nil {
			return err
		}
		if c.tput.Requests+c.tput.Errors > 0 {
			c.auditPerCall = float64(after-before) / float64(c.tput.Requests+c.tput.Errors)
			c.connsPerCall = float64(newConns) / float64(c.tput.Requests+c.tput.Errors)
		}
		accepted = c.accepted.Load()
		c.lat = measure(ctx, c, 1, d)
		if c.lat.Requests+c.lat.Errors > 0 {
			c.latConnsPerCall = float64(c.accepted.Load()-accepted) / float64(c.lat.Requests+c.lat.Errors)
		}
	}

	fmt.Println()
	fmt.Printf("  %-34s %10s %10s %10s   %s\n", "", "req/s", "p50 ms", "p99 ms", "(errors; in the req/s run: audit inserts and new connections per call)")
	for _, c := range cases {
		fmt.Printf("  %-34s %10.0f %10.3f %10.3f   (%d errors; %.1f audit inserts/call, %.3f new connections/call)\n",
			c.name, c.tput.PerSecond, ms(c.lat.P50), ms(c.lat.P99), c.tput.Errors+c.lat.Errors, c.auditPerCall, c.connsPerCall)
	}
	fmt.Println()
	for _, c := range cases {
		fmt.Printf("  %-34s %d workers: %s  %.3f new conns/call\n", c.name, conns, c.tput, c.connsPerCall)
		fmt.Printf("  %-34s 1 worker:  %s  %.3f new conns/call\n", c.name, c.lat, c.latConnsPerCall)
	}
	fmt.Println("  (new connections are the server's own calls to itself, Factory → Repository ListImages: each one over mTLS is a full handshake)")
	fmt.Println()
	pl := cases[0]
	ratio := func(a, b time.Duration) float64 { return float64(a) / float64(b) }
	goal := func(ok bool) string {
		if ok {
			return "met"
		}
		return "MISSED"
	}
	// cases[1:] are (TLS, signed) pairs, one per key type.
	var tlsGoal, signedGoal []string
	for i := 1; i+1 < len(cases); i += 2 {
		tl, sg := cases[i], cases[i+1]
		label := tl.pki.label
		fmt.Printf("  ratios %-12s TLS p50 / plain p50 = %.2f; signed p50 / plain p50 = %.2f; signed p50 / TLS p50 = %.2f; signed req/s / TLS req/s = %.2f\n",
			label+":", ratio(tl.lat.P50, pl.lat.P50), ratio(sg.lat.P50, pl.lat.P50), ratio(sg.lat.P50, tl.lat.P50), sg.tput.PerSecond/tl.tput.PerSecond)
		r := ratio(tl.lat.P50, pl.lat.P50)
		tlsGoal = append(tlsGoal, fmt.Sprintf("%s %.2f — %s", label, r, goal(r <= 1.5)))
		signedGoal = append(signedGoal, fmt.Sprintf("%s %.0f req/s (p50 %.3f ms) — %s", label, sg.tput.PerSecond, ms(sg.lat.P50), goal(sg.tput.PerSecond >= 1000)))
	}
	tlsGoal = append(tlsGoal, notMeasured...)
	signedGoal = append(signedGoal, notMeasured...)
	fmt.Printf("goal: TLS p50 / plain p50 ≤ 1.5: %s\n", strings.Join(tlsGoal, "; "))
	fmt.Printf("goal: signed ≥ 1000 req/s: %s (GT4's Java container: 183 ms per signed call)\n", strings.Join(signedGoal, "; "))

	// The audit log's share: its insert alone, on a database of its own made the same way.
	per, err := auditCost(ctx, filepath.Join(tmp, "audit"), d/5)
	if err != nil {
		return err
	}
	fmt.Println()
	fmt.Printf("audit: one insert (hash chain, under one mutex) takes %.3f ms alone → at most %.0f inserts/s for the whole server\n",
		ms(per), float64(time.Second)/float64(per))
	for _, c := range cases {
		share := c.auditPerCall * float64(per)
		fmt.Printf("  %-34s %.1f inserts/call ≈ %.3f ms = %4.0f%% of p50\n", c.name, c.auditPerCall, share/float64(time.Millisecond),
			100*share/float64(c.lat.P50))
	}
	// The floor under the signed cases: one signature by the client (request) and one
	// by the server (response) per call, each a private-key operation.
	for _, bp := range pkis {
		sig, err := signCost(bp.user.Key, d/10)
		if err != nil {
			return err
		}
		fmt.Printf("%-11s signature (SHA-256): %.3f ms each; 2 per signed call → the signatures alone cap %d cores at %.0f calls/s\n",
			bp.label, ms(sig), runtime.GOMAXPROCS(0), float64(runtime.GOMAXPROCS(0))*float64(time.Second)/float64(2*sig))
	}
	var failed []string
	for _, c := range cases {
		if c.tput.Errors+c.lat.Errors > 0 {
			failed = append(failed, c.name)
		}
	}
	if len(failed) > 0 {
		return fmt.Errorf("failed requests in: %s", strings.Join(failed, ", "))
	}
	return nil
}

// benchPKI is a CA (in caDir, trusted by trust), a host certificate for 127.0.0.1
// and a user, all of one key type, written under dir.
type benchPKI struct {
	label, dir                                  string
	caDir, hostCert, hostKey, userCert, userKey string
	user                                        *pki.Credential
	trust                                       *pki.Trust
}

func makePKI(dir string, kt pki.KeyType, label string) (*benchPKI, error) {
	ca, err := pki.NewCA(pki.CAOptions{KeyType: kt})
	if err != nil {
		return nil, err
	}
	host, err := ca.IssueHost(pki.HostOptions{Name: "localhost", IPs: []net.IP{net.ParseIP("127.0.0.1")}, KeyType: kt})
	if err != nil {
		return nil, err
	}
	user, err := ca.IssueUser(pki.UserOptions{CN: "Bench User", KeyType: kt})
	if err != nil {
		return nil, err
	}
	bp := &benchPKI{label: label, dir: dir, caDir: filepath.Join(dir, "certificates"), user: user,
		hostCert: filepath.Join(dir, "hostcert.pem"), hostKey: filepath.Join(dir, "hostkey.pem"),
		userCert: filepath.Join(dir, "usercert.pem"), userKey: filepath.Join(dir, "userkey.pem")}
	if _, err := pki.WriteCADir(bp.caDir, ca.Certificate, nil); err != nil {
		return nil, err
	}
	if err := pki.WriteCredential(bp.hostCert, bp.hostKey, host); err != nil {
		return nil, err
	}
	if err := pki.WriteCredential(bp.userCert, bp.userKey, user); err != nil {
		return nil, err
	}
	if bp.trust, err = pki.LoadTrust(bp.caDir); err != nil {
		return nil, err
	}
	return bp, nil
}

// serve serves srv's handler on a fresh 127.0.0.1 port, over TLS when tc is set, and
// tells srv its address.
func serve(srv *server.Server, tc *tls.Config, accepted *atomic.Int64) (string, func(), error) {
	tcp, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", nil, err
	}
	var ln net.Listener = countingListener{tcp, accepted}
	scheme := "http"
	if tc != nil {
		ln = tls.NewListener(ln, tc)
		scheme = "https"
	}
	hs := &http.Server{Handler: srv.Handler(), ReadHeaderTimeout: 10 * time.Second, ErrorLog: log.New(io.Discard, "", 0)}
	go func() { _ = hs.Serve(ln) }()
	base := scheme + "://" + ln.Addr().String()
	srv.SetBaseURL(base)
	return base, func() { _ = hs.Close() }, nil
}

type countingListener struct {
	net.Listener
	n *atomic.Int64
}

func (l countingListener) Accept() (net.Conn, error) {
	c, err := l.Listener.Accept()
	if err == nil {
		l.n.Add(1)
	}
	return c, err
}

// transport is one keep-alive transport for a case's workers.
func transport(conns int, tc *tls.Config) *http.Transport {
	tr := loadgen.Transport(conns)
	tr.TLSClientConfig = tc
	tr.ForceAttemptHTTP2 = false
	return tr
}

// check makes one call and looks at the answer.
func check(ctx context.Context, c *bcase) error {
	vals, err := c.client.GetResourceProperty(ctx, c.epr, factory.PropVersion)
	if err != nil {
		return err
	}
	if len(vals) != 1 || strings.TrimSpace(vals[0].Text()) != server.Version {
		return fmt.Errorf("fac:Version answered %d elements, want one holding %s", len(vals), server.Version)
	}
	return nil
}

// measure calls GetResourceProperty from workers goroutines for d.
func measure(ctx context.Context, c *bcase, workers int, d time.Duration) loadgen.Result {
	ctx, cancel := context.WithTimeout(ctx, d)
	defer cancel()
	var mu sync.Mutex
	var lat []time.Duration
	errs := 0
	var firstErr error
	var wg sync.WaitGroup
	start := time.Now()
	for i := 0; i < workers; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			local := make([]time.Duration, 0, 1<<14)
			bad := 0
			var e1 error
			for ctx.Err() == nil {
				t0 := time.Now()
				// The call itself is not bound to ctx: the last one finishes, never counts as an error.
				_, err := c.client.GetResourceProperty(context.Background(), c.epr, factory.PropVersion)
				if err != nil {
					bad++
					if e1 == nil {
						e1 = err
					}
					continue
				}
				local = append(local, time.Since(t0))
			}
			mu.Lock()
			lat = append(lat, local...)
			errs += bad
			if firstErr == nil {
				firstErr = e1
			}
			mu.Unlock()
		}()
	}
	wg.Wait()
	elapsed := time.Since(start)
	if firstErr != nil {
		fmt.Fprintf(os.Stderr, "%s: %d errors, first: %v\n", c.name, errs, firstErr)
	}
	slices.Sort(lat)
	r := loadgen.Result{Requests: len(lat), Errors: errs, Elapsed: elapsed}
	if len(lat) > 0 {
		r.P50 = lat[len(lat)/2]
		r.P99 = lat[len(lat)*99/100]
		r.PerSecond = float64(len(lat)) / elapsed.Seconds()
	}
	return r
}

func auditRows(ctx context.Context, srv *server.Server) (int64, error) {
	var n int64
	err := srv.DB().QueryRowContext(ctx, `SELECT COUNT(*) FROM audit`).Scan(&n)
	return n, err
}

// auditCost is the median time of one audit insert, on a fresh store in dir.
func auditCost(ctx context.Context, dir string, d time.Duration) (time.Duration, error) {
	db, err := store.Open(ctx, dir)
	if err != nil {
		return 0, err
	}
	defer db.Close()
	al := audit.New(db.SQL(), slog.New(slog.NewTextHandler(io.Discard, nil)))
	var lat []time.Duration
	for start := time.Now(); time.Since(start) < d || len(lat) < 100; {
		t0 := time.Now()
		al.RecordDecision(ctx, "inspect GetResourceProperty", vwsns.FactoryService, true, "default", "")
		lat = append(lat, time.Since(t0))
	}
	slices.Sort(lat)
	if len(lat) == 0 {
		return 0, errors.New("no audit inserts measured")
	}
	return lat[len(lat)/2], nil
}

// signCost is the median time of one SHA-256 signature with key (PKCS#1 v1.5 for
// RSA, ECDSA for EC keys).
func signCost(key crypto.Signer, d time.Duration) (time.Duration, error) {
	digest := sha256.Sum256([]byte("securitybench"))
	var lat []time.Duration
	for start := time.Now(); time.Since(start) < d || len(lat) < 20; {
		t0 := time.Now()
		if _, err := key.Sign(rand.Reader, digest[:], crypto.SHA256); err != nil {
			return 0, err
		}
		lat = append(lat, time.Since(t0))
	}
	slices.Sort(lat)
	return lat[len(lat)/2], nil
}

// loadAverage is the 1-minute load average, or "?": other work on the machine skews
// every number here.
func loadAverage() string {
	data, err := os.ReadFile("/proc/loadavg")
	if err != nil {
		return "?"
	}
	if f := strings.Fields(string(data)); len(f) > 0 {
		return f[0]
	}
	return "?"
}

func ms(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }
