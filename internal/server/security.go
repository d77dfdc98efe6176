package server

import (
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/rsa"
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"net/http"
	"path/filepath"
	"time"

	"github.com/vws-grid/vws/internal/client"
	"github.com/vws-grid/vws/internal/identity"
	"github.com/vws-grid/vws/internal/manifestsig"
	"github.com/vws-grid/vws/internal/pki"
	"github.com/vws-grid/vws/internal/wssec"
	"github.com/vws-grid/vws/policy"
)

// security is what the server derives from its host credential and the site's CAs:
// message-level verification and signing, the TLS client its roles call other
// services with, and the trust managers place in manifest signers.
type security struct {
	policy   *policy.Engine
	trust    *pki.Trust
	verifier *wssec.Verifier
	signer   *wssec.Signer
	tls      *tls.Config // client side: the host credential, the site's CAs
}

func newSecurity(cfg Config, pol *policy.Engine) (*security, error) {
	s := &security{policy: pol, trust: cfg.Trust}
	if cfg.Trust == nil {
		return s, nil
	}
	s.verifier = wssec.NewVerifier(s.verifyChain)
	// Kept on disk: a message accepted before a restart (or a kill) must not be
	// accepted again after it, while its Timestamp is live.
	if cfg.DataDir != "" {
		if err := s.verifier.Replay.Persist(filepath.Join(cfg.DataDir, "wssec-replay.log"), time.Now()); err != nil {
			return nil, err
		}
	}
	if cfg.HostCertFile == "" {
		return s, nil
	}
	cred, err := pki.LoadCredential(cfg.HostCertFile, cfg.HostKeyFile)
	if err != nil {
		return nil, fmt.Errorf("host credential: %w", err)
	}
	s.signer = &wssec.Signer{Key: cred.Key, Chain: cred.FullChain()}
	chain := make([][]byte, 0, len(cred.FullChain()))
	for _, c := range cred.FullChain() {
		chain = append(chain, c.Raw)
	}
	s.tls = &tls.Config{
		MinVersion:   tls.VersionTLS12,
		Certificates: []tls.Certificate{{Certificate: chain, PrivateKey: cred.Key, Leaf: cred.Certificate}},
		RootCAs:      cfg.Trust.Roots(),
		// crypto/tls checks the host name and the chain but consults no CRL: a peer
		// whose host certificate the site revoked is refused here, as the CLI does,
		// as a failed verification (the callers know nothing was sent then).
		VerifyConnection: func(cs tls.ConnectionState) error {
			s.trust.MaybeReload()
			if err := s.trust.CheckServer(cs.PeerCertificates, time.Now()); err != nil {
				return &tls.CertificateVerificationError{UnverifiedCertificates: cs.PeerCertificates, Err: err}
			}
			return nil
		},
	}
	return s, nil
}

// checkHostCredential refuses, before the data directory is touched, a host
// credential that newSecurity or the Repository's manifest signer would refuse once
// it is: TLS serves with keys (Ed25519) neither signs with.
func checkHostCredential(cfg Config, signsManifests bool) error {
	if cfg.HostCertFile == "" || cfg.Trust == nil && !signsManifests {
		return nil
	}
	cred, err := pki.LoadCredential(cfg.HostCertFile, cfg.HostKeyFile)
	if err != nil {
		return fmt.Errorf("--cert %s, --key %s: %w", cfg.HostCertFile, cfg.HostKeyFile, err)
	}
	kind := fmt.Sprintf("%T", cred.Key.Public())
	switch cred.Key.Public().(type) {
	case *rsa.PublicKey, *ecdsa.PublicKey:
		kind = ""
	case ed25519.PublicKey:
		kind = "Ed25519"
	}
	if kind != "" {
		return fmt.Errorf("--key %s holds an %s key, which vws cannot sign manifests and SOAP messages with: give an RSA or ECDSA host key and its certificate (--cert, --key; vws pki host makes test ones)",
			cfg.HostKeyFile, kind)
	}
	if signsManifests {
		if _, err := manifestsig.Load(cfg.HostCertFile, cfg.HostKeyFile); err != nil {
			return fmt.Errorf("--cert %s, --key %s: %w", cfg.HostCertFile, cfg.HostKeyFile, err)
		}
	}
	return nil
}

func (s *security) verifyChain(chain []*x509.Certificate) (identity.Identity, error) {
	s.trust.MaybeReload()
	return s.trust.Verify(chain, time.Now())
}

// requireSignature is policy's require-signature, read from the current rules.
func (s *security) requireSignature(service, operation string) bool {
	return s.policy.Rules().RequiresSignature(service, operation)
}

// httpClient reaches other services (and this one): over mutual TLS as this host
// when the server has a credential.
func (s *security) httpClient() *http.Client {
	tr := http.DefaultTransport.(*http.Transport).Clone()
	// The Factory calls the Repository for every request it serves: keep enough idle
	// connections that concurrent requests do not each pay a new (TLS) handshake.
	tr.MaxIdleConnsPerHost = 32
	if s.tls != nil {
		tr.TLSClientConfig = s.tls
	}
	return &http.Client{Transport: tr, Timeout: 30 * time.Minute}
}

func (s *security) client() *client.Client {
	c := client.New(s.httpClient())
	c.HTTP.Timeout = 5 * time.Minute
	return c
}

// manifestTrust accepts a manifest signer whose certificate the site's CAs vouch for,
// that is not a limited proxy, and whom policy allows to act as a host; nil without
// CAs (integrity only).
func (s *security) manifestTrust(chain []*x509.Certificate) error {
	if s.trust == nil {
		return nil
	}
	id, err := s.verifyChain(chain)
	if err != nil {
		return err
	}
	// Signing what a Manager deploys is acting as the host, which a limited proxy
	// may not do (authz refuses it every host operation).
	if id.Limited {
		return fmt.Errorf("%s may not sign manifests: it is a limited proxy, which may not act as the host; sign with the host credential or a full proxy of it", id)
	}
	if d := s.policy.Rules().Decide(id, policy.Host, policy.Resource{Service: "manifest signer"}); !d.Allowed {
		return fmt.Errorf("%s may not sign manifests here: policy does not allow it as a host (%s)", id, d.Rule)
	}
	return nil
}

// manifestTrustFunc is manifestTrust as the Manager takes it: nil (integrity only)
// when the server has no CAs.
func (s *security) manifestTrustFunc() func([]*x509.Certificate) error {
	if s.trust == nil {
		return nil
	}
	return s.manifestTrust
}

// earlierManifestSigner is the Repository's EarlierSigner: when it signs with the host
// certificate and the server has CAs, an earlier signer of a stored manifest must
// chain to them as of when it signed (the Repository also wants the current
// certificate's subject). nil otherwise: the Repository then accepts only the keys it
// recorded as its own.
func (s *security) earlierManifestSigner(cfg Config) func([]*x509.Certificate, time.Time) error {
	if s.trust == nil || cfg.HostCertFile == "" {
		return nil
	}
	return func(chain []*x509.Certificate, signedAt time.Time) error {
		s.trust.MaybeReload()
		_, err := s.trust.Verify(chain, signedAt)
		return err
	}
}
