package container_test

import (
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/vws-grid/vws/internal/container"
	"github.com/vws-grid/vws/internal/contract"
	"github.com/vws-grid/vws/internal/vwsns"
	"github.com/vws-grid/vws/internal/wsa"
)

// TestStalledBodyOfARefusedRequestIsCutOff: a request the container refuses before it
// reads the body (no such service, a GET-only endpoint, a media type other than
// text/xml) must not hold its connection longer than a SOAP body may take: net/http
// reads what is left of the body after the handler, and without a deadline a client
// that stalls there (or trickles) keeps the connection and its goroutine for ever.
func TestStalledBodyOfARefusedRequestIsCutOff(t *testing.T) {
	const bodyTimeout = 300 * time.Millisecond
	svc, err := container.NewService(contract.FS, "wsdl", vwsns.FactoryService, wsa.QName{})
	if err != nil {
		t.Fatal(err)
	}
	for _, op := range []string{"GetResourceProperty", "GetMultipleResourceProperties", "QueryResourceProperties", "GetResourcePropertyDocument", "Create"} {
		svc.Handle(op, container.NotImplemented(op))
	}
	c, err := container.New(container.Config{BodyTimeout: bodyTimeout}, svc)
	if err != nil {
		t.Fatal(err)
	}
	c.Handle("/healthz", http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { fmt.Fprintln(w, "ok") }))
	hs := httptest.NewServer(c)
	defer hs.Close()
	for _, req := range []struct{ name, method, path, contentType string }{
		{"unknown service", "POST", "/wsrf/services/NoSuchService", "text/xml"},
		{"wrong media type", "POST", "/wsrf/services/" + vwsns.FactoryService, "text/plain"},
		{"wrong method", "PUT", "/wsrf/services/" + vwsns.FactoryService, "text/xml"},
		{"another endpoint", "POST", "/healthz", "text/plain"},
	} {
		t.Run(req.name, func(t *testing.T) {
			conn, err := net.Dial("tcp", hs.Listener.Addr().String())
			if err != nil {
				t.Fatal(err)
			}
			defer conn.Close()
			fmt.Fprintf(conn, "%s %s HTTP/1.1\r\nHost: x\r\nContent-Type: %s\r\nContent-Length: 1000\r\n\r\n<s:Envelope",
				req.method, req.path, req.contentType) // and then nothing
			conn.SetReadDeadline(time.Now().Add(5 * time.Second))
			t0 := time.Now()
			answer, _ := io.ReadAll(conn) // until the server closes the connection
			if d := time.Since(t0); d > 10*bodyTimeout {
				t.Fatalf("a stalled body held the connection %s (%s body timeout) after the answer %q",
					d.Round(time.Millisecond), bodyTimeout, strings.SplitN(string(answer), "\r\n", 2)[0])
			}
		})
	}
}
