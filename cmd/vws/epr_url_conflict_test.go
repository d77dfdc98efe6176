package main

import (
	"context"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/beevik/etree"

	"github.com/vws-grid/vws/internal/vwsns"
)

// TestURLBesideAnotherEPRAddressIsNoted: an EPR file names its workspace's service, as
// GT tools read it, so a --url elsewhere is not where the workspace is reached; the
// user who gave it is told so on stderr, in one line, rather than left to believe it
// was used. A --url the EPR agrees with says nothing.
func TestURLBesideAnotherEPRAddressIsNoted(t *testing.T) {
	svc := &fakeSOAP{handle: func(op string, p *etree.Element) (*etree.Element, string) {
		return el("wsrp:QueryResourcePropertiesResponse", "http://docs.oasis-open.org/wsrf/rp-2", ""), ""
	}}
	hs := httptest.NewServer(svc)
	defer hs.Close()
	file := filepath.Join(t.TempDir(), "ws.xml")
	if err := os.WriteFile(file, []byte(`<wsa:EndpointReference xmlns:wsa="http://www.w3.org/2005/08/addressing"><wsa:Address>`+hs.URL+`/wsrf/services/WorkspaceService</wsa:Address>`+
		`<wsa:ReferenceParameters><vw:WorkspaceKey xmlns:vw="`+vwsns.Workspace+`">k</vw:WorkspaceKey></wsa:ReferenceParameters></wsa:EndpointReference>`), 0o644); err != nil {
		t.Fatal(err)
	}
	r := vwsRun(t, context.Background(), "status", file, "--url", "http://elsewhere.example:8080")
	if r.code != 0 {
		t.Fatalf("exit %d: %s", r.code, r.stderr)
	}
	if strings.Count(r.stderr, "\n") != 1 || !strings.Contains(r.stderr, "--url http://elsewhere.example:8080") || !strings.Contains(r.stderr, hs.URL) {
		t.Errorf("a --url the EPR file does not use went unmentioned: stderr %q", r.stderr)
	}
	r = vwsRun(t, context.Background(), "status", file, "--url", hs.URL+"/")
	if r.code != 0 || r.stderr != "" {
		t.Errorf("the --url the EPR file names: exit %d, stderr %q; want nothing said", r.code, r.stderr)
	}
}
