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

// TestWSRFURLBesideAnotherAddressIsNoted: vws wsrf with -e or -s reaches the resource
// at the address they give; a --url elsewhere was dropped without a word, and the user
// believed the resource was read there. As vws status does, it is said on stderr; a
// --url the address agrees with says nothing.
func TestWSRFURLBesideAnotherAddressIsNoted(t *testing.T) {
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
	for _, target := range [][]string{
		{"-e", file},
		{"-s", hs.URL + "/wsrf/services/WorkspaceService", "-k", "vw:WorkspaceKey", "k"},
	} {
		args := append(append([]string{"wsrf", "query"}, target...), "--url", "http://elsewhere.example:8080")
		r := vwsRun(t, context.Background(), args...)
		if r.code != 0 {
			t.Fatalf("vws %s: exit %d: %s", strings.Join(args, " "), r.code, r.stderr)
		}
		if strings.Count(r.stderr, "\n") != 1 || !strings.Contains(r.stderr, "--url http://elsewhere.example:8080") || !strings.Contains(r.stderr, hs.URL) {
			t.Errorf("vws %s: a --url not used went unmentioned: stderr %q", strings.Join(args, " "), r.stderr)
		}
		args = append(append([]string{"wsrf", "query"}, target...), "--url", strings.ToUpper(hs.URL)+"/")
		if r := vwsRun(t, context.Background(), args...); r.code != 0 || r.stderr != "" {
			t.Errorf("vws %s: exit %d, stderr %q; want nothing said", strings.Join(args, " "), r.code, r.stderr)
		}
	}
}
