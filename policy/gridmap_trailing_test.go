package policy

import (
	"strings"
	"testing"
)

// TestGridMapIgnoresTextAfterTheAccounts: Globus reads a line's accounts as the first
// whitespace-delimited field after the DN (comma-separated) and ignores what follows,
// so a grid-mapfile it takes must not be refused whole here.
func TestGridMapIgnoresTextAfterTheAccounts(t *testing.T) {
	gm, err := ParseGridMap(strings.NewReader(`"/O=Grid/CN=John Doe" jdoe extra
"/O=Grid/CN=Ann Roe" aroe,ann	note
/O=Grid/CN=bob bob, other
`), "grid-mapfile")
	if err != nil {
		t.Fatalf("a grid-mapfile Globus takes: %v", err)
	}
	for dn, want := range map[string]string{"/O=Grid/CN=John Doe": "jdoe", "/O=Grid/CN=Ann Roe": "aroe", "/O=Grid/CN=bob": "bob"} {
		if got := gm.Account(dn); got != want {
			t.Errorf("%s maps to %q, want %q", dn, got, want)
		}
	}
}
