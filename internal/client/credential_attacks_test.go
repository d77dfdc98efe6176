package client

import (
	"crypto/tls"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/vws-grid/vws/internal/pki"
)

// TestPlantedDefaultProxyFileRefused: another local user plants /tmp/x509up_u<victim
// uid> holding his own proxy (/tmp is everyone's). Taken, the victim's commands would
// run as the attacker; the client refuses a key file not the user's own, or readable
// by others, as Globus does.
func TestPlantedDefaultProxyFileRefused(t *testing.T) {
	tmp := t.TempDir()
	hideDefaultProxy(t, tmp)
	t.Setenv("X509_USER_PROXY", "")
	t.Setenv("X509_USER_CERT", "")
	t.Setenv("HOME", t.TempDir())
	ca, err := pki.NewCA(pki.CAOptions{KeyType: pki.KeyTypeECDSA})
	if err != nil {
		t.Fatal(err)
	}
	mallory, err := ca.IssueUser(pki.UserOptions{CN: "mallory", KeyType: pki.KeyTypeECDSA})
	if err != nil {
		t.Fatal(err)
	}
	p, err := pki.IssueProxy(mallory, pki.ProxyOptions{})
	if err != nil {
		t.Fatal(err)
	}
	path := DefaultProxyFile()
	if filepath.Dir(path) != tmp {
		t.Fatalf("DefaultProxyFile %s is not under ProxyDir", path)
	}
	if err := pki.WriteProxyFile(path, p); err != nil {
		t.Fatal(err)
	}
	// Owned by another user (nobody), readable by all: planted.
	if os.Getuid() == 0 {
		if err := os.Chown(path, 65534, 65534); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.Chmod(path, 0o644); err != nil {
		t.Fatal(err)
	}
	cr, err := LoadCredentials("", "", "")
	if err == nil && cr.Certificate != nil {
		fi, _ := os.Stat(path)
		owner, _ := fileOwner(fi)
		t.Fatalf("ATTACK SUCCEEDED: the client presents %s from %s (mode %v, owner uid %d, caller uid %d)",
			pki.DN(cr.Certificate.Leaf), cr.Source, fi.Mode(), owner, os.Getuid())
	}
}

// TestRevokedHostCertRefusedByClient: the client checks the server's host certificate
// against the CRLs of its --ca directory too, so a revoked (stolen) host certificate
// does not pass for the service.
func TestRevokedHostCertRefusedByClient(t *testing.T) {
	ca, err := pki.NewCA(pki.CAOptions{KeyType: pki.KeyTypeECDSA})
	if err != nil {
		t.Fatal(err)
	}
	host, err := ca.IssueHost(pki.HostOptions{Name: "127.0.0.1", KeyType: pki.KeyTypeECDSA})
	if err != nil {
		t.Fatal(err)
	}
	now := time.Now()
	crl, err := ca.CRL([]pki.RevokedSerial{{Serial: new(big.Int).Set(host.Certificate.SerialNumber)}}, now.Add(-time.Hour), now.Add(time.Hour), 1)
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	if _, err := pki.WriteCADir(dir, ca.Certificate, crl); err != nil {
		t.Fatal(err)
	}
	trust, err := pki.LoadTrust(dir)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := trust.Verify(host.FullChain(), now); err == nil {
		t.Fatal("control: the server side must refuse the revoked host certificate")
	}
	ln, err := tls.Listen("tcp", "127.0.0.1:0", &tls.Config{Certificates: []tls.Certificate{{Certificate: [][]byte{host.Certificate.Raw}, PrivateKey: host.Key}}})
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	go func() {
		c, err := ln.Accept()
		if err == nil {
			_ = c.(*tls.Conn).Handshake()
			c.Close()
		}
	}()
	cfg, err := (&Credentials{CAPath: dir}).TLSConfig()
	if err != nil {
		t.Fatal(err)
	}
	cfg.ServerName = "127.0.0.1"
	conn, err := tls.DialWithDialer(&net.Dialer{Timeout: 5 * time.Second}, "tcp", ln.Addr().String(), cfg)
	if err == nil {
		conn.Close()
		t.Fatalf("ATTACK SUCCEEDED: client completed a handshake with revoked host certificate %s (serial %s, revoked by %s/*.r0)",
			pki.DN(host.Certificate), host.Certificate.SerialNumber, dir)
	}
}
