package container_test

import (
	"context"
	"fmt"
	"io"
	"net"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/beevik/etree"

	"github.com/vws-grid/vws/internal/container"
	"github.com/vws-grid/vws/internal/contract"
	"github.com/vws-grid/vws/internal/dialect"
	"github.com/vws-grid/vws/internal/vwsns"
	"github.com/vws-grid/vws/internal/wsa"
)

// TestHandlerTimeouts: an operation runs under the container's HandlerTimeout unless
// it was registered with HandleUnbounded (Deploy, Shutdown…: the work bounds them), and
// registering it again with Handle bounds it again.
func TestHandlerTimeouts(t *testing.T) {
	deadlineOf := func(ctx context.Context, _ *container.Request) (*etree.Element, error) {
		el := etree.NewElement("deadline")
		if d, ok := ctx.Deadline(); ok {
			el.SetText(time.Until(d).Round(time.Hour).String())
		} else {
			el.SetText("none")
		}
		return el, nil
	}
	serve := func(register func(*container.Service)) string {
		t.Helper()
		svc, err := container.NewService(contract.FS, "wsdl", vwsns.FactoryService, wsa.QName{})
		if err != nil {
			t.Fatal(err)
		}
		for _, d := range dialect.Dialects {
			for _, op := range svc.Contract(d).Operations {
				svc.Handle(op.Name, deadlineOf)
			}
		}
		register(svc)
		c, err := container.New(container.Config{HandlerTimeout: 5 * time.Hour}, svc)
		if err != nil {
			t.Fatal(err)
		}
		hs := httptest.NewServer(c)
		defer hs.Close()
		return postVersionRequest(t, hs)
	}
	if got := serve(func(*container.Service) {}); !strings.Contains(got, "<deadline>5h0m0s</deadline>") {
		t.Errorf("a bounded operation: %s", got)
	}
	if got := serve(func(s *container.Service) { s.HandleUnbounded("GetResourceProperty", deadlineOf) }); !strings.Contains(got, "<deadline>none</deadline>") {
		t.Errorf("an unbounded operation: %s", got)
	}
	if got := serve(func(s *container.Service) {
		s.HandleUnbounded("GetResourceProperty", deadlineOf)
		s.Handle("GetResourceProperty", deadlineOf)
	}); !strings.Contains(got, "<deadline>5h0m0s</deadline>") {
		t.Errorf("registered again with Handle: %s", got)
	}
}

// TestBodyTimeout: a client that stops sending its request body is cut off after
// BodyTimeout, while an operation that outlasts it once the body is in runs to its
// end with its context alive.
func TestBodyTimeout(t *testing.T) {
	const bodyTimeout = 300 * time.Millisecond
	svc, err := container.NewService(contract.FS, "wsdl", vwsns.FactoryService, wsa.QName{})
	if err != nil {
		t.Fatal(err)
	}
	slow := func(ctx context.Context, _ *container.Request) (*etree.Element, error) {
		select {
		case <-time.After(3 * bodyTimeout):
			return etree.NewElement("done"), nil
		case <-ctx.Done():
			return nil, context.Cause(ctx)
		}
	}
	for _, d := range dialect.Dialects {
		for _, op := range svc.Contract(d).Operations {
			svc.HandleUnbounded(op.Name, slow)
		}
	}
	c, err := container.New(container.Config{BodyTimeout: bodyTimeout}, svc)
	if err != nil {
		t.Fatal(err)
	}
	hs := httptest.NewServer(c)
	defer hs.Close()
	if data := postVersionRequest(t, hs); !strings.Contains(data, "<done/>") {
		t.Fatalf("an operation longer than the body timeout: %s", data)
	}

	conn, err := net.Dial("tcp", hs.Listener.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	fmt.Fprintf(conn, "POST /wsrf/services/%s HTTP/1.1\r\nHost: x\r\nContent-Type: text/xml\r\nContent-Length: %d\r\n\r\n%s",
		vwsns.FactoryService, len(versionRequest), versionRequest[:20]) // and then nothing
	conn.SetReadDeadline(time.Now().Add(10 * time.Second))
	t0 := time.Now()
	answer, _ := io.ReadAll(conn) // until the server closes the connection
	if d := time.Since(t0); d > 5*time.Second {
		t.Fatalf("a stalled body held the connection %s with a %s body timeout", d, bodyTimeout)
	}
	if !strings.Contains(string(answer), "reading request body") {
		t.Errorf("the answer to a stalled body: %q", answer)
	}
}

// versionRequest asks the Factory service for its f:Version property.
var versionRequest = `<s:Envelope xmlns:s="http://schemas.xmlsoap.org/soap/envelope/"><s:Body><rp:GetResourceProperty xmlns:rp="http://docs.oasis-open.org/wsrf/rp-2" xmlns:f="` +
	vwsns.Factory + `">f:Version</rp:GetResourceProperty></s:Body></s:Envelope>`

// postVersionRequest sends versionRequest to the Factory service at hs and returns the
// answer's body.
func postVersionRequest(t *testing.T, hs *httptest.Server) string {
	t.Helper()
	resp, err := hs.Client().Post(hs.URL+"/wsrf/services/"+vwsns.FactoryService, "text/xml", strings.NewReader(versionRequest))
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	data, _ := io.ReadAll(resp.Body)
	return string(data)
}
