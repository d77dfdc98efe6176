package policy

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/asn1"
	"math/big"
	"strings"
	"testing"

	"github.com/vws-grid/vws/internal/identity"
)

// Acting as a host registers workspaces for any owner: "*" does not grant it, and
// the grid-mapfile-only policy grants it to Globus-style host certificates alone.
func TestHostIsNeverImplied(t *testing.T) {
	user := identity.Identity{DN: "/O=Grid/CN=alice"}
	host := identity.Identity{DN: "/O=Grid/CN=host/node1.example.org"}
	rs, err := Parse(strings.NewReader("allow * *\n"), "rules")
	if err != nil {
		t.Fatal(err)
	}
	if d := rs.Decide(user, Host, Resource{}); d.Allowed {
		t.Errorf(`"allow * *" made a user a host (%s)`, d.Rule)
	}
	if d := rs.Decide(user, Create, Resource{}); !d.Allowed {
		t.Errorf(`"allow * *" does not allow create: %s`, d.Rule)
	}
	rs, err = Parse(strings.NewReader("allow host /O=Grid/CN=host/*\nallow * *\n"), "rules")
	if err != nil {
		t.Fatal(err)
	}
	if !rs.Decide(host, Host, Resource{}).Allowed || rs.Decide(user, Host, Resource{}).Allowed {
		t.Error("a host rule naming host certificates does not decide alone")
	}
	if !AllowAll.Decide(user, Host, Resource{}).Allowed {
		t.Error("the built-in allow-all policy (no rules file) refuses host")
	}

	gm, err := ParseGridMap(strings.NewReader(`"/O=Grid/CN=alice" alice`+"\n"), "grid-mapfile")
	if err != nil {
		t.Fatal(err)
	}
	only := gridMapOnly(gm)
	if only.Decide(user, Host, Resource{}).Allowed {
		t.Error("the grid-mapfile policy made a mapped user a host")
	}
	if !only.Decide(host, Host, Resource{}).Allowed || !only.Decide(user, Create, Resource{}).Allowed {
		t.Error("the grid-mapfile policy refuses a host certificate as host, or a mapped user create")
	}
}

// A server with callers authenticated and no rules file: users keep to their own
// workspaces, hosts are host certificates, nobody is admin, anonymous is refused.
func TestAuthenticatedDefault(t *testing.T) {
	al := identity.Identity{DN: "/O=Grid/CN=alice"}
	bo := identity.Identity{DN: "/O=Grid/CN=bob"}
	host := identity.Identity{DN: "/O=Grid/CN=host/node1"}
	ws := Resource{Key: "k", Owner: al.DN}
	rs := Authenticated
	for _, tc := range []struct {
		who  identity.Identity
		op   Operation
		res  Resource
		want bool
	}{
		{al, Create, Resource{}, true}, {al, Manage, ws, true}, {bo, Manage, ws, false}, {bo, Inspect, ws, false},
		{al, Admin, Resource{}, false}, {al, Host, Resource{}, false}, {host, Host, Resource{}, true},
		{identity.Anonymous, Create, Resource{}, false},
	} {
		if got := rs.Decide(tc.who, tc.op, tc.res).Allowed; got != tc.want {
			t.Errorf("%s %s %v: allowed=%v, want %v", tc.who, tc.op, tc.res, got, tc.want)
		}
	}
	e, err := NewEngine("", "", nil)
	if err != nil {
		t.Fatal(err)
	}
	e.UseDefault(Authenticated)
	if e.Rules() != Authenticated {
		t.Error("UseDefault did not take for an engine without files")
	}
}

// certWithCN is a certificate under /O=Grid/OU=vws with common name cn, as a CA that
// does not check names would issue it (signing does not matter to policy).
func certWithCN(t *testing.T, cn string) *x509.Certificate {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	subject, err := asn1.Marshal(pkix.RDNSequence{
		{{Type: asn1.ObjectIdentifier{2, 5, 4, 10}, Value: "Grid"}},
		{{Type: asn1.ObjectIdentifier{2, 5, 4, 11}, Value: "vws"}},
		{{Type: asn1.ObjectIdentifier{2, 5, 4, 3}, Value: cn}},
	})
	if err != nil {
		t.Fatal(err)
	}
	der, err := x509.CreateCertificate(rand.Reader, &x509.Certificate{SerialNumber: big.NewInt(1), RawSubject: subject}, &x509.Certificate{SerialNumber: big.NewInt(2)}, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	c, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// A user certificate whose CN spells "/CN=host/…" is not a host under the built-in
// policies: its one-line DN does not read as a host's.
func TestCNSpellingAHostIsNoHost(t *testing.T) {
	mallory := identity.FromChain([]*x509.Certificate{certWithCN(t, "mallory/CN=host/evil")})
	host := identity.FromChain([]*x509.Certificate{certWithCN(t, "host/node1.example.org")})
	if host.DN != "/O=Grid/OU=vws/CN=host/node1.example.org" {
		t.Fatalf("host DN %s", host.DN)
	}
	gm, err := ParseGridMap(strings.NewReader(`"/O=Grid/OU=vws/CN=alice" alice`+"\n"), "grid-mapfile")
	if err != nil {
		t.Fatal(err)
	}
	for _, rs := range []*Rules{Authenticated, gridMapOnly(gm)} {
		if d := rs.Decide(mallory, Host, Resource{}); d.Allowed {
			t.Errorf("%s: %s is a host (%s)", rs.source, mallory.DN, d.Rule)
		}
		if d := rs.Decide(host, Host, Resource{}); !d.Allowed {
			t.Errorf("%s: %s is no host (%s)", rs.source, host.DN, d.Rule)
		}
	}
}
