package main

import (
	"context"
	"crypto/x509"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func TestAdvertisedURL(t *testing.T) {
	tcp := func(s string) net.Addr { a, _ := net.ResolveTCPAddr("tcp", s); return a }
	cert := &x509.Certificate{DNSNames: []string{"node7.example.org"}, IPAddresses: []net.IP{net.ParseIP("10.0.0.7")}}
	ipOnly := &x509.Certificate{IPAddresses: []net.IP{net.ParseIP("10.0.0.7")}}
	for _, tc := range []struct {
		scheme string
		addr   net.Addr
		leaf   *x509.Certificate
		want   string
	}{
		{"https", tcp("127.0.0.1:8443"), cert, "https://127.0.0.1:8443"}, // a specific address is reachable as is
		{"https", tcp("[::]:8443"), cert, "https://node7.example.org:8443"},
		{"https", tcp("0.0.0.0:8443"), ipOnly, "https://10.0.0.7:8443"},
		{"http", tcp("10.1.2.3:8080"), nil, "http://10.1.2.3:8080"},
	} {
		if got := advertisedURL(tc.scheme, tc.addr, tc.leaf); got != tc.want {
			t.Errorf("advertisedURL(%s, %v) = %s, want %s", tc.scheme, tc.addr, got, tc.want)
		}
	}
}

// TestServeManagerNeedsItsRepositories: a manager without the repository role is
// told to name the Repositories it deploys from, and a URL that is none is refused.
func TestServeManagerNeedsItsRepositories(t *testing.T) {
	base := []string{"serve", "--insecure", "--listen", "127.0.0.1:0", "--role", "manager", "--libvirt-uri", "test:///default"}
	_, err := runCLI(t, append(base, "--data", t.TempDir())...)
	if err == nil || !strings.Contains(err.Error(), "--repository URL") {
		t.Fatalf("a manager with no repository: %v", err)
	}
	_, err = runCLI(t, append(base, "--data", t.TempDir(), "--repository", "repo.example.org:8443")...)
	if err == nil || !strings.Contains(err.Error(), "repo.example.org:8443") || !strings.Contains(err.Error(), "base URL") {
		t.Fatalf("a repository that is no URL: %v", err)
	}
}

// Serve flag values that name nothing vws knows, or no bound, are refused before
// anything is read or started, saying what is allowed.
func TestServeRefusesUnknownFlagValues(t *testing.T) {
	data := filepath.Join(t.TempDir(), "data")
	base := []string{"serve", "--insecure", "--listen", "127.0.0.1:0", "--data", data, "--libvirt-uri", "test:///default"}
	for _, tc := range []struct {
		args     []string
		mentions []string
	}{
		{[]string{"--domain-type", "kvmm"}, []string{`--domain-type "kvmm" is not valid`, "auto, kvm, qemu or xen"}},
		{[]string{"--lifetime-policy", "cut"}, []string{`--lifetime-policy "cut" is not valid`, "clamp or refuse"}},
		{[]string{"--log-level", "loud"}, []string{`--log-level "loud" is not valid`, "debug, info, warn or error"}},
		{[]string{"--role", "factory,repo"}, []string{`--role "repo" is not valid`, "factory, repository or manager"}},
		{[]string{"--listen", "18352"}, []string{"--listen takes host:port, e.g. 127.0.0.1:18352 or :18352"}},
		{[]string{"--memory-reserve", "lots"}, []string{`--memory-reserve "lots" is not a size`, "e.g. 512MiB", "0: no account"}},
		// Checked before the TLS credentials are looked for.
		{[]string{"--insecure=false", "--domain-type", "kvmm"}, []string{`--domain-type "kvmm" is not valid`}},
		// Zero or less: the services would read it as their default (30 s, 2 s,
		// 1 MiB) and run with that, without a word.
		{[]string{"--grace", "0s"}, []string{"--grace 0s", "e.g. 30s"}},
		{[]string{"--grace", "-5s"}, []string{"--grace -5s", "e.g. 30s"}},
		{[]string{"--reconcile-every", "0s"}, []string{"--reconcile-every 0s", "e.g. 2s"}},
		{[]string{"--max-body", "0"}, []string{"--max-body 0", "in bytes"}},
		{[]string{"--max-body", "-1"}, []string{"--max-body -1", "in bytes"}},
		{[]string{"--parse-budget", "0"}, []string{"--parse-budget 0", "e.g. 8388608"}},
	} {
		t.Run(strings.Join(tc.args, " "), func(t *testing.T) {
			// A server that starts anyway is stopped, and fails the test.
			ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
			defer cancel()
			r := vwsRun(t, ctx, append(base, tc.args...)...)
			wantError(t, r, tc.mentions...)
			if _, err := os.Stat(data); err == nil {
				t.Errorf("%s was created", data)
			}
		})
	}
}

// vws serve --insecure --ca DIR is refused: plain HTTP takes no CAs, and the server
// ran without them, verifying neither signed requests nor manifest signers against
// them, without a word.
func TestServeInsecureRefusesCAs(t *testing.T) {
	ca, _ := pkiCA(t)
	data := filepath.Join(t.TempDir(), "data")
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
	defer cancel()
	r := vwsRun(t, ctx, "serve", "--insecure", "--ca", ca, "--listen", "127.0.0.1:0", "--data", data, "--libvirt-uri", "test:///default")
	wantError(t, r, "--insecure", "--ca")
	if _, err := os.Stat(data); err == nil {
		t.Errorf("%s was created", data)
	}
}

// vws serve on a data directory that holds workspaces' and images' files, with a
// database that holds no record at all (a mistyped --database, a lost vws.db), is
// refused: its start-up sweeps removed every one of those files, as records-less
// leftovers.
func TestServeRefusesANewDatabaseBesideFilesOfRecords(t *testing.T) {
	data := t.TempDir()
	overlay := filepath.Join(data, "workspaces", "ws-1", "overlay.qcow2")
	blob := filepath.Join(data, "images", "sha256-"+strings.Repeat("ab", 32))
	for _, f := range []string{overlay, blob} {
		if err := os.MkdirAll(filepath.Dir(f), 0o700); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(f, []byte("a user's work"), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
	defer cancel()
	r := vwsRun(t, ctx, "serve", "--insecure", "--role", "factory,repository", "--listen", "127.0.0.1:0", "--data", data)
	for _, f := range []string{overlay, blob} {
		if _, err := os.Stat(f); err != nil {
			t.Errorf("the server removed %s: %v", f, err)
		}
	}
	wantError(t, r, "holds no record", "--database")
}

// A flag of a role the server does not run is refused: --role factory,repository
// --host-name node7 (or --repository, --libvirt-uri, --bridge…) configures no manager, and
// --role manager --notify-networks no repository; the server started without a word
// about the setting it ignored.
func TestServeRefusesFlagsOfRolesItDoesNotRun(t *testing.T) {
	data := filepath.Join(t.TempDir(), "data")
	base := []string{"serve", "--insecure", "--listen", "127.0.0.1:0", "--data", data}
	for _, tc := range []struct {
		args     []string
		mentions []string
	}{
		{[]string{"--role", "factory,repository", "--host-name", "node7"}, []string{"--host-name", "manager role"}},
		{[]string{"--role", "repository", "--repository", "http://repo.example.org:8080"}, []string{"--repository", "manager role"}},
		{[]string{"--role", "manager", "--repository", "http://127.0.0.1:1", "--libvirt-uri", "test:///default", "--notify-networks", "10.0.0.0/8"},
			[]string{"--notify-networks", "repository role"}},
		{[]string{"--role", "factory,repository", "--bridge", "br-grid"}, []string{"--bridge", "manager role"}},
		// Workspaces' lifetimes are the Factory's and the Repository's (Create, Clone,
		// SetTerminationTime): a manager alone has none to bound.
		{[]string{"--role", "manager", "--repository", "http://127.0.0.1:1", "--libvirt-uri", "test:///default", "--max-lifetime", "1440h"},
			[]string{"--max-lifetime", "factory or repository role"}},
		{[]string{"--role", "manager", "--repository", "http://127.0.0.1:1", "--libvirt-uri", "test:///default", "--default-lifetime", "1h"},
			[]string{"--default-lifetime", "factory or repository role"}},
		{[]string{"--role", "manager", "--repository", "http://127.0.0.1:1", "--libvirt-uri", "test:///default", "--lifetime-policy", "refuse"},
			[]string{"--lifetime-policy", "factory or repository role"}},
	} {
		t.Run(strings.Join(tc.args, " "), func(t *testing.T) {
			ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
			defer cancel()
			r := vwsRun(t, ctx, append(base, tc.args...)...)
			wantError(t, r, tc.mentions...)
		})
	}
}

// TestServeRefusesABridgeNoInterfaceIsNamed: --bridge takes a Linux interface name
// (1 to 15 characters, no '/'); another is refused at start, saying so, rather than
// published as a bridge no guest can join.
func TestServeRefusesABridgeNoInterfaceIsNamed(t *testing.T) {
	data := filepath.Join(t.TempDir(), "data")
	for _, bad := range []string{"../br0", "br/0", "a-bridge-name-too-long", ""} {
		t.Run(bad, func(t *testing.T) {
			ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
			defer cancel()
			r := vwsRun(t, ctx, "serve", "--insecure", "--listen", "127.0.0.1:0", "--data", data, "--role", "manager",
				"--repository", "http://127.0.0.1:1", "--libvirt-uri", "test:///default", "--bridge", "br-grid", "--bridge", bad)
			wantError(t, r, "--bridge", "is not a network interface name")
		})
	}
}

// The Factory registers every workspace it creates with the Repository of its own
// server, and no flag names another: --role factory without the repository role
// started a server whose every Create failed (HTTP 404 from itself). It is refused at
// start, saying what to give.
func TestServeRefusesAFactoryWithoutItsRepository(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
	defer cancel()
	r := vwsRun(t, ctx, "serve", "--insecure", "--listen", "127.0.0.1:0", "--data", t.TempDir(), "--role", "factory")
	wantError(t, r, "--role factory", "repository role", "--role factory,repository")
}
