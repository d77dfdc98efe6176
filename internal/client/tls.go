package client

import (
	"crypto/tls"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"syscall"
	"time"

	"github.com/vws-grid/vws/internal/pki"
)

// Credentials are what a client presents and trusts, found the Globus way.
type Credentials struct {
	// Certificate is the client certificate with its chain (a proxy's whole chain);
	// nil when none was found: the client then calls anonymously.
	Certificate *tls.Certificate
	// Source says where the certificate came from, for messages.
	Source string
	// CAPath is the trusted CA file or directory; empty: the system's roots.
	CAPath string
}

// LoadCredentials finds the client credential and the trusted CAs following Globus
// conventions:
//
//   - certificate: certFile/keyFile when given (keyFile defaults to certFile, which
//     then holds both, as a proxy file does); else $X509_USER_PROXY; else
//     /tmp/x509up_u<uid> if it exists; else $X509_USER_CERT and $X509_USER_KEY; else
//     ~/.globus/usercert.pem and userkey.pem if they exist; else none.
//   - CAs: caPath; else $X509_CERT_DIR; else /etc/grid-security/certificates; else
//     ~/.globus/certificates (the first that exists); else the system's roots.
//
// A credential that is named (by a flag or a variable) must exist; an expired one
// is refused here, with what to do, rather than by the server.
func LoadCredentials(certFile, keyFile, caPath string) (*Credentials, error) {
	cr := &Credentials{}
	home, _ := os.UserHomeDir()
	source := ""
	switch {
	case certFile != "" || keyFile != "":
		if certFile == "" {
			return nil, errors.New("--key needs --cert")
		}
		source = "--cert"
	case os.Getenv("X509_USER_PROXY") != "":
		certFile, source = os.Getenv("X509_USER_PROXY"), "$X509_USER_PROXY"
	case exists(DefaultProxyFile()):
		certFile, source = DefaultProxyFile(), "the default proxy file"
	case os.Getenv("X509_USER_CERT") != "":
		certFile, keyFile, source = os.Getenv("X509_USER_CERT"), os.Getenv("X509_USER_KEY"), "$X509_USER_CERT"
		if keyFile == "" {
			return nil, errors.New("$X509_USER_CERT is set but $X509_USER_KEY is not: set both")
		}
	case home != "" && exists(filepath.Join(home, ".globus", "usercert.pem")):
		certFile, keyFile = filepath.Join(home, ".globus", "usercert.pem"), filepath.Join(home, ".globus", "userkey.pem")
		source = "~/.globus"
	}
	if certFile != "" {
		if err := checkKeyFile(certFile, keyFile, source); err != nil {
			return nil, err
		}
		cred, err := pki.LoadCredential(certFile, keyFile)
		if errors.Is(err, os.ErrNotExist) {
			var pe *os.PathError
			missing := certFile
			if errors.As(err, &pe) {
				missing = pe.Path
			}
			return nil, fmt.Errorf("client credential (from %s): %s does not exist: give an existing certificate (--cert, and --key unless it is a proxy), or make a proxy (vws pki proxy, grid-proxy-init)", source, missing)
		}
		if errors.Is(err, syscall.EISDIR) {
			return nil, fmt.Errorf("client credential (from %s): %w: give the PEM files themselves (--cert usercert.pem --key userkey.pem, or a proxy file), not a directory", source, err)
		}
		if err != nil {
			return nil, fmt.Errorf("client credential (from %s): %w", source, err)
		}
		if now := time.Now(); now.After(cred.Certificate.NotAfter) {
			return nil, fmt.Errorf("client certificate %s in %s expired at %s: make a new proxy (vws pki proxy, grid-proxy-init) or renew the certificate",
				pki.DN(cred.Certificate), certFile, cred.Certificate.NotAfter.UTC().Format(time.RFC3339))
		}
		tc := &tls.Certificate{PrivateKey: cred.Key, Leaf: cred.Certificate}
		for _, c := range cred.FullChain() {
			tc.Certificate = append(tc.Certificate, c.Raw)
		}
		cr.Certificate, cr.Source = tc, certFile
	}
	switch {
	case caPath != "":
		cr.CAPath = caPath
	case os.Getenv("X509_CERT_DIR") != "":
		cr.CAPath = os.Getenv("X509_CERT_DIR")
	case exists("/etc/grid-security/certificates"):
		cr.CAPath = "/etc/grid-security/certificates"
	case home != "" && exists(filepath.Join(home, ".globus", "certificates")):
		cr.CAPath = filepath.Join(home, ".globus", "certificates")
	}
	return cr, nil
}

// checkKeyFile refuses a private key (a proxy file holds one) that is not the user's
// own and readable by the user alone, as Globus does: /tmp is everyone's, and a proxy
// file another user left at /tmp/x509up_u<uid> would have the user act as that user.
func checkKeyFile(certFile, keyFile, source string) error {
	path := keyFile
	if path == "" {
		path = certFile // a proxy file: certificate and key in one
	}
	fi, err := os.Stat(path)
	if err != nil || fi.IsDir() {
		return nil // LoadCredential says what is wrong
	}
	if uid, ok := fileOwner(fi); ok && uid != os.Getuid() {
		return fmt.Errorf("client credential (from %s): %s belongs to user %d, not to you (%d): refused, since its key would have you act as someone else; make your own proxy (vws pki proxy, grid-proxy-init)",
			source, path, uid, os.Getuid())
	}
	if fi.Mode().Perm()&0o077 != 0 {
		return fmt.Errorf("client credential (from %s): %s holds a private key others may read or write (mode %s): chmod 600 %s", source, path, fi.Mode().Perm(), path)
	}
	return nil
}

// DefaultProxyFile is where grid-proxy-init writes a proxy: /tmp/x509up_u<uid>.
func DefaultProxyFile() string {
	return filepath.Join(ProxyDir, "x509up_u"+strconv.Itoa(os.Getuid()))
}

// ProxyDir is the directory of the default proxy file: /tmp itself, as the Globus
// tools have it, whatever $TMPDIR says (batch systems set one per job), so that vws
// finds the proxy grid-proxy-init made, and vws pki proxy writes where they look. A
// variable for tests.
var ProxyDir = "/tmp"

// TLSConfig returns the client TLS configuration for LoadCredentials(certFile,
// keyFile, caPath): it presents the credential (with its whole chain, which a proxy
// needs) and verifies the server's host certificate against the CAs with the
// standard verifier.
func TLSConfig(certFile, keyFile, caPath string) (*tls.Config, error) {
	cr, err := LoadCredentials(certFile, keyFile, caPath)
	if err != nil {
		return nil, err
	}
	return cr.TLSConfig()
}

// TLSConfig builds the client configuration of cr.
func (cr *Credentials) TLSConfig() (*tls.Config, error) {
	cfg := &tls.Config{MinVersion: tls.VersionTLS12}
	if cr.CAPath != "" {
		// Read once: crypto/tls checks the host name and the chain against its CAs;
		// the CRLs and signing policies of the same reading are checked here.
		trust, err := pki.LoadTrust(cr.CAPath)
		if err != nil {
			return nil, err
		}
		cfg.RootCAs = trust.Roots()
		cfg.VerifyConnection = func(cs tls.ConnectionState) error {
			trust.MaybeReload()
			if err := trust.CheckServer(cs.PeerCertificates, time.Now()); err != nil {
				return fmt.Errorf("the server's certificate: %w", err)
			}
			return nil
		}
	}
	if cr.Certificate != nil {
		cert := cr.Certificate
		// Always present it: crypto/tls would otherwise send nothing when the server
		// names acceptable CAs that match no certificate of the chain directly.
		cfg.GetClientCertificate = func(*tls.CertificateRequestInfo) (*tls.Certificate, error) { return cert, nil }
	}
	return cfg, nil
}

func exists(path string) bool {
	_, err := os.Stat(path)
	return err == nil
}
