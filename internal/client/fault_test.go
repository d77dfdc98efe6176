package client_test

import (
	"context"
	"errors"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/beevik/etree"

	"github.com/vws-grid/vws/internal/client"
	"github.com/vws-grid/vws/internal/wsa"
)

// TestFaultSayingNothingIsTold: a soap:Fault without faultcode and faultstring (both
// required, but a foreign service or a proxy may send one) is still a fault, told as
// one that says nothing, with the HTTP status it came with, not as the bare "soap:: ".
func TestFaultSayingNothingIsTold(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/xml; charset=utf-8")
		w.WriteHeader(http.StatusInternalServerError)
		w.Write([]byte(`<soapenv:Envelope xmlns:soapenv="http://schemas.xmlsoap.org/soap/envelope/"><soapenv:Body><soapenv:Fault/></soapenv:Body></soapenv:Envelope>`))
	}))
	defer srv.Close()
	_, err := client.New(nil).Call(context.Background(), &wsa.EPR{Version: wsa.V200508, Address: srv.URL + "/wsrf/services/WorkspaceService"},
		"urn:test", etree.NewElement("x"))
	var fe *client.FaultError
	if !errors.As(err, &fe) {
		t.Fatalf("not a fault: %v", err)
	}
	for _, want := range []string{"no faultstring", "HTTP 500"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("%q does not say %q", err, want)
		}
	}
}
