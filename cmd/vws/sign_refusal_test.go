package main

import (
	"bytes"
	"context"
	"io"
	"strings"
	"testing"

	"github.com/vws-grid/vws/internal/vwsns"
)

// TestSignedRequestRefusedSaysWhy: a service refusing a signed request for its message
// security cannot sign its fault (it signs only the answers to requests it accepted),
// and vws --sign must not take that fault's word as the service's; but it says what
// the unverified fault says, here that the request was signed for another address
// than the service's, rather than only that the answer is not signed.
func TestSignedRequestRefusedSaysWhy(t *testing.T) {
	site := startSignSite(t, "")
	proxy, ca := site.proxy, site.ca

	// The same service under the host's name, which its certificate names too.
	other := strings.Replace(site.url, "127.0.0.1", "localhost", 1)
	var stderr bytes.Buffer
	code := run(context.Background(), []string{"--sign", "--cert", proxy, "--ca", ca,
		"wsrf", "get-property", "-s", other + "/wsrf/services/" + vwsns.FactoryService, "fac:Version"}, io.Discard, &stderr)
	msg := stderr.String()
	if code == 0 {
		t.Fatalf("a request signed for another address was carried out: %s", msg)
	}
	if !strings.Contains(msg, "not to this service") {
		t.Errorf("the refusal does not say why: %s", msg)
	}
	if code == exitFault || !strings.Contains(msg, "not signed") {
		t.Errorf("the unverified fault is not told as such (exit %d): %s", code, msg)
	}
}
