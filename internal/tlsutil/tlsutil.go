// Package tlsutil builds the TLS configurations vws serves and calls with.
package tlsutil

import (
	"crypto/tls"
	"crypto/x509"
	"encoding/pem"
	"fmt"
	"os"
	"path/filepath"
)

// LoadCAs reads trusted CA certificates from a PEM file or from every *.pem, *.crt and
// *.0…*.9 file of a directory (the hashed layout of /etc/grid-security/certificates).
func LoadCAs(path string) (*x509.CertPool, error) {
	info, err := os.Stat(path)
	if err != nil {
		return nil, fmt.Errorf("trusted CAs: %w", err)
	}
	files := []string{path}
	if info.IsDir() {
		entries, err := os.ReadDir(path)
		if err != nil {
			return nil, fmt.Errorf("trusted CAs: %w", err)
		}
		files = files[:0]
		for _, e := range entries {
			n := e.Name()
			ext := filepath.Ext(n)
			if e.Type().IsRegular() && (ext == ".pem" || ext == ".crt" || (len(ext) == 2 && ext[1] >= '0' && ext[1] <= '9')) {
				files = append(files, filepath.Join(path, n))
			}
		}
	}
	pool := x509.NewCertPool()
	n := 0
	for _, f := range files {
		data, err := os.ReadFile(f)
		if err != nil {
			return nil, fmt.Errorf("trusted CAs: %w", err)
		}
		for {
			var block *pem.Block
			block, data = pem.Decode(data)
			if block == nil {
				break
			}
			if block.Type != "CERTIFICATE" {
				continue
			}
			cert, err := x509.ParseCertificate(block.Bytes)
			if err != nil {
				return nil, fmt.Errorf("trusted CA in %s: %w", f, err)
			}
			pool.AddCert(cert)
			n++
		}
	}
	if n == 0 {
		return nil, fmt.Errorf("no CA certificates found in %s", path)
	}
	return pool, nil
}

// Server returns a TLS config serving certFile/keyFile. With caPath, client
// certificates are requested and, when presented, verified against those CAs; the
// caller's identity is then the certificate subject. (Requiring them is policy's
// business: anonymous callers stay possible where a rule allows them.)
func Server(certFile, keyFile, caPath string) (*tls.Config, error) {
	if certFile == "" || keyFile == "" {
		return nil, fmt.Errorf("both a host certificate and its key are needed")
	}
	cert, err := tls.LoadX509KeyPair(certFile, keyFile)
	if err != nil {
		return nil, fmt.Errorf("host certificate: %w", err)
	}
	cfg := &tls.Config{MinVersion: tls.VersionTLS12, Certificates: []tls.Certificate{cert}}
	if caPath != "" {
		pool, err := LoadCAs(caPath)
		if err != nil {
			return nil, err
		}
		cfg.ClientCAs = pool
		cfg.ClientAuth = tls.VerifyClientCertIfGiven
	}
	return cfg, nil
}
