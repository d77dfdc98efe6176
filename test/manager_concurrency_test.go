package test

// Concurrency tests of the VW Manager with real QEMU guests and the real vws binary:
// operations on one workspace fired at once from several clients, deploys of
// workspaces sharing an image the host has not cached, and property reads throughout.
// Every call must succeed or fail with a clear fault, and afterwards the manager's
// journal, libvirt and the Repository must agree (crashHost.problems), with no orphan
// domain or file.

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/beevik/etree"

	"github.com/vws-grid/vws/internal/client"
	"github.com/vws-grid/vws/internal/vwsns"
	"github.com/vws-grid/vws/internal/wsa"
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
	return o.name + "(" + strings.Join(o.children[1:2], "") + ")"
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
		if !strings.Contains(fe.Description, "workspace is ") && !strings.Contains(fe.Description, "under way") {
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

// pollProperties reads the workspace's Repository properties and the host's
// properties over and over until stop closes, reports any failure on errs, and keeps
// the longest a read took in slowest (nanoseconds).
func pollProperties(s *MgrServer, w *MgrWorkspace, stop <-chan struct{}, errs chan<- error, slowest *atomic.Int64) *sync.WaitGroup {
	var wg sync.WaitGroup
	for i := range 4 {
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
				t0 := time.Now()
				var err error
				if (i+n)%2 == 0 {
					_, err = readHost(ctx, s.URL)
				} else {
					_, err = mgrSOAP.GetResourceProperty(ctx, w.EPR, wsa.QName{Space: vwsns.Workspace, Local: "state"})
				}
				cancel()
				for took := int64(time.Since(t0)); ; {
					old := slowest.Load()
					if took <= old || slowest.CompareAndSwap(old, took) {
						break
					}
				}
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
