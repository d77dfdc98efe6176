package main

import (
	"bytes"
	"context"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
)

// vws create > key.txt on a full disk: the key, often the only handle on the new
// workspace, was not written, so the command must not exit 0 as if it were, and
// must say the key where it can (stderr), with the EPR file still saved.
func TestCLICreateKeyThatCannotBeWrittenFails(t *testing.T) {
	s := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/xml")
		w.Write([]byte(`<s:Envelope xmlns:s="http://schemas.xmlsoap.org/soap/envelope/"><s:Body>` +
			`<fac:CreateResponse xmlns:fac="http://vws.dev/ns/2026/factory" xmlns:vw="http://vws.dev/ns/2026/workspace" xmlns:wsa="http://www.w3.org/2005/08/addressing">` +
			`<fac:WorkspaceReference><wsa:Address>http://127.0.0.1:1/wsrf/services/WorkspaceService</wsa:Address>` +
			`<wsa:ReferenceParameters><vw:WorkspaceKey>n3w</vw:WorkspaceKey></wsa:ReferenceParameters></fac:WorkspaceReference>` +
			`</fac:CreateResponse></s:Body></s:Envelope>`))
	}))
	defer s.Close()
	epr := filepath.Join(t.TempDir(), "ws.xml")
	for _, args := range [][]string{{"create", "--image", "deb"}, {"create", "--image", "deb", "-o", epr}} {
		var stderr bytes.Buffer
		code := run(context.Background(), append(args, "--url", s.URL), fullDisk{}, &stderr)
		if code != exitError || !strings.Contains(stderr.String(), syscall.ENOSPC.Error()) || !strings.Contains(stderr.String(), "n3w") {
			t.Errorf("vws %s with a full standard output: want exit 1 saying the key n3w could not be written, got exit %d, stderr %q",
				strings.Join(args, " "), code, stderr.String())
		}
	}
	if b, err := os.ReadFile(epr); err != nil || !bytes.Contains(b, []byte("n3w")) {
		t.Errorf("the -o file was not saved: %v %q", err, b)
	}
}
