package pki

import (
	"crypto"
	"crypto/rsa"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"github.com/vws-grid/vws/internal/fsutil"
)

// CertificatesPEM encodes certificates as consecutive PEM blocks.
func CertificatesPEM(certs ...*x509.Certificate) []byte {
	var b []byte
	for _, c := range certs {
		b = append(b, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: c.Raw})...)
	}
	return b
}

// KeyPEM encodes a private key: PKCS#1 ("RSA PRIVATE KEY", what Globus tools write)
// for RSA, PKCS#8 otherwise. The key is not encrypted.
func KeyPEM(key crypto.Signer) ([]byte, error) {
	if k, ok := key.(*rsa.PrivateKey); ok {
		return pem.EncodeToMemory(&pem.Block{Type: "RSA PRIVATE KEY", Bytes: x509.MarshalPKCS1PrivateKey(k)}), nil
	}
	der, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		return nil, fmt.Errorf("encode private key: %w", err)
	}
	return pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der}), nil
}

// CRLPEM encodes a DER CRL.
func CRLPEM(der []byte) []byte {
	return pem.EncodeToMemory(&pem.Block{Type: "X509 CRL", Bytes: der})
}

// WriteCredential writes c's certificate (and chain, if any) to certFile (mode 0644)
// and its key to keyFile (mode 0600), as usercert.pem/userkey.pem or
// hostcert.pem/hostkey.pem.
func WriteCredential(certFile, keyFile string, c *Credential) error {
	key, err := KeyPEM(c.Key)
	if err != nil {
		return err
	}
	if err := WriteFileAtomic(keyFile, key, 0o600); err != nil {
		return err
	}
	return WriteFileAtomic(certFile, CertificatesPEM(c.FullChain()...), 0o644)
}

// WriteProxyFile writes a proxy credential in the Globus layout X509_USER_PROXY
// names: the proxy certificate, its key, then the issuing chain, in one file of mode
// 0600.
func WriteProxyFile(path string, c *Credential) error {
	key, err := KeyPEM(c.Key)
	if err != nil {
		return err
	}
	data := CertificatesPEM(c.Certificate)
	data = append(data, key...)
	data = append(data, CertificatesPEM(c.Chain...)...)
	return WriteFileAtomic(path, data, 0o600)
}

// WriteCADir writes ca into dir in the /etc/grid-security/certificates layout:
// <hash>.0 holds the certificate and, when crl is not nil, <hash>.r0 its CRL (PEM),
// hash being OpenSSL's subject hash. It returns the hash.
func WriteCADir(dir string, ca *x509.Certificate, crl []byte) (string, error) {
	hash, err := SubjectHash(ca.RawSubject)
	if err != nil {
		return "", err
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return "", fmt.Errorf("CA directory: %w", err)
	}
	if err := WriteFileAtomic(filepath.Join(dir, hash+".0"), CertificatesPEM(ca), 0o644); err != nil {
		return "", err
	}
	if crl != nil {
		if err := WriteCRL(dir, ca, crl); err != nil {
			return "", err
		}
	}
	return hash, nil
}

// WriteCRL writes (replaces) the CRL of ca in dir as <hash>.r0.
func WriteCRL(dir string, ca *x509.Certificate, crl []byte) error {
	hash, err := SubjectHash(ca.RawSubject)
	if err != nil {
		return err
	}
	return WriteFileAtomic(filepath.Join(dir, hash+".r0"), CRLPEM(crl), 0o644)
}

// WriteFileAtomic writes data to path with mode perm through a synced temporary
// file renamed over it, as fsutil.WriteFileAtomic does, but never through a
// temporary name someone else put there: keys and proxies go to directories others
// may write (/tmp/x509up_u<uid>), where a link planted at that name would have the
// key written into, and over, a file of the user's.
func WriteFileAtomic(path string, data []byte, perm os.FileMode) error {
	if err := fsutil.WriteFileAtomic(path, data, perm); err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	return nil
}

// ReadCertificates returns every certificate of a PEM file, in file order.
func ReadCertificates(path string) ([]*x509.Certificate, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("read certificates: %w", err)
	}
	return parseCertificates(path, data)
}

func parseCertificates(path string, data []byte) ([]*x509.Certificate, error) {
	var certs []*x509.Certificate
	for {
		var b *pem.Block
		b, data = pem.Decode(data)
		if b == nil {
			break
		}
		if b.Type != "CERTIFICATE" {
			continue
		}
		c, err := x509.ParseCertificate(b.Bytes)
		if err != nil {
			return nil, fmt.Errorf("certificate %d of %s: %w", len(certs)+1, path, err)
		}
		certs = append(certs, c)
	}
	if len(certs) == 0 {
		return nil, fmt.Errorf("%s holds no PEM certificate", path)
	}
	return certs, nil
}

// ReadKey returns the first private key of a PEM file (PKCS#1, PKCS#8 or SEC 1).
func ReadKey(path string) (crypto.Signer, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("read private key: %w", err)
	}
	for {
		var b *pem.Block
		b, data = pem.Decode(data)
		if b == nil {
			return nil, fmt.Errorf("%s holds no PEM private key", path)
		}
		if !strings.HasSuffix(b.Type, "PRIVATE KEY") {
			continue
		}
		if b.Headers["Proc-Type"] == "4,ENCRYPTED" || b.Type == "ENCRYPTED PRIVATE KEY" {
			return nil, fmt.Errorf("the key in %s is encrypted, which vws cannot read: decrypt a copy with `openssl pkey -in %s -out KEY` (mode 0600), or use a proxy made by grid-proxy-init", path, path)
		}
		key, err := parseKey(b.Bytes)
		if err != nil {
			return nil, fmt.Errorf("private key in %s: %w", path, err)
		}
		return key, nil
	}
}

func parseKey(der []byte) (crypto.Signer, error) {
	if k, err := x509.ParsePKCS1PrivateKey(der); err == nil {
		return k, nil
	}
	if k, err := x509.ParseECPrivateKey(der); err == nil {
		return k, nil
	}
	k, err := x509.ParsePKCS8PrivateKey(der)
	if err != nil {
		return nil, errors.New("not a PKCS#1, PKCS#8 or SEC 1 private key")
	}
	s, ok := k.(crypto.Signer)
	if !ok {
		return nil, fmt.Errorf("unsupported key type %T", k)
	}
	return s, nil
}

// LoadCredential reads a certificate file (its first certificate, then its chain)
// and the matching key from keyFile, or from certFile itself when keyFile is empty
// (a proxy file holds both).
func LoadCredential(certFile, keyFile string) (*Credential, error) {
	certs, err := ReadCertificates(certFile)
	if err != nil {
		return nil, err
	}
	if keyFile == "" {
		keyFile = certFile
	}
	key, err := ReadKey(keyFile)
	if err != nil {
		return nil, err
	}
	if !publicKeyEqual(certs[0].PublicKey, key.Public()) {
		return nil, fmt.Errorf("the key in %s does not belong to the certificate in %s (%s)", keyFile, certFile, DN(certs[0]))
	}
	return &Credential{Certificate: certs[0], Key: key, Chain: certs[1:]}, nil
}

func publicKeyEqual(a, b crypto.PublicKey) bool {
	k, ok := a.(interface{ Equal(crypto.PublicKey) bool })
	return ok && k.Equal(b)
}
