package container_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http/httptest"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/beevik/etree"

	"github.com/vws-grid/vws/internal/container"
	"github.com/vws-grid/vws/internal/contract"
	"github.com/vws-grid/vws/internal/dialect"
	"github.com/vws-grid/vws/internal/errdefs"
	"github.com/vws-grid/vws/internal/soap"
	"github.com/vws-grid/vws/internal/vwsns"
	"github.com/vws-grid/vws/internal/wsa"
)

// syncBuffer is a log sink the server's goroutines write to while the test reads it.
type syncBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

// faultOnce serves every Factory operation with h (under handlerTimeout) and answers
// one GetResourceProperty in dialect d: the whole answer (a fault), the fault's
// description and the server's log.
func faultOnce(t *testing.T, d *dialect.Dialect, handlerTimeout time.Duration, h container.Handler) (answer, desc, log string) {
	t.Helper()
	svc, err := container.NewService(contract.FS, "wsdl", vwsns.FactoryService, wsa.QName{})
	if err != nil {
		t.Fatal(err)
	}
	for _, dd := range dialect.Dialects {
		for _, op := range svc.Contract(dd).Operations {
			svc.Handle(op.Name, h)
		}
	}
	logs := &syncBuffer{}
	c, err := container.New(container.Config{HandlerTimeout: handlerTimeout, Logger: slog.New(slog.NewTextHandler(logs, nil))}, svc)
	if err != nil {
		t.Fatal(err)
	}
	hs := httptest.NewServer(c)
	defer hs.Close()
	req := `<s:Envelope xmlns:s="http://schemas.xmlsoap.org/soap/envelope/"><s:Body><rp:GetResourceProperty xmlns:rp="` + d.RP +
		`" xmlns:f="` + vwsns.Factory + `">f:Version</rp:GetResourceProperty></s:Body></s:Envelope>`
	resp, err := hs.Client().Post(hs.URL+"/wsrf/services/"+vwsns.FactoryService, "text/xml", strings.NewReader(req))
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	data, _ := io.ReadAll(resp.Body)
	env, err := soap.Parse(data)
	if err != nil || env.Payload == nil || env.Payload.Tag != "Fault" {
		t.Fatalf("%s: not a fault (%v): %s", d.Name, err, data)
	}
	f := soap.ParseFault(env.Payload)
	if len(f.Detail) == 0 || f.Detail[0].SelectElement("Description") == nil {
		t.Fatalf("%s: a fault without a Description: %s", d.Name, data)
	}
	desc = f.Detail[0].SelectElement("Description").Text()
	if desc != f.String {
		t.Errorf("%s: faultstring %q and Description %q differ", d.Name, f.String, desc)
	}
	if f.Code != soap.CodeServer && f.Code != soap.CodeClient {
		t.Errorf("%s: faultcode %q", d.Name, f.Code)
	}
	return string(data), desc, logs.String()
}

var incidentRE = regexp.MustCompile(`incident ([0-9a-f]{12})\b`)

// wantIncident checks that the fault answer (the whole response) tells none of
// internals, that its description names an incident id and what to do with it, and
// that the log has the full error at Error level under the same id; it returns the id.
func wantIncident(t *testing.T, what, answer, desc, log string, internals []string, full string) string {
	t.Helper()
	for _, s := range internals {
		if strings.Contains(answer, s) {
			t.Errorf("%s: the fault tells the caller %q:\n%s", what, s, answer)
		}
	}
	m := incidentRE.FindStringSubmatch(desc)
	if m == nil {
		t.Fatalf("%s: the fault names no incident id: %q", what, desc)
	}
	id := m[1]
	for _, s := range []string{"failed internally", "give the site administrator the incident id " + id} {
		if !strings.Contains(desc, s) {
			t.Errorf("%s: the fault does not say %q: %q", what, s, desc)
		}
	}
	var line string
	for _, l := range strings.Split(log, "\n") {
		if strings.Contains(l, "incident="+id) {
			line = l
		}
	}
	if line == "" || !strings.Contains(line, "level=ERROR") || !strings.Contains(line, full) {
		t.Errorf("%s: no Error record with incident=%s and %q in the log:\n%s", what, id, full, log)
	}
	return id
}

// TestUnclassifiedErrorIsAnIncident: a server-side error no fault type names (a
// database's, a file system's) reaches the caller as what happened in their terms,
// an incident id and what to do, in both dialects; the error itself, with its paths
// and SQL, is only in the server's log, under that id.
func TestUnclassifiedErrorIsAnIncident(t *testing.T) {
	inner := errors.New(`open /var/lib/vws/data/vws.db-journal: SQL logic error: INSERT INTO workspaces (key, doc) VALUES (?, ?)`)
	failing := func(context.Context, *container.Request) (*etree.Element, error) {
		return nil, fmt.Errorf("store: insert workspace: %w", inner)
	}
	internals := []string{"/var/lib/vws", "INSERT INTO", "SQL logic error", "store: insert"}
	ids := map[string]bool{}
	for _, d := range dialect.Dialects {
		answer, desc, log := faultOnce(t, d, time.Minute, failing)
		if !strings.Contains(answer, "ServiceFault") || !strings.Contains(answer, ":"+string(soap.CodeServer)+"</faultcode>") {
			t.Errorf("%s: not a Server ServiceFault:\n%s", d.Name, answer)
		}
		ids[wantIncident(t, d.Name, answer, desc, log, internals, "store: insert workspace: "+inner.Error())] = true
	}
	if len(ids) != len(dialect.Dialects) {
		t.Errorf("incident ids %v: each fault needs its own", ids)
	}
}

// TestPanicIsAnIncident: a handler's panic is told as an unclassified error is, the
// panic's value in the log under the incident id only.
func TestPanicIsAnIncident(t *testing.T) {
	panicking := func(context.Context, *container.Request) (*etree.Element, error) {
		panic("open /var/lib/vws/data/images/ab12: permission denied")
	}
	for _, d := range dialect.Dialects {
		answer, desc, log := faultOnce(t, d, time.Minute, panicking)
		wantIncident(t, d.Name, answer, desc, log, []string{"/var/lib/vws", "permission denied"}, "open /var/lib/vws/data/images/ab12: permission denied")
	}
}

// TestClassifiedErrorKeepsItsWords: an error a fault type names is written for the
// caller; it reaches them whole, with no incident.
func TestClassifiedErrorKeepsItsWords(t *testing.T) {
	refusing := func(context.Context, *container.Request) (*etree.Element, error) {
		return nil, errdefs.WithAdvice(&errdefs.StateError{Current: "running", Requested: "paused",
			Err: fmt.Errorf("%w: workspace k is running on host a; Pause is refused", errdefs.ErrState)}, "wait for the deploy to end")
	}
	for _, d := range dialect.Dialects {
		answer, desc, _ := faultOnce(t, d, time.Minute, refusing)
		if !strings.Contains(answer, "WorkspaceStateFault") {
			t.Errorf("%s: not a WorkspaceStateFault:\n%s", d.Name, answer)
		}
		if want := "operation not valid in this state: workspace k is running on host a; Pause is refused; wait for the deploy to end"; desc != want {
			t.Errorf("%s: description %q, want %q", d.Name, desc, want)
		}
	}
}

// TestHandlerTimeoutSaysSo: an operation the container stops at HandlerTimeout is told
// as that, with the limit, not as whatever its code answered the ended context with.
func TestHandlerTimeoutSaysSo(t *testing.T) {
	const limit = 100 * time.Millisecond
	slow := func(ctx context.Context, _ *container.Request) (*etree.Element, error) {
		<-ctx.Done()
		return nil, fmt.Errorf("store: exec UPDATE workspaces SET doc = ? WHERE key = ?: %w", ctx.Err())
	}
	for _, d := range dialect.Dialects {
		answer, desc, log := faultOnce(t, d, limit, slow)
		for _, s := range []string{"did not finish within the server's limit of " + limit.String(), "whether it took effect is not known",
			"check the resource's state before repeating"} {
			if !strings.Contains(desc, s) {
				t.Errorf("%s: the fault does not say %q: %q", d.Name, s, desc)
			}
		}
		if strings.Contains(answer, "UPDATE workspaces") || strings.Contains(desc, "failed internally") {
			t.Errorf("%s: the fault for a timeout:\n%s", d.Name, answer)
		}
		if !strings.Contains(log, "UPDATE workspaces") {
			t.Errorf("%s: the log lacks the error the handler answered:\n%s", d.Name, log)
		}
	}
}
