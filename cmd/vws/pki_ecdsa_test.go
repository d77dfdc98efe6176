package main

import (
	"crypto/ecdsa"
	"crypto/rsa"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/vws-grid/vws/internal/pki"
)

// TestPKIKeyType makes an all-ECDSA PKI with --key-type ecdsa; a proxy follows its
// issuer's key type unless --key-type says otherwise, and openssl and pki.Trust both
// accept the chain.
func TestPKIKeyType(t *testing.T) {
	dir := t.TempDir()
	ca, host, user := filepath.Join(dir, "certificates"), filepath.Join(dir, "host"), filepath.Join(dir, "erin")
	proxy, rsaProxy := filepath.Join(dir, "x509up"), filepath.Join(dir, "x509up-rsa")
	for _, s := range [][]string{
		{"pki", "ca", "--dir", ca, "--key-type", "ecdsa", "--dn", "/O=Grid/OU=ec/CN=EC CA"},
		{"pki", "host", "--ca-dir", ca, "--name", "localhost", "--key-type", "ecdsa", "--out", host},
		{"pki", "user", "--ca-dir", ca, "--cn", "erin", "--key-type", "ecdsa", "--out", user},
		{"pki", "proxy", "--cert", user + "-cert.pem", "--key", user + "-key.pem", "--out", proxy},
		{"pki", "proxy", "--cert", proxy, "--key-type", "rsa", "--out", rsaProxy},
	} {
		if out, err := runCLI(t, s...); err != nil {
			t.Fatalf("vws %s: %v\n%s", strings.Join(s, " "), err, out)
		}
	}
	caKey, err := pki.ReadKey(filepath.Join(ca, "private", "ca-key.pem"))
	if err != nil {
		t.Fatal(err)
	}
	if _, ok := caKey.(*ecdsa.PrivateKey); !ok {
		t.Errorf("CA key is %T, want ECDSA", caKey)
	}
	for file, ec := range map[string]bool{host + "-key.pem": true, user + "-key.pem": true, proxy: true, rsaProxy: false} {
		key, err := pki.ReadKey(file)
		if err != nil {
			t.Fatal(err)
		}
		if _, isEC := key.(*ecdsa.PrivateKey); isEC != ec {
			t.Errorf("%s: key %T, want ECDSA %v", filepath.Base(file), key, ec)
		}
		if _, isRSA := key.(*rsa.PrivateKey); !ec && !isRSA {
			t.Errorf("%s: key %T, want RSA", filepath.Base(file), key)
		}
	}
	if out, err := opensslVerify(t, "-allow_proxy_certs", "-CApath", ca, "-crl_check", "-untrusted", user+"-cert.pem", proxy); err != nil {
		t.Fatalf("openssl refused the ECDSA proxy: %s", out)
	}
	trust, err := pki.LoadTrust(ca)
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range []string{proxy, rsaProxy} {
		chain, err := pki.ReadCertificates(f)
		if err != nil {
			t.Fatal(err)
		}
		if id, err := trust.Verify(chain, time.Now()); err != nil || id.DN != "/O=Grid/OU=ec/CN=erin" || !id.Proxy {
			t.Errorf("%s: identity %+v, %v", filepath.Base(f), id, err)
		}
	}

	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"pki", "ca", "--dir", filepath.Join(dir, "ca2"), "--key-type", "ecdsa", "--key-bits", "4096"}, "--key-bits sets the size of RSA keys"},
		{[]string{"pki", "ca", "--dir", filepath.Join(dir, "ca3"), "--key-type", "dsa"}, `--key-type: key type "dsa": want rsa or ecdsa`},
		{[]string{"pki", "user", "--ca-dir", ca, "--cn", "x", "--key-type", "ed25519", "--out", user}, "want rsa or ecdsa"},
	} {
		if out, err := runCLI(t, tc.args...); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("vws %s: %v (want %q)\n%s", strings.Join(tc.args, " "), err, tc.want, out)
		}
	}
}
