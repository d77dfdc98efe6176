package policy

import (
	"crypto/x509/pkix"
	"strings"
	"testing"

	"github.com/vws-grid/vws/internal/identity"
)

// A DN outside printable ASCII is written in a grid-mapfile as OpenSSL's one-line
// form writes it (grid-cert-info, grid-mapfile-add-entry, edg-mkgridmap): each such
// byte as \xHH, which Globus decodes. The line must map the certificate it names.
func TestGridMapHexEscapes(t *testing.T) {
	dn := identity.OneLineDN(pkix.Name{Organization: []string{"Grid"}, CommonName: "José García"})
	nospace := identity.OneLineDN(pkix.Name{Organization: []string{"Grid"}, CommonName: "Jürgen"})
	gm, err := ParseGridMap(strings.NewReader(`"/O=Grid/CN=Jos\xC3\xA9 Garc\xc3\xada" jose
/O=Grid/CN=J\xC3\xBCrgen juergen
`), "grid-mapfile")
	if err != nil {
		t.Fatal(err)
	}
	if got := gm.Account(dn); got != "jose" {
		t.Errorf("Account(%q) = %q, want jose (the line wrote é and í as \\xC3\\xA9, \\xc3\\xad)", dn, got)
	}
	if got := gm.Account(nospace); got != "juergen" {
		t.Errorf("Account(%q) = %q, want juergen (an unquoted DN with \\xC3\\xBC)", nospace, got)
	}
}
