package client_test

import (
	"context"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/beevik/etree"

	"github.com/vws-grid/vws/internal/client"
	"github.com/vws-grid/vws/internal/wsa"
)

// TestCallIsNotRedirected: a service answering a SOAP call with a redirect does not
// get the request posted again where it points (another host, or plain HTTP, with a
// signed request's signature); the caller is told where it pointed.
func TestCallIsNotRedirected(t *testing.T) {
	var elsewhere atomic.Int32
	other := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { elsewhere.Add(1) }))
	defer other.Close()
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		http.Redirect(w, r, other.URL+"/collect", http.StatusTemporaryRedirect)
	}))
	defer srv.Close()
	_, err := client.New(nil).Call(context.Background(), &wsa.EPR{Version: wsa.V200508, Address: srv.URL + "/wsrf/services/WorkspaceService"},
		"urn:test", etree.NewElement("x"))
	if n := elsewhere.Load(); n != 0 {
		t.Fatalf("the request was posted again where the redirect pointed (%d times)", n)
	}
	if err == nil || !strings.Contains(err.Error(), "a redirect to "+other.URL+"/collect") {
		t.Fatalf("got %v, want the redirect refused, naming where it pointed", err)
	}
}
