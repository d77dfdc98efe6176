//go:build linux

package main

import (
	"context"
	"fmt"
	"io"
	"log"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/vws-grid/vws/internal/identity"
	"github.com/vws-grid/vws/internal/pki"
	"github.com/vws-grid/vws/internal/tlsutil"
)

// TestDeployProgressUsesTheCLICredentials: the staging progress a deploy draws on a
// terminal is asked of the manager as every other call is, with --cert and --ca:
// over mutual TLS a client without them is refused (and one trusting the system's
// roots rather than the site's CAs never reaches the manager), so the bar never
// showed.
func TestDeployProgressUsesTheCLICredentials(t *testing.T) {
	ca, err := pki.NewCA(pki.CAOptions{})
	if err != nil {
		t.Fatal(err)
	}
	host, err := ca.IssueHost(pki.HostOptions{Name: "127.0.0.1", KeyType: pki.KeyTypeECDSA})
	if err != nil {
		t.Fatal(err)
	}
	alice, err := ca.IssueUser(pki.UserOptions{CN: "alice", KeyType: pki.KeyTypeECDSA})
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	caDir, hostCert, hostKey, proxy := filepath.Join(dir, "certificates"), filepath.Join(dir, "host-cert.pem"), filepath.Join(dir, "host-key.pem"), filepath.Join(dir, "x509up")
	if _, err := pki.WriteCADir(caDir, ca.Certificate, nil); err != nil {
		t.Fatal(err)
	}
	if err := pki.WriteCredential(hostCert, hostKey, host); err != nil {
		t.Fatal(err)
	}
	if err := pki.WriteProxyFile(proxy, alice); err != nil {
		t.Fatal(err)
	}
	cfg, err := tlsutil.Server(hostCert, hostKey, caDir)
	if err != nil {
		t.Fatal(err)
	}
	asked := make(chan string, 100)
	srv := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		asked <- identity.FromRequest(r).String()
		fmt.Fprint(w, `{"done":512,"total":1024}`)
	}))
	srv.TLS = cfg
	srv.Config.ErrorLog = log.New(io.Discard, "", 0) // the refused handshakes
	srv.StartTLS()
	defer srv.Close()

	tlsFlags.cert, tlsFlags.key, tlsFlags.ca = proxy, "", caDir
	*cliTransport = lazyTransport{}
	defer func() {
		tlsFlags.cert, tlsFlags.ca = "", ""
		*cliTransport = lazyTransport{}
	}()

	// The bar is drawn on a terminal only: stderr is a pseudo-terminal here.
	ptm, pts := openPTY(t)
	go io.Copy(io.Discard, ptm)
	stderr := os.Stderr
	os.Stderr = pts
	defer func() { os.Stderr = stderr }()

	stop := showStaging(context.Background(), srv.URL+managerPath, "ws-1")
	defer stop()
	select {
	case who := <-asked:
		if who != "/O=Grid/OU=vws/CN=alice" {
			t.Fatalf("the manager saw the progress asked by %q, not by the --cert user", who)
		}
	case <-time.After(3 * time.Second):
		t.Fatal("the manager was never asked for the staging progress over mutual TLS with --cert and --ca")
	}
}

// openPTY opens a pseudo-terminal pair, closed when t ends.
func openPTY(t *testing.T) (ptm, pts *os.File) {
	t.Helper()
	ptm, err := os.OpenFile("/dev/ptmx", os.O_RDWR|syscall.O_NOCTTY, 0)
	if err != nil {
		t.Skipf("no pseudo-terminal: %v", err)
	}
	t.Cleanup(func() { ptm.Close() })
	n, err := unix.IoctlGetInt(int(ptm.Fd()), unix.TIOCGPTN)
	if err != nil {
		t.Skipf("no pseudo-terminal: %v", err)
	}
	if err := unix.IoctlSetPointerInt(int(ptm.Fd()), unix.TIOCSPTLCK, 0); err != nil {
		t.Skipf("no pseudo-terminal: %v", err)
	}
	pts, err = os.OpenFile(fmt.Sprintf("/dev/pts/%d", n), os.O_RDWR|syscall.O_NOCTTY, 0)
	if err != nil {
		t.Skipf("no pseudo-terminal: %v", err)
	}
	t.Cleanup(func() { pts.Close() })
	return ptm, pts
}
