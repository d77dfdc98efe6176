package wssec

import (
	"bytes"
	"crypto/x509"
	"encoding/base64"
	"encoding/pem"
	"github.com/vws-grid/vws/internal/xmldsigec"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/vws-grid/vws/internal/soap"
	"github.com/vws-grid/vws/internal/wsa"
)

func TestECDSARoundTrip(t *testing.T) {
	p := getPKI(t)
	for _, ns := range namespaces {
		// The zero Algorithm means SHA-256 with the key's own algorithm.
		for _, alg := range []Algorithm{RSASHA256, ECDSASHA256} {
			env := signed(t, p.ecSigner(alg, t0), request(ns, "urn:uuid:ec-"+ns))
			res, err := p.verifier(t0.Add(time.Minute)).Verify(env)
			if err != nil {
				t.Fatalf("%s alg %d: %v", ns, alg, err)
			}
			if res.Algorithm != AlgECDSASHA256 || res.Identity.DN != "/O=Grid/OU=Example/CN=Erin EC" || !res.Identity.Signed {
				t.Errorf("%s alg %d: result %+v", ns, alg, res)
			}
			sig := securityChild(t, env, NSDS, "Signature")
			for _, dm := range sig.FindElements("./ds:SignedInfo/ds:Reference/ds:DigestMethod") {
				if a, _ := attrPlain(dm, "Algorithm"); a != AlgSHA256 {
					t.Errorf("digest method %s, want sha256", a)
				}
			}
			// r||s of 32 bytes each, not a DER SEQUENCE (which starts 0x30 and is
			// 70 to 72 bytes for P-256).
			raw, err := base64.StdEncoding.DecodeString(sig.FindElement("./ds:SignatureValue").Text())
			if err != nil || len(raw) != 64 {
				t.Errorf("SignatureValue is %d bytes (%v), want 64", len(raw), err)
			}
		}
	}
	t.Run("proxy chain", func(t *testing.T) {
		s := &Signer{Key: p.ecProxyKey, Chain: []*x509.Certificate{p.ecProxy, p.ecUser}, Now: func() time.Time { return t0 }}
		res, err := p.verifier(t0).Verify(signed(t, s, request(wsa.NS200508, "urn:uuid:ec-proxy")))
		if err != nil {
			t.Fatal(err)
		}
		if !res.Identity.Proxy || res.Identity.DN != "/O=Grid/OU=Example/CN=Erin EC" {
			t.Errorf("identity %+v", res.Identity)
		}
	})
}

// TestAlgorithmKeyMismatch: a signer cannot pair an algorithm with the wrong kind of
// key, and a verifier refuses a message whose SignatureMethod does not fit the
// token's key, saying so, before trying the signature.
func TestAlgorithmKeyMismatch(t *testing.T) {
	p := getPKI(t)
	t.Run("signer: rsa-sha1 with an ECDSA key", func(t *testing.T) {
		err := p.ecSigner(RSASHA1, t0).Sign(request(wsa.NS200403, "urn:uuid:m1"))
		if err == nil || !strings.Contains(err.Error(), "rsa-sha1 needs an RSA key") {
			t.Fatalf("err = %v", err)
		}
	})
	t.Run("signer: ecdsa-sha256 with an RSA key", func(t *testing.T) {
		err := p.signer(ECDSASHA256, t0).Sign(request(wsa.NS200508, "urn:uuid:m2"))
		if err == nil || !strings.Contains(err.Error(), "ecdsa-sha256 needs an ECDSA key") {
			t.Fatalf("err = %v", err)
		}
	})
	setMethod := func(t *testing.T, env *soap.Envelope, alg string) *soap.Envelope {
		sm := securityChild(t, env, NSDS, "Signature").FindElement("./ds:SignedInfo/ds:SignatureMethod")
		sm.SelectAttr("Algorithm").Value = alg
		return wire(t, env.Doc)
	}
	t.Run("ECDSA key, rsa-sha256 method", func(t *testing.T) {
		env := signed(t, p.ecSigner(RSASHA256, t0), request(wsa.NS200508, "urn:uuid:m3"))
		_, err := p.verifier(t0).Verify(setMethod(t, env, AlgRSASHA256))
		wantRefused(t, err, CodeInvalidSecurity, "SignatureMethod is "+AlgRSASHA256, "CN=Erin EC,OU=Example,O=Grid is ECDSA", "do not match")
	})
	t.Run("ECDSA key, rsa-sha1 method", func(t *testing.T) {
		env := signed(t, p.ecSigner(RSASHA256, t0), request(wsa.NS200403, "urn:uuid:m4"))
		_, err := p.verifier(t0).Verify(setMethod(t, env, AlgRSASHA1))
		wantRefused(t, err, CodeInvalidSecurity, "is ECDSA", "do not match")
	})
	t.Run("RSA key, ecdsa-sha256 method", func(t *testing.T) {
		env := signed(t, p.signer(RSASHA256, t0), request(wsa.NS200508, "urn:uuid:m5"))
		_, err := p.verifier(t0).Verify(setMethod(t, env, AlgECDSASHA256))
		wantRefused(t, err, CodeInvalidSecurity, "SignatureMethod is ecdsa-sha256", "CN=Jane Doe,OU=Example,O=Grid is RSA", "do not match")
	})
	t.Run("ECDSA-signed, token swapped for an RSA certificate", func(t *testing.T) {
		env := signed(t, p.ecSigner(RSASHA256, t0), request(wsa.NS200508, "urn:uuid:m6"))
		securityChild(t, env, NSWSSE, "BinarySecurityToken").SetText(base64.StdEncoding.EncodeToString(p.user.Raw))
		_, err := p.verifier(t0).Verify(wire(t, env.Doc))
		wantRefused(t, err, CodeInvalidSecurity, "CN=Jane Doe,OU=Example,O=Grid is RSA", "do not match")
	})
	t.Run("ECDSA-signed, token swapped for another ECDSA certificate", func(t *testing.T) {
		env := signed(t, p.ecSigner(RSASHA256, t0), request(wsa.NS200508, "urn:uuid:m7"))
		securityChild(t, env, NSWSSE, "BinarySecurityToken").SetText(base64.StdEncoding.EncodeToString(p.ecProxy.Raw))
		_, err := p.verifier(t0).Verify(wire(t, env.Doc))
		wantRefused(t, err, CodeFailedCheck, "does not verify with the key of")
	})
}

func TestECDSASignatureValueForm(t *testing.T) {
	p := getPKI(t)
	setValue := func(t *testing.T, env *soap.Envelope, f func([]byte) []byte) *soap.Envelope {
		sv := securityChild(t, env, NSDS, "Signature").FindElement("./ds:SignatureValue")
		raw, err := base64.StdEncoding.DecodeString(sv.Text())
		if err != nil {
			t.Fatal(err)
		}
		sv.SetText(base64.StdEncoding.EncodeToString(f(raw)))
		return wire(t, env.Doc)
	}
	t.Run("DER instead of r||s refused", func(t *testing.T) {
		env := signed(t, p.ecSigner(RSASHA256, t0), request(wsa.NS200508, "urn:uuid:der"))
		env = setValue(t, env, func(raw []byte) []byte {
			der, err := xmldsigec.RawToDER(raw, 32)
			if err != nil {
				t.Fatal(err)
			}
			return der
		})
		_, err := p.verifier(t0).Verify(env)
		wantRefused(t, err, CodeFailedCheck, "not an ECDSA signature", "needs r||s of 64")
	})
	t.Run("leading zeros dropped refused", func(t *testing.T) {
		env := signed(t, p.ecSigner(RSASHA256, t0), request(wsa.NS200508, "urn:uuid:short"))
		env = setValue(t, env, func(raw []byte) []byte { return raw[1:] })
		_, err := p.verifier(t0).Verify(env)
		wantRefused(t, err, CodeFailedCheck, "is 63 bytes")
	})
	t.Run("r and s swapped refused", func(t *testing.T) {
		env := signed(t, p.ecSigner(RSASHA256, t0), request(wsa.NS200508, "urn:uuid:swap-rs"))
		env = setValue(t, env, func(raw []byte) []byte { return append(append([]byte{}, raw[32:]...), raw[:32]...) })
		_, err := p.verifier(t0).Verify(env)
		wantRefused(t, err, CodeFailedCheck, "does not verify")
	})
}

// TestECDSAXmlsec1 checks our ecdsa-sha256 against xmlsec1 (libxmlsec with OpenSSL)
// both ways: xmlsec1 --verify accepts what we sign (and refuses it altered, or with a
// DER SignatureValue), and what xmlsec1 --sign writes verifies with our Verifier.
func TestECDSAXmlsec1(t *testing.T) {
	xmlsec1, err := exec.LookPath("xmlsec1")
	if err != nil {
		t.Skipf("needs the xmlsec1 command (apt-get install xmlsec1): %v", err)
	}
	p := getPKI(t)
	dir := t.TempDir()
	write := func(name string, data []byte) string {
		path := filepath.Join(dir, name)
		if err := os.WriteFile(path, data, 0o600); err != nil {
			t.Fatal(err)
		}
		return path
	}
	certPEM := write("ec-user.pem", pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: p.ecUser.Raw}))
	caPEM := write("ca.pem", pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: p.ca.Raw}))
	keyDER, err := x509.MarshalPKCS8PrivateKey(p.ecUserKey)
	if err != nil {
		t.Fatal(err)
	}
	keyPEM := write("ec-user-key.pem", pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: keyDER}))
	idAttrs := func(ns string) []string {
		args := []string{"--id-attr:Id", soap.NS11 + ":Body", "--id-attr:Id", NSWSU + ":Timestamp", "--id-attr:Id", testKeyNS + ":WorkspaceKey"}
		for _, local := range []string{"To", "Action", "MessageID", "ReplyTo"} {
			args = append(args, "--id-attr:Id", ns+":"+local)
		}
		return args
	}
	verify := func(ns string, data []byte) ([]byte, error) {
		args := append([]string{"--verify", "--pubkey-cert-pem", certPEM, "--trusted-pem", caPEM}, idAttrs(ns)...)
		return exec.Command(xmlsec1, append(args, write("signed.xml", data))...).CombinedOutput()
	}
	sign := func(t *testing.T, ns string) []byte {
		doc := request(ns, "urn:uuid:xmlsec1-ec")
		if err := p.ecSigner(RSASHA256, t0).Sign(doc); err != nil {
			t.Fatal(err)
		}
		data, err := doc.WriteToBytes()
		if err != nil {
			t.Fatal(err)
		}
		return data
	}

	// Does this xmlsec1 know ecdsa-sha256 at all? Builds against GnuTLS or old
	// OpenSSL may not; that is the tool's limit, not a failure of ours.
	if out, err := verify(wsa.NS200508, sign(t, wsa.NS200508)); err != nil && bytes.Contains(out, []byte("ecdsa-sha256")) && bytes.Contains(out, []byte("not found")) {
		t.Skipf("this xmlsec1 does not support ecdsa-sha256:\n%s", out)
	}
	for _, ns := range namespaces {
		t.Run(nsName(ns), func(t *testing.T) {
			data := sign(t, ns)
			if out, err := verify(ns, data); err != nil {
				t.Fatalf("xmlsec1 refuses our ECDSA signature: %v\n%s\n%s", err, out, data)
			}
			// xmlsec1 really checks: the message altered fails...
			altered := bytes.Replace(data, []byte(">running<"), []byte(">destroyed<"), 1)
			if out, err := verify(ns, altered); err == nil {
				t.Errorf("xmlsec1 accepts an altered body\n%s", out)
			}
			// ...and so does the same signature in the DER form: r||s is what it reads.
			env := wire(t, mustParse(t, data).Doc)
			sv := securityChild(t, env, NSDS, "Signature").FindElement("./ds:SignatureValue")
			raw, _ := base64.StdEncoding.DecodeString(sv.Text())
			der, err := xmldsigec.RawToDER(raw, 32)
			if err != nil {
				t.Fatal(err)
			}
			sv.SetText(base64.StdEncoding.EncodeToString(der))
			derData, _ := env.Doc.WriteToBytes()
			if out, err := verify(ns, derData); err == nil {
				t.Errorf("xmlsec1 accepts a DER SignatureValue\n%s", out)
			}

			// The other way: blank our digests and signature and have xmlsec1 --sign fill
			// them in; our Verifier must accept its r||s.
			tmpl := wire(t, mustParse(t, data).Doc)
			sig := securityChild(t, tmpl, NSDS, "Signature")
			for _, dv := range sig.FindElements("./ds:SignedInfo/ds:Reference/ds:DigestValue") {
				dv.SetText("")
			}
			sig.FindElement("./ds:SignatureValue").SetText("")
			tmplData, _ := tmpl.Doc.WriteToBytes()
			args := append([]string{"--sign", "--privkey-pem", keyPEM}, idAttrs(ns)...)
			out, err := exec.Command(xmlsec1, append(args, write("template.xml", tmplData))...).Output()
			if err != nil {
				t.Fatalf("xmlsec1 --sign: %v\n%s", err, tmplData)
			}
			theirs := mustParse(t, out)
			tv := securityChild(t, theirs, NSDS, "Signature").FindElement("./ds:SignatureValue")
			if raw, err := base64.StdEncoding.DecodeString(trimBase64(tv.Text())); err != nil || len(raw) != 64 {
				t.Fatalf("xmlsec1's SignatureValue is %d bytes (%v), want r||s of 64", len(raw), err)
			}
			if _, err := p.verifier(t0).Verify(theirs); err != nil {
				t.Fatalf("xmlsec1's ECDSA signature does not verify: %v\n%s", err, out)
			}
		})
	}
}

func mustParse(t *testing.T, data []byte) *soap.Envelope {
	t.Helper()
	env, err := soap.Parse(data)
	if err != nil {
		t.Fatalf("%v\n%s", err, data)
	}
	return env
}
