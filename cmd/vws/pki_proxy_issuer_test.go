package main

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/vws-grid/vws/internal/pki"
)

// A proxy made from a proxy (delegating further) inherits its issuer's limits: a
// limited proxy's proxies are limited, and a path length of 0 allows none. vws pki
// proxy must not write, and report as made, a proxy every service then refuses.
func TestPKIProxyOfProxyKeepsItsLimits(t *testing.T) {
	dir := t.TempDir()
	ca, user := filepath.Join(dir, "certificates"), filepath.Join(dir, "alice")
	limited, last := filepath.Join(dir, "limited"), filepath.Join(dir, "last")
	for _, s := range [][]string{
		{"pki", "ca", "--dir", ca, "--key-type", "ecdsa"},
		{"pki", "user", "--ca-dir", ca, "--cn", "alice", "--key-type", "ecdsa", "--out", user},
		{"pki", "proxy", "--cert", user + "-cert.pem", "--key", user + "-key.pem", "--limited", "--out", limited},
		{"pki", "proxy", "--cert", user + "-cert.pem", "--key", user + "-key.pem", "--path-length", "0", "--out", last},
	} {
		if out, err := runCLI(t, s...); err != nil {
			t.Fatalf("vws %s: %v\n%s", strings.Join(s, " "), err, out)
		}
	}
	trust, err := pki.LoadTrust(ca)
	if err != nil {
		t.Fatal(err)
	}
	for _, issuer := range []string{limited, last} {
		out := filepath.Join(dir, "of-"+filepath.Base(issuer))
		msg, err := runCLI(t, "pki", "proxy", "--cert", issuer, "--out", out)
		if err != nil {
			// Refused: it must have written nothing, as it says.
			if _, serr := os.Stat(out); !errors.Is(serr, os.ErrNotExist) {
				t.Errorf("vws pki proxy --cert %s refused (%v) but left %s (%v)", filepath.Base(issuer), err, out, serr)
			}
			continue
		}
		chain, rerr := pki.ReadCertificates(out)
		if rerr != nil {
			t.Fatal(rerr)
		}
		if _, verr := trust.Verify(chain, time.Now()); verr != nil {
			t.Errorf("vws pki proxy --cert %s succeeded (%s) but wrote a proxy that is refused: %v", filepath.Base(issuer), strings.TrimSpace(msg), verr)
		}
	}
	out := filepath.Join(dir, "limited-of-limited")
	if msg, err := runCLI(t, "pki", "proxy", "--cert", limited, "--limited", "--out", out); err != nil {
		t.Fatalf("a limited proxy of a limited proxy: %v\n%s", err, msg)
	}
	chain, err := pki.ReadCertificates(out)
	if err != nil {
		t.Fatal(err)
	}
	if id, err := trust.Verify(chain, time.Now()); err != nil || !id.Limited {
		t.Fatalf("a limited proxy of a limited proxy: %+v, %v", id, err)
	}
}
