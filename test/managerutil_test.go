package test

// Helpers for end-to-end tests of the VW Manager with real QEMU guests: the real vws
// binary as a server process, the test guest's images in its pool, the CLI, the
// repository's and the host's properties over SOAP, the serial console, and libvirt
// domains (virsh) cleaned up whatever happens.

import (
	"bytes"
	"context"
	"database/sql"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/beevik/etree"

	"github.com/vws-grid/vws/internal/client"
	"github.com/vws-grid/vws/internal/store/storetest"
	"github.com/vws-grid/vws/internal/vwsns"
	"github.com/vws-grid/vws/internal/wsa"
	"github.com/vws-grid/vws/test/guest"
)

// MgrServer is one `vws serve --insecure` child process on a free loopback port.
type MgrServer struct {
	URL      string    // http://127.0.0.1:PORT (https with TLS)
	TLS      *MgrTLS   // nil: --insecure
	Dir      string    // its --data directory
	HostName string    // its --host-name ("" when not a manager or not given)
	Started  time.Time // when the process was started
	Serving  time.Time // when /healthz first answered

	cmd    *exec.Cmd
	exited chan struct{}
	logMu  sync.Mutex
	log    bytes.Buffer
}

// MgrServerOptions are the flags a test server runs with.
type MgrServerOptions struct {
	Dir      string   // default: t.TempDir()
	Roles    []string // default: all
	HostName string   // --host-name; give two managers on one machine different names
	// Repository is the base URL of the Repository a server without the repository
	// role deploys the workspaces of (--repository).
	Repository string
	Args       []string // further flags
	// TLS, when set, runs the server over mutual TLS with these credentials instead
	// of --insecure.
	TLS *MgrTLS
	// Database is its --database. Default: none, or under VWS_TEST_POSTGRES a
	// PostgreSQL database of Dir's own, the same one whenever a server starts on Dir.
	Database string
	// SQLite keeps the records in Dir whatever the suite runs against.
	SQLite bool
}

// testDatabase is a --database for an in-process server: none, or under
// VWS_TEST_POSTGRES a fresh PostgreSQL database.
func testDatabase(t *testing.T) string {
	if !storetest.Postgres() {
		return ""
	}
	return storetest.NewPostgres(t, os.Getenv(storetest.Env))
}

// openServerDB opens a stopped server's database behind its back, as an intruder or
// a careless administrator would; pg says it is PostgreSQL (else SQLite in its Dir).
func openServerDB(t *testing.T, s *MgrServer) (db *sql.DB, pg bool) {
	t.Helper()
	var err error
	if u, ok := dirDatabases.Load(s.Dir); ok {
		db, err = sql.Open("pgx", u.(string))
		pg = true
	} else {
		db, err = sql.Open("sqlite", "file:"+filepath.Join(s.Dir, "vws.db"))
	}
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	return db, pg
}

// dirDatabases maps a data directory to its PostgreSQL test database, so that a
// server restarted on the directory finds its records.
var dirDatabases sync.Map

func (o *MgrServerOptions) database(t *testing.T) string {
	if o.Database != "" || o.SQLite || !storetest.Postgres() {
		return o.Database
	}
	if u, ok := dirDatabases.Load(o.Dir); ok {
		return u.(string)
	}
	u := testDatabase(t)
	dirDatabases.Store(o.Dir, u)
	return u
}

// MgrTLS is a site for a TLS test server: its CA directory, the host's certificate
// and key, a rules file, and a client credential (a proxy file) that /healthz and
// CLI calls without another credential use.
type MgrTLS struct {
	CADir, HostCert, HostKey, Policy string
	Proxy                            string
}

var mgrServingURL = regexp.MustCompile(`msg="vws serving" url=(\S+)`)

// StartMgrServer runs the real vws binary as `vws serve --insecure --listen 127.0.0.1:0`
// and waits until /healthz answers. The process is killed when the test ends; its log
// is printed when the test failed.
func StartMgrServer(t *testing.T, o MgrServerOptions) *MgrServer {
	t.Helper()
	if o.Dir == "" {
		o.Dir = t.TempDir()
	}
	args := []string{"serve", "--insecure", "--listen", "127.0.0.1:0", "--data", o.Dir, "--log-level", "info"}
	if o.TLS != nil {
		args = []string{"serve", "--listen", "127.0.0.1:0", "--data", o.Dir, "--log-level", "info",
			"--cert", o.TLS.HostCert, "--key", o.TLS.HostKey, "--ca", o.TLS.CADir, "--policy", o.TLS.Policy}
	}
	if len(o.Roles) > 0 {
		args = append(args, "--role", strings.Join(o.Roles, ","))
	}
	if o.HostName != "" {
		args = append(args, "--host-name", o.HostName)
	}
	if o.Repository != "" {
		args = append(args, "--repository", o.Repository)
	}
	if db := o.database(t); db != "" {
		args = append(args, "--database", db)
	}
	args = append(args, o.Args...)
	s := &MgrServer{Dir: o.Dir, HostName: o.HostName, TLS: o.TLS, exited: make(chan struct{})}
	s.cmd = exec.Command(vws(t), args...)
	// A writer, not StderrPipe: Wait returns only once everything the process wrote is
	// here, so its last line (why it exited) is never lost to a read not yet done.
	urlc := make(chan string, 1)
	s.cmd.Stderr = &lineWriter{line: func(line string) {
		s.logMu.Lock()
		s.log.WriteString(line + "\n")
		s.logMu.Unlock()
		if m := mgrServingURL.FindStringSubmatch(line); m != nil {
			select {
			case urlc <- m[1]:
			default:
			}
		}
	}}
	s.cmd.WaitDelay = 5 * time.Second // a child holding stderr open cannot hold Wait up for ever
	s.Started = time.Now()
	if err := s.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	trackServer(t, s)
	go func() {
		s.cmd.Wait()
		close(s.exited)
	}()
	t.Cleanup(func() {
		s.Kill()
		if strings.Contains(s.Logs(), "WARNING: DATA RACE") {
			t.Errorf("the race detector found a data race in vws serve (built with -race)")
		}
		if t.Failed() {
			t.Logf("log of vws serve %v:\n%s", args, s.Logs())
		}
	})
	select {
	case s.URL = <-urlc:
	case <-s.exited:
		t.Fatalf("vws serve exited during start-up (%v):\n%s", s.cmd.ProcessState, s.Logs())
	case <-time.After(30 * time.Second):
		t.Fatalf("vws serve did not start within 30s:\n%s", s.Logs())
	}
	hc := http.DefaultClient
	if o.TLS != nil {
		tc, err := client.TLSConfig(o.TLS.Proxy, o.TLS.Proxy, o.TLS.CADir)
		if err != nil {
			t.Fatal(err)
		}
		hc = &http.Client{Transport: &http.Transport{TLSClientConfig: tc}}
	}
	for deadline := time.Now().Add(20 * time.Second); ; {
		resp, err := hc.Get(s.URL + "/healthz")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				s.Serving = time.Now()
				return s
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s/healthz does not answer: %v\n%s", s.URL, err, s.Logs())
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// Kill sends SIGKILL and waits for the process to end.
func (s *MgrServer) Kill() {
	select {
	case <-s.exited:
		return
	default:
	}
	s.cmd.Process.Kill()
	<-s.exited
}

// Logs is what the server wrote to stderr so far.
func (s *MgrServer) Logs() string {
	s.logMu.Lock()
	defer s.logMu.Unlock()
	return s.log.String()
}

// CLI runs the vws client with VWS_URL set to this server (and, over TLS, as the
// site's default client credential).
func (s *MgrServer) CLI(t *testing.T, args ...string) run {
	t.Helper()
	if s.TLS != nil {
		return s.CLIAs(t, s.TLS.Proxy, args...)
	}
	return runVWS(t, []string{"VWS_URL=" + s.URL}, args...)
}

// CLIAs runs the vws client as the holder of proxy (a proxy file: certificate, key
// and chain), trusting the server's CAs.
func (s *MgrServer) CLIAs(t *testing.T, proxy string, args ...string) run {
	t.Helper()
	return runVWS(t, []string{"VWS_URL=" + s.URL, "X509_USER_PROXY=" + proxy, "X509_CERT_DIR=" + s.TLS.CADir}, args...)
}

// MustCLI runs the vws client and fails the test unless it exits 0.
func (s *MgrServer) MustCLI(t *testing.T, args ...string) run {
	t.Helper()
	r := s.CLI(t, args...)
	if r.code != 0 {
		t.Fatalf("vws %s: exit %d\nstdout: %s\nstderr: %s", strings.Join(args, " "), r.code, r.stdout, r.stderr)
	}
	return r
}

// ManagerDir is the manager's directory under the server's data directory.
func (s *MgrServer) ManagerDir() string { return filepath.Join(s.Dir, "manager") }

// WorkspaceFiles lists the files the manager keeps for workspace key (none when it
// has no directory for it).
func (s *MgrServer) WorkspaceFiles(key string) []string {
	ents, _ := os.ReadDir(filepath.Join(s.ManagerDir(), "workspaces", key))
	var out []string
	for _, e := range ents {
		out = append(out, e.Name())
	}
	return out
}

// HasWorkspaceDir says whether the manager has a directory for key.
func (s *MgrServer) HasWorkspaceDir(key string) bool {
	_, err := os.Stat(filepath.Join(s.ManagerDir(), "workspaces", key))
	return err == nil
}

// ManagerEntries lists the names in the manager's workspaces and journal directories.
func (s *MgrServer) ManagerEntries() []string {
	var out []string
	for _, d := range []string{"workspaces", "journal"} {
		ents, _ := os.ReadDir(filepath.Join(s.ManagerDir(), d))
		for _, e := range ents {
			out = append(out, d+"/"+e.Name())
		}
	}
	return out
}

// GuestImages holds the pool digests of the test guest's three images.
type GuestImages struct{ Disk, Kernel, Initrd string }

// ImportGuest imports the test guest (guest.Ensure, which skips under -short) into the
// server's pool as guest-disk, guest-kernel and guest-initrd, the names
// test/testdata/manager/ticker.xml uses.
func ImportGuest(t *testing.T, s *MgrServer) GuestImages {
	t.Helper()
	img := guest.Ensure(t)
	digest := regexp.MustCompile(`sha256:[0-9a-f]{64}`)
	var out GuestImages
	for _, im := range []struct {
		file, name string
		dst        *string
	}{{img.Disk, "guest-disk", &out.Disk}, {img.Kernel, "guest-kernel", &out.Kernel}, {img.Initrd, "guest-initrd", &out.Initrd}} {
		r := s.MustCLI(t, "image", "import", im.file, "--name", im.name, "--os", "linux/busybox/1", "--arch", "x86_64")
		*im.dst = digest.FindString(r.stdout)
		if *im.dst == "" {
			t.Fatalf("image import %s printed no digest: %q", im.name, r.stdout)
		}
	}
	return out
}

// TickerDescription is the test guest workspace description, with the given
// replacements (old, new pairs) applied; it is written to a temporary file.
func TickerDescription(t *testing.T, replace ...string) string {
	t.Helper()
	data, err := os.ReadFile("testdata/manager/ticker.xml")
	if err != nil {
		t.Fatal(err)
	}
	text := string(data)
	for i := 0; i+1 < len(replace); i += 2 {
		if !strings.Contains(text, replace[i]) {
			t.Fatalf("ticker.xml has no %q to replace", replace[i])
		}
		text = strings.ReplaceAll(text, replace[i], replace[i+1])
	}
	path := filepath.Join(t.TempDir(), "ticker.xml")
	if err := os.WriteFile(path, []byte(text), 0o644); err != nil {
		t.Fatal(err)
	}
	return path
}

// MgrWorkspace is a workspace created through the CLI.
type MgrWorkspace struct {
	EPRFile string
	Key     string
	EPR     *wsa.EPR
}

// Domain is the libvirt domain name of the workspace.
func (w *MgrWorkspace) Domain() string { return "vws-" + w.Key }

// CreateWorkspace runs `vws create -f desc -o epr.xml` and registers a clean-up that
// destroys and undefines the workspace's libvirt domain whatever happens.
func CreateWorkspace(t *testing.T, s *MgrServer, desc string) *MgrWorkspace {
	t.Helper()
	eprFile := filepath.Join(t.TempDir(), "ws.xml")
	s.MustCLI(t, "create", "-f", desc, "-o", eprFile)
	return workspaceFromEPRFile(t, eprFile)
}

// workspaceFromEPRFile reads a workspace EPR file `vws create -o` wrote, and registers
// the clean-up of its libvirt domain.
func workspaceFromEPRFile(t *testing.T, eprFile string) *MgrWorkspace {
	t.Helper()
	doc := etree.NewDocument()
	if err := doc.ReadFromFile(eprFile); err != nil {
		t.Fatal(err)
	}
	epr, err := wsa.ParseEPR(doc.Root())
	if err != nil {
		t.Fatal(err)
	}
	k := epr.Reference(vwsns.Workspace, "WorkspaceKey")
	if k == nil {
		t.Fatalf("%s has no WorkspaceKey", eprFile)
	}
	w := &MgrWorkspace{EPRFile: eprFile, Key: strings.TrimSpace(k.Text()), EPR: epr}
	t.Cleanup(func() {
		// A manager still running would define the domain again (a deployed,
		// shut-down workspace whose definition vanished): stop the test's servers first.
		killServers(t)
		CleanupDomain(t, w.Domain())
	})
	return w
}

// servers lists the servers each test started, so clean-up can stop them all.
var servers = struct {
	sync.Mutex
	byTest map[*testing.T][]*MgrServer
}{byTest: map[*testing.T][]*MgrServer{}}

func trackServer(t *testing.T, s *MgrServer) {
	servers.Lock()
	defer servers.Unlock()
	servers.byTest[t] = append(servers.byTest[t], s)
}

func killServers(t *testing.T) {
	servers.Lock()
	list := servers.byTest[t]
	delete(servers.byTest, t)
	servers.Unlock()
	for _, s := range list {
		s.Kill()
	}
}

// CleanupDomain destroys and undefines a libvirt domain if it exists (no error
// otherwise), with any managed-save image, so that a failed test leaves no guest
// behind.
func CleanupDomain(t *testing.T, name string) {
	if !DomainDefined(name) {
		return
	}
	exec.Command("virsh", "-c", "qemu:///system", "destroy", name).Run()
	out, err := exec.Command("virsh", "-c", "qemu:///system", "undefine", name, "--nvram", "--managed-save").CombinedOutput()
	if err != nil && DomainDefined(name) {
		t.Logf("clean-up: virsh undefine %s: %v: %s", name, err, out)
	}
}

// DomainDefined says whether libvirt knows a domain of that name (running or not).
func DomainDefined(name string) bool {
	out, err := exec.Command("virsh", "-c", "qemu:///system", "list", "--all", "--name").Output()
	if err != nil {
		return false
	}
	for _, l := range strings.Split(string(out), "\n") {
		if strings.TrimSpace(l) == name {
			return true
		}
	}
	return false
}

// DomainState is `virsh domstate` of a domain ("" when it does not exist).
func DomainState(name string) string {
	out, err := exec.Command("virsh", "-c", "qemu:///system", "domstate", name).Output()
	if err != nil {
		return ""
	}
	return strings.TrimSpace(string(out))
}

// VCPUsAtResetVector reports whether every vCPU of domain name still sits where an
// x86 CPU comes out of reset (CS base ffff0000, EIP fff0): the guest has executed
// not one instruction. QEMU's registers, read through libvirt's monitor passthrough
// (which marks the domain tainted, harmless in a test).
func VCPUsAtResetVector(t *testing.T, name string) bool {
	t.Helper()
	out, err := exec.Command("virsh", "-c", "qemu:///system", "qemu-monitor-command", name, "--hmp", "info registers -a").CombinedOutput()
	if err != nil {
		t.Fatalf("reading the registers of %s: %v: %s", name, err, out)
	}
	text := string(out)
	cpus := strings.Count(text, "CPU#")
	if cpus == 0 {
		t.Fatalf("no vCPU in QEMU's answer for %s:\n%s", name, text)
	}
	return strings.Count(text, "EIP=0000fff0") == cpus && strings.Count(text, "CS =f000 ffff0000") == cpus
}

var mgrSOAP = client.New(&http.Client{Timeout: 2 * time.Minute})

// WSProps reads workspace properties (vw:LOCAL names) over SOAP: local name → text;
// an absent property maps to "". vw:managerReference maps to its address.
func WSProps(t *testing.T, w *MgrWorkspace, locals ...string) map[string]string {
	t.Helper()
	out := map[string]string{}
	for _, l := range locals {
		els, err := mgrSOAP.GetResourceProperty(context.Background(), w.EPR, wsa.QName{Space: vwsns.Workspace, Local: l})
		if err != nil {
			t.Fatalf("GetResourceProperty vw:%s of %s: %v", l, w.Key, err)
		}
		if len(els) == 0 {
			out[l] = ""
			continue
		}
		if l == "managerReference" {
			if a := els[0].SelectElement("Address"); a != nil {
				out[l] = strings.TrimSpace(a.Text())
			}
			continue
		}
		out[l] = strings.TrimSpace(els[0].Text())
	}
	return out
}

// WantWSProps fails unless the workspace's properties have the given values (local
// name, value pairs) within reportLag: a manager tells the Repository of a state
// change just after answering the operation.
func WantWSProps(t *testing.T, w *MgrWorkspace, pairs ...string) map[string]string {
	t.Helper()
	return WantWSPropsWithin(t, w, reportLag, pairs...)
}

// WantWSPropsWithin is WantWSProps waiting up to patience: for what the manager
// notices on its reconciler's timer rather than at once (a change made outside vws
// that libvirt reports no stop or crash event for).
func WantWSPropsWithin(t *testing.T, w *MgrWorkspace, patience time.Duration, pairs ...string) map[string]string {
	t.Helper()
	var locals []string
	for i := 0; i < len(pairs); i += 2 {
		locals = append(locals, pairs[i])
	}
	deadline := time.Now().Add(patience)
	for {
		got := WSProps(t, w, locals...)
		bad := -1
		for i := 0; i+1 < len(pairs); i += 2 {
			if got[pairs[i]] != pairs[i+1] {
				bad = i
				break
			}
		}
		if bad < 0 {
			return got
		}
		if time.Now().After(deadline) {
			t.Fatalf("workspace %s: vw:%s is %q, want %q (all: %v)", w.Key, pairs[bad], got[pairs[bad]], pairs[bad+1], got)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// reportLag bounds how long the Repository may lag behind a manager's answer.
const reportLag = 3 * time.Second

// HostWorkspace is one mgr:Workspace of a manager's DeployedWorkspaces.
type HostWorkspace struct {
	Key, Name, State, Deployment, Domain, Detail, ConsoleTail string
}

// HostInfo is a manager's host property document, read over SOAP.
type HostInfo struct {
	DomainType string
	Arch       string // mgr:Architecture
	Workspaces map[string]HostWorkspace
	Cached     map[string]int64 // digest → size
}

// ReadHost queries a manager's host properties (what `vws host status` shows).
func ReadHost(t *testing.T, s *MgrServer) HostInfo {
	t.Helper()
	h, err := readHost(context.Background(), s.URL)
	if err != nil {
		t.Fatal(err)
	}
	return h
}

func readHost(ctx context.Context, url string) (HostInfo, error) {
	epr := &wsa.EPR{Version: wsa.V200508, Address: url + "/wsrf/services/" + vwsns.ManagerService}
	resp, err := mgrSOAP.QueryResourceProperties(ctx, epr, "/*", nil)
	if err != nil {
		return HostInfo{}, fmt.Errorf("host properties of %s: %v", url, err)
	}
	doc := resp
	if cs := resp.ChildElements(); len(cs) == 1 && len(cs[0].ChildElements()) > 0 {
		doc = cs[0]
	}
	text := func(e *etree.Element, l string) string {
		if c := e.SelectElement(l); c != nil {
			return strings.TrimSpace(c.Text())
		}
		return ""
	}
	h := HostInfo{DomainType: text(doc, "DomainType"), Arch: text(doc, "Architecture"), Workspaces: map[string]HostWorkspace{}, Cached: map[string]int64{}}
	if d := doc.SelectElement("DeployedWorkspaces"); d != nil {
		for _, w := range d.SelectElements("Workspace") {
			hw := HostWorkspace{Key: text(w, "Key"), Name: text(w, "Name"), State: text(w, "State"), Deployment: text(w, "Deployment"),
				Domain: text(w, "Domain"), Detail: text(w, "Detail")}
			if c := w.SelectElement("ConsoleTail"); c != nil {
				hw.ConsoleTail = c.Text()
			}
			h.Workspaces[hw.Key] = hw
		}
	}
	if c := doc.SelectElement("CachedImages"); c != nil {
		for _, img := range c.SelectElements("Image") {
			n, _ := strconv.ParseInt(text(img, "SizeBytes"), 10, 64)
			h.Cached[text(img, "Digest")] = n
		}
	}
	return h, nil
}

// Console is the workspace's whole serial console, through `vws console` (which asks
// the manager the workspace is deployed on).
func Console(t *testing.T, s *MgrServer, w *MgrWorkspace) string {
	t.Helper()
	return s.MustCLI(t, "console", w.EPRFile).stdout
}

// WaitConsole polls `vws console` until ok accepts its text, or fails the test after
// timeout; it returns the accepted text.
func WaitConsole(t *testing.T, s *MgrServer, w *MgrWorkspace, timeout time.Duration, what string, ok func(string) bool) string {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		c := Console(t, s, w)
		if ok(c) {
			return c
		}
		if time.Now().After(deadline) {
			t.Fatalf("console of %s did not show %s within %s; it shows:\n%s", w.Key, what, timeout, c)
		}
		time.Sleep(300 * time.Millisecond)
	}
}

// FaultType is the fault type the CLI printed on stderr ("vws: fault: TYPE: …"), or ""
// when it printed none.
func FaultType(r run) string {
	m := regexp.MustCompile(`fault: (\w+Fault)`).FindStringSubmatch(r.stderr)
	if m == nil {
		return ""
	}
	return m[1]
}

// WantFault fails unless the CLI run ended with exit status 2 and a fault of type typ
// whose text contains every one of mentions.
func WantFault(t *testing.T, r run, typ string, mentions ...string) {
	t.Helper()
	if r.code != 2 || FaultType(r) != typ {
		t.Fatalf("want exit 2 with %s, got exit %d\nstdout: %s\nstderr: %s", typ, r.code, r.stdout, r.stderr)
	}
	for _, m := range mentions {
		if !strings.Contains(r.stderr, m) {
			t.Fatalf("the %s does not mention %q: %s", typ, m, r.stderr)
		}
	}
}

// Step logs how long a named step took: defer-free use, `done := Step(t, "x"); …; done()`.
func Step(t *testing.T, name string) func() {
	t.Helper()
	start := time.Now()
	return func() {
		t.Helper()
		t.Logf("step %-40s %6.2fs", name, time.Since(start).Seconds())
	}
}

// lineWriter hands each complete line written to it to line.
type lineWriter struct {
	mu   sync.Mutex
	buf  []byte
	line func(string)
}

func (w *lineWriter) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.buf = append(w.buf, p...)
	for {
		i := bytes.IndexByte(w.buf, '\n')
		if i < 0 {
			return len(p), nil
		}
		w.line(string(w.buf[:i]))
		w.buf = w.buf[i+1:]
	}
}
