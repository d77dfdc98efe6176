package main

import (
	"bytes"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/asn1"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"testing"

	"github.com/beevik/etree"

	"github.com/vws-grid/vws/internal/dialect"
	"github.com/vws-grid/vws/internal/notify"
	"github.com/vws-grid/vws/internal/pki"
	"github.com/vws-grid/vws/internal/soap"
	"github.com/vws-grid/vws/internal/wssec"
)

// TestSubscribeTakesNotificationsOfItsServiceOnly: vws wsrf subscribe listens on plain
// HTTP, so its listener key is seen by whoever sees a Notify go by; the signature is
// what tells the service's messages from others'. Every host of the site has a host
// certificate of the same CA: a Notify about the workspace signed by another host
// (a manager taken over, say) must be refused, only the host the subscription was
// made with (the service URL's host, as TLS checked it) believed.
func TestSubscribeTakesNotificationsOfItsServiceOnly(t *testing.T) {
	ca, err := pki.NewCA(pki.CAOptions{KeyType: pki.KeyTypeECDSA})
	if err != nil {
		t.Fatal(err)
	}
	issue := func(name string) *pki.Credential {
		h, err := ca.IssueHost(pki.HostOptions{Name: name, KeyType: pki.KeyTypeECDSA})
		if err != nil {
			t.Fatal(err)
		}
		return h
	}
	service, other := issue("repo.example.org"), issue("node7.example.org")
	alice, err := ca.IssueUser(pki.UserOptions{CN: "alice", KeyType: pki.KeyTypeECDSA})
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	caDir, proxy := filepath.Join(dir, "certificates"), filepath.Join(dir, "x509up")
	if _, err := pki.WriteCADir(caDir, ca.Certificate, nil); err != nil {
		t.Fatal(err)
	}
	if err := pki.WriteProxyFile(proxy, alice); err != nil {
		t.Fatal(err)
	}
	tlsFlags.cert, tlsFlags.key, tlsFlags.ca = proxy, "", caDir
	defer func() { tlsFlags.cert, tlsFlags.ca = "", "" }()

	verifier, signer, err := notifyTrust("https://repo.example.org:8443/wsrf/services/WorkspaceService")
	if err != nil {
		t.Fatal(err)
	}
	var got int
	consumer := &notify.Consumer{Token: "secret", Deliver: func(notify.Notification) { got++ },
		Verifier: verifier, Signer: signer}
	d := dialect.WSRF12
	send := func(by *pki.Credential) *httptest.ResponseRecorder {
		t.Helper()
		body := etree.NewElement("wsnt:Notify")
		body.CreateAttr("xmlns:wsnt", d.BN)
		nm := body.CreateElement("wsnt:NotificationMessage")
		topic := nm.CreateElement("wsnt:Topic")
		topic.CreateAttr("Dialect", "http://docs.oasis-open.org/wsn/t-1/TopicExpression/Simple")
		topic.CreateAttr("xmlns:t", "http://vws.dev/ns/2026/workspace")
		topic.SetText("t:state")
		nm.CreateElement("wsnt:Message")
		headers := d.WSA.MessageHeaders("http://127.0.0.1:9/", "http://docs.oasis-open.org/wsn/bw-2/NotificationConsumer/Notify")
		headers = append(headers, consumer.Reference(d.WSA, "http://127.0.0.1:9/").Headers()...)
		doc := (&soap.Message{Headers: headers, Body: body}).Document()
		if err := (&wssec.Signer{Key: by.Key, Chain: by.FullChain()}).Sign(doc); err != nil {
			t.Fatal(err)
		}
		data, err := doc.WriteToBytes()
		if err != nil {
			t.Fatal(err)
		}
		rec := httptest.NewRecorder()
		consumer.ServeHTTP(rec, httptest.NewRequest(http.MethodPost, "/", bytes.NewReader(data)))
		return rec
	}
	if rec := send(other); rec.Code != http.StatusForbidden || got != 0 {
		t.Errorf("a Notify signed by another host of the CA (node7.example.org): HTTP %d %q, %d delivered; want it refused", rec.Code, strings.TrimSpace(rec.Body.String()), got)
	} else if !strings.Contains(rec.Body.String(), "repo.example.org") {
		t.Errorf("the refusal does not say which host was expected: %q", rec.Body.String())
	}
	if rec := send(service); rec.Code != http.StatusOK {
		t.Errorf("a Notify signed by the service's host: HTTP %d %q", rec.Code, strings.TrimSpace(rec.Body.String()))
	}
	// A site whose (older grid) CA issues host certificates naming the host only in
	// CN=host/NAME: the client takes answers signed so (identity.NamesHost), and so
	// must the listener take notifications, of that host only.
	got = 0
	if rec := send(cnOnly(t, ca, other)); rec.Code != http.StatusForbidden || got != 0 {
		t.Errorf("a Notify signed by another host's CN-only certificate: HTTP %d %q, %d delivered; want it refused", rec.Code, strings.TrimSpace(rec.Body.String()), got)
	}
	if rec := send(cnOnly(t, ca, service)); rec.Code != http.StatusOK || got != 1 {
		t.Errorf("a Notify signed by the service's CN-only host certificate: HTTP %d %q, %d delivered", rec.Code, strings.TrimSpace(rec.Body.String()), got)
	}
}

// cnOnly is host's certificate without subject alternative names: it names its host
// by CN=host/NAME alone, as older grid CAs issue them.
func cnOnly(t *testing.T, ca, host *pki.Credential) *pki.Credential {
	t.Helper()
	tmpl := *host.Certificate
	tmpl.DNSNames, tmpl.IPAddresses, tmpl.ExtraExtensions = nil, nil, nil
	var exts []pkix.Extension
	for _, e := range tmpl.Extensions {
		if !e.Id.Equal(asn1.ObjectIdentifier{2, 5, 29, 17}) { // subjectAltName
			exts = append(exts, e)
		}
	}
	tmpl.Extensions = exts
	der, err := x509.CreateCertificate(rand.Reader, &tmpl, ca.Certificate, host.Key.Public(), ca.Key)
	if err != nil {
		t.Fatal(err)
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatal(err)
	}
	if len(cert.DNSNames) != 0 {
		t.Fatalf("%s still has SANs %v", cert.Subject, cert.DNSNames)
	}
	return &pki.Credential{Certificate: cert, Key: host.Key, Chain: host.Chain}
}
