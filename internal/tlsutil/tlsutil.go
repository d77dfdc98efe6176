// Package tlsutil builds the TLS configurations vws serves and calls with.
package tlsutil

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"time"

	"github.com/vws-grid/vws/internal/pki"
)

// LoadCAs reads trusted CA certificates from a PEM file or a directory in the
// /etc/grid-security/certificates layout (pki.LoadTrust, CRLs included).
func LoadCAs(path string) (*x509.CertPool, error) {
	t, err := pki.LoadTrust(path)
	if err != nil {
		return nil, err
	}
	return t.Roots(), nil
}

// Option adjusts Server.
type Option func(*serverOptions)

type serverOptions struct {
	anonymous bool
	trust     *pki.Trust
}

// AllowAnonymous lets callers without a client certificate complete the handshake
// (policy then decides what anonymous callers may do); a certificate that is
// presented is still verified.
func AllowAnonymous() Option { return func(o *serverOptions) { o.anonymous = true } }

// WithTrust verifies clients against t instead of loading caPath. The caller keeps
// t, to Reload it (MaybeReload already runs at each handshake).
func WithTrust(t *pki.Trust) Option { return func(o *serverOptions) { o.trust = t } }

// Server returns a TLS config serving certFile/keyFile (the file may hold the host
// certificate's chain after it) that requires a client certificate — mutual TLS —
// and verifies it with the trusted CAs and CRLs of caPath (see pki.LoadTrust),
// proxy chains included. crypto/tls's own verifier rejects RFC 3820 proxies, so
// the handshake asks for any certificate and pki.Trust.Verify decides. After the
// handshake, identity.FromRequest reads the verified chain; a Revalidator around the
// handler verifies it again on each request of the connection.
func Server(certFile, keyFile, caPath string, opts ...Option) (*tls.Config, error) {
	var o serverOptions
	for _, f := range opts {
		f(&o)
	}
	if certFile == "" || keyFile == "" {
		return nil, fmt.Errorf("both a host certificate and its key are needed")
	}
	cert, err := tls.LoadX509KeyPair(certFile, keyFile)
	if err != nil {
		return nil, fmt.Errorf("host certificate %s, key %s: %w", certFile, keyFile, err)
	}
	trust := o.trust
	if trust == nil {
		if caPath == "" {
			return nil, errors.New("no trusted CAs to verify client certificates: pass a CA directory such as /etc/grid-security/certificates")
		}
		if trust, err = pki.LoadTrust(caPath); err != nil {
			return nil, err
		}
	}
	cfg := &tls.Config{MinVersion: tls.VersionTLS12, Certificates: []tls.Certificate{cert}, ClientAuth: tls.RequireAnyClientCert}
	if o.anonymous {
		cfg.ClientAuth = tls.RequestClientCert
	}
	// VerifyConnection rather than VerifyPeerCertificate: it gets the parsed chain, and
	// it also runs on resumed sessions, so a revocation applies to them too.
	cfg.VerifyConnection = func(cs tls.ConnectionState) error {
		if len(cs.PeerCertificates) == 0 {
			if o.anonymous {
				return nil
			}
			return errors.New("a client certificate is required: present a user or host certificate, or a proxy")
		}
		trust.MaybeReload()
		if _, err := trust.Verify(cs.PeerCertificates, time.Now()); err != nil {
			return fmt.Errorf("client certificate refused: %w", err)
		}
		return nil
	}
	return cfg, nil
}
