package main

import (
	"crypto"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"net/http"
	"os"
	"sync"
	"time"

	"github.com/spf13/cobra"

	"github.com/vws-grid/vws/internal/client"
	"github.com/vws-grid/vws/internal/identity"
	"github.com/vws-grid/vws/internal/pki"
	"github.com/vws-grid/vws/internal/wssec"
)

// tlsFlags are the client credential flags every command shares.
var tlsFlags struct {
	cert, key, ca string
	sign          bool
}

// registerTLSFlags adds --cert, --key, --ca and --sign to root, for all subcommands. (vws
// serve has its own flags of those names, for the host certificate; they take
// precedence there.)
func registerTLSFlags(root *cobra.Command) {
	pf := root.PersistentFlags()
	pf.StringVar(&tlsFlags.cert, "cert", "", "client certificate (PEM), or a proxy file holding certificate, key and chain\n(default: $X509_USER_PROXY, /tmp/x509up_u<uid>, $X509_USER_CERT, ~/.globus/usercert.pem)")
	pf.StringVar(&tlsFlags.key, "key", "", "key of --cert (default: --cert itself, as in a proxy file)")
	pf.StringVar(&tlsFlags.ca, "ca", "", "trusted CAs for the server's certificate: a directory or PEM file\n(default: $X509_CERT_DIR, /etc/grid-security/certificates, ~/.globus/certificates)")
	pf.BoolVar(&tlsFlags.sign, "sign", false, "sign every SOAP request with WS-Security (X.509) with the --cert credential,\nand accept only answers signed by a service the --ca CAs vouch for")
}

// cliTransport sends http:// requests as before and https:// ones with the client
// credentials, which it loads on the first https request only: a command talking
// plain HTTP never needs (or fails on) a certificate. Connections are kept alive.
var cliTransport = &lazyTransport{}

type lazyTransport struct {
	plainOnce sync.Once
	plain     *http.Transport
	tlsOnce   sync.Once
	tls       *http.Transport
	err       error
}

func (t *lazyTransport) RoundTrip(req *http.Request) (*http.Response, error) {
	switch req.URL.Scheme {
	case "http":
		t.plainOnce.Do(func() { t.plain = http.DefaultTransport.(*http.Transport).Clone() })
		resp, err := t.plain.RoundTrip(req)
		if err != nil {
			return nil, explainTransport(req, err)
		}
		return httpsRefusal(req, resp)
	case "https":
	default:
		if req.Body != nil {
			req.Body.Close()
		}
		return nil, &connError{msg: fmt.Sprintf("%q is not an http:// or https:// URL: vws speaks HTTP(S); correct the URL you gave", req.URL.Redacted())}
	}
	t.tlsOnce.Do(func() {
		var cfg *tls.Config
		if cfg, t.err = client.TLSConfig(tlsFlags.cert, tlsFlags.key, tlsFlags.ca); t.err != nil {
			return
		}
		t.tls = http.DefaultTransport.(*http.Transport).Clone()
		t.tls.TLSClientConfig = cfg
	})
	if t.err != nil {
		if req.Body != nil {
			req.Body.Close()
		}
		return nil, &connError{msg: t.err.Error(), err: t.err}
	}
	resp, err := t.tls.RoundTrip(req)
	return resp, explainTransport(req, err)
}

// httpClient returns the CLI's HTTP client: plain for http:// URLs, mutual TLS with
// the --cert/--key/--ca credentials for https:// ones. It has no overall timeout
// (an image upload takes what it takes); commands bound calls with their context.
func httpClient() (*http.Client, error) {
	if tlsFlags.key != "" && tlsFlags.cert == "" {
		return nil, errors.New("--key needs --cert")
	}
	return &http.Client{Transport: cliTransport}, nil
}

// soapClient is the SOAP client commands call services with, over httpClient's
// transport; with --sign it signs every request and verifies the signed answers. A
// flag or credential error surfaces on the first call.
func soapClient() *client.Client {
	hc, err := httpClient()
	var signer *wssec.Signer
	var verifier *wssec.Verifier
	if err == nil && tlsFlags.sign {
		signer, verifier, err = messageSecurity()
	}
	if err != nil {
		hc = &http.Client{Transport: failingTransport{err}}
	}
	hc.Timeout = 5 * time.Minute // as client.New(nil) had
	c := client.New(hc)
	// The user's own process, reading what they ask for (a whole Repository's property
	// document): more than a server's components take from each other.
	c.MaxResponseBytes = 64 << 20
	c.Signer, c.Verifier = signer, verifier
	return c
}

// lifecycleClient is soapClient without the overall timeout, for the Manager
// operations that last as long as their work (staging an image, restoring or saving a
// guest's RAM, a shutdown's grace period): the server bounds them, and Ctrl-C ends
// them (the manager then undoes a deploy).
func lifecycleClient() *client.Client {
	c := soapClient()
	c.HTTP.Timeout = 0
	return c
}

// messageSecurity is --sign: the TLS credential signs the requests, and the answers
// must be signed by a certificate the same trusted CAs vouch for.
func messageSecurity() (*wssec.Signer, *wssec.Verifier, error) {
	cr, err := client.LoadCredentials(tlsFlags.cert, tlsFlags.key, tlsFlags.ca)
	if err != nil {
		return nil, nil, fmt.Errorf("--sign: %w", err)
	}
	if cr.Certificate == nil {
		return nil, nil, errors.New("--sign needs a credential: pass --cert (and --key), or make a proxy (vws pki proxy, grid-proxy-init)")
	}
	key, ok := cr.Certificate.PrivateKey.(crypto.Signer)
	if !ok {
		return nil, nil, fmt.Errorf("--sign: the key of %s cannot sign", cr.Source)
	}
	chain := make([]*x509.Certificate, 0, len(cr.Certificate.Certificate))
	for _, der := range cr.Certificate.Certificate {
		c, err := x509.ParseCertificate(der)
		if err != nil {
			return nil, nil, fmt.Errorf("--sign: %s: %w", cr.Source, err)
		}
		chain = append(chain, c)
	}
	if cr.CAPath == "" {
		return nil, nil, errors.New("--sign needs trusted CAs to check the service's signed answers: pass --ca CADIR")
	}
	trust, err := pki.LoadTrust(cr.CAPath)
	if err != nil {
		return nil, nil, fmt.Errorf("--sign: %w", err)
	}
	verifier := wssec.NewVerifier(func(chain []*x509.Certificate) (identity.Identity, error) {
		return trust.Verify(chain, time.Now())
	})
	return &wssec.Signer{Key: key, Chain: chain}, verifier, nil
}

type failingTransport struct{ err error }

func (f failingTransport) RoundTrip(req *http.Request) (*http.Response, error) {
	if req.Body != nil {
		req.Body.Close()
	}
	return nil, f.err
}

// The Globus locations of a host's credentials and trusted CAs.
const (
	defaultHostCert = "/etc/grid-security/hostcert.pem"
	defaultHostKey  = "/etc/grid-security/hostkey.pem"
	defaultCADir    = "/etc/grid-security/certificates"
)

// serveTLSFiles fills in the Globus default locations for what was not given and
// says exactly what to pass when something is missing.
func serveTLSFiles(o *serveOptions) (certFile, keyFile, caPath string, err error) {
	certFile, keyFile, caPath = o.certFile, o.keyFile, o.caPath
	if certFile == "" && keyFile == "" && fileExists(defaultHostCert) && fileExists(defaultHostKey) {
		certFile, keyFile = defaultHostCert, defaultHostKey
	}
	if caPath == "" && fileExists(defaultCADir) {
		caPath = defaultCADir
	}
	const howTo = "(vws pki ca --dir D; vws pki host --ca-dir D --name HOST --ip ADDR --out host makes test ones), or --insecure for plain HTTP"
	switch {
	case certFile == "" && keyFile == "":
		return "", "", "", fmt.Errorf("no host certificate: %s and %s do not exist; pass --cert HOSTCERT --key HOSTKEY --ca CADIR %s", defaultHostCert, defaultHostKey, howTo)
	case certFile == "" || keyFile == "":
		return "", "", "", errors.New("--cert and --key go together: pass both the host certificate and its key")
	case caPath == "":
		return "", "", "", fmt.Errorf("no trusted CAs to verify clients with: %s does not exist; pass --ca CADIR %s", defaultCADir, howTo)
	}
	return certFile, keyFile, caPath, nil
}

func fileExists(path string) bool {
	_, err := os.Stat(path)
	return err == nil
}
