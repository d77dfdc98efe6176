package container_test

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"io"
	"math/big"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/beevik/etree"

	"github.com/vws-grid/vws/internal/container"
	"github.com/vws-grid/vws/internal/contract"
	"github.com/vws-grid/vws/internal/dialect"
	"github.com/vws-grid/vws/internal/identity"
	"github.com/vws-grid/vws/internal/tlsutil"
	"github.com/vws-grid/vws/internal/vwsns"
	"github.com/vws-grid/vws/internal/wsa"
)

type pki struct {
	caCert *x509.Certificate
	caKey  *ecdsa.PrivateKey
	serial int64
}

func (p *pki) issue(t *testing.T, subject pkix.Name, isCA bool, hosts ...string) (*x509.Certificate, *ecdsa.PrivateKey) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	p.serial++
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(p.serial), Subject: subject,
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		KeyUsage:    x509.KeyUsageDigitalSignature | x509.KeyUsageCertSign,
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth, x509.ExtKeyUsageServerAuth},
		IsCA:        isCA, BasicConstraintsValid: true, DNSNames: hosts,
	}
	parent, signer := tmpl, key
	if p.caCert != nil {
		parent, signer = p.caCert, p.caKey
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, parent, &key.PublicKey, signer)
	if err != nil {
		t.Fatal(err)
	}
	cert, _ := x509.ParseCertificate(der)
	return cert, key
}

func writePEM(t *testing.T, path string, cert *x509.Certificate, key *ecdsa.PrivateKey) {
	t.Helper()
	if cert != nil {
		if err := os.WriteFile(path, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: cert.Raw}), 0o600); err != nil {
			t.Fatal(err)
		}
		return
	}
	der, _ := x509.MarshalECPrivateKey(key)
	if err := os.WriteFile(path, pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: der}), 0o600); err != nil {
		t.Fatal(err)
	}
}

// TestCallerIdentityReachesHandlers serves HTTPS with client certificates verified
// against a CA directory and checks a handler sees the caller's DN in Globus's one-line
// form, and "anonymous" without a certificate.
func TestCallerIdentityReachesHandlers(t *testing.T) {
	dir := t.TempDir()
	p := &pki{}
	caCert, caKey := p.issue(t, pkix.Name{Organization: []string{"Grid"}, CommonName: "Test CA"}, true)
	p.caCert, p.caKey = caCert, caKey
	hostCert, hostKey := p.issue(t, pkix.Name{Organization: []string{"Grid"}, CommonName: "host/localhost"}, false, "localhost")
	userCert, userKey := p.issue(t, pkix.Name{Organization: []string{"Grid"}, OrganizationalUnit: []string{"Test"}, CommonName: "Alice"}, false)
	casDir := filepath.Join(dir, "certificates")
	os.Mkdir(casDir, 0o700)
	writePEM(t, filepath.Join(casDir, "a1b2c3d4.0"), caCert, nil)
	writePEM(t, filepath.Join(dir, "host.pem"), hostCert, nil)
	writePEM(t, filepath.Join(dir, "hostkey.pem"), nil, hostKey)

	svc, err := container.NewService(contract.FS, "wsdl", vwsns.FactoryService, wsa.QName{})
	if err != nil {
		t.Fatal(err)
	}
	for _, d := range dialect.Dialects {
		for _, op := range svc.Contract(d).Operations {
			svc.Handle(op.Name, func(ctx context.Context, req *container.Request) (*etree.Element, error) {
				el := etree.NewElement("caller")
				el.SetText(identity.From(ctx).String())
				return el, nil
			})
		}
	}
	c, err := container.New(container.Config{}, svc)
	if err != nil {
		t.Fatal(err)
	}
	tlsCfg, err := tlsutil.Server(filepath.Join(dir, "host.pem"), filepath.Join(dir, "hostkey.pem"), casDir, tlsutil.AllowAnonymous())
	if err != nil {
		t.Fatal(err)
	}
	hs := httptest.NewUnstartedServer(c)
	hs.TLS = tlsCfg
	hs.StartTLS()
	defer hs.Close()

	roots := x509.NewCertPool()
	roots.AddCert(caCert)
	call := func(certs []tls.Certificate) string {
		tr := &http.Transport{TLSClientConfig: &tls.Config{RootCAs: roots, Certificates: certs, ServerName: "localhost"}}
		body := `<s:Envelope xmlns:s="http://schemas.xmlsoap.org/soap/envelope/"><s:Body><rp:GetResourceProperty xmlns:rp="http://docs.oasis-open.org/wsrf/rp-2" xmlns:f="` + vwsns.Factory + `">f:Version</rp:GetResourceProperty></s:Body></s:Envelope>`
		resp, err := (&http.Client{Transport: tr}).Post(hs.URL+"/wsrf/services/"+vwsns.FactoryService, "text/xml", bytes.NewBufferString(body))
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		data, _ := io.ReadAll(resp.Body)
		return string(data)
	}
	if got := call([]tls.Certificate{{Certificate: [][]byte{userCert.Raw}, PrivateKey: userKey}}); !strings.Contains(got, "<caller>/O=Grid/OU=Test/CN=Alice</caller>") {
		t.Fatalf("with a client certificate: %s", got)
	}
	if got := call(nil); !strings.Contains(got, "<caller>&lt;anonymous&gt;</caller>") {
		t.Fatalf("without one: %s", got)
	}
}
