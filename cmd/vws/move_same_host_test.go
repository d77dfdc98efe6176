package main

import (
	"bytes"
	"context"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"

	"github.com/beevik/etree"

	"github.com/vws-grid/vws/internal/vwsns"
	"github.com/vws-grid/vws/internal/wsa"
)

// TestMoveToTheHostItIsOnSpelledOtherwise: --host naming the workspace's own
// manager in another spelling (host in capitals, a trailing /) is refused as the
// host it is on, before anything is stopped, not taken for another host.
func TestMoveToTheHostItIsOnSpelledOtherwise(t *testing.T) {
	const key = "ws-move-same"
	var mu sync.Mutex
	var ops []string
	repo, a := &fakeSOAP{}, &fakeSOAP{}
	repoHS, aHS := httptest.NewServer(repo), httptest.NewServer(a)
	defer repoHS.Close()
	defer aHS.Close()
	repo.handle = func(op string, p *etree.Element) (*etree.Element, string) {
		return workspaceProps("running", "deployed", "node-a", &wsa.EPR{Version: wsa.V200508, Address: aHS.URL + managerPath}), ""
	}
	a.handle = func(op string, p *etree.Element) (*etree.Element, string) {
		mu.Lock()
		defer mu.Unlock()
		ops = append(ops, op)
		return el("mgr:"+op+"Response", vwsns.Manager, ""), ""
	}
	// http://127.0.0.1:PORT as http://LOCALHOST… would be another host name: the
	// scheme in capitals and a trailing / are the same address.
	host := "HTTP://" + strings.TrimPrefix(aHS.URL, "http://") + "/"
	k := el("vw:WorkspaceKey", vwsns.Workspace, key)
	ws := &wsa.EPR{Version: wsa.V200508, Address: repoHS.URL + "/wsrf/services/WorkspaceService", References: []*etree.Element{k}}
	cmd := newMoveCommand()
	var out bytes.Buffer
	cmd.SetOut(&out)
	cmd.SetErr(&out)
	cmd.SetContext(context.Background())
	err := moveWorkspace(cmd, ws, repoHS.URL, key, host, "")
	if err == nil || !strings.Contains(err.Error(), "already deployed on") {
		t.Errorf("move --host %s: %v; want it refused as the host the workspace is on\n%s", host, err, out.String())
	}
	mu.Lock()
	defer mu.Unlock()
	for _, op := range ops {
		if op != "GetResourceProperty" {
			t.Errorf("the workspace's own manager was sent %s", op)
		}
	}
}

// TestSameAddressDefaultPort: a default port written or not is one address.
func TestSameAddressDefaultPort(t *testing.T) {
	for _, c := range [][2]string{
		{"http://node7:80/wsrf/services/ManagerService", "http://NODE7/wsrf/services/ManagerService/"},
		{"https://node7/x", "HTTPS://node7:443/x"},
	} {
		if !sameAddress(c[0], c[1]) {
			t.Errorf("sameAddress(%s, %s) = false, want true", c[0], c[1])
		}
	}
	for _, c := range [][2]string{
		{"http://node7:443/x", "https://node7/x"},
		{"http://node7:8080/x", "http://node7/x"},
		{"http://node7/x", "http://node8/x"},
	} {
		if sameAddress(c[0], c[1]) {
			t.Errorf("sameAddress(%s, %s) = true, want false", c[0], c[1])
		}
	}
}
