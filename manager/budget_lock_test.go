package manager

import (
	"context"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/vws-grid/vws/internal/container"
	"github.com/vws-grid/vws/internal/contract"
	"github.com/vws-grid/vws/internal/vwsns"
	"github.com/vws-grid/vws/internal/wsa"
)

// TestLockWaitHoldsNoParseBudget: requests waiting for a workspace's lock (another
// operation on it under way, which may last minutes) do not hold the parse budget
// while they wait: a few padded Starts queued on one workspace would otherwise turn
// every other caller of the server away with 503.
func TestLockWaitHoldsNoParseBudget(t *testing.T) {
	const key = "ws-queued"
	m, _, _ := crashManager(t, key, stateRunning, false)
	svc, err := m.Service(contract.FS)
	if err != nil {
		t.Fatal(err)
	}
	const budget = 64 << 10
	c, err := container.New(container.Config{Logger: slog.New(slog.DiscardHandler), ParseBudget: budget,
		ParseWait: 300 * time.Millisecond}, svc)
	if err != nil {
		t.Fatal(err)
	}
	hs := httptest.NewServer(c)
	t.Cleanup(hs.Close)
	url := hs.URL + container.ServicesPath + vwsns.ManagerService
	ns := wsa.V200508.Namespace()
	envelope := func(header, body string) string {
		return `<s:Envelope xmlns:s="http://schemas.xmlsoap.org/soap/envelope/" xmlns:wsa="` + ns + `" xmlns:mgr="` + vwsns.Manager + `">` +
			`<s:Header><wsa:To>` + url + `</wsa:To>` + header + `</s:Header><s:Body>` + body + `</s:Body></s:Envelope>`
	}
	start := envelope(`<wsa:Action>`+vwsns.Manager+`/WorkspaceManagerPortType/StartRequest</wsa:Action>`,
		`<mgr:Start><mgr:WorkspaceReference><wsa:Address>http://127.0.0.1:1/wsrf/services/WorkspaceService</wsa:Address>`+
			`<wsa:ReferenceParameters><vw:WorkspaceKey xmlns:vw="`+vwsns.Workspace+`">`+key+`</vw:WorkspaceKey></wsa:ReferenceParameters>`+
			`</mgr:WorkspaceReference></mgr:Start>`)
	// Two Starts padded (with a header the service ignores) to fill the budget but
	// for less than the small request below.
	small := envelope(`<wsa:Action>http://docs.oasis-open.org/wsrf/rpw-2/GetResourcePropertyDocument/GetResourcePropertyDocumentRequest</wsa:Action>`,
		`<rp:GetResourcePropertyDocument xmlns:rp="http://docs.oasis-open.org/wsrf/rp-2"/>`)
	padded := func(n int) string {
		const open, close = `<x:Pad xmlns:x="urn:x">`, `</x:Pad>`
		fill := n - len(start) - len(open) - len(close)
		return strings.Replace(start, `<wsa:Action>`, open+strings.Repeat(" ", fill)+close+`<wsa:Action>`, 1)
	}
	pads := []string{padded(budget / 2), padded(budget/2 - len(small)/2)}

	unlock := m.locks.lock(key) // a Deploy, a Serialize… of the workspace under way
	post := func(ctx context.Context, body string) (int, string, error) {
		req, err := http.NewRequestWithContext(ctx, http.MethodPost, url, strings.NewReader(body))
		if err != nil {
			return 0, "", err
		}
		req.Header.Set("Content-Type", "text/xml; charset=utf-8")
		resp, err := hs.Client().Do(req)
		if err != nil {
			return 0, "", err
		}
		defer resp.Body.Close()
		raw, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(raw), nil
	}
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	for _, p := range pads {
		wg.Add(1)
		go func() {
			defer wg.Done()
			_, _, _ = post(ctx, p)
		}()
	}
	t.Cleanup(func() {
		cancel()
		unlock()
		wg.Wait()
	})
	// Both wait for the lock: its holder and two waiters count on it.
	deadline := time.Now().Add(10 * time.Second)
	for {
		m.locks.mu.Lock()
		refs := 0
		if l := m.locks.m[key]; l != nil {
			refs = l.refs
		}
		m.locks.mu.Unlock()
		if refs == 3 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the padded Starts did not reach the workspace's lock (%d holding or waiting)", refs)
		}
		time.Sleep(10 * time.Millisecond)
	}
	status, body, err := post(context.Background(), small)
	if err != nil {
		t.Fatal(err)
	}
	if status != http.StatusOK {
		t.Fatalf("with two Starts waiting for a workspace's lock, another caller's %d-byte request was answered HTTP %d: %.300s",
			len(small), status, body)
	}
}
