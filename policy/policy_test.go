package policy

import (
	"context"
	"errors"
	"strings"
	"testing"

	"github.com/vws-grid/vws/internal/errdefs"
	"github.com/vws-grid/vws/internal/identity"
)

func TestDecide(t *testing.T) {
	rs, err := Parse(strings.NewReader(`
# site rules
deny  *       /O=Grid/OU=Banned/*
allow create  /O=Grid/OU=Example/*
allow inspect *
allow inspect anonymous
`), "rules")
	if err != nil {
		t.Fatal(err)
	}
	alice := identity.Identity{DN: "/O=Grid/OU=Example/CN=Alice Smith"}
	bob := identity.Identity{DN: "/O=Grid/OU=Other/CN=Bob"}
	eve := identity.Identity{DN: "/O=Grid/OU=Banned/CN=Eve"}
	cases := []struct {
		who  identity.Identity
		op   Operation
		want bool
		rule string
	}{
		{alice, Create, true, "rules:4"},
		{alice, Inspect, true, "rules:5"},
		{alice, Manage, false, "no rule"},
		{bob, Create, false, "no rule"},
		{bob, Inspect, true, "rules:5"},
		{eve, Inspect, false, "rules:3"},
		{identity.Anonymous, Inspect, true, "rules:6"},
		{identity.Anonymous, Create, false, "no rule"},
	}
	for _, c := range cases {
		d := rs.Decide(c.who, c.op)
		if d.Allowed != c.want || !strings.Contains(d.Rule, c.rule) {
			t.Errorf("%s %s: got %+v, want %v by %s", c.who, c.op, d, c.want, c.rule)
		}
	}
	_, err = rs.Authorize(identity.With(context.Background(), bob), Create)
	if !errors.Is(err, errdefs.ErrAuthorization) || !strings.Contains(err.Error(), "/O=Grid/OU=Other/CN=Bob") {
		t.Fatalf("Authorize: %v", err)
	}
}

func TestParseErrors(t *testing.T) {
	for _, in := range []string{"permit create *", "allow fly *", "allow create"} {
		if _, err := Parse(strings.NewReader(in), "f"); err == nil {
			t.Errorf("%q accepted", in)
		}
	}
}

func TestGlob(t *testing.T) {
	for _, c := range []struct {
		p, s string
		want bool
	}{
		{"*", "/O=Grid/CN=A", true}, {"/O=Grid/*", "/O=Grid/OU=X/CN=A", true}, {"/O=Grid/*/CN=A", "/O=Grid/OU=X/CN=A", true},
		{"/O=Grid/*", "/O=Other/CN=A", false}, {"/O=Grid/CN=A", "/O=Grid/CN=A", true}, {"/O=Grid/CN=A", "/O=Grid/CN=AB", false},
		{"*B", "/CN=AB", true}, {"*B", "/CN=BA", false},
	} {
		if got := glob(c.p, c.s); got != c.want {
			t.Errorf("glob(%q, %q) = %v", c.p, c.s, got)
		}
	}
}
