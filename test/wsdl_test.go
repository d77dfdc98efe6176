package test

import (
	"io"
	"net/http"
	"strings"
	"testing"

	"github.com/beevik/etree"

	"github.com/vws-grid/vws/internal/vwsns"
	"github.com/vws-grid/vws/test/harness"
)

func fetch(t *testing.T, url string) []byte {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	data, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != 200 {
		t.Fatalf("GET %s: HTTP %d: %s", url, resp.StatusCode, data)
	}
	return data
}

// TestWSDLImportsResolveOverHTTP fetches every service's WSDL in both dialects and
// follows every import and include transitively, as a client generator would.
func TestWSDLImportsResolveOverHTTP(t *testing.T) {
	s := harness.Start(t)
	seen := map[string]bool{}
	var follow func(url string)
	follow = func(url string) {
		if seen[url] {
			return
		}
		seen[url] = true
		doc := etree.NewDocument()
		if err := doc.ReadFromBytes(fetch(t, url)); err != nil {
			t.Fatalf("%s: %v", url, err)
		}
		var walk func(e *etree.Element)
		walk = func(e *etree.Element) {
			switch e.Tag {
			case "import", "include":
				loc := e.SelectAttrValue("schemaLocation", e.SelectAttrValue("location", ""))
				if loc != "" {
					if !strings.HasPrefix(loc, s.URL+"/") {
						t.Errorf("%s: import %q is not an absolute URL on this server", url, loc)
					} else {
						follow(loc)
					}
				}
			case "address":
				if loc := e.SelectAttrValue("location", ""); loc != "" && !strings.HasPrefix(loc, s.URL+"/wsrf/services/") {
					t.Errorf("%s: soap:address %q does not point at this server", url, loc)
				}
			}
			for _, c := range e.ChildElements() {
				walk(c)
			}
		}
		walk(doc.Root())
	}
	for _, svc := range []string{vwsns.FactoryService, vwsns.WorkspaceService, vwsns.RepositoryService, vwsns.ManagerService,
		vwsns.SubscriptionManagerService} {
		follow(s.ServiceURL(svc) + "?wsdl")
		follow(s.ServiceURL(svc) + "?wsdl&dialect=gt4")
	}
	if len(seen) < 16 {
		t.Fatalf("only %d documents reached", len(seen))
	}
	// As Axis-based containers do, ?WSDL and the dialect's name in capitals work too.
	gt4 := string(fetch(t, s.ServiceURL(vwsns.WorkspaceService)+"?WSDL&Dialect=GT4"))
	if !strings.Contains(gt4, "http://schemas.xmlsoap.org/ws/2004/03/addressing") {
		t.Errorf("?WSDL&Dialect=GT4 is not the GT4 WSDL")
	}
	resp, err := http.Get(s.URL + "/wsrf/share/../../etc/passwd")
	if err == nil {
		resp.Body.Close()
		if resp.StatusCode == 200 {
			t.Fatal("path traversal served a file")
		}
	}
}

func TestHealthAndMetrics(t *testing.T) {
	s := harness.Start(t)
	if got := string(fetch(t, s.URL+"/healthz")); strings.TrimSpace(got) != "ok" {
		t.Fatalf("healthz: %q", got)
	}
	if resp, err := http.Post(s.URL+"/healthz", "text/plain", strings.NewReader("x")); err != nil || resp.StatusCode != http.StatusMethodNotAllowed {
		t.Fatalf("POST /healthz: %v %v; want 405", resp, err)
	} else {
		resp.Body.Close()
	}
	s.SeedWorkspace(t, "m1", "metrics", nil)
	post(t, s.ServiceURL(vwsns.WorkspaceService), golden(t, "GetResourceProperty.xml", s.ServiceURL(vwsns.WorkspaceService), "m1"))
	post(t, s.ServiceURL(vwsns.WorkspaceService), golden(t, "GetResourceProperty.xml", s.ServiceURL(vwsns.WorkspaceService), "nope"))
	m := string(fetch(t, s.URL+"/metrics"))
	for _, want := range []string{
		`vws_soap_requests_total{dialect="gt4",operation="GetResourceProperty",service="WorkspaceService"} 2`,
		`vws_soap_faults_total{fault="ResourceUnknownFault",operation="GetResourceProperty",service="WorkspaceService"} 1`,
		`vws_soap_request_duration_seconds_bucket{operation="GetResourceProperty",service="WorkspaceService",le="0.001"}`,
	} {
		if !strings.Contains(m, want) {
			t.Errorf("metrics lack %s", want)
		}
	}
}
