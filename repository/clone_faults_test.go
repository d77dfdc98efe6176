package repository

import (
	"context"
	"errors"
	"regexp"
	"testing"
	"time"

	"github.com/vws-grid/vws/internal/container"
	"github.com/vws-grid/vws/internal/identity"
	"github.com/vws-grid/vws/internal/wsrf"
	"github.com/vws-grid/vws/wsdl"
)

// cloneFaults are the fault names the Clone operation of a dialect's WSDL declares.
func cloneFaults(t *testing.T, file string) []string {
	t.Helper()
	b, err := wsdl.FS.ReadFile(file)
	if err != nil {
		t.Fatal(err)
	}
	op := regexp.MustCompile(`(?s)<wsdl:portType.*?<wsdl:operation name="Clone">(.*?)</wsdl:operation>`).FindSubmatch(b)
	if op == nil {
		t.Fatalf("%s: no Clone operation in the portType", file)
	}
	var out []string
	for _, m := range regexp.MustCompile(`<wsdl:fault name="([A-Za-z]+)"`).FindAllSubmatch(op[1], -1) {
		out = append(out, string(m[1]))
	}
	return out
}

// TestCloneFaultsAreDeclared: the WSDL is the source of truth for an operation's
// faults, and a client generated from it (Axis, zeep) knows a fault type only if the
// operation declares it. Clone refuses an invalid or taken name as Create does, and a
// lifetime beyond the maximum under --lifetime-policy refuse: each answer must be one
// of Clone's declared faults (in both dialects), so the client is told what it was.
func TestCloneFaultsAreDeclared(t *testing.T) {
	needQemu(t)
	f := newFixture(t)
	src := f.mustCreateFor(alice, "src", 0)
	ctx := identity.With(context.Background(), alice)
	clamp := f.r.clone(wsrf.LifetimePolicy{Default: 24 * time.Hour, Maximum: 30 * 24 * time.Hour})
	refuse := f.r.clone(wsrf.LifetimePolicy{Default: 24 * time.Hour, Maximum: 30 * 24 * time.Hour, Refuse: true})
	for _, file := range []string{"wsrf12/WorkspaceService.wsdl", "gt4/WorkspaceService.wsdl"} {
		faults := cloneFaults(t, file)
		for _, c := range []struct {
			name     string
			h        container.Handler
			children string
		}{
			{"an invalid name", clamp, `<vw:Name>../etc</vw:Name>`},
			{"a taken name", clamp, `<vw:Name>src</vw:Name>`},
			{"a year's lifetime under the refuse policy", refuse, `<vw:Name>long</vw:Name><vw:RequestedLifetime>P365D</vw:RequestedLifetime>`},
		} {
			_, err := c.h(ctx, cloneRequest(t, src, c.children))
			if err == nil {
				t.Fatalf("precondition: Clone with %s was made", c.name)
			}
			ok := false
			for _, fault := range faults {
				if s := container.SentinelOf(fault); s != nil && errors.Is(err, s) {
					ok = true
				}
			}
			if !ok {
				t.Errorf("%s: Clone with %s fails with %v, which is none of Clone's declared faults %v", file, c.name, err, faults)
			}
		}
	}
}
