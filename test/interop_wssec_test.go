package test

import (
	"bytes"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"fmt"
	"math/big"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/beevik/etree"

	"github.com/vws-grid/vws/internal/errdefs"
	"github.com/vws-grid/vws/internal/identity"
	"github.com/vws-grid/vws/internal/soap"
	"github.com/vws-grid/vws/internal/vwsns"
	"github.com/vws-grid/vws/internal/wsa"
	"github.com/vws-grid/vws/internal/wssec"
)

// WS-Security interoperability: envelopes signed by python3-zeep with python3-xmlsec
// (test/interop/zeep_wssec.py) verify with wssec.Verifier, and envelopes wssec.Signer
// signs verify with the xmlsec1 command and with zeep's own verifier. Nothing here
// starts a server.

// wssecPKI is a throwaway CA and a user certificate, written as PEM for the tools.
type wssecPKI struct {
	dir             string
	ca, user        *x509.Certificate
	userKey         *rsa.PrivateKey
	keyPEM, certPEM string // the user's key and certificate
	caPEM           string
}

func newWSSecPKI(t *testing.T) *wssecPKI {
	t.Helper()
	p := &wssecPKI{dir: t.TempDir()}
	caKey, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	if p.userKey, err = rsa.GenerateKey(rand.Reader, 2048); err != nil {
		t.Fatal(err)
	}
	now := time.Now()
	caTmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1), Subject: pkix.Name{Organization: []string{"Grid"}, CommonName: "WSSec Test CA"},
		NotBefore: now.Add(-time.Hour), NotAfter: now.Add(24 * time.Hour),
		BasicConstraintsValid: true, IsCA: true, KeyUsage: x509.KeyUsageCertSign | x509.KeyUsageDigitalSignature,
	}
	der, err := x509.CreateCertificate(rand.Reader, caTmpl, caTmpl, &caKey.PublicKey, caKey)
	if err != nil {
		t.Fatal(err)
	}
	if p.ca, err = x509.ParseCertificate(der); err != nil {
		t.Fatal(err)
	}
	userTmpl := &x509.Certificate{
		SerialNumber: big.NewInt(2), Subject: pkix.Name{Organization: []string{"Grid"}, CommonName: "Jane Doe"},
		NotBefore: now.Add(-time.Hour), NotAfter: now.Add(24 * time.Hour),
		BasicConstraintsValid: true, KeyUsage: x509.KeyUsageDigitalSignature,
	}
	if der, err = x509.CreateCertificate(rand.Reader, userTmpl, p.ca, &p.userKey.PublicKey, caKey); err != nil {
		t.Fatal(err)
	}
	if p.user, err = x509.ParseCertificate(der); err != nil {
		t.Fatal(err)
	}
	write := func(name, typ string, der []byte) string {
		path := filepath.Join(p.dir, name)
		if err := os.WriteFile(path, pem.EncodeToMemory(&pem.Block{Type: typ, Bytes: der}), 0o600); err != nil {
			t.Fatal(err)
		}
		return path
	}
	p.keyPEM = write("user-key.pem", "RSA PRIVATE KEY", x509.MarshalPKCS1PrivateKey(p.userKey))
	p.certPEM = write("user.pem", "CERTIFICATE", p.user.Raw)
	p.caPEM = write("ca.pem", "CERTIFICATE", p.ca.Raw)
	return p
}

// verifier trusts exactly one certificate, the user's, issued by the test CA.
func (p *wssecPKI) verifier() *wssec.Verifier {
	roots := x509.NewCertPool()
	roots.AddCert(p.ca)
	return wssec.NewVerifier(func(chain []*x509.Certificate) (identity.Identity, error) {
		if _, err := chain[0].Verify(x509.VerifyOptions{Roots: roots}); err != nil {
			return identity.Identity{}, fmt.Errorf("verifying %s: %w", chain[0].Subject, err)
		}
		return identity.Identity{DN: identity.OneLineDN(chain[0].Subject), Certificate: chain[0]}, nil
	})
}

func needZeepXmlsec(t *testing.T) {
	t.Helper()
	if out, err := exec.Command(zeepPython, "-c", "import zeep, xmlsec").CombinedOutput(); err != nil {
		t.Skipf("WS-Security interop needs python3-zeep and python3-xmlsec for %s (apt-get install python3-zeep python3-xmlsec): %v\n%s", zeepPython, err, out)
	}
}

func needXmlsec1(t *testing.T) string {
	t.Helper()
	path, err := exec.LookPath("xmlsec1")
	if err != nil {
		t.Skipf("WS-Security interop needs the xmlsec1 command (apt-get install xmlsec1): %v", err)
	}
	return path
}

// zeepSign has zeep build and sign a Deploy request with WS-Addressing headers in ns.
func zeepSign(t *testing.T, p *wssecPKI, ns, alg string) []byte {
	t.Helper()
	cmd := exec.Command(zeepPython, "interop/zeep_wssec.py", "sign", p.keyPEM, p.certPEM, ns, alg)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("zeep_wssec.py sign: %v\n%s", err, stderr.Bytes())
	}
	return out
}

func TestWSSecZeepSignedVerifies(t *testing.T) {
	needZeepXmlsec(t)
	p := newWSSecPKI(t)
	for _, ns := range []string{wsa.NS200403, wsa.NS200508} {
		for _, alg := range []string{"sha1", "sha256"} {
			t.Run(map[string]string{wsa.NS200403: "wsa2004", wsa.NS200508: "wsa2005"}[ns]+"/"+alg, func(t *testing.T) {
				data := zeepSign(t, p, ns, alg)
				env, err := soap.Parse(data)
				if err != nil {
					t.Fatal(err)
				}
				v := p.verifier()
				res, err := v.Verify(env)
				if err != nil {
					t.Fatalf("zeep's signature does not verify: %v\n%s", err, data)
				}
				if !res.Signed || res.Identity.DN != "/O=Grid/CN=Jane Doe" || !res.Identity.Signed {
					t.Errorf("result = %+v", res)
				}
				wantAlg := map[string]string{"sha1": wssec.AlgRSASHA1, "sha256": wssec.AlgRSASHA256}[alg]
				if res.Algorithm != wantAlg {
					t.Errorf("algorithm = %s, want %s", res.Algorithm, wantAlg)
				}
				var addressing int
				for _, h := range env.Headers {
					if wsa.IsAddressingHeader(h) {
						addressing++
						if h.NamespaceURI() != ns || !res.Covers(h) {
							t.Errorf("header {%s}%s: signed %v", h.NamespaceURI(), h.Tag, res.Covers(h))
						}
					}
				}
				if addressing != 3 {
					t.Errorf("zeep wrote %d WS-Addressing headers, want To, Action, MessageID", addressing)
				}

				// The same bytes again: a replay.
				env2, _ := soap.Parse(data)
				_, err = v.Verify(env2)
				wantWSSecError(t, err, wssec.CodeInvalidSecurity, "was seen before: replay refused")

				// Altered after signing: the To header, then the body.
				for _, c := range []struct{ from, to, reason string }{
					{"https://repo.example.org:8443/wsrf/services/WorkspaceService", "https://evil.example.org/", "the wsa:To header was changed"},
					{">running<", ">destroyed<", "the Body was changed"},
				} {
					altered := bytes.Replace(data, []byte(c.from), []byte(c.to), 1)
					if bytes.Equal(altered, data) {
						t.Fatalf("%q not in zeep's envelope", c.from)
					}
					env, err := soap.Parse(altered)
					if err != nil {
						t.Fatal(err)
					}
					_, err = p.verifier().Verify(env)
					wantWSSecError(t, err, wssec.CodeFailedCheck, c.reason)
				}
			})
		}
	}
}

func wantWSSecError(t *testing.T, err error, code, reason string) {
	t.Helper()
	var e *wssec.Error
	if !errors.As(err, &e) || !errors.Is(err, errdefs.ErrSecurity) {
		t.Fatalf("err = %v, want a wssec.Error %s", err, code)
	}
	if e.Code != code || !strings.Contains(e.Reason, reason) {
		t.Errorf("err = %v, want %s saying %q", err, code, reason)
	}
}

// Payloads to sign: a plain one, and one with what canonicalizers get wrong:
// namespaces inherited from the Envelope, attributes whose prefix order differs from
// their namespace order (soapenv:mustUnderstand, wsa:IsReferenceParameter),
// xmlns="" with and without a default namespace in scope, CDATA, escapes, a comment,
// a QName in content with its prefix declared but not visibly used.
var wssecPayloads = map[string]string{
	"plain": `<vw:Deploy xmlns:vw="http://vws.dev/ns/2026/workspace"><vw:State>running</vw:State></vw:Deploy>`,
	"tricky": `<vw:Deploy xmlns:vw="http://vws.dev/ns/2026/workspace" xmlns:z="urn:a" xmlns:a="urn:z"
      z:m="1" a:i="2" b="3&#9;&quot;&lt;" soapenv:mustUnderstand="0" wsa:IsReferenceParameter="true">
  <vw:State>running</vw:State>
  <arg xmlns="">v &lt; &amp; "q" &gt; ' &#xD;</arg>
  <d xmlns="urn:d"><e xmlns="">x</e><f/></d>
  <t><![CDATA[<b>&]]></t>
  <!-- a comment -->
  <vw:Name xmlns:q="urn:q">q:name</vw:Name>
</vw:Deploy>`,
}

// wssecEnvelope builds an unsigned Deploy request with WS-Addressing headers in ns,
// with the wsa prefix also declared on the Envelope (the tricky payload uses it).
func wssecEnvelope(t *testing.T, ns, payload string) *etree.Document {
	t.Helper()
	h := func(local, text string) *etree.Element {
		el := etree.NewElement("wsa:" + local)
		el.SetText(text)
		return el
	}
	body := etree.NewDocument()
	if err := body.ReadFromString(payload); err != nil {
		t.Fatal(err)
	}
	doc := (&soap.Message{Headers: []*etree.Element{
		h("To", "https://repo.example.org:8443/wsrf/services/WorkspaceService"),
		h("Action", "http://vws.dev/ns/2026/workspace/Deploy"),
		h("MessageID", "urn:uuid:go-signed"),
	}, Body: body.Root()}).Document()
	doc.Root().CreateAttr("xmlns:wsa", ns)
	doc.Root().CreateAttr("xmlns:unused", "urn:unused")
	return doc
}

// goSigned returns a request signed by wssec.Signer.
func goSigned(t *testing.T, p *wssecPKI, ns, payload string, alg wssec.Algorithm) []byte {
	t.Helper()
	doc := wssecEnvelope(t, ns, payload)
	s := &wssec.Signer{Key: p.userKey, Chain: []*x509.Certificate{p.user}, Algorithm: alg}
	if err := s.Sign(doc); err != nil {
		t.Fatal(err)
	}
	data, err := doc.WriteToBytes()
	if err != nil {
		t.Fatal(err)
	}
	return data
}

// xmlsec1Verify runs xmlsec1 --verify on data with the user's certificate as the key
// (xmlsec1 does not follow a wsse:SecurityTokenReference) and the wsu:Id attributes of
// the signed elements declared as IDs.
func xmlsec1Verify(t *testing.T, xmlsec1 string, p *wssecPKI, ns string, data []byte) ([]byte, error) {
	return xmlsec1VerifyWith(t, xmlsec1, p.certPEM, p.caPEM, ns, data)
}

// xmlsec1VerifyWith runs xmlsec1 --verify on data signed with the key of certPEM
// (issued by caPEM), declaring the wsu:Id of the Body, the Timestamp and the
// WS-Addressing headers (in namespace ns) as IDs.
func xmlsec1VerifyWith(t *testing.T, xmlsec1, certPEM, caPEM, ns string, data []byte) ([]byte, error) {
	t.Helper()
	path := filepath.Join(t.TempDir(), "signed.xml")
	if err := os.WriteFile(path, data, 0o600); err != nil {
		t.Fatal(err)
	}
	args := []string{"--verify", "--pubkey-cert-pem", certPEM, "--trusted-pem", caPEM,
		"--id-attr:Id", soap.NS11 + ":Body",
		"--id-attr:Id", wssec.NSWSU + ":Timestamp",
		"--id-attr:Id", vwsns.Workspace + ":WorkspaceKey"}
	for _, local := range []string{"To", "Action", "MessageID", "RelatesTo"} {
		args = append(args, "--id-attr:Id", ns+":"+local)
	}
	return exec.Command(xmlsec1, append(args, path)...).CombinedOutput()
}

func TestWSSecXmlsec1VerifiesGoSigned(t *testing.T) {
	xmlsec1 := needXmlsec1(t)
	p := newWSSecPKI(t)
	for _, ns := range []string{wsa.NS200403, wsa.NS200508} {
		for _, alg := range []wssec.Algorithm{wssec.RSASHA256, wssec.RSASHA1} {
			for name, payload := range wssecPayloads {
				data := goSigned(t, p, ns, payload, alg)
				if out, err := xmlsec1Verify(t, xmlsec1, p, ns, data); err != nil {
					t.Errorf("%s alg %d %s payload: xmlsec1 refuses our signature: %v\n%s\n%s", ns, alg, name, err, out, data)
				}
				env, err := soap.Parse(data)
				if err != nil {
					t.Fatal(err)
				}
				if _, err := p.verifier().Verify(env); err != nil {
					t.Errorf("%s alg %d %s payload: our own signature does not verify: %v", ns, alg, name, err)
				}
			}
			data := goSigned(t, p, ns, wssecPayloads["plain"], alg)
			// xmlsec1 really checks: the same message altered fails.
			altered := bytes.Replace(data, []byte(">running<"), []byte(">destroyed<"), 1)
			if out, err := xmlsec1Verify(t, xmlsec1, p, ns, altered); err == nil {
				t.Errorf("%s: xmlsec1 accepts an altered body\n%s", ns, out)
			}
		}
	}
}

func TestWSSecZeepVerifiesGoSigned(t *testing.T) {
	needZeepXmlsec(t)
	p := newWSSecPKI(t)
	for _, ns := range []string{wsa.NS200403, wsa.NS200508} {
		data := goSigned(t, p, ns, wssecPayloads["tricky"], wssec.RSASHA256)
		for _, c := range []struct {
			data []byte
			ok   bool
		}{{data, true}, {bytes.Replace(data, []byte("urn:uuid:go-signed"), []byte("urn:uuid:other"), 1), false}} {
			cmd := exec.Command(zeepPython, "interop/zeep_wssec.py", "verify", p.certPEM)
			cmd.Stdin = bytes.NewReader(c.data)
			out, err := cmd.CombinedOutput()
			if (err == nil) != c.ok {
				t.Errorf("%s: zeep verify ok=%v, want %v: %v\n%s", ns, err == nil, c.ok, err, out)
			}
		}
	}
}

// TestWSSecXmlsecSignedPayloadsVerify has xmlsec (through zeep's signing helpers) sign
// envelopes we built, unusual payload included, and checks that our canonicalization
// agrees with xmlsec's: the signatures verify.
func TestWSSecXmlsecSignedPayloadsVerify(t *testing.T) {
	needZeepXmlsec(t)
	p := newWSSecPKI(t)
	for _, ns := range []string{wsa.NS200403, wsa.NS200508} {
		for name, payload := range wssecPayloads {
			unsigned, err := wssecEnvelope(t, ns, payload).WriteToBytes()
			if err != nil {
				t.Fatal(err)
			}
			cmd := exec.Command(zeepPython, "interop/zeep_wssec.py", "sign-envelope", p.keyPEM, p.certPEM, "sha256")
			cmd.Stdin = bytes.NewReader(unsigned)
			var stderr bytes.Buffer
			cmd.Stderr = &stderr
			data, err := cmd.Output()
			if err != nil {
				t.Fatalf("zeep_wssec.py sign-envelope: %v\n%s", err, stderr.Bytes())
			}
			env, err := soap.Parse(data)
			if err != nil {
				t.Fatal(err)
			}
			if _, err := p.verifier().Verify(env); err != nil {
				t.Errorf("%s %s payload: xmlsec's signature does not verify: %v\n%s", ns, name, err, data)
			}
		}
	}
}

// defaultQNamePayload resolves an unprefixed QName (Kind="Harmless") through the
// default namespace in scope at a prefixed element: exclusive c14n signs that binding
// only when the transform lists "#default".
const defaultQNamePayload = `<vw:Deploy xmlns:vw="http://vws.dev/ns/2026/workspace" Kind="Harmless">` +
	`<vw:State>running</vw:State><note>n</note></vw:Deploy>`

// defaultQNameEnvelope is the request with defaultQNamePayload, its default namespace
// declared on the Envelope (onEnvelope) or on vw:Deploy.
func defaultQNameEnvelope(t *testing.T, ns string, onEnvelope bool) *etree.Document {
	doc := wssecEnvelope(t, ns, defaultQNamePayload)
	at := doc.FindElement("//Deploy")
	if onEnvelope {
		at = doc.Root()
	}
	at.CreateAttr("xmlns", "urn:vws:kinds:a")
	return doc
}

// TestWSSecDefaultTokenInterop: a signature over a default namespace in scope at a
// prefixed element, with "#default" in the InclusiveNamespaces, reads the same to
// xmlsec and to vws both ways, WSS4J's way of listing it included; rebound after
// signing, it is refused. A WSS4J-style signature that leaves the binding out (it
// lists only what the signed element's ancestors declare) is refused as before.
func TestWSSecDefaultTokenInterop(t *testing.T) {
	xmlsec1 := needXmlsec1(t)
	needZeepXmlsec(t)
	p := newWSSecPKI(t)
	for _, ns := range []string{wsa.NS200403, wsa.NS200508} {
		for _, onEnvelope := range []bool{true, false} {
			where := fmt.Sprintf("%s, default namespace on the Envelope %v", ns, onEnvelope)
			doc := defaultQNameEnvelope(t, ns, onEnvelope)
			s := &wssec.Signer{Key: p.userKey, Chain: []*x509.Certificate{p.user}, Algorithm: wssec.RSASHA256}
			if err := s.Sign(doc); err != nil {
				t.Fatal(err)
			}
			data, err := doc.WriteToBytes()
			if err != nil {
				t.Fatal(err)
			}
			if !bytes.Contains(data, []byte(` #default"`)) {
				t.Fatalf("%s: our signature does not list #default:\n%s", where, data)
			}
			if out, err := xmlsec1Verify(t, xmlsec1, p, ns, data); err != nil {
				t.Errorf("%s: xmlsec1 refuses our #default signature: %v\n%s\n%s", where, err, out, data)
			}

			unsigned, err := defaultQNameEnvelope(t, ns, onEnvelope).WriteToBytes()
			if err != nil {
				t.Fatal(err)
			}
			cmd := exec.Command(zeepPython, "interop/zeep_wssec.py", "sign-envelope-inclusive", p.keyPEM, p.certPEM, "sha256")
			cmd.Stdin = bytes.NewReader(unsigned)
			var stderr bytes.Buffer
			cmd.Stderr = &stderr
			if data, err = cmd.Output(); err != nil {
				t.Fatalf("zeep_wssec.py sign-envelope-inclusive: %v\n%s", err, stderr.Bytes())
			}
			env, err := soap.Parse(data)
			if err != nil {
				t.Fatal(err)
			}
			_, err = p.verifier().Verify(env)
			if !onEnvelope {
				if err == nil || !strings.Contains(err.Error(), "default namespace") {
					t.Errorf("%s: xmlsec's signature leaves the binding unsigned: got %v, want it refused", where, err)
				}
				continue
			}
			if err != nil {
				t.Errorf("%s: xmlsec's #default signature does not verify: %v\n%s", where, err, data)
			}
			rebound := bytes.Replace(data, []byte(`xmlns="urn:vws:kinds:a"`), []byte(`xmlns="urn:vws:kinds:b"`), 1)
			if env, err = soap.Parse(rebound); err != nil {
				t.Fatal(err)
			}
			if _, err := p.verifier().Verify(env); err == nil || !strings.Contains(err.Error(), "does not match") {
				t.Errorf("%s: the default namespace rebound after xmlsec signed it: got %v, want a digest mismatch", where, err)
			}
		}
	}
}
