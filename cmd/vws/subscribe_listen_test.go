package main

import (
	"context"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/beevik/etree"
	"github.com/spf13/cobra"

	"github.com/vws-grid/vws/internal/dialect"
	"github.com/vws-grid/vws/internal/vwsns"
	"github.com/vws-grid/vws/internal/wsa"
)

// --listen :PORT (every interface) must not give the service the wildcard address
// as the consumer's: the service sends nothing to 0.0.0.0 or :: and refuses the
// Subscribe. The consumer URL is then the address that reaches the service, on the
// port listened on.
func TestListenOnEveryInterfaceGivesAReachableConsumerURL(t *testing.T) {
	var mu sync.Mutex
	var consumer string
	hs := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		data, _ := io.ReadAll(r.Body)
		doc := etree.NewDocument()
		if err := doc.ReadFromBytes(data); err == nil {
			if a := doc.FindElement("//ConsumerReference/Address"); a != nil {
				mu.Lock()
				consumer = strings.TrimSpace(a.Text())
				mu.Unlock()
			}
		}
		http.Error(w, "refused", http.StatusInternalServerError)
	}))
	defer hs.Close()
	d := dialect.WSRF12
	key := etree.NewElement("vw:WorkspaceKey")
	key.CreateAttr("xmlns:vw", vwsns.Workspace)
	key.SetText("ws1")
	ws := &wsa.EPR{Version: d.WSA, Address: hs.URL + "/wsrf/services/WorkspaceService", References: []*etree.Element{key}}
	saved := tlsFlags // another test's flags (--sign) would hold the Subscribe back
	tlsFlags.cert, tlsFlags.key, tlsFlags.ca, tlsFlags.sign = "", "", "", false
	defer func() { tlsFlags = saved }()
	cmd := &cobra.Command{}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	cmd.SetContext(ctx)
	cmd.SetOut(io.Discard)
	cmd.SetErr(io.Discard)
	err := runSubscribe(cmd, ws, d, []wsa.QName{vwsns.Q(vwsns.Workspace, "state")}, subscribeOptions{listen: ":0", lifetime: time.Hour})
	mu.Lock()
	defer mu.Unlock()
	u, perr := url.Parse(consumer)
	if perr != nil || u.Hostname() == "" {
		t.Fatalf("the Subscribe gave the consumer address %q (%v)", consumer, err)
	}
	if ip := net.ParseIP(u.Hostname()); ip == nil || ip.IsUnspecified() {
		t.Fatalf("the Subscribe gave the consumer address %q; the service sends nothing to an unspecified address", consumer)
	}
	if u.Port() == "" || u.Port() == "0" {
		t.Fatalf("the consumer address %q has not the port listened on", consumer)
	}
}

// TestListenerDropsIdleConnections: a connection kept alive after a Notify and then
// left silent must be closed at some point, not held (with its goroutine) for as long
// as whoever opened it likes.
func TestListenerDropsIdleConnections(t *testing.T) {
	srv := listenerServer(http.NotFoundHandler())
	if srv.IdleTimeout <= 0 && srv.ReadTimeout <= 0 {
		t.Fatal("the listener's server has neither IdleTimeout nor ReadTimeout: an idle kept-alive connection is held for ever")
	}
	if srv.ReadHeaderTimeout <= 0 {
		t.Fatal("the listener's server has no ReadHeaderTimeout")
	}
}
