package main

import (
	"bytes"
	"context"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/beevik/etree"

	"github.com/vws-grid/vws/internal/vwsns"
)

// runWithStdin runs a vws command line with stdin as its standard input.
func runWithStdin(t *testing.T, stdin string, args ...string) (string, error) {
	t.Helper()
	root := newRootCommand()
	var out bytes.Buffer
	root.SetIn(strings.NewReader(stdin))
	root.SetOut(&out)
	root.SetErr(&out)
	root.SetArgs(args)
	err := root.ExecuteContext(context.Background())
	return out.String(), err
}

// TestEPRFromStandardInput: "-" for EPR|KEY (and for wsrf's -e) reads the EPR
// document from standard input, as vws image import - reads the image, so that an
// EPR piped from another tool names the workspace; it is no workspace key "-".
func TestEPRFromStandardInput(t *testing.T) {
	var sent bytes.Buffer // the requests the service was sent
	svc := &fakeSOAP{handle: func(op string, p *etree.Element) (*etree.Element, string) {
		return el("wsrp:QueryResourcePropertiesResponse", "http://docs.oasis-open.org/wsrf/rp-2", ""), ""
	}}
	hs := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		sent.Write(body)
		r.Body = io.NopCloser(bytes.NewReader(body))
		svc.ServeHTTP(w, r)
	}))
	defer hs.Close()
	epr := `<wsa:EndpointReference xmlns:wsa="http://www.w3.org/2005/08/addressing"><wsa:Address>` + hs.URL + `/wsrf/services/WorkspaceService</wsa:Address>` +
		`<wsa:ReferenceParameters><vw:WorkspaceKey xmlns:vw="` + vwsns.Workspace + `">ws-piped</vw:WorkspaceKey></wsa:ReferenceParameters></wsa:EndpointReference>`
	for _, args := range [][]string{{"status", "-"}, {"wsrf", "query", "-e", "-"}} {
		sent.Reset()
		if out, err := runWithStdin(t, epr, args...); err != nil {
			t.Fatalf("vws %s with an EPR on standard input: %v\n%s", strings.Join(args, " "), describe(err), out)
		}
		if !strings.Contains(sent.String(), "ws-piped") {
			t.Errorf("vws %s did not name the piped EPR's workspace: the service was sent %q", strings.Join(args, " "), sent.String())
		}
	}
	// What is not an EPR is refused, naming standard input, before anything is sent.
	sent.Reset()
	_, err := runWithStdin(t, "", "status", "-")
	if err == nil || !strings.Contains(describe(err), "standard input is empty") || sent.Len() != 0 {
		t.Errorf("vws status - with nothing piped in: %v; want it to say standard input is empty, and nothing sent", err)
	}
	// A file named "-" is no longer read: - is standard input, ./- the file.
	dir := t.TempDir()
	wd, _ := os.Getwd()
	if err := os.Chdir(dir); err != nil {
		t.Fatal(err)
	}
	defer os.Chdir(wd)
	if err := os.WriteFile(filepath.Join(dir, "-"), []byte(epr), 0o644); err != nil {
		t.Fatal(err)
	}
	if out, err := runWithStdin(t, "", "status", "./-"); err != nil {
		t.Errorf("vws status ./-: %v\n%s", describe(err), out)
	}
}
