package container_test

import (
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/beevik/etree"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/vws-grid/vws/internal/container"
	"github.com/vws-grid/vws/internal/contract"
	"github.com/vws-grid/vws/internal/dialect"
	"github.com/vws-grid/vws/internal/errdefs"
	"github.com/vws-grid/vws/internal/vwsns"
	"github.com/vws-grid/vws/internal/wsa"
)

// paddedRequest is versionRequest with a header block of n bytes of empty elements,
// one per line: valid, ignored by the services, and as costly to parse as a body of
// its size can be.
func paddedRequest(n int) string {
	pad := strings.Repeat("<a/>\n", n/5)
	return strings.Replace(versionRequest, "<s:Body>", `<s:Header><x:Pad xmlns:x="urn:x">`+pad+`</x:Pad></s:Header><s:Body>`, 1)
}

// budgetServer serves the Factory service with every operation running handler, under
// a parse budget of budget bytes and a wait of wait.
func budgetServer(t *testing.T, budget int64, wait time.Duration, handler container.Handler) (*httptest.Server, *prometheus.Registry) {
	t.Helper()
	svc, err := container.NewService(contract.FS, "wsdl", vwsns.FactoryService, wsa.QName{})
	if err != nil {
		t.Fatal(err)
	}
	for _, d := range dialect.Dialects {
		for _, op := range svc.Contract(d).Operations {
			svc.Handle(op.Name, handler)
		}
	}
	reg := prometheus.NewRegistry()
	c, err := container.New(container.Config{ParseBudget: budget, ParseWait: wait, Metrics: container.NewMetrics(reg)}, svc)
	if err != nil {
		t.Fatal(err)
	}
	hs := httptest.NewServer(c)
	t.Cleanup(hs.Close)
	return hs, reg
}

type answer struct {
	status     int
	retryAfter string
	body       string
	err        error
}

func post(hs *httptest.Server, body string) answer {
	return postWithin(hs, body, time.Minute)
}

// postWithin posts body, giving up after d.
func postWithin(hs *httptest.Server, body string, d time.Duration) answer {
	ctx, cancel := context.WithTimeout(context.Background(), d)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, hs.URL+"/wsrf/services/"+vwsns.FactoryService, strings.NewReader(body))
	if err != nil {
		return answer{err: err}
	}
	req.Header.Set("Content-Type", "text/xml")
	resp, err := hs.Client().Do(req)
	if err != nil {
		return answer{err: err}
	}
	defer resp.Body.Close()
	data, err := io.ReadAll(resp.Body)
	return answer{status: resp.StatusCode, retryAfter: resp.Header.Get("Retry-After"), body: string(data), err: err}
}

// metricValue is the value of the counter or gauge name in reg.
func metricValue(t *testing.T, reg *prometheus.Registry, name string) float64 {
	t.Helper()
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() != name {
			continue
		}
		m := mf.GetMetric()[0]
		if m.Counter != nil {
			return m.Counter.GetValue()
		}
		return m.Gauge.GetValue()
	}
	t.Fatalf("no metric %s", name)
	return 0
}

// TestParseBudgetRefusesWhatDoesNotFit: with the budget taken by two large requests
// in process, a third waits ParseWait and is answered 503 with Retry-After and a
// Server fault saying the server is busy, without being carried out; once the two
// are answered their share is free again.
func TestParseBudgetRefusesWhatDoesNotFit(t *testing.T) {
	body := paddedRequest(256 << 10)
	entered := make(chan struct{}, 10)
	unblock := make(chan struct{})
	var ran atomic.Int32
	hs, reg := budgetServer(t, int64(2*len(body)), 300*time.Millisecond, func(ctx context.Context, _ *container.Request) (*etree.Element, error) {
		ran.Add(1)
		entered <- struct{}{}
		select {
		case <-unblock:
		case <-ctx.Done():
			return nil, ctx.Err()
		}
		return etree.NewElement("done"), nil
	})

	var once sync.Once
	release := func() { once.Do(func() { close(unblock) }) }
	t.Cleanup(release) // before the server's Close, which waits for the handlers
	first := make(chan answer, 2)
	for range 2 {
		go func() { first <- post(hs, body) }()
	}
	for range 2 {
		select {
		case <-entered:
		case <-time.After(10 * time.Second):
			t.Fatal("two requests that fit the budget together did not both run")
		}
	}
	start := time.Now()
	busy := postWithin(hs, body, 5*time.Second)
	if busy.err != nil {
		t.Fatalf("a request beyond the budget was not refused: %v", busy.err)
	}
	if d := time.Since(start); d < 300*time.Millisecond {
		t.Errorf("refused after %s, before the 300ms wait", d)
	}
	if busy.status != http.StatusServiceUnavailable || busy.retryAfter != "1" {
		t.Errorf("a request beyond the budget: HTTP %d, Retry-After %q; want 503, 1\n%s", busy.status, busy.retryAfter, busy.body)
	}
	for _, want := range []string{"<faultcode>soapenv:Server</faultcode>", "the server is busy", "nothing was done; send the request again after 1 seconds"} {
		if !strings.Contains(busy.body, want) {
			t.Errorf("the busy fault lacks %q:\n%s", want, busy.body)
		}
	}
	if n := ran.Load(); n != 2 {
		t.Errorf("%d requests ran; the refused one must not have", n)
	}
	if got := metricValue(t, reg, "vws_soap_busy_total"); got != 1 {
		t.Errorf("vws_soap_busy_total = %v, want 1", got)
	}

	release()
	for range 2 {
		if a := <-first; a.status != http.StatusOK {
			t.Errorf("a request within the budget: HTTP %d %v\n%.500s", a.status, a.err, a.body)
		}
	}
	// Released: more requests than the budget holds, one after another, all run.
	for i := range 5 {
		if a := post(hs, body); a.status != http.StatusOK {
			t.Fatalf("request %d after the others were answered: HTTP %d %v\n%.500s", i, a.status, a.err, a.body)
		}
	}
	if got := metricValue(t, reg, "vws_soap_admitted_body_bytes"); got != 0 {
		t.Errorf("vws_soap_admitted_body_bytes = %v with nothing in process, want 0", got)
	}
}

// TestParseBudgetQueues: many large requests at once are parsed and carried out no
// more than the budget holds at a time, the others waiting their turn, and all are
// answered.
func TestParseBudgetQueues(t *testing.T) {
	body := paddedRequest(256 << 10)
	var now, most atomic.Int32
	hs, _ := budgetServer(t, int64(2*len(body)), 20*time.Second, func(context.Context, *container.Request) (*etree.Element, error) {
		n := now.Add(1)
		defer now.Add(-1)
		for m := most.Load(); n > m && !most.CompareAndSwap(m, n); m = most.Load() {
		}
		time.Sleep(250 * time.Millisecond) // long enough that without a bound all would overlap
		return etree.NewElement("done"), nil
	})
	const clients = 8
	var wg sync.WaitGroup
	answers := make(chan answer, clients)
	for range clients {
		wg.Go(func() { answers <- post(hs, body) })
	}
	wg.Wait()
	close(answers)
	for a := range answers {
		if a.status != http.StatusOK {
			t.Errorf("HTTP %d %v\n%.500s", a.status, a.err, a.body)
		}
	}
	if m := most.Load(); m > 2 {
		t.Errorf("%d requests of %d bytes were in process at once under a budget of two", m, len(body))
	}
}

// TestSlowBodyHoldsNoParseBudget: a client trickling its body holds a connection, but
// none of the parse budget: with a budget of one body, others' requests are answered
// meanwhile at once.
func TestSlowBodyHoldsNoParseBudget(t *testing.T) {
	body := paddedRequest(64 << 10)
	hs, _ := budgetServer(t, int64(len(body)), 2*time.Second, func(context.Context, *container.Request) (*etree.Element, error) {
		return etree.NewElement("done"), nil
	})
	conn, err := net.Dial("tcp", hs.Listener.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	fmt.Fprintf(conn, "POST /wsrf/services/%s HTTP/1.1\r\nHost: x\r\nContent-Type: text/xml\r\nContent-Length: %d\r\n\r\n%s",
		vwsns.FactoryService, len(body), body[:len(body)/2]) // and the rest not yet
	time.Sleep(100 * time.Millisecond)
	for i := range 3 {
		start := time.Now()
		if a := post(hs, body); a.status != http.StatusOK {
			t.Fatalf("request %d while a body trickles in: HTTP %d %v\n%.500s", i, a.status, a.err, a.body)
		}
		if d := time.Since(start); d > time.Second {
			t.Errorf("request %d waited %s behind a body still arriving", i, d)
		}
	}
	// The slow client, done at last, is served too.
	io.WriteString(conn, body[len(body)/2:])
	conn.SetReadDeadline(time.Now().Add(10 * time.Second))
	status := make([]byte, 12)
	if _, err := io.ReadFull(conn, status); err != nil || string(status) != "HTTP/1.1 200" {
		t.Errorf("the slow client's answer: %q %v", status, err)
	}
}

// TestDoneReadingGivesBackTheShare: a handler that has read its request and says so
// (DoneReading) before a long wait holds none of the budget meanwhile: with a budget
// of about one body, another request is answered at once; the waiting request's fault,
// written without its tree, still names the service it was sent to.
func TestDoneReadingGivesBackTheShare(t *testing.T) {
	body := paddedRequest(64 << 10)
	entered := make(chan struct{}, 1)
	unblock := make(chan struct{})
	var waiting atomic.Bool
	// Room for one body and what the waiting request keeps of it (its EPR).
	hs, reg := budgetServer(t, int64(len(body)+1024), 300*time.Millisecond, func(ctx context.Context, req *container.Request) (*etree.Element, error) {
		if !waiting.CompareAndSwap(false, true) {
			return etree.NewElement("done"), nil
		}
		container.DoneReading(ctx)
		if req.Envelope != nil || req.Payload != nil {
			t.Error("the request's tree is still held after DoneReading")
		}
		entered <- struct{}{}
		<-unblock
		return nil, fmt.Errorf("%w: the wait ended", errdefs.ErrState)
	})
	var once sync.Once
	release := func() { once.Do(func() { close(unblock) }) }
	t.Cleanup(release)
	first := make(chan answer, 1)
	go func() { first <- post(hs, body) }()
	select {
	case <-entered:
	case <-time.After(10 * time.Second):
		t.Fatal("the first request did not run")
	}
	if a := post(hs, body); a.status != http.StatusOK {
		t.Errorf("a request while another waits past DoneReading: HTTP %d %v\n%.500s", a.status, a.err, a.body)
	}
	release()
	a := <-first
	if a.status != http.StatusInternalServerError || !strings.Contains(a.body, "/wsrf/services/"+vwsns.FactoryService) ||
		!strings.Contains(a.body, "the wait ended") {
		t.Errorf("the fault of the request that waited: HTTP %d %v\n%.1000s", a.status, a.err, a.body)
	}
	if got := metricValue(t, reg, "vws_soap_admitted_body_bytes"); got != 0 {
		t.Errorf("vws_soap_admitted_body_bytes = %v with nothing in process, want 0", got)
	}
}
