package main

import (
	"bytes"
	"context"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/beevik/etree"
	"github.com/spf13/cobra"

	"github.com/vws-grid/vws/internal/dialect"
	"github.com/vws-grid/vws/internal/vwsns"
	"github.com/vws-grid/vws/internal/wsa"
)

// The listener speaks plain HTTP: an https:// --consumer-url reaches it only through
// a TLS-terminating proxy, and without one every delivery fails, which the user
// learnt only when the service ended the subscriptions. It is said at once.
func TestSubscribeSaysAnHTTPSConsumerURLNeedsATLSProxy(t *testing.T) {
	hs := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		io.Copy(io.Discard, r.Body)
		http.Error(w, "refused", http.StatusInternalServerError)
	}))
	defer hs.Close()
	d := dialect.WSRF12
	key := etree.NewElement("vw:WorkspaceKey")
	key.CreateAttr("xmlns:vw", vwsns.Workspace)
	key.SetText("ws1")
	ws := &wsa.EPR{Version: d.WSA, Address: hs.URL + "/wsrf/services/WorkspaceService", References: []*etree.Element{key}}
	saved := tlsFlags
	tlsFlags.cert, tlsFlags.key, tlsFlags.ca, tlsFlags.sign = "", "", "", false
	defer func() { tlsFlags = saved }()
	for _, tc := range []struct {
		consumer string
		note     bool
	}{
		{"https://gw.example.org:8443/", true},
		{"HTTPS://gw.example.org:8443/", true},
		{"http://gw.example.org:8080/", false},
	} {
		cmd := &cobra.Command{}
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		cmd.SetContext(ctx)
		var stderr bytes.Buffer
		cmd.SetOut(io.Discard)
		cmd.SetErr(&stderr)
		runSubscribe(cmd, ws, d, []wsa.QName{vwsns.Q(vwsns.Workspace, "state")},
			subscribeOptions{listen: "127.0.0.1:0", consumerURL: tc.consumer, lifetime: time.Hour})
		cancel()
		if got := strings.Contains(stderr.String(), "plain HTTP"); got != tc.note {
			t.Errorf("--consumer-url %s: said the listener is plain HTTP: %v, want %v; stderr:\n%s", tc.consumer, got, tc.note, stderr.String())
		}
	}
}
