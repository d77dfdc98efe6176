package main

import (
	"context"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/beevik/etree"

	"github.com/vws-grid/vws/internal/vwsns"
	"github.com/vws-grid/vws/internal/wsa"
)

// TestMoveInterruptedSaysHowToFinishIt: Ctrl-C while vws move serializes a running
// workspace leaves it serialized on its host (the manager completes the serialize).
// The user is told that, and how to finish the move: run again without --state, a
// move carries a serialized workspace as it is, and the job would stay stopped on
// the new host.
func TestMoveInterruptedSaysHowToFinishIt(t *testing.T) {
	const key = "ws-move-interrupted"
	var mu sync.Mutex
	state := "running"
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	repo, a, b := &fakeSOAP{}, &fakeSOAP{}, &fakeSOAP{}
	repoHS, aHS, bHS := httptest.NewServer(repo), httptest.NewServer(a), httptest.NewServer(b)
	defer repoHS.Close()
	defer aHS.Close()
	defer bHS.Close()
	repo.handle = func(op string, p *etree.Element) (*etree.Element, string) {
		mu.Lock()
		defer mu.Unlock()
		return workspaceProps(state, "deployed", "node-a", &wsa.EPR{Version: wsa.V200508, Address: aHS.URL + managerPath}), ""
	}
	a.handle = func(op string, p *etree.Element) (*etree.Element, string) {
		if op == "Shutdown" { // Serialize: the user's Ctrl-C while it saves the RAM
			cancel()
			time.Sleep(100 * time.Millisecond)
			mu.Lock()
			state = "paused" // the manager finishes the serialize all the same
			mu.Unlock()
		}
		return el("mgr:"+op+"Response", vwsns.Manager, ""), ""
	}
	b.handle = func(op string, p *etree.Element) (*etree.Element, string) {
		out := el("wsrp:GetResourcePropertyResponse", "http://docs.oasis-open.org/wsrf/rp-2", "")
		out.AddChild(el("mgr:DomainType", vwsns.Manager, "qemu"))
		return out, ""
	}
	r := vwsRun(t, ctx, "move", key, "--url", repoHS.URL, "--host", bHS.URL)
	if r.code != exitInterrupted {
		t.Fatalf("want exit 130, got exit %d\nstdout: %q\nstderr: %q", r.code, r.stdout, r.stderr)
	}
	for _, want := range []string{"move", "serializ", "vws status " + key, "vws start " + key, "vws move " + key + " --host " + bHS.URL + " --state running"} {
		if !strings.Contains(r.stderr, want) {
			t.Errorf("stderr does not say %q: the workspace was left serialized on node-a\nstderr: %q", want, r.stderr)
		}
	}
}
