package policy

import (
	"crypto/x509/pkix"
	"encoding/asn1"
	"strings"
	"testing"

	"github.com/vws-grid/vws/internal/identity"
)

// TestEmailAttributeSpellings: OpenSSL writes a certificate's email attribute as
// "/emailAddress=" (vws too), older OpenSSL and many grid-mapfiles and rules as
// "/Email=" or "/E=". Globus takes the three for one attribute: a grid-mapfile line
// copied from an old tool must map the user, and a deny rule written so must deny.
func TestEmailAttributeSpellings(t *testing.T) {
	name := pkix.Name{Names: []pkix.AttributeTypeAndValue{
		{Type: asn1.ObjectIdentifier{2, 5, 4, 10}, Value: "Grid"},
		{Type: asn1.ObjectIdentifier{2, 5, 4, 3}, Value: "Jane Doe"},
		{Type: asn1.ObjectIdentifier{1, 2, 840, 113549, 1, 9, 1}, Value: "jane@example.org"},
	}}
	jane := identity.Identity{DN: identity.OneLineDN(name)} // as vws renders her certificate
	if jane.DN != "/O=Grid/CN=Jane Doe/emailAddress=jane@example.org" {
		t.Fatalf("the certificate renders as %q", jane.DN)
	}
	for _, spelled := range []string{"emailAddress", "Email", "E"} {
		gm, err := ParseGridMap(strings.NewReader(`"/O=Grid/CN=Jane Doe/`+spelled+`=jane@example.org" jane`+"\n"), "grid-mapfile")
		if err != nil {
			t.Fatal(err)
		}
		if got := gm.Account(jane.DN); got != "jane" {
			t.Errorf("grid-mapfile line with /%s=: %s maps to %q, want jane", spelled, jane.DN, got)
		}
		rs, err := Parse(strings.NewReader("deny * /O=Grid/CN=Jane Doe/"+spelled+"=*\nallow * *\n"), "rules")
		if err != nil {
			t.Fatal(err)
		}
		if d := rs.Decide(jane, Create, Resource{}); d.Allowed {
			t.Errorf("deny rule with /%s=: %s may create (%s)", spelled, jane.DN, d.Rule)
		}
	}
	// The other way round: a DN given with /Email= is the same person.
	gm, err := ParseGridMap(strings.NewReader(`"/O=Grid/CN=Jane Doe/emailAddress=jane@example.org" jane`+"\n"), "grid-mapfile")
	if err != nil {
		t.Fatal(err)
	}
	if got := gm.Account("/O=Grid/CN=Jane Doe/Email=jane@example.org"); got != "jane" {
		t.Errorf("/Email= against a grid-mapfile's /emailAddress=: maps to %q, want jane", got)
	}
}

// TestEmailAttributeSpellingsInOwnerShare: a share rule's owner: selector is a DN
// glob too, and one written with /Email= or /E= must select the workspaces of the
// certificate vws renders with /emailAddress=.
func TestEmailAttributeSpellingsInOwnerShare(t *testing.T) {
	owner := "/O=Grid/CN=Jane/emailAddress=jane@example.org"
	ws := Resource{Key: "ws-1", Name: "data", Owner: owner}
	for _, spelled := range []string{"emailAddress", "Email", "E"} {
		rs, err := Parse(strings.NewReader("allow inspect *\nshare inspect owner:/O=Grid/CN=Jane/"+spelled+"=jane@example.org /O=Grid/CN=Bob\n"), "rules")
		if err != nil {
			t.Fatal(err)
		}
		if d := rs.Decide(identity.Identity{DN: "/O=Grid/CN=Bob"}, Inspect, ws); !d.Allowed {
			t.Errorf("share owner: with /%s=: Bob may not inspect Jane's workspace (%s)", spelled, d.Rule)
		}
	}
}

// TestOwnerShareOfADNWithSpaces: grid DNs hold spaces (CN=Jane Doe); an owner:
// selector naming one is read up to the subject, not cut at the first space (which
// refused the line, blaming a subject "Doe …").
func TestOwnerShareOfADNWithSpaces(t *testing.T) {
	for _, subject := range []string{"/O=Grid/CN=Bob Smith", "group:friends", "*"} {
		rules := "allow inspect *\ngroup friends /O=Grid/CN=Bob Smith\nshare inspect owner:/O=Grid/CN=Jane Q. Doe/emailAddress=jane@example.org " + subject + "\n"
		rs, err := Parse(strings.NewReader(rules), "rules")
		if err != nil {
			t.Errorf("subject %s: %v", subject, err)
			continue
		}
		jane := Resource{Owner: "/O=Grid/CN=Jane Q. Doe/emailAddress=jane@example.org", Key: "k"}
		if d := rs.Decide(identity.Identity{DN: "/O=Grid/CN=Bob Smith"}, Inspect, jane); !d.Allowed {
			t.Errorf("subject %s: Bob may not inspect Jane's workspace (%s)", subject, d.Rule)
		}
		other := Resource{Owner: "/O=Grid/CN=Jane Q", Key: "k2"}
		if d := rs.Decide(identity.Identity{DN: "/O=Grid/CN=Bob Smith"}, Inspect, other); d.Allowed {
			t.Errorf("subject %s: the share of Jane Q. Doe's workspaces reached Jane Q's (%s)", subject, d.Rule)
		}
	}
	if _, err := Parse(strings.NewReader("share inspect owner:/O=Grid/CN=Jane Doe\n"), "rules"); err == nil {
		t.Error("a share without a subject parsed")
	}
}
