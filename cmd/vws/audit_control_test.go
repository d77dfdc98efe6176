package main

import (
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/vws-grid/vws/internal/authz"
	"github.com/vws-grid/vws/policy"
)

type auditRules struct{ rs *policy.Rules }

func (r auditRules) Rules() *policy.Rules { return r.rs }

// TestTheAuditTableShowsControlCharactersEscaped: the path of a plain-HTTP request
// (the image pool here) is recorded as the resource of its decision, and an anonymous
// caller chooses it freely: %1b and %08 decode to ESC and backspace. `vws audit`
// prints the table for a terminal and replaces only \t, \n and \r, so the caller's
// escape sequences reach the administrator's terminal: "ESC[1A ESC[2K" moves up and
// erases the record above (hiding it), backspaces overwrite the columns before, so a
// denied request can be made to read as someone else's.
func TestTheAuditTableShowsControlCharactersEscaped(t *testing.T) {
	dir, db, l := openAudit(t)
	rs, err := policy.Parse(strings.NewReader("allow admin /O=Grid/OU=vws/CN=admin\n"), "rules.conf")
	if err != nil {
		t.Fatal(err)
	}
	a := &authz.Authorizer{Policy: auditRules{rs}, Audit: l}
	h := a.HTTP("images", func(*http.Request) []policy.Operation { return []policy.Operation{policy.Admin} },
		http.HandlerFunc(func(http.ResponseWriter, *http.Request) { t.Error("handler reached") }))
	req := httptest.NewRequest(http.MethodPut, "/images/x%1b[1A%1b[2K%08%08%08%08", nil)
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, req)
	if rec.Code != http.StatusForbidden {
		t.Fatalf("status %d", rec.Code)
	}
	db.Close()

	out, err := auditCLI(t, "--data", dir)
	if err != nil {
		t.Fatal(err)
	}
	for i := 0; i < len(out); i++ {
		if c := out[i]; (c < 0x20 && c != '\n') || c == 0x7f {
			t.Fatalf("vws audit printed control character %#x at byte %d of its table:\n%q", c, i, out)
		}
	}
	if !strings.Contains(out, `/images/x\x1b[1A\x1b[2K\x08`) {
		t.Fatalf("the path is not shown with its control characters escaped:\n%s", out)
	}
}
