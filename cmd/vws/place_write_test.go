package main

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"syscall"
	"testing"
)

// vws place, host status and host list > FILE on a full disk (or into a closed
// pipe) showed nothing: they must not exit 0 as if what they show were there.
func TestCLIPlaceAndHostStatusThatCannotBeWrittenFail(t *testing.T) {
	for _, tc := range []struct {
		name, body string
		args       []string
	}{
		{"place with candidates", `<vw:PlaceResponse xmlns:vw="http://vws.dev/ns/2026/workspace"><vw:Candidate><vw:HostName>node7</vw:HostName></vw:Candidate></vw:PlaceResponse>`,
			[]string{"place", "k"}},
		{"place with unsuitable hosts only", `<vw:PlaceResponse xmlns:vw="http://vws.dev/ns/2026/workspace"><vw:Unsuitable><vw:HostName>node7</vw:HostName><vw:Reason>full</vw:Reason></vw:Unsuitable></vw:PlaceResponse>`,
			[]string{"place", "k"}},
		{"host status", `<wsrp:QueryResourcePropertiesResponse xmlns:wsrp="http://docs.oasis-open.org/wsrf/rp-2"><mgr:VMMType xmlns:mgr="http://vws.dev/ns/2026/manager">QEMU</mgr:VMMType></wsrp:QueryResourcePropertiesResponse>`,
			[]string{"host", "status"}},
		{"host list of no hosts", `<wsrp:GetMultipleResourcePropertiesResponse xmlns:wsrp="http://docs.oasis-open.org/wsrf/rp-2"/>`,
			[]string{"host", "list"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				io.Copy(io.Discard, r.Body)
				w.Header().Set("Content-Type", "text/xml")
				fmt.Fprintf(w, `<s:Envelope xmlns:s="http://schemas.xmlsoap.org/soap/envelope/"><s:Body>%s</s:Body></s:Envelope>`, tc.body)
			}))
			defer s.Close()
			var stdout, stderr bytes.Buffer
			args := append(tc.args, "--url", s.URL)
			// The same command with a standard output that takes it shows something.
			if code := run(context.Background(), args, &stdout, &stderr); code != 0 || stdout.Len() == 0 {
				t.Fatalf("vws %s: exit %d, stdout %q, stderr %q", strings.Join(args, " "), code, stdout.String(), stderr.String())
			}
			stderr.Reset()
			code := run(context.Background(), args, fullDisk{}, &stderr)
			if code != exitError || !strings.Contains(stderr.String(), syscall.ENOSPC.Error()) {
				t.Errorf("vws %s with a full standard output: want exit 1 saying it could not be written, got exit %d, stderr %q",
					strings.Join(args, " "), code, stderr.String())
			}
		})
	}
}
