package main

import (
	"crypto/tls"
	"errors"
	"fmt"
	"net/http"
	"os"
	"sync"
	"time"

	"github.com/spf13/cobra"

	"github.com/vws-grid/vws/internal/client"
)

// tlsFlags are the client credential flags every command shares.
var tlsFlags struct{ cert, key, ca string }

// registerTLSFlags adds --cert, --key and --ca to root, for all subcommands. (vws
// serve has its own flags of those names, for the host certificate; they take
// precedence there.)
func registerTLSFlags(root *cobra.Command) {
	pf := root.PersistentFlags()
	pf.StringVar(&tlsFlags.cert, "cert", "", "client certificate (PEM), or a proxy file holding certificate, key and chain\n(default: $X509_USER_PROXY, /tmp/x509up_u<uid>, $X509_USER_CERT, ~/.globus/usercert.pem)")
	pf.StringVar(&tlsFlags.key, "key", "", "key of --cert (default: --cert itself, as in a proxy file)")
	pf.StringVar(&tlsFlags.ca, "ca", "", "trusted CAs for the server's certificate: a directory or PEM file\n(default: $X509_CERT_DIR, /etc/grid-security/certificates, ~/.globus/certificates)")
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
	if req.URL.Scheme != "https" {
		t.plainOnce.Do(func() { t.plain = http.DefaultTransport.(*http.Transport).Clone() })
		return t.plain.RoundTrip(req)
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
		return nil, t.err
	}
	return t.tls.RoundTrip(req)
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
// transport. A flag error surfaces on the first call.
func soapClient() *client.Client {
	hc, err := httpClient()
	if err != nil {
		hc = &http.Client{Transport: failingTransport{err}}
	}
	hc.Timeout = 5 * time.Minute // as client.New(nil) had
	return client.New(hc)
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
