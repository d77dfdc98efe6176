package test

// Concurrency tests of the VW Manager with real QEMU guests and the real vws binary:
// operations on one workspace fired at once from several clients, operations given
// up while they wait, undeploys under console reads, deploys of workspaces sharing
// an image the host has not cached, the asynchronous reporter against a deploy
// undone and redone, and property reads throughout.
// Every call must succeed or fail with a clear fault, and afterwards the manager's
// journal, libvirt and the Repository must agree (crashHost.problems), with no orphan
// domain or file.

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/beevik/etree"

	"github.com/vws-grid/vws/internal/client"
	"github.com/vws-grid/vws/internal/vwsns"
	"github.com/vws-grid/vws/internal/wsa"
	"github.com/vws-grid/vws/test/guest"
)

// mgrOp is one Manager operation as a SOAP request: its name and the children that
// follow the WorkspaceReference (InitialState, Mode, GracePeriod).
type mgrOp struct {
	name     string
	children []string // name, text pairs
}

func (o mgrOp) String() string {
	if len(o.children) == 0 {
		return o.name
	}
	return o.name + "(" + o.children[1] + ")"
}

var (
	opPause     = mgrOp{name: "Pause"}
	opUnpause   = mgrOp{name: "Unpause"}
	opStart     = mgrOp{name: "Start"}
	opUndeploy  = mgrOp{name: "Undeploy"}
	opDeploy    = mgrOp{name: "Deploy", children: []string{"InitialState", "running"}}
	opNormal    = mgrOp{name: "Shutdown", children: []string{"Mode", "Normal", "GracePeriod", "PT4S"}}
	opTrash     = mgrOp{name: "Shutdown", children: []string{"Mode", "Trash"}}
	opSerialize = mgrOp{name: "Shutdown", children: []string{"Mode", "Serialize"}}
)

// call sends op for w to the manager of s over SOAP, as the CLI does; it returns the
// state the answer names.
func (o mgrOp) call(ctx context.Context, s *MgrServer, w *MgrWorkspace) (string, error) {
	body := etree.NewElement("mgr:" + o.name)
	body.CreateAttr("xmlns:mgr", vwsns.Manager)
	w.EPR.ChildElement(body, "mgr:WorkspaceReference", "wsa")
	for i := 0; i+1 < len(o.children); i += 2 {
		body.CreateElement("mgr:" + o.children[i]).SetText(o.children[i+1])
	}
	resp, err := mgrSOAP.Invoke(ctx, &wsa.EPR{Version: w.EPR.Version, Address: s.URL + "/wsrf/services/" + vwsns.ManagerService}, o.name, body)
	if err != nil {
		return "", err
	}
	if st := resp.SelectElement("State"); st != nil {
		return strings.TrimSpace(st.Text()), nil
	}
	return "", nil
}

// opResult is the outcome of one concurrent call.
type opResult struct {
	op    mgrOp
	state string
	err   error
	took  time.Duration
}

// fireAtOnce sends every op for w at the same moment, each from its own goroutine,
// and returns their outcomes in the order of ops.
func fireAtOnce(ctx context.Context, s *MgrServer, w *MgrWorkspace, ops ...mgrOp) []opResult {
	out := make([]opResult, len(ops))
	var wg sync.WaitGroup
	start := make(chan struct{})
	for i, op := range ops {
		wg.Add(1)
		go func() {
			defer wg.Done()
			<-start
			t0 := time.Now()
			st, err := op.call(ctx, s, w)
			out[i] = opResult{op: op, state: st, err: err, took: time.Since(t0)}
		}()
	}
	close(start)
	wg.Wait()
	return out
}

// clearFault says what is wrong with err as the outcome of a concurrent operation:
// nothing when it is a fault a client can act on — a WorkspaceStateFault naming the
// states or an operation under way, or, once another call undeployed the workspace,
// a ResourceUnknownFault.
func clearFault(err error) string {
	var fe *client.FaultError
	if !errors.As(err, &fe) {
		return fmt.Sprintf("not a SOAP fault: %v", err)
	}
	switch fe.Type {
	case "WorkspaceStateFault":
		if !strings.Contains(fe.Description, "workspace is ") && !strings.Contains(fe.Description, "under way") && !strings.Contains(fe.Description, "is refused") {
			return "a WorkspaceStateFault naming no state: " + fe.Description
		}
		return ""
	case "ResourceUnknownFault":
		if strings.Contains(fe.Description, "not deployed on host") {
			return ""
		}
	}
	return fmt.Sprintf("unexpected %s: %s", fe.Type, fe.Description)
}

// readUntil runs read in readers goroutines, round after round, until stop closes;
// the first failure goes to errs (if it has room) and ends that reader. Each read
// gets 20 s.
func readUntil(readers int, stop <-chan struct{}, errs chan<- error, read func(ctx context.Context, reader, round int) error) *sync.WaitGroup {
	var wg sync.WaitGroup
	for i := range readers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for n := 0; ; n++ {
				select {
				case <-stop:
					return
				default:
				}
				ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
				err := read(ctx, i, n)
				cancel()
				if err != nil {
					select {
					case errs <- err:
					default:
					}
					return
				}
			}
		}()
	}
	return &wg
}

// pollProperties reads the workspace's Repository properties and the host's
// properties over and over until stop closes, reports any failure on errs, and keeps
// the longest a read took in slowest (nanoseconds).
func pollProperties(s *MgrServer, w *MgrWorkspace, stop <-chan struct{}, errs chan<- error, slowest *atomic.Int64) *sync.WaitGroup {
	return readUntil(4, stop, errs, func(ctx context.Context, i, n int) error {
		t0 := time.Now()
		var err error
		if (i+n)%2 == 0 {
			_, err = readHost(ctx, s.URL)
		} else {
			_, err = mgrSOAP.GetResourceProperty(ctx, w.EPR, wsa.QName{Space: vwsns.Workspace, Local: "state"})
		}
		for took := int64(time.Since(t0)); ; {
			old := slowest.Load()
			if took <= old || slowest.CompareAndSwap(old, took) {
				break
			}
		}
		return err
	})
}

// TestManagerConcurrentOperations fires, in rounds, every operation at one workspace
// at once from as many clients, with others reading properties all the while. Each
// call succeeds or fails with a clear fault (none hangs: each answers within the
// minute), property reads are never held up by the operations, and after each round
// the journal, libvirt and the Repository agree, with no orphan domain or file.
func TestManagerConcurrentOperations(t *testing.T) {
	t.Parallel()
	holdGuests(t, 1)
	h := startCrashHost(t, "conc-ops-host")
	w := CreateWorkspace(t, h.MgrServer, TickerDescription(t))
	h.MustCLI(t, "deploy", w.EPRFile, "--state", "running")

	stop := make(chan struct{})
	pollErrs := make(chan error, 1)
	var slowestRead atomic.Int64
	polling := pollProperties(h.MgrServer, w, stop, pollErrs, &slowestRead)
	defer func() { close(stop); polling.Wait() }()

	rounds := [][]mgrOp{
		{opPause, opUnpause, opSerialize, opPause, opStart, opUnpause},
		{opNormal, opTrash, opSerialize, opUndeploy, opPause, opStart},
		{opDeploy, opUndeploy, opDeploy, opStart, opUnpause},
		{opSerialize, opSerialize, opUndeploy, opDeploy, opNormal, opTrash, opUnpause},
		{opStart, opDeploy, opPause, opSerialize, opUndeploy, opUnpause, opNormal},
	}
	for i, ops := range rounds {
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		res := fireAtOnce(ctx, h.MgrServer, w, ops...)
		cancel()
		var lines []string
		for _, r := range res {
			line := fmt.Sprintf("%-20s %6.2fs ", r.op, r.took.Seconds())
			if r.err != nil {
				line += "fault: " + r.err.Error()
				if bad := clearFault(r.err); bad != "" {
					t.Errorf("round %d: %s: %s", i, r.op, bad)
				}
			} else {
				line += "-> " + r.state
			}
			lines = append(lines, line)
		}
		t.Logf("round %d:\n  %s", i, strings.Join(lines, "\n  "))
		h.settle([]*MgrWorkspace{w})
		select {
		case err := <-pollErrs:
			t.Fatalf("a property read failed during round %d: %v", i, err)
		default:
		}
	}
	if slowest := time.Duration(slowestRead.Load()); slowest > 5*time.Second {
		t.Errorf("a property read took %v while operations ran", slowest)
	} else {
		t.Logf("slowest property read: %v", slowest)
	}
}

// TestManagerQueuedOperationWhoseCallerLeft: operations that wait for the one under
// way on their workspace (a Normal shutdown of a guest that ignores the power button,
// so it lasts its grace period) and whose callers hang up while they wait take no
// effect: the workspace ends as the shutdown left it, deployed and shut down.
func TestManagerQueuedOperationWhoseCallerLeft(t *testing.T) {
	t.Parallel()
	holdGuests(t, 1)
	h := startCrashHost(t, "conc-queue-host")
	w := CreateWorkspace(t, h.MgrServer, TickerDescription(t, `echo "hello from the $1 job"`, `killall acpid; echo "hello from the $1 job"`))
	h.MustCLI(t, "deploy", w.EPRFile, "--state", "running")
	WaitConsole(t, h.MgrServer, w, bootTimeout, "the job's greeting", func(c string) bool { return strings.Contains(c, "hello from the grid job") })

	const grace = 5 * time.Second
	shutdown := make(chan opResult, 1)
	go func() {
		t0 := time.Now()
		st, err := mgrOp{name: "Shutdown", children: []string{"Mode", "Normal", "GracePeriod", "PT5S"}}.call(context.Background(), h.MgrServer, w)
		shutdown <- opResult{state: st, err: err, took: time.Since(t0)}
	}()
	time.Sleep(500 * time.Millisecond) // the shutdown holds the workspace
	ctx, cancel := context.WithTimeout(context.Background(), time.Second)
	res := fireAtOnce(ctx, h.MgrServer, w, opUndeploy, opTrash, opSerialize, opStart)
	cancel()
	for _, r := range res {
		if r.err == nil {
			t.Fatalf("%s answered %s while the shutdown held the workspace", r.op, r.state)
		}
		t.Logf("%s: %v after %v", r.op, r.err, r.took)
	}
	r := <-shutdown
	if r.err != nil || r.state != "shutdown" || r.took < grace {
		t.Fatalf("the Normal shutdown: %q, %v after %v", r.state, r.err, r.took)
	}
	// The manager answered each abandoned call as it was abandoned, having begun nothing.
	if n := strings.Count(h.Logs(), "was not begun: Shutdown (Normal) has been under way"); n != len(res) {
		t.Errorf("the server logged %d of the %d abandoned calls as not begun behind the shutdown", n, len(res))
	}
	// Give the manager time to do what the abandoned calls might still do.
	time.Sleep(3 * time.Second)
	h.settle([]*MgrWorkspace{w})
	WantWSProps(t, w, "state", "shutdown", "deployment", "deployed", "host", "conc-queue-host")
	if hw := ReadHost(t, h.MgrServer).Workspaces[w.Key]; hw.State != "shutdown" || !strings.Contains(hw.Detail, "forced off") {
		t.Fatalf("the host has the workspace %+v; want shut down, forced off by the Normal shutdown", hw)
	}
}

// TestManagerUndeployWhileReadingConsoles: a workspace's console is read without its
// lock (Console, and the console tail in the host's properties: a long operation must
// not hold them up), and a read may write the console's index beside the log. Read
// over and over while a workspace is deployed and undeployed again and again, they
// must never put a file in the directory an undeploy removes: every undeploy
// succeeds and leaves no directory, record or domain behind.
func TestManagerUndeployWhileReadingConsoles(t *testing.T) {
	t.Parallel()
	h := startCrashHost(t, "conc-console-host")
	w := CreateWorkspace(t, h.MgrServer, TickerDescription(t))

	stop := make(chan struct{})
	readErrs := make(chan error, 1)
	readers := readUntil(6, stop, readErrs, func(ctx context.Context, i, n int) error {
		var err error
		if (i+n)%4 == 0 {
			_, err = readHost(ctx, h.URL)
		} else {
			_, err = mgrOp{name: "Console"}.call(ctx, h.MgrServer, w)
		}
		var fe *client.FaultError
		if errors.As(err, &fe) && fe.Type == "ResourceUnknownFault" {
			err = nil // not deployed at the moment
		}
		return err
	})
	defer func() { close(stop); readers.Wait() }()

	// The race needs a console log, not a guest: the test writes what a guest that
	// ran would have left (booting one per cycle would make it slow), and waits until
	// a read has indexed it.
	consoleLog := filepath.Join(h.ManagerDir(), "workspaces", w.Key, "console.log")
	for i := range 15 {
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		if _, err := (mgrOp{name: "Deploy"}).call(ctx, h.MgrServer, w); err != nil {
			cancel()
			t.Fatalf("cycle %d: Deploy: %v", i, err)
		}
		if err := os.WriteFile(consoleLog, []byte("hello from the grid job\ntick 0\n"), 0o600); err != nil {
			t.Fatal(err)
		}
		for deadline := time.Now().Add(10 * time.Second); !fileExists(consoleLog + ".index"); time.Sleep(5 * time.Millisecond) {
			if time.Now().After(deadline) {
				t.Fatalf("cycle %d: no read indexed the console log within 10 s", i)
			}
		}
		_, err := opUndeploy.call(ctx, h.MgrServer, w)
		cancel()
		if err != nil {
			t.Fatalf("cycle %d: Undeploy: %v", i, err)
		}
		if h.HasWorkspaceDir(w.Key) || DomainDefined(w.Domain()) {
			t.Fatalf("cycle %d: after the undeploy, files %v, domain defined %v", i, h.WorkspaceFiles(w.Key), DomainDefined(w.Domain()))
		}
	}
	select {
	case err := <-readErrs:
		t.Fatalf("a console or host property read failed: %v", err)
	default:
	}
	h.settle([]*MgrWorkspace{w})
}

// cacheProblems checks a manager's host cache: every entry holds the bytes its
// digest names (not one staged twice over itself, or cut short), no transfer or
// staging left a file behind, and each of want is there. A fetched image is written
// to disk and stamped in the background once the deploys end (at most 10 s later),
// and that stamp's temporary file is no leftover while it is being written: what
// is wrong must stay wrong for 12 s.
func cacheProblems(s *MgrServer, want ...string) []string {
	var bad []string
	for deadline := time.Now().Add(12 * time.Second); ; time.Sleep(200 * time.Millisecond) {
		if bad = cacheProblemsNow(s, want...); len(bad) == 0 || time.Now().After(deadline) {
			return bad
		}
	}
}

func cacheProblemsNow(s *MgrServer, want ...string) []string {
	dir := filepath.Join(s.ManagerDir(), "cache")
	ents, err := os.ReadDir(dir)
	if err != nil {
		return []string{err.Error()}
	}
	var bad []string
	have := map[string]bool{}
	for _, e := range ents {
		name := e.Name()
		switch {
		case strings.HasSuffix(name, ".verified"):
		case len(name) == 64 && !strings.Contains(name, "."):
			got, err := fileSHA256(filepath.Join(dir, name))
			if err != nil || got != name {
				bad = append(bad, fmt.Sprintf("cache/%s holds bytes with digest %s (%v)", name, got, err))
			}
			have["sha256:"+name] = true
		default:
			bad = append(bad, "cache/"+name+" left behind")
		}
	}
	for _, d := range want {
		if !have[d] {
			bad = append(bad, d+" is not in the cache")
		}
	}
	return bad
}

func fileSHA256(path string) (string, error) {
	f, err := os.Open(path)
	if err != nil {
		return "", err
	}
	defer f.Close()
	h := sha256.New()
	if _, err := io.Copy(h, f); err != nil {
		return "", err
	}
	return hex.EncodeToString(h.Sum(nil)), nil
}

// TestManagerConcurrentDeploysShareUncachedImages: two workspaces on the same images,
// which a manager-only host has not cached, are deployed there at the same moment:
// each image is transferred from the Repository once (the second deploy waits for
// the first's transfer and finds it cached), the cache holds each intact, and both
// guests boot. Then, with the cache bounded to nothing (every image no deployment
// uses is evicted as soon as another is staged), both are undeployed and, at once,
// one workspace on another base and one on those images are deployed: the first's
// staging evicts what is unused while the second takes the same images back, and
// both run on intact images.
func TestManagerConcurrentDeploysShareUncachedImages(t *testing.T) {
	t.Parallel()
	holdGuests(t, 2)
	a := StartMgrServer(t, MgrServerOptions{HostName: "conc-share-a"})
	b := StartMgrServer(t, MgrServerOptions{HostName: "conc-share-b", Roles: []string{"manager"}, Repository: a.URL, Args: []string{"--cache-max", "1B"}})
	imgs := ImportGuest(t, a)
	// Another base: the same disk, other bytes (another cluster size).
	disk2 := filepath.Join(t.TempDir(), "disk2.qcow2")
	if out, err := exec.Command("qemu-img", "convert", "-O", "qcow2", "-o", "cluster_size=131072", guest.Ensure(t).Disk, disk2).CombinedOutput(); err != nil {
		t.Fatalf("qemu-img convert: %v: %s", err, out)
	}
	r := a.MustCLI(t, "image", "import", disk2, "--name", "guest-disk2", "--os", "linux/busybox/1", "--arch", "x86_64")
	base2 := regexp.MustCompile(`sha256:[0-9a-f]{64}`).FindString(r.stdout)
	var shared, smallest int64
	for _, f := range []string{guest.Ensure(t).Disk, guest.Ensure(t).Kernel, guest.Ensure(t).Initrd} {
		fi, err := os.Stat(f)
		if err != nil {
			t.Fatal(err)
		}
		shared += fi.Size()
		if smallest == 0 || fi.Size() < smallest {
			smallest = fi.Size()
		}
	}

	desc := TickerDescription(t)
	w1, w2 := CreateWorkspace(t, a, desc), CreateWorkspace(t, a, desc)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	// deployBoth deploys x and, lag later, y, both on B.
	deployBoth := func(x, y *MgrWorkspace, lag time.Duration) {
		t.Helper()
		var wg sync.WaitGroup
		errs := make([]error, 2)
		for i, w := range []*MgrWorkspace{x, y} {
			wg.Add(1)
			go func() {
				defer wg.Done()
				time.Sleep(time.Duration(i) * lag)
				_, errs[i] = opDeploy.call(ctx, b, w)
			}()
		}
		wg.Wait()
		if err := errors.Join(errs...); err != nil {
			t.Fatalf("deploying two workspaces at once: %v", err)
		}
	}
	booted := func(ws ...*MgrWorkspace) {
		t.Helper()
		for _, w := range ws {
			WaitConsole(t, a, w, bootTimeout, "the job's greeting", func(c string) bool { return strings.Contains(c, "hello from the grid job") })
		}
	}

	deployBoth(w1, w2, 0)
	if bad := cacheProblems(b, imgs.Disk, imgs.Kernel, imgs.Initrd); len(bad) > 0 {
		t.Fatalf("after two deploys at once: %s", strings.Join(bad, "; "))
	}
	// Staged from the repository: the shared images, and each workspace's own overlay
	// (256 KiB, smaller than any shared image): no shared image came twice.
	if got := int64(metricValue(t, b, `vws_manager_staged_bytes_total{source="repository"}`)); got < shared || got-shared >= smallest {
		t.Fatalf("B staged %d bytes from the repository for two deploys on %d bytes of shared images: not each once", got, shared)
	}
	if hits := metricValue(t, b, "vws_manager_cache_hits_total"); hits != 3 {
		t.Fatalf("the second deploy found %v of its 3 images cached", hits)
	}
	booted(w1, w2)

	// Both go; a workspace on the same images and one on another base come at once.
	for _, w := range []*MgrWorkspace{w1, w2} {
		a.MustCLI(t, "shutdown", w.EPRFile, "--mode", "trash")
		a.MustCLI(t, "undeploy", w.EPRFile)
	}
	w3 := CreateWorkspace(t, a, TickerDescription(t, "<hw:name>guest-disk</hw:name>", "<hw:name>guest-disk2</hw:name>"))
	w4 := CreateWorkspace(t, a, desc)
	// W3's staging of the other base evicts the unused images about when W4 pins
	// them: some runs see them evicted and staged again, others kept.
	deployBoth(w3, w4, 20*time.Millisecond)
	if bad := cacheProblems(b, imgs.Disk, base2, imgs.Kernel, imgs.Initrd); len(bad) > 0 {
		t.Fatalf("after a deploy racing eviction: %s", strings.Join(bad, "; "))
	}
	t.Logf("evictions: %v", metricValue(t, b, "vws_manager_cache_evictions_total"))
	// Running means QEMU opened each backing chain; the cache check above says the
	// files in it are whole.
	for _, w := range []*MgrWorkspace{w3, w4} {
		if st := DomainState(w.Domain()); st != "running" {
			t.Fatalf("%s: domain %s", w.Key, st)
		}
		WantWSProps(t, w, "state", "running", "deployment", "deployed", "host", "conc-share-b")
	}
}

// TestManagerDeployAfterAFailedStartIsReported: the manager tells the Repository a
// workspace's state from a reporter of its own, some milliseconds after each change.
// A deploy whose guest then fails to start (its console log cannot be opened: the
// test puts a directory where the file goes) is reported deployed and shut down,
// and then undone. Deployed again on the same host, the workspace must show as
// deployed in the Repository: the report of the first deployment must not stand for
// the second's.
func TestManagerDeployAfterAFailedStartIsReported(t *testing.T) {
	t.Parallel()
	h := startCrashHost(t, "conc-report-host")
	w := CreateWorkspace(t, h.MgrServer, TickerDescription(t))
	if err := os.MkdirAll(filepath.Join(h.ManagerDir(), "workspaces", w.Key, "console.log"), 0o700); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	if st, err := opDeploy.call(ctx, h.MgrServer, w); err == nil {
		t.Fatalf("a guest whose console log is a directory started: %s", st)
	} else {
		t.Logf("the deploy failed as it should: %v", err)
		// libvirtd is up: its advice is not to wait for the hypervisor to come back.
		if msg := err.Error(); strings.Contains(msg, "available again") || !strings.Contains(msg, "failed the operation for the reason given") {
			t.Errorf("the fault's advice does not fit a start libvirt refused: %v", err)
		}
	}
	WantWSProps(t, w, "deployment", "in-repository", "lockHolder", "")
	if DomainDefined(w.Domain()) || h.HasWorkspaceDir(w.Key) {
		t.Fatalf("the failed deploy left its domain (%v) or files (%v)", DomainDefined(w.Domain()), h.WorkspaceFiles(w.Key))
	}
	if st, err := (mgrOp{name: "Deploy"}).call(ctx, h.MgrServer, w); err != nil || st != "shutdown" {
		t.Fatalf("deploy again: %q, %v", st, err)
	}
	WantWSProps(t, w, "state", "shutdown", "deployment", "deployed", "host", "conc-report-host", "lockHolder", "conc-report-host")
	h.settle([]*MgrWorkspace{w})
}
