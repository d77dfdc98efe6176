package pki

import (
	"errors"
	"math/big"
	"os"
	"path/filepath"
	"testing"
	"time"
)

// TestMaybeReloadNoticesASameSizeCRLInOneTick: the CA's CRL is replaced (write +
// rename, as WriteCRL and fetch-crl do) by one of the same size revoking bob, within
// the file system's timestamp granularity of the version the trust loaded (1 s on
// ext3 and NFSv3; a jiffy on ext4). Comparing only names, sizes and mtimes, the
// trust never loads it, and bob's revoked certificate goes on being accepted.
func TestMaybeReloadNoticesASameSizeCRLInOneTick(t *testing.T) {
	f := testPKI(t)
	now := time.Now()
	// Another serial of the same length as bob's (its last bit flipped), so that both
	// CRLs have one size.
	bob := f.bob.Certificate.SerialNumber
	other := new(big.Int).SetBit(bob, 0, 1-bob.Bit(0))
	thisUpdate, nextUpdate := now.Add(-time.Hour).Truncate(time.Second), now.Add(time.Hour).Truncate(time.Second)
	before, err := f.ca.CRL([]RevokedSerial{{Serial: other, At: thisUpdate}}, thisUpdate, nextUpdate, 1)
	if err != nil {
		t.Fatal(err)
	}
	after, err := f.ca.CRL([]RevokedSerial{{Serial: f.bob.Certificate.SerialNumber, At: thisUpdate}}, thisUpdate, nextUpdate, 1)
	if err != nil {
		t.Fatal(err)
	}
	if len(before) != len(after) {
		t.Fatalf("the CRLs must have one size (%d and %d bytes)", len(before), len(after))
	}
	dir := t.TempDir()
	if _, err := WriteCADir(dir, f.ca.Certificate, before); err != nil {
		t.Fatal(err)
	}
	hash, err := SubjectHash(f.ca.Certificate.RawSubject)
	if err != nil {
		t.Fatal(err)
	}
	crlFile := filepath.Join(dir, hash+".r0")
	tick := now.Truncate(time.Second)
	if err := os.Chtimes(crlFile, tick, tick); err != nil {
		t.Fatal(err)
	}
	trust, err := LoadTrust(dir)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := trust.Verify(f.bob.FullChain(), now); err != nil {
		t.Fatalf("bob is refused before his revocation: %v", err)
	}

	tmp := filepath.Join(dir, ".new.r0")
	if err := os.WriteFile(tmp, CRLPEM(after), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Chtimes(tmp, tick, tick); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(tmp, crlFile); err != nil {
		t.Fatal(err)
	}
	trust.lastCheck.Store(time.Now().Add(-2 * time.Second).UnixNano()) // a second later
	trust.MaybeReload()
	if _, err := trust.Verify(f.bob.FullChain(), now); !errors.Is(err, ErrRevoked) {
		t.Fatalf("after the CRL revoking bob replaced the old one (same size, same mtime), bob's certificate: %v, want it revoked", err)
	}
}
