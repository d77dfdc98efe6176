package test

import (
	"bytes"
	"context"
	"crypto/tls"
	"encoding/json"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/vws-grid/vws/internal/pki"
	"github.com/vws-grid/vws/internal/server"
	"github.com/vws-grid/vws/internal/soap"
	"github.com/vws-grid/vws/internal/tlsutil"
	"github.com/vws-grid/vws/internal/vwsns"
	"github.com/vws-grid/vws/internal/wsa"
)

// WS-Security interoperability against the real service: python3-zeep with
// python3-xmlsec (test/interop/zeep_wssec.py call) sends GetResourceProperty to a vws
// server over mutual TLS whose policy requires signed requests to the
// WorkspaceFactoryService; the signed answer is checked with the xmlsec1 command; the
// bytes zeep sent, replayed or altered, and an unsigned zeep call are refused.

const wssecServerRules = `require-signature WorkspaceFactoryService *
allow * *
`

// wssecServer is a vws server over mutual TLS with its own CA, and one user, with
// everything the Python and xmlsec1 tools need as PEM files.
type wssecServer struct {
	url               string
	dir               string
	caPEM             string // the CA certificate alone
	hostCertPEM       string // the host certificate alone (the key of its signatures)
	userCert, userKey string // the user's credential (certificate chain; key)
	user              *pki.Credential
	trust             *pki.Trust
}

func newWSSecServer(t *testing.T) *wssecServer {
	t.Helper()
	must := func(err error) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
	}
	s := &wssecServer{dir: t.TempDir()}
	ca, err := pki.NewCA(pki.CAOptions{})
	must(err)
	host, err := ca.IssueHost(pki.HostOptions{Name: "127.0.0.1"})
	must(err)
	s.user, err = ca.IssueUser(pki.UserOptions{CN: "zeep"})
	must(err)
	caDir := filepath.Join(s.dir, "certificates")
	_, err = pki.WriteCADir(caDir, ca.Certificate, nil)
	must(err)
	hostCert, hostKey := filepath.Join(s.dir, "hostcert.pem"), filepath.Join(s.dir, "hostkey.pem")
	must(pki.WriteCredential(hostCert, hostKey, host))
	s.userCert, s.userKey = filepath.Join(s.dir, "usercert.pem"), filepath.Join(s.dir, "userkey.pem")
	must(pki.WriteCredential(s.userCert, s.userKey, s.user))
	s.caPEM, s.hostCertPEM = filepath.Join(s.dir, "ca.pem"), filepath.Join(s.dir, "host-cert.pem")
	must(os.WriteFile(s.caPEM, pki.CertificatesPEM(ca.Certificate), 0o644))
	must(os.WriteFile(s.hostCertPEM, pki.CertificatesPEM(host.Certificate), 0o644))
	s.trust, err = pki.LoadTrust(caDir)
	must(err)
	rules := filepath.Join(s.dir, "rules")
	must(os.WriteFile(rules, []byte(wssecServerRules), 0o644))

	srv, err := server.New(context.Background(), server.Config{
		DataDir: filepath.Join(s.dir, "data"), PolicyFile: rules, HostCertFile: hostCert, HostKeyFile: hostKey, Trust: s.trust,
		Logger:  slog.New(slog.NewTextHandler(io.Discard, nil)),
		Manager: server.ManagerConfig{LibvirtURI: "test:///default", Host: "wssec-host"},
	})
	must(err)
	tlsCfg, err := tlsutil.Server(hostCert, hostKey, caDir, tlsutil.WithTrust(s.trust))
	must(err)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	must(err)
	s.url = "https://" + ln.Addr().String()
	srv.SetBaseURL(s.url)
	hs := &http.Server{Handler: srv.Handler()}
	go hs.Serve(tls.NewListener(ln, tlsCfg))
	t.Cleanup(func() {
		hs.Close()
		srv.Close()
	})
	return s
}

func (s *wssecServer) factoryURL() string { return s.url + "/wsrf/services/" + vwsns.FactoryService }

// post sends data to the Factory over mutual TLS as the user, as it is.
func (s *wssecServer) post(t *testing.T, data []byte) (int, string) {
	t.Helper()
	var raw [][]byte
	for _, c := range s.user.FullChain() {
		raw = append(raw, c.Raw)
	}
	hc := &http.Client{Timeout: time.Minute, Transport: &http.Transport{TLSClientConfig: &tls.Config{
		RootCAs: s.trust.Roots(), MinVersion: tls.VersionTLS12,
		Certificates: []tls.Certificate{{Certificate: raw, PrivateKey: s.user.Key}}}}}
	resp, err := hc.Post(s.factoryURL(), "text/xml; charset=utf-8", bytes.NewReader(data))
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(body)
}

// zeepCallResult is what zeep_wssec.py call prints.
type zeepCallResult struct {
	OK        bool     `json:"ok"`
	Values    []string `json:"values"`
	FaultCode string   `json:"faultcode"`
	Fault     string   `json:"fault"`
	request   []byte   // the SOAP request as zeep sent it
	response  []byte   // the answer as zeep received it
}

// zeepCall has zeep load the Factory's live WSDL and call GetResourceProperty
// fac:Version, signed or unsigned, over mutual TLS as the user.
func (s *wssecServer) zeepCall(t *testing.T, mode string) *zeepCallResult {
	t.Helper()
	out := t.TempDir()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, zeepPython, "interop/zeep_wssec.py", "call", mode, s.factoryURL()+"?wsdl",
		s.userKey, s.userCert, s.caPEM, s.hostCertPEM, out)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	stdout, err := cmd.Output()
	if err != nil {
		t.Fatalf("zeep_wssec.py call %s: %v\n%s", mode, err, stderr.Bytes())
	}
	var r zeepCallResult
	if err := json.Unmarshal(stdout, &r); err != nil {
		t.Fatalf("zeep_wssec.py call %s printed %q: %v", mode, stdout, err)
	}
	if r.request, err = os.ReadFile(filepath.Join(out, "request.xml")); err != nil {
		t.Fatal(err)
	}
	if r.response, err = os.ReadFile(filepath.Join(out, "response.xml")); err != nil {
		t.Fatal(err)
	}
	return &r
}

// xmlsec1Verify runs xmlsec1 --verify on a response signed with the host key.
func (s *wssecServer) xmlsec1Verify(t *testing.T, xmlsec1 string, data []byte) ([]byte, error) {
	return xmlsec1VerifyWith(t, xmlsec1, s.hostCertPEM, s.caPEM, wsa.NS200508, data)
}

func TestInteropWSSecServer(t *testing.T) {
	needZeepXmlsec(t)
	if out, err := exec.Command(zeepPython, "-c", "import requests").CombinedOutput(); err != nil {
		t.Skipf("WS-Security interop with the server needs python3-requests for %s: %v\n%s", zeepPython, err, out)
	}
	xmlsec1 := needXmlsec1(t)
	s := newWSSecServer(t)

	// 1. A request signed by zeep with xmlsec is accepted by a service that requires
	// signatures, and zeep checks the signed answer against the host certificate.
	r := s.zeepCall(t, "signed")
	if !r.OK {
		t.Fatalf("zeep's signed GetResourceProperty was refused: %s %s\nrequest:\n%s\nresponse:\n%s", r.FaultCode, r.Fault, r.request, r.response)
	}
	if len(r.Values) != 1 || r.Values[0] != server.Version {
		t.Fatalf("fac:Version = %q, want [%s]", r.Values, server.Version)
	}
	for _, want := range []string{"BinarySecurityToken", "SignatureValue", wsa.NS200508} {
		if !bytes.Contains(r.request, []byte(want)) {
			t.Fatalf("zeep's request has no %s:\n%s", want, r.request)
		}
	}
	t.Logf("zeep's signed request accepted; fac:Version %s", r.Values[0])

	// 2. The answer, as received, is signed with the host key: xmlsec1 verifies it,
	// and refuses it with the Version changed.
	if !bytes.Contains(r.response, []byte("SignatureValue")) {
		t.Fatalf("the answer to a signed request is not signed:\n%s", r.response)
	}
	if out, err := s.xmlsec1Verify(t, xmlsec1, r.response); err != nil {
		t.Fatalf("xmlsec1 refuses the server's signed answer: %v\n%s\n%s", err, out, r.response)
	}
	// ... and it answers this request: the signed wsa:RelatesTo is zeep's MessageID.
	maps := func(data []byte) wsa.MAPs {
		env, err := soap.Parse(data)
		if err != nil {
			t.Fatal(err)
		}
		m, err := wsa.ReadMAPs(env.Headers)
		if err != nil {
			t.Fatal(err)
		}
		return m
	}
	if sent, got := maps(r.request).MessageID, maps(r.response).RelatesTo; sent == "" || got != sent {
		t.Fatalf("the answer's wsa:RelatesTo %q is not zeep's wsa:MessageID %q", got, sent)
	}
	versionText := []byte(">" + server.Version + "<")
	altered := bytes.Replace(r.response, versionText, []byte(">9.9.9<"), 1)
	if bytes.Equal(altered, r.response) {
		t.Fatalf("%s not in the answer:\n%s", versionText, r.response)
	}
	if out, err := s.xmlsec1Verify(t, xmlsec1, altered); err == nil {
		t.Fatalf("xmlsec1 accepts the answer with fac:Version altered:\n%s", out)
	}

	// 3. The exact bytes zeep sent, a second time: a replay.
	code, body := s.post(t, r.request)
	if code == http.StatusOK || !strings.Contains(body, "replay refused") {
		t.Fatalf("zeep's request replayed: HTTP %d: %.600s", code, body)
	}
	t.Logf("replayed: HTTP %d, %s", code, faultString(body))
	// Altered after signing: the MessageID (so it is no replay), then the Body (the
	// MessageID kept: the signature check comes before the replay check).
	for _, c := range []struct {
		what     string
		from, to string
	}{
		{"wsa:MessageID", "urn:uuid:", "urn:uuid:0"},
		{"soap:Body", "fac:Version<", "fac:ImagePool<"},
	} {
		if !bytes.Contains(r.request, []byte(c.from)) {
			t.Fatalf("%q not in zeep's request:\n%s", c.from, r.request)
		}
		code, body := s.post(t, bytes.Replace(r.request, []byte(c.from), []byte(c.to), 1))
		if code == http.StatusOK || !strings.Contains(body, "was changed") || strings.Contains(body, "replay") {
			t.Fatalf("zeep's request with its %s altered after signing: HTTP %d: %.600s", c.what, code, body)
		}
		t.Logf("%s altered: HTTP %d, %s", c.what, code, faultString(body))
	}

	// 4. Unsigned, from zeep: refused, naming the requirement.
	r = s.zeepCall(t, "unsigned")
	if r.OK || !strings.Contains(r.Fault, "requires WorkspaceFactoryService.GetResourceProperty requests to be signed") {
		t.Fatalf("zeep's unsigned GetResourceProperty: %+v\n%s", r, r.response)
	}
	if bytes.Contains(r.request, []byte("Security")) || bytes.Contains(r.response, []byte("SignatureValue")) {
		t.Fatalf("the unsigned exchange carries WS-Security:\n%s\n%s", r.request, r.response)
	}
	t.Logf("unsigned: %s %s", r.FaultCode, r.Fault)
}

// faultString is the faultstring of a SOAP 1.1 fault, for the log.
func faultString(body string) string {
	_, after, ok := strings.Cut(body, "<faultstring>")
	if !ok {
		return body
	}
	s, _, _ := strings.Cut(after, "</faultstring>")
	return s
}
