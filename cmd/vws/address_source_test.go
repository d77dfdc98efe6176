package main

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestMalformedAddressNamesWhereItCameFrom: an address that is not a URL is blamed on
// where it came from — the EPR file, -s — not on --url / $VWS_URL.
func TestMalformedAddressNamesWhereItCameFrom(t *testing.T) {
	file := filepath.Join(t.TempDir(), "noscheme.xml")
	if err := os.WriteFile(file, []byte(`<wsa:EndpointReference xmlns:wsa="http://www.w3.org/2005/08/addressing"><wsa:Address>127.0.0.1:18991/wsrf/services/WorkspaceService</wsa:Address>`+
		`<wsa:ReferenceParameters><vw:WorkspaceKey xmlns:vw="http://vws.dev/ns/2026/workspace">k</vw:WorkspaceKey></wsa:ReferenceParameters></wsa:EndpointReference>`), 0o644); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		args []string
		from string
	}{
		{[]string{"status", file}, "(the address in EPR file " + file + ")"},
		{[]string{"wsrf", "get-property", "-s", "127.0.0.1:18991/wsrf/services/WorkspaceService", "-k", "{http://vws.dev/ns/2026/workspace}WorkspaceKey", "k", "vw:state"}, "(-s/--service)"},
	} {
		forgetAddresses()
		root := newRootCommand()
		var out bytes.Buffer
		root.SetOut(&out)
		root.SetErr(&out)
		root.SetArgs(tc.args)
		err := root.ExecuteContext(context.Background())
		if err == nil || !strings.Contains(describe(err), tc.from) || strings.Contains(describe(err), "$VWS_URL") {
			t.Errorf("vws %s: %v; want it blamed on %s", strings.Join(tc.args, " "), describe(err), tc.from)
		}
	}
}
