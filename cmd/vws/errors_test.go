package main

import (
	"bytes"
	"context"
	"encoding/base64"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/beevik/etree"

	"github.com/vws-grid/vws/internal/client"
)

// cliRun is one in-process run of the vws command line.
type cliRun struct {
	code           int
	stdout, stderr string
}

func vwsRun(t *testing.T, ctx context.Context, args ...string) cliRun {
	t.Helper()
	var out, errb bytes.Buffer
	code := run(ctx, args, &out, &errb)
	return cliRun{code, out.String(), errb.String()}
}

// wantError fails unless r is a local error (exit 1) printed as one line on stderr,
// with nothing on stdout, mentioning each of mentions and none of the raw Go wording.
func wantError(t *testing.T, r cliRun, mentions ...string) {
	t.Helper()
	if r.code != exitError || r.stdout != "" || strings.Count(r.stderr, "\n") != 1 || !strings.HasPrefix(r.stderr, "vws: ") {
		t.Fatalf("want exit 1 and one line on stderr, got exit %d\nstdout: %q\nstderr: %q", r.code, r.stdout, r.stderr)
	}
	for _, m := range mentions {
		if !strings.Contains(r.stderr, m) {
			t.Errorf("stderr does not mention %q: %s", m, r.stderr)
		}
	}
	for _, raw := range []string{`Post "`, `Get "`, "no such file or directory", "strconv.", "time: invalid", "accepts ", "received "} {
		if strings.Contains(r.stderr, raw) {
			t.Errorf("stderr has the raw wording %q: %s", raw, r.stderr)
		}
	}
}

// countingServer answers every request 500 and counts them: commands refused
// locally must not reach it.
func countingServer(t *testing.T) (*httptest.Server, *atomic.Int32) {
	var n atomic.Int32
	s := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		n.Add(1)
		http.Error(w, "unexpected", http.StatusInternalServerError)
	}))
	t.Cleanup(s.Close)
	t.Setenv("VWS_URL", s.URL)
	return s, &n
}

func TestCLIArgumentErrorsNameTheUsage(t *testing.T) {
	_, hits := countingServer(t)
	ctx := context.Background()
	for _, tc := range []struct {
		args     []string
		mentions []string
	}{
		{[]string{"status"}, []string{"missing argument", "usage: vws status EPR|KEY"}},
		{[]string{"status", "a", "b"}, []string{`unexpected argument "b"`, "usage: vws status EPR|KEY"}},
		{[]string{"deploy"}, []string{"missing argument", "usage: vws deploy EPR|KEY"}},
		{[]string{"create", "extra"}, []string{`unexpected argument "extra"`, "usage: vws create"}},
		{[]string{"image", "import"}, []string{"missing argument", "usage: vws image import FILE"}},
		{[]string{"image", "bogus"}, []string{`unknown command "bogus" for vws image`, "import, list, remove"}},
		{[]string{"wsrf", "bogus"}, []string{`unknown command "bogus" for vws wsrf`, "get-property"}},
		{[]string{"bogus"}, []string{`unknown command "bogus" for vws`, "see vws --help"}},
		{[]string{"status", "k", "--bogus"}, []string{"unknown flag: --bogus", "see vws status --help"}},
		{[]string{"image", "import", "/etc/hostname"}, []string{"--name NAME"}},
	} {
		t.Run(strings.Join(tc.args, " "), func(t *testing.T) {
			wantError(t, vwsRun(t, ctx, tc.args...), tc.mentions...)
		})
	}
	if hits.Load() != 0 {
		t.Errorf("%d requests reached the server", hits.Load())
	}
}

func TestCLIBadOptionValuesAreRefusedLocally(t *testing.T) {
	_, hits := countingServer(t)
	t.Chdir(t.TempDir()) // where a relative -o would be written
	ctx := context.Background()
	for _, tc := range []struct {
		args     []string
		mentions []string
	}{
		{[]string{"create", "--image", "x", "--lifetime", "banana"}, []string{`--lifetime "banana" is not a duration`, "2h"}},
		{[]string{"create", "--image", "x", "--lifetime", "-5h"}, []string{"--lifetime", "negative"}},
		{[]string{"create", "--image", "x", "--memory", "abc"}, []string{`--memory "abc" is not a whole number of MiB, e.g. --memory 1024 for 1 GiB`}},
		{[]string{"create", "--image", "x", "--memory", "1G"}, []string{`--memory "1G" is not a whole number of MiB: for 1G write --memory 1024`}},
		{[]string{"create", "--image", "x", "--memory", "1.5GiB"}, []string{"write --memory 1536"}},
		{[]string{"create", "--image", "x", "--memory", "512MB"}, []string{"write --memory 512"}},
		{[]string{"clone", "k", "--lifetime", "-1h"}, []string{"--lifetime", "negative"}},
		// "-" is standard output to most tools, but -o would make a file of that name.
		{[]string{"create", "--image", "x", "-o", "-"}, []string{"-o -", "standard output", "e.g. -o ws.xml"}},
		{[]string{"clone", "k", "-o", "-"}, []string{"-o -", "standard output", "e.g. -o ws.xml"}},
		// The service refuses a zero lifetime, and one left out is the site's default
		// (a day): sent as nothing, the workspace would live that, not the none asked for.
		{[]string{"create", "--image", "x", "--lifetime", "0s"}, []string{"--lifetime 0s", "e.g. 2h"}},
		{[]string{"clone", "k", "--lifetime", "0s"}, []string{"--lifetime 0s", "e.g. 2h"}},
		// An empty name (a script's unset variable) is refused, as the Factory refuses
		// one: left out, the workspace would get a generated name without a word.
		{[]string{"create", "--image", "x", "--name", ""}, []string{"--name is empty", "leave --name out"}},
		{[]string{"clone", "k", "--name", ""}, []string{"--name is empty", "leave --name out"}},
		{[]string{"shutdown", "k", "--grace", "-1s"}, []string{"--grace", "negative"}},
		// The manager takes no zero grace, and one left out is its default (30 s):
		// sent as nothing, the guest would get the default, not the none asked for.
		{[]string{"shutdown", "k", "--grace", "0s"}, []string{"--grace 0s", "e.g. 30s"}},
		{[]string{"shutdown", "k", "--mode", "bogus"}, []string{"--mode must be normal, trash or serialize"}},
		{[]string{"deploy", "k", "--state", "bogus"}, []string{"--state must be shutdown, running or paused"}},
		{[]string{"list", "--state", "bogus"}, []string{`--state "bogus" is not a workspace state`, "running"}},
		{[]string{"console", "k", "--tail", "garbage"}, []string{`--tail "garbage" is not a whole number`}},
		{[]string{"console", "k", "--tail", "-5"}, []string{"--tail -5 is negative"}},
		{[]string{"deploy", "k", "--host", "127.0.0.1:9"}, []string{`--host "127.0.0.1:9" is not a vws URL`, "http://HOST:PORT"}},
		{[]string{"list", "--url", "127.0.0.1:9"}, []string{`--url "127.0.0.1:9" is not a vws URL`}},
		{[]string{"host", "status", "abc:1"}, []string{`"abc:1" is not a vws URL`, "or the name of a host"}},
		{[]string{"deploy", "k", "--host", "node/7"}, []string{`--host "node/7" is not a vws URL`, "or the name of a host vws host list shows"}},
		// No host can have announced itself under a name with '_': the Repository refuses it.
		{[]string{"deploy", "k", "--host", "node_7"}, []string{`--host "node_7" is not a vws URL`, "letters, digits, '.' and '-'"}},
		{[]string{"host", "drain", "node_7"}, []string{`"node_7" is not a vws URL`, "letters, digits, '.' and '-'"}},
		{[]string{"list", "--url", "http://127.0.0.1:9/wsrf/services/WorkspaceService"}, []string{"is a service's address", "give http://127.0.0.1:9 "}},
		{[]string{"start", "k", "--host", "http://127.0.0.1:9/vws/wsrf/services/WorkspaceManagerService/"}, []string{"--host", "is a service's address", "give http://127.0.0.1:9/vws "}},
		{[]string{"host", "status", "https://h:9/wsrf/services"}, []string{"is a service's address", "give https://h:9 "}},
		{[]string{"wsrf", "get-property", "vw:state"}, []string{"give -e EPR-FILE or -k NAME VALUE (the workspace's key"}},
		{[]string{"wsrf", "get-properties", "vw:state", "vw:name"}, []string{"give -e EPR-FILE or -k NAME VALUE"}},
		{[]string{"wsrf", "query"}, []string{"give -e EPR-FILE or -k NAME VALUE"}},
		{[]string{"wsrf", "set-termination-time", "60"}, []string{"give -e EPR-FILE or -k NAME VALUE"}},
		{[]string{"wsrf", "destroy"}, []string{"give -e EPR-FILE or -k NAME VALUE"}},
		{[]string{"pki", "ca", "--dir", "never-made", "--key-bits", "100000"}, []string{"--key-bits 100000: give an RSA key size from 2048 to 16384"}},
		{[]string{"pki", "ca", "--dir", "never-made", "--key-bits", "512"}, []string{"--key-bits 512: give an RSA key size from 2048 to 16384"}},
		{[]string{"wsrf", "get-property", "-s", "http://127.0.0.1:9/wsrf/services/WorkspaceService/", "vw:state"}, []string{"give -e EPR-FILE or -k NAME VALUE"}},
	} {
		t.Run(strings.Join(tc.args, " "), func(t *testing.T) {
			wantError(t, vwsRun(t, ctx, tc.args...), tc.mentions...)
		})
	}
	if hits.Load() != 0 {
		t.Errorf("%d requests reached the server: a bad option was sent instead of refused", hits.Load())
	}
	if ents, _ := os.ReadDir("."); len(ents) != 0 {
		t.Errorf("a refused command left %s in the working directory", ents[0].Name())
	}
}

func TestCLIBadEPRFilesSayWhatTheyAre(t *testing.T) {
	_, hits := countingServer(t)
	dir := t.TempDir()
	t.Chdir(dir)
	os.WriteFile("empty.xml", nil, 0o644)
	os.WriteFile("text.xml", []byte("hello world\n"), 0o644)
	os.WriteFile("other.xml", []byte("<foo><bar/></foo>"), 0o644)
	os.Mkdir("adir", 0o755) // a name a key could have: still a directory, not a key
	os.WriteFile("keyless.xml", []byte(`<wsa:EndpointReference xmlns:wsa="http://www.w3.org/2005/08/addressing">`+
		`<wsa:Address>http://127.0.0.1:1/wsrf/services/WorkspaceService</wsa:Address></wsa:EndpointReference>`), 0o644)
	for file, service := range map[string]string{"factory.xml": "WorkspaceFactoryService", "manager.xml": "WorkspaceManagerService"} {
		os.WriteFile(file, []byte(`<wsa:EndpointReference xmlns:wsa="http://www.w3.org/2005/08/addressing">`+
			`<wsa:Address>http://127.0.0.1:1/wsrf/services/`+service+`</wsa:Address><wsa:ReferenceParameters>`+
			`<vw:WorkspaceKey xmlns:vw="http://vws.dev/ns/2026/workspace">k</vw:WorkspaceKey></wsa:ReferenceParameters></wsa:EndpointReference>`), 0o644)
	}
	ctx := context.Background()
	for _, tc := range []struct {
		args     []string
		mentions []string
	}{
		{[]string{"status", "missing.xml"}, []string{"EPR file missing.xml does not exist", "vws create -o", "key"}},
		{[]string{"status", "empty.xml"}, []string{"EPR file empty.xml is empty"}},
		{[]string{"status", "text.xml"}, []string{"text.xml is not an EPR file: it is not XML"}},
		{[]string{"status", "other.xml"}, []string{"other.xml is not an EPR file (<foo>"}},
		{[]string{"deploy", "adir"}, []string{"adir is a directory, not an EPR file"}},
		{[]string{"undeploy", "keyless.xml"}, []string{"EPR file keyless.xml names no workspace", "vws create -o"}},
		{[]string{"status", "factory.xml"}, []string{"EPR file factory.xml is not a workspace's: its address is http://127.0.0.1:1/wsrf/services/WorkspaceFactoryService, a workspace's ends in /wsrf/services/WorkspaceService"}},
		{[]string{"pause", "factory.xml"}, []string{"factory.xml is not a workspace's"}},
		{[]string{"destroy", "manager.xml"}, []string{"manager.xml is not a workspace's", "WorkspaceManagerService"}},
		{[]string{"wsrf", "get-property", "-e", "missing.xml", "vw:state"}, []string{"EPR file missing.xml does not exist", "-s and -k"}},
		{[]string{"wsrf", "get-property", "-e", "keyless.xml", "vw:state"}, []string{"EPR file keyless.xml names WorkspaceService but no workspace", "vws create -o", "-k vw:WorkspaceKey"}},
		{[]string{"create", "-f", "missing.xml"}, []string{"-f missing.xml: no such file", "--image NAME"}},
		{[]string{"create", "-f", "text.xml"}, []string{"-f text.xml is not XML"}},
		{[]string{"create", "-f", "empty.xml"}, []string{"-f empty.xml is empty"}},
		{[]string{"create", "-f", "factory.xml"}, []string{"-f factory.xml is an endpoint reference, not a workspace description"}},
		{[]string{"image", "import", "missing.img", "--name", "x"}, []string{"missing.img: no such file", "qcow2 or raw"}},
	} {
		t.Run(strings.Join(tc.args, " "), func(t *testing.T) {
			wantError(t, vwsRun(t, ctx, tc.args...), tc.mentions...)
		})
	}
	if hits.Load() != 0 {
		t.Errorf("%d requests reached the server", hits.Load())
	}
}

func TestCLIServerURLProblemsSayWhatToFix(t *testing.T) {
	t.Setenv("HOME", t.TempDir()) // no ~/.globus credential
	// No default proxy file.
	saved := client.ProxyDir
	client.ProxyDir = t.TempDir()
	t.Cleanup(func() { client.ProxyDir = saved })
	t.Setenv("X509_USER_PROXY", "")
	t.Setenv("X509_USER_CERT", "")
	ctx := context.Background()
	ca := filepath.Join(t.TempDir(), "ca")
	if r := vwsRun(t, ctx, "pki", "ca", "--dir", ca); r.code != 0 {
		t.Fatalf("pki ca: %+v", r)
	}

	closed := httptest.NewServer(http.NotFoundHandler())
	closedURL := closed.URL
	closed.Close()

	html := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/html")
		w.WriteHeader(http.StatusNotImplemented)
		w.Write([]byte("<!DOCTYPE HTML>\n<html>\n<body>\n<h1>Error response</h1>\n</body>\n</html>\n"))
	}))
	defer html.Close()

	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			c.Write([]byte("SSH-2.0-OpenSSH_9.2\r\n"))
			c.SetReadDeadline(time.Now().Add(time.Second))
			c.Read(make([]byte, 4096))
			c.Close()
		}
	}()
	garbage := "http://" + ln.Addr().String()

	tlsSrv := httptest.NewTLSServer(http.NotFoundHandler())
	defer tlsSrv.Close()
	tlsHost := strings.TrimPrefix(tlsSrv.URL, "https://")

	for _, tc := range []struct {
		name, url string
		mentions  []string
	}{
		{"refused", closedURL, []string{"cannot reach vws at " + closedURL, "connection refused", "is vws serve running there?", "--url / $VWS_URL"}},
		{"not HTTP", garbage, []string{garbage + " does not speak HTTP", "SSH-2.0", "--url / $VWS_URL"}},
		{"HTML", html.URL, []string{"HTTP 501 with an HTML page, not a SOAP envelope", "vws (WSRF) service"}},
		{"plain to TLS", "http://" + tlsHost, []string{"speaks HTTPS, not plain HTTP", "use https://" + tlsHost}},
		{"TLS to plain", strings.Replace(html.URL, "http://", "https://", 1), []string{"speaks plain HTTP, not HTTPS", "use " + html.URL}},
		{"unknown CA", tlsSrv.URL, []string{"not signed by a CA you trust", "--ca CADIR"}},
		{"no scheme", tlsHost, []string{`$VWS_URL "` + tlsHost + `" is not a vws URL`}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Setenv("VWS_URL", tc.url)
			for _, args := range [][]string{{"list", "--ca", ca}, {"status", "k", "--ca", ca}} {
				wantError(t, vwsRun(t, ctx, args...), tc.mentions...)
			}
			if tc.name != "HTML" { // the image commands speak REST, not SOAP
				wantError(t, vwsRun(t, ctx, "image", "list", "--ca", ca), tc.mentions...)
			}
		})
	}
	// A banner that arrives before the request is written makes net/http give up
	// without saying what came (readLoopPeekFailLocked); which of the two errors a
	// run meets is a matter of timing, so this one is made by hand.
	t.Run("not HTTP, banner first", func(t *testing.T) {
		req, _ := http.NewRequest(http.MethodGet, garbage+"/images", nil)
		err := explainTransport(req, fmt.Errorf("Get %q: readLoopPeekFailLocked: %w", req.URL, error(nil)))
		for _, want := range []string{garbage + " does not speak HTTP", `"SSH-2.0-OpenSSH_9.2"`, "--url / $VWS_URL"} {
			if err == nil || !strings.Contains(err.Error(), want) {
				t.Errorf("%v: does not mention %q", err, want)
			}
		}
	})
}

// A fault is printed once, on stderr, with its type, description and advice, and
// exit status 2; stdout stays empty.
func TestCLIFaultIsOneLineOnStderr(t *testing.T) {
	s := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/xml")
		w.WriteHeader(http.StatusInternalServerError)
		w.Write([]byte(`<s:Envelope xmlns:s="http://schemas.xmlsoap.org/soap/envelope/"><s:Body><s:Fault>
<faultcode>s:Client</faultcode><faultstring>workspace is running</faultstring><detail>
<f:WorkspaceStateFault xmlns:f="http://vws.dev/ns/2026/faults" xmlns:bf="http://docs.oasis-open.org/wsrf/bf-2">
<bf:Timestamp>2026-01-01T00:00:00Z</bf:Timestamp><bf:Description>workspace is running; cannot go to running; bring the workspace into a state where the operation is valid first</bf:Description>
</f:WorkspaceStateFault></detail></s:Fault></s:Body></s:Envelope>`))
	}))
	defer s.Close()
	r := vwsRun(t, context.Background(), "start", "k", "--host", s.URL)
	want := "vws: fault: WorkspaceStateFault: workspace is running; cannot go to running; bring the workspace into a state where the operation is valid first\n"
	if r.code != exitFault || r.stdout != "" || r.stderr != want {
		t.Fatalf("want exit 2, no stdout and stderr %q; got exit %d\nstdout: %q\nstderr: %q", want, r.code, r.stdout, r.stderr)
	}
}

// Ctrl-C during a deploy cancels the call and says what happens to the deploy; exit
// status 130, as a shell reports SIGINT.
func TestCLIInterruptedDeploy(t *testing.T) {
	arrived := make(chan struct{}, 1)
	s := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		io.Copy(io.Discard, r.Body) // then the server notices the client going away
		arrived <- struct{}{}
		<-r.Context().Done() // a deploy that takes long
	}))
	defer s.Close()
	ctx, cancel := context.WithCancel(context.Background())
	go func() {
		<-arrived
		cancel() // what the first Ctrl-C does
	}()
	r := vwsRun(t, ctx, "deploy", "0123abcd", "--host", s.URL)
	if r.code != exitInterrupted || r.stdout != "" || strings.Count(r.stderr, "\n") != 1 ||
		!strings.Contains(r.stderr, "vws: interrupted: the deploy was cancelled, and the manager undoes a deploy cut short; vws status 0123abcd") {
		t.Fatalf("want exit 130 and one line saying what happened, got exit %d\nstdout: %q\nstderr: %q", r.code, r.stdout, r.stderr)
	}
}

// Ctrl-C during an image import says what the pool keeps.
func TestCLIInterruptedImport(t *testing.T) {
	arrived, cancelled := make(chan struct{}, 1), make(chan struct{})
	s := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method == http.MethodGet { // the look for the name, before the upload
			w.Write([]byte(`{"images":[]}`))
			return
		}
		r.Body.Read(make([]byte, 1))
		arrived <- struct{}{}
		<-cancelled
		io.Copy(io.Discard, r.Body) // until the client goes away
	}))
	defer s.Close()
	t.Setenv("VWS_URL", s.URL)
	img := filepath.Join(t.TempDir(), "a.raw")
	os.WriteFile(img, bytes.Repeat([]byte{1}, 64<<20), 0o644)
	ctx, cancel := context.WithCancel(context.Background())
	go func() {
		<-arrived
		cancel()
		close(cancelled)
	}()
	r := vwsRun(t, ctx, "image", "import", img, "--name", "a")
	if r.code != exitInterrupted || r.stdout != "" || strings.Count(r.stderr, "\n") != 1 ||
		!strings.Contains(r.stderr, "vws: interrupted: the import was cancelled; the pool keeps an image only once all of it arrived: vws image list shows whether a is there") {
		t.Fatalf("want exit 130 and one line saying what the pool keeps, got exit %d\nstdout: %q\nstderr: %q", r.code, r.stdout, r.stderr)
	}
}

// -o naming a directory is refused before the Factory is called, and no temporary
// file is left beside it or in its parent.
func TestCLIOutputDirectoryIsRefusedBeforeCreating(t *testing.T) {
	_, hits := countingServer(t)
	dir := t.TempDir()
	out := filepath.Join(dir, "out")
	os.Mkdir(out, 0o755)
	ctx := context.Background()
	for _, args := range [][]string{
		{"create", "--image", "x", "-o", out},
		{"create", "--image", "x", "-o", out + "/"},
		{"create", "--image", "x", "-o", filepath.Join(dir, "new") + "/"},
		{"clone", "k", "-o", out},
	} {
		t.Run(strings.Join(args, " "), func(t *testing.T) {
			wantError(t, vwsRun(t, ctx, args...), "is a directory", "give a file name for the EPR", "nothing was created")
		})
	}
	if hits.Load() != 0 {
		t.Errorf("%d requests reached the server: the workspace would exist", hits.Load())
	}
	for _, d := range []string{dir, out} {
		ents, _ := os.ReadDir(d)
		for _, e := range ents {
			if e.Name() != "out" {
				t.Errorf("%s holds %s: a temporary file was left behind", d, e.Name())
			}
		}
	}
}

// A connection failure's advice names where the address came from: the EPR file,
// --host, -s, the manager reference or the URL argument, not --url when it was not.
func TestCLIConnectionAdviceNamesTheAddressSource(t *testing.T) {
	closed := httptest.NewServer(http.NotFoundHandler())
	closedURL := closed.URL
	closed.Close()
	deployed := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/xml")
		w.Write([]byte(`<s:Envelope xmlns:s="http://schemas.xmlsoap.org/soap/envelope/"><s:Body>` +
			`<wsrp:GetResourcePropertyResponse xmlns:wsrp="http://docs.oasis-open.org/wsrf/rp-2">` +
			`<vw:managerReference xmlns:vw="http://vws.dev/ns/2026/workspace" xmlns:wsa="http://www.w3.org/2005/08/addressing">` +
			`<wsa:Address>` + closedURL + `/wsrf/services/WorkspaceManagerService</wsa:Address></vw:managerReference>` +
			`</wsrp:GetResourcePropertyResponse></s:Body></s:Envelope>`))
	}))
	defer deployed.Close()
	t.Setenv("VWS_URL", deployed.URL)
	t.Chdir(t.TempDir())
	os.WriteFile("ws.xml", []byte(`<wsa:EndpointReference xmlns:wsa="http://www.w3.org/2005/08/addressing">`+
		`<wsa:Address>`+closedURL+`/wsrf/services/WorkspaceService</wsa:Address><wsa:ReferenceParameters>`+
		`<vw:WorkspaceKey xmlns:vw="http://vws.dev/ns/2026/workspace">k</vw:WorkspaceKey></wsa:ReferenceParameters></wsa:EndpointReference>`), 0o644)
	ctx := context.Background()
	for _, tc := range []struct {
		args []string
		from string
	}{
		{[]string{"status", "ws.xml"}, "check the address in EPR file ws.xml"},
		{[]string{"wsrf", "get-property", "-e", "ws.xml", "vw:state"}, "check the address in EPR file ws.xml"},
		{[]string{"wsrf", "get-property", "-s", closedURL + "/wsrf/services/WorkspaceService", "-k", "vw:WorkspaceKey", "k", "vw:state"}, "check -s/--service"},
		{[]string{"start", "k", "--host", closedURL}, "check --host"},
		{[]string{"pause", "k"}, "check the manager address in the workspace's vw:managerReference"},
		{[]string{"host", "status", closedURL}, "check the URL argument of vws host status"},
	} {
		t.Run(strings.Join(tc.args, " "), func(t *testing.T) {
			r := vwsRun(t, ctx, tc.args...)
			wantError(t, r, "cannot reach vws at "+closedURL, tc.from)
			if strings.Contains(r.stderr, "--url") {
				t.Errorf("the advice names --url, which did not give this address: %s", r.stderr)
			}
		})
	}
	wantError(t, vwsRun(t, ctx, "list", "--url", closedURL), "check --url / $VWS_URL")
}

// Clone, like create, says when the new workspace terminates and that the site
// shortened the lifetime asked for.
func TestCLICloneSaysTheLifetimeWasClamped(t *testing.T) {
	s := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/xml")
		w.Write([]byte(`<s:Envelope xmlns:s="http://schemas.xmlsoap.org/soap/envelope/"><s:Body>` +
			`<vw:CloneResponse xmlns:vw="http://vws.dev/ns/2026/workspace" xmlns:wsa="http://www.w3.org/2005/08/addressing">` +
			`<vw:WorkspaceReference><wsa:Address>http://127.0.0.1:1/wsrf/services/WorkspaceService</wsa:Address>` +
			`<wsa:ReferenceParameters><vw:WorkspaceKey>c10ne</vw:WorkspaceKey></wsa:ReferenceParameters></vw:WorkspaceReference>` +
			`<vw:CurrentTime>2026-01-01T00:00:00Z</vw:CurrentTime><vw:TerminationTime>2026-01-08T00:00:00Z</vw:TerminationTime>` +
			`<vw:LifetimeClamped>true</vw:LifetimeClamped></vw:CloneResponse></s:Body></s:Envelope>`))
	}))
	defer s.Close()
	r := vwsRun(t, context.Background(), "clone", "k", "--lifetime", "1000h", "--url", s.URL)
	want := "note: the requested lifetime exceeded the site maximum and was shortened\nterminates at 2026-01-08T00:00:00Z\n"
	if r.code != 0 || r.stdout != "c10ne\n" || r.stderr != want {
		t.Fatalf("want exit 0, the key on stdout and stderr %q; got exit %d\nstdout: %q\nstderr: %q", want, r.code, r.stdout, r.stderr)
	}
}

// A service's own properties (the Manager's, the Factory's) need no key: -s alone
// is sent.
func TestCLIWSRFServiceWithoutKeyIsSent(t *testing.T) {
	s, hits := countingServer(t)
	r := vwsRun(t, context.Background(), "wsrf", "query", "-s", s.URL+"/wsrf/services/WorkspaceManagerService")
	if hits.Load() != 1 {
		t.Fatalf("want the query sent, %d requests arrived; exit %d, stderr %q", hits.Load(), r.code, r.stderr)
	}
}

// vws --version prints what vws version does.
func TestCLIVersionFlag(t *testing.T) {
	r := vwsRun(t, context.Background(), "--version")
	v := vwsRun(t, context.Background(), "version")
	if r.code != 0 || r.stderr != "" || r.stdout != v.stdout || !strings.HasPrefix(r.stdout, "vws ") {
		t.Fatalf("want exit 0 and %q, got exit %d\nstdout: %q\nstderr: %q", v.stdout, r.code, r.stdout, r.stderr)
	}
}

// consoleServer answers every Console call with an empty console and signals each
// call on arrived.
func consoleServer(t *testing.T, arrived chan<- struct{}) *httptest.Server {
	s := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		io.Copy(io.Discard, r.Body)
		w.Header().Set("Content-Type", "text/xml")
		w.Write([]byte(`<s:Envelope xmlns:s="http://schemas.xmlsoap.org/soap/envelope/"><s:Body>` +
			`<mgr:ConsoleResponse xmlns:mgr="http://vws.dev/ns/2026/manager"><mgr:Text></mgr:Text>` +
			`<mgr:Offset>0</mgr:Offset><mgr:Size>0</mgr:Size></mgr:ConsoleResponse></s:Body></s:Envelope>`))
		select {
		case arrived <- struct{}{}:
		default:
		}
	}))
	t.Cleanup(s.Close)
	return s
}

// Ctrl-C ends vws console -f with exit 130, like any interrupted command.
func TestCLIConsoleFollowInterrupted(t *testing.T) {
	arrived := make(chan struct{}, 1)
	s := consoleServer(t, arrived)
	ctx, cancel := context.WithCancel(context.Background())
	go func() {
		<-arrived
		cancel()
	}()
	r := vwsRun(t, ctx, "console", "k", "-f", "--host", s.URL)
	if r.code != exitInterrupted || r.stdout != "" || !strings.HasSuffix(r.stderr, "vws: interrupted: stopped following the console; the workspace runs on\n") {
		t.Fatalf("want exit 130, got exit %d\nstdout: %q\nstderr: %q", r.code, r.stdout, r.stderr)
	}
}

// A console with nothing in it yet says so on stderr, rather than printing nothing.
func TestCLIConsoleEmptySaysSo(t *testing.T) {
	s := consoleServer(t, make(chan struct{}))
	r := vwsRun(t, context.Background(), "console", "k", "--host", s.URL)
	if r.code != 0 || r.stdout != "" || r.stderr != "(no console output yet)\n" {
		t.Fatalf("want exit 0 and a note on stderr, got exit %d\nstdout: %q\nstderr: %q", r.code, r.stdout, r.stderr)
	}
}

// vws console -f of a console that started over (the workspace deployed anew, its
// console shorter than what was printed) prints the new console from its start.
func TestCLIConsoleFollowStartsOver(t *testing.T) {
	var mu sync.Mutex
	calls := 0
	printedNew := make(chan struct{})
	s := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		mu.Lock()
		calls++
		console := "the old deployment's console\n"
		if calls > 2 {
			console = "new\n"
		}
		mu.Unlock()
		m := regexp.MustCompile(`<mgr:Offset>(-?\d+)</mgr:Offset>`).FindSubmatch(body)
		off, _ := strconv.Atoi(string(m[1]))
		off = max(0, min(off, len(console)))
		if console == "new\n" && off == 0 {
			defer func() {
				select {
				case <-printedNew:
				default:
					close(printedNew)
				}
			}()
		}
		w.Header().Set("Content-Type", "text/xml")
		fmt.Fprintf(w, `<s:Envelope xmlns:s="http://schemas.xmlsoap.org/soap/envelope/"><s:Body>`+
			`<mgr:ConsoleResponse xmlns:mgr="http://vws.dev/ns/2026/manager"><mgr:Text>%s</mgr:Text>`+
			`<mgr:Offset>%d</mgr:Offset><mgr:Size>%d</mgr:Size></mgr:ConsoleResponse></s:Body></s:Envelope>`,
			base64.StdEncoding.EncodeToString([]byte(console[off:])), off, len(console))
	}))
	t.Cleanup(s.Close)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go func() {
		select {
		case <-printedNew:
			time.Sleep(200 * time.Millisecond) // the CLI writes what it got
		case <-time.After(10 * time.Second):
		}
		cancel()
	}()
	r := vwsRun(t, ctx, "console", "k", "-f", "--host", s.URL)
	if want := "the old deployment's console\nnew\n"; r.stdout != want {
		t.Fatalf("want %q printed, got %q (exit %d, stderr %q)", want, r.stdout, r.code, r.stderr)
	}
}

// TestReadXMLFileLeavesOutProcessingInstructions: services refuse a SOAP message
// holding a processing instruction; one inside a description file (an editor's, a
// stylesheet's) means nothing to vws and is left out of what is sent.
func TestReadXMLFileLeavesOutProcessingInstructions(t *testing.T) {
	file := filepath.Join(t.TempDir(), "ws.xml")
	if err := os.WriteFile(file, []byte(`<?xml version="1.0"?><?xml-stylesheet href="x"?><vw:virtualWorkspace xmlns:vw="urn:vw"><?editor pos=1?><vw:category>vm<?x?></vw:category></vw:virtualWorkspace>`), 0o644); err != nil {
		t.Fatal(err)
	}
	root, err := readXMLFile("-f", file, "a description")
	if err != nil {
		t.Fatal(err)
	}
	doc := etree.NewDocument()
	doc.SetRoot(root.Copy())
	out, _ := doc.WriteToString()
	if strings.Contains(out, "<?") || root.SelectElement("category").Text() != "vm" {
		t.Errorf("what would be sent: %s", out)
	}
}
