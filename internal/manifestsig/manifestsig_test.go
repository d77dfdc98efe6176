package manifestsig

import (
	"crypto/x509"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/beevik/etree"

	"github.com/vws-grid/vws/internal/pki"
)

const manifestXML = `<r:Manifest xmlns:r="http://vws.dev/ns/2026/workspace"><r:WorkspaceKey>k1</r:WorkspaceKey><r:owner>/O=Grid/CN=alice</r:owner><r:Image><r:Role>base</r:Role><r:Digest>sha256:aa</r:Digest><r:SizeBytes>10</r:SizeBytes></r:Image></r:Manifest>`

func parse(t *testing.T, s string) *etree.Element {
	t.Helper()
	d := etree.NewDocument()
	if err := d.ReadFromString(s); err != nil {
		t.Fatal(err)
	}
	return d.Root()
}

func toString(t *testing.T, el *etree.Element) string {
	t.Helper()
	d := etree.NewDocument()
	d.SetRoot(el.Copy())
	s, err := d.WriteToString()
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func TestSignVerifyAndTamper(t *testing.T) {
	s, err := LoadOrCreate(t.TempDir(), "vws test repository")
	if err != nil {
		t.Fatal(err)
	}
	signed, err := s.Sign(parse(t, manifestXML))
	if err != nil {
		t.Fatal(err)
	}
	wire := toString(t, signed)

	// As a manager sees it: nested in a response whose ancestors declare the prefix.
	resp := parse(t, `<soap:Envelope xmlns:soap="http://schemas.xmlsoap.org/soap/envelope/" xmlns:r="http://vws.dev/ns/2026/workspace"><soap:Body><r:CheckOutResponse>`+
		strings.Replace(wire, ` xmlns:r="http://vws.dev/ns/2026/workspace"`, "", 1)+`</r:CheckOutResponse></soap:Body></soap:Envelope>`)
	nested := resp.FindElement("//Manifest")
	var trusted []*x509.Certificate
	got, cert, err := Verify(nested, func(chain []*x509.Certificate) error { trusted = chain; return nil })
	if err != nil {
		t.Fatalf("verify nested manifest: %v", err)
	}
	if cert.Subject.CommonName != "vws test repository" || len(trusted) != 1 {
		t.Fatalf("signer %v, chain %d", cert.Subject, len(trusted))
	}
	if d := got.FindElement("Image/Digest"); d == nil || d.Text() != "sha256:aa" {
		t.Fatalf("verified element lost its content: %s", toString(t, got))
	}

	for name, edit := range map[string]func(string) string{
		"digest": func(s string) string { return strings.Replace(s, "sha256:aa", "sha256:bb", 1) },
		"owner":  func(s string) string { return strings.Replace(s, "CN=alice", "CN=mallory", 1) },
		"added image": func(s string) string {
			return strings.Replace(s, "</r:Image>", "</r:Image><r:Image><r:Role>layer</r:Role></r:Image>", 1)
		},
		"signature gone": func(s string) string { return s[:strings.Index(s, "<ds:Signature")] + "</r:Manifest>" },
	} {
		_, _, err := Verify(parse(t, edit(wire)), nil)
		if !errors.Is(err, ErrInvalid) {
			t.Errorf("%s edited: err = %v, want ErrInvalid", name, err)
		}
	}

	refused := errors.New("not ours")
	if _, _, err := Verify(parse(t, wire), func([]*x509.Certificate) error { return refused }); !errors.Is(err, refused) || !errors.Is(err, ErrInvalid) {
		t.Errorf("untrusted signer: err = %v", err)
	}

	// A second start reuses the key: earlier manifests stay verifiable by pinning.
	again, err := LoadOrCreate(filepath.Dir(filepath.Join(t.TempDir(), "x")), "other")
	if err != nil {
		t.Fatal(err)
	}
	if again.Certificate().Equal(s.Certificate()) {
		t.Error("a fresh directory reused another key")
	}
}

func TestLoadOrCreateIsStable(t *testing.T) {
	dir := t.TempDir()
	a, err := LoadOrCreate(dir, "r")
	if err != nil {
		t.Fatal(err)
	}
	b, err := LoadOrCreate(dir, "r")
	if err != nil {
		t.Fatal(err)
	}
	if !a.Certificate().Equal(b.Certificate()) {
		t.Fatal("a restart made a new signing key")
	}
}

// Host keys may be ECDSA: the manifest carries ecdsa-sha256 with an r||s value (XML
// Signature 1.1), verifies, and catches an edit. Both key types verify with xmlsec1.
func TestECDSAAndXmlsec1(t *testing.T) {
	for _, kt := range []pki.KeyType{pki.KeyTypeRSA, pki.KeyTypeECDSA} {
		ca, err := pki.NewCA(pki.CAOptions{KeyType: kt})
		if err != nil {
			t.Fatal(err)
		}
		host, err := ca.IssueHost(pki.HostOptions{Name: "repo.example.org", KeyType: kt})
		if err != nil {
			t.Fatal(err)
		}
		s, err := NewSigner(host.Key, host.FullChain())
		if err != nil {
			t.Fatal(err)
		}
		signed, err := s.Sign(parse(t, manifestXML))
		if err != nil {
			t.Fatal(err)
		}
		wire := toString(t, signed)
		if kt == pki.KeyTypeECDSA && !strings.Contains(wire, "ecdsa-sha256") {
			t.Fatalf("ECDSA manifest not signed with ecdsa-sha256: %s", wire)
		}
		if _, _, err := Verify(parse(t, wire), nil); err != nil {
			t.Fatalf("%v: %v", kt, err)
		}
		if _, _, err := Verify(parse(t, strings.Replace(wire, "sha256:aa", "sha256:bb", 1)), nil); !errors.Is(err, ErrInvalid) {
			t.Fatalf("%v: an edited manifest verified: %v", kt, err)
		}
		xmlsec1Verify(t, wire, host)
	}
}

func xmlsec1Verify(t *testing.T, wire string, host *pki.Credential) {
	t.Helper()
	if _, err := exec.LookPath("xmlsec1"); err != nil {
		t.Log("xmlsec1 not installed (test/setup.sh installs it): interop not checked")
		return
	}
	dir := t.TempDir()
	doc, cert := filepath.Join(dir, "manifest.xml"), filepath.Join(dir, "cert.pem")
	os.WriteFile(doc, []byte(wire), 0o644)
	os.WriteFile(cert, pki.CertificatesPEM(host.Certificate), 0o644)
	out, err := exec.Command("xmlsec1", "--verify", "--pubkey-cert-pem", cert, doc).CombinedOutput()
	if err != nil {
		t.Fatalf("xmlsec1 refuses our %T manifest signature: %v\n%s", host.Key, err, out)
	}
}
