// Package manifestsig signs and verifies workspace manifests: an enveloped XML
// signature (exclusive c14n, RSA-SHA256, the signer's certificate chain in KeyInfo)
// over the whole manifest element, so a manifest carries its integrity wherever a
// workspace moves. The Repository signs; a Manager verifies before it defines anything.
package manifestsig

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/base64"
	"encoding/pem"
	"errors"
	"fmt"
	"math/big"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/beevik/etree"
	dsig "github.com/russellhaering/goxmldsig"

	"github.com/vws-grid/vws/internal/fsutil"
	"github.com/vws-grid/vws/internal/pki"
	"github.com/vws-grid/vws/internal/wsa"
	"github.com/vws-grid/vws/internal/xmldsigec"
)

// Signer signs manifests with one key.
type Signer struct {
	key   crypto.Signer
	chain []*x509.Certificate
}

// NewSigner signs with key; chain[0] is key's certificate, followed by its issuers
// (they travel in KeyInfo so a verifier can build the path to its trusted CAs).
func NewSigner(key crypto.Signer, chain []*x509.Certificate) (*Signer, error) {
	if key == nil || len(chain) == 0 {
		return nil, errors.New("manifest signer: a key and its certificate are needed")
	}
	switch key.Public().(type) {
	case *rsa.PublicKey, *ecdsa.PublicKey:
	default:
		return nil, fmt.Errorf("manifest signer: the key must be RSA or ECDSA, not %T", key.Public())
	}
	return &Signer{key: key, chain: chain}, nil
}

// Certificate is the signer's own certificate.
func (s *Signer) Certificate() *x509.Certificate { return s.chain[0] }

// Sign returns a copy of el with an enveloped ds:Signature as its last child.
func (s *Signer) Sign(el *etree.Element) (*etree.Element, error) {
	certs := make([][]byte, len(s.chain))
	for i, c := range s.chain {
		certs[i] = c.Raw
	}
	ctx, err := dsig.NewSigningContext(s.key, certs)
	if err != nil {
		return nil, fmt.Errorf("sign manifest: %w", err)
	}
	ctx.Canonicalizer = dsig.MakeC14N10ExclusiveCanonicalizerWithPrefixList("")
	pub, isEC := s.key.Public().(*ecdsa.PublicKey)
	if isEC {
		if err := ctx.SetSignatureMethod(dsig.ECDSASHA256SignatureMethod); err != nil {
			return nil, fmt.Errorf("sign manifest: %w", err)
		}
	}
	signed, err := ctx.SignEnveloped(el)
	if err != nil {
		return nil, fmt.Errorf("sign manifest: %w", err)
	}
	if isEC {
		// goxmldsig writes the ASN.1 form; XML Signature wants r||s.
		if err := convertSignatureValue(signed, func(v []byte) ([]byte, error) { return xmldsigec.DERToRaw(v, xmldsigec.Size(pub)) }); err != nil {
			return nil, fmt.Errorf("sign manifest: %w", err)
		}
	}
	return signed, nil
}

// convertSignatureValue rewrites el's ds:Signature/ds:SignatureValue with conv.
func convertSignatureValue(el *etree.Element, conv func([]byte) ([]byte, error)) error {
	for _, sig := range el.ChildElements() {
		if sig.Tag != "Signature" || sig.NamespaceURI() != dsig.Namespace {
			continue
		}
		for _, sv := range sig.ChildElements() {
			if sv.Tag != "SignatureValue" {
				continue
			}
			raw, err := base64.StdEncoding.DecodeString(strings.Join(strings.Fields(sv.Text()), ""))
			if err != nil {
				return fmt.Errorf("SignatureValue: %w", err)
			}
			out, err := conv(raw)
			if err != nil {
				return err
			}
			sv.SetText(base64.StdEncoding.EncodeToString(out))
			return nil
		}
	}
	return errors.New("no ds:SignatureValue")
}

// TrustFunc decides whether a signer's certificate chain (leaf first) is one this
// host accepts manifests from.
type TrustFunc func(chain []*x509.Certificate) error

// ErrInvalid is wrapped by every verification failure.
var ErrInvalid = errors.New("manifest signature invalid")

// Verify checks el's enveloped signature and returns the element as signed (use it,
// not el: anything outside the signature's reach is dropped) and the signer's
// certificate. trust nil checks integrity only: the signer is not authenticated.
func Verify(el *etree.Element, trust TrustFunc) (*etree.Element, *x509.Certificate, error) {
	return verify(el, trust, nil)
}

// VerifyAt is Verify with the signer's certificate judged valid or not at time at
// (when the manifest was signed): the Repository checks its own earlier signatures so
// before re-signing them with a renewed key.
func VerifyAt(el *etree.Element, trust TrustFunc, at time.Time) (*etree.Element, *x509.Certificate, error) {
	return verify(el, trust, dsig.NewFakeClockAt(at))
}

// SignerOf returns the certificate a signed element names as its signer, unverified.
func SignerOf(el *etree.Element) (*x509.Certificate, error) {
	chain, err := ChainOf(el)
	if err != nil {
		return nil, err
	}
	return chain[0], nil
}

// ChainOf returns the certificate chain a signed element's KeyInfo carries, signer
// first, unverified: the chain Verify checks the signature with and hands a
// TrustFunc.
func ChainOf(el *etree.Element) ([]*x509.Certificate, error) {
	return keyInfoChain(el)
}

func verify(el *etree.Element, trust TrustFunc, clock *dsig.Clock) (*etree.Element, *x509.Certificate, error) {
	chain, err := keyInfoChain(el)
	if err != nil {
		return nil, nil, fmt.Errorf("%w: %w", ErrInvalid, err)
	}
	if trust != nil {
		if err := trust(chain); err != nil {
			return nil, nil, fmt.Errorf("%w: signer %s is not trusted: %w", ErrInvalid, chain[0].Subject, err)
		}
	}
	vctx := dsig.NewDefaultValidationContext(&dsig.MemoryX509CertificateStore{Roots: chain[:1]})
	if clock != nil {
		vctx.Clock = clock
	}
	// Validate sees el alone: declare what it inherits from the message around it
	// (exclusive c14n keeps only the declarations the manifest uses).
	detached := wsa.Detach(el)
	if pub, ok := chain[0].PublicKey.(*ecdsa.PublicKey); ok {
		// goxmldsig checks the ASN.1 form; the manifest carries r||s.
		if err := convertSignatureValue(detached, func(v []byte) ([]byte, error) { return xmldsigec.RawToDER(v, xmldsigec.Size(pub)) }); err != nil {
			return nil, nil, fmt.Errorf("%w: %w", ErrInvalid, err)
		}
	}
	signed, err := vctx.Validate(detached)
	if err != nil {
		return nil, nil, fmt.Errorf("%w: %v (signed by %s)", ErrInvalid, err, chain[0].Subject)
	}
	return signed, chain[0], nil
}

// keyInfoChain reads the certificates of el's ds:Signature/ds:KeyInfo/ds:X509Data.
func keyInfoChain(el *etree.Element) ([]*x509.Certificate, error) {
	var sig *etree.Element
	for _, c := range el.ChildElements() {
		if c.Tag == "Signature" && c.NamespaceURI() == dsig.Namespace {
			if sig != nil {
				return nil, errors.New("the manifest has more than one ds:Signature")
			}
			sig = c
		}
	}
	if sig == nil {
		return nil, errors.New("the manifest is not signed (no ds:Signature)")
	}
	var chain []*x509.Certificate
	for _, ki := range sig.ChildElements() {
		if ki.Tag != "KeyInfo" {
			continue
		}
		for _, xd := range ki.ChildElements() {
			if xd.Tag != "X509Data" {
				continue
			}
			for _, xc := range xd.ChildElements() {
				if xc.Tag != "X509Certificate" {
					continue
				}
				der, err := base64.StdEncoding.DecodeString(strings.Join(strings.Fields(xc.Text()), ""))
				if err != nil {
					return nil, fmt.Errorf("KeyInfo certificate: %w", err)
				}
				c, err := x509.ParseCertificate(der)
				if err != nil {
					return nil, fmt.Errorf("KeyInfo certificate: %w", err)
				}
				chain = append(chain, c)
			}
		}
	}
	if len(chain) == 0 {
		return nil, errors.New("the signature names no signer certificate (ds:KeyInfo/ds:X509Data)")
	}
	return chain, nil
}

// LoadOrCreate returns the signer whose key and certificate are in dir, making a
// self-signed one on first use. A server without a host certificate (--insecure)
// still signs, so a manifest edited in its store or on the wire is caught; only who
// signed cannot be checked by anyone without that certificate.
func LoadOrCreate(dir, commonName string) (*Signer, error) {
	keyFile, certFile := filepath.Join(dir, "manifest-key.pem"), filepath.Join(dir, "manifest-cert.pem")
	if s, err := Load(certFile, keyFile); err == nil {
		return s, nil
	} else if !errors.Is(err, os.ErrNotExist) {
		return nil, err
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("manifest signing key: %w", err)
	}
	key, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		return nil, fmt.Errorf("manifest signing key: %w", err)
	}
	serial, _ := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 63))
	now := time.Now()
	tmpl := &x509.Certificate{
		SerialNumber: serial, Subject: pkix.Name{CommonName: commonName},
		NotBefore: now.Add(-time.Hour), NotAfter: now.AddDate(20, 0, 0),
		KeyUsage: x509.KeyUsageDigitalSignature,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		return nil, fmt.Errorf("manifest signing certificate: %w", err)
	}
	cert, _ := x509.ParseCertificate(der)
	keyPEM := pem.EncodeToMemory(&pem.Block{Type: "RSA PRIVATE KEY", Bytes: x509.MarshalPKCS1PrivateKey(key)})
	// Key first: a crash between the two writes leaves a key without a certificate,
	// which the next start replaces (Load fails with ErrNotExist on the certificate).
	if err := fsutil.WriteFileAtomic(keyFile, keyPEM, 0o600); err != nil {
		return nil, err
	}
	if err := fsutil.WriteFileAtomic(certFile, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o644); err != nil {
		return nil, err
	}
	return NewSigner(key, []*x509.Certificate{cert})
}

// Load reads a PEM certificate (chain) and its private key.
func Load(certFile, keyFile string) (*Signer, error) {
	chain, err := pki.ReadCertificates(certFile)
	if err != nil {
		return nil, fmt.Errorf("manifest signing certificate: %w", err)
	}
	if len(chain) == 0 {
		return nil, fmt.Errorf("manifest signing certificate %s holds no certificate", certFile)
	}
	key, err := pki.ReadKey(keyFile)
	if err != nil {
		return nil, fmt.Errorf("manifest signing key: %w", err)
	}
	return NewSigner(key, chain)
}
