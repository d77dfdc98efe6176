package repository

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"

	"github.com/vws-grid/vws/internal/errdefs"
	"github.com/vws-grid/vws/internal/identity"
)

// TestAnnounceHostRefusalsAudited: every refused announcement is audited as denied,
// as the certificate-name refusal is: a host name or manager address another
// identity holds, and one name too many for an identity.
func TestAnnounceHostRefusalsAudited(t *testing.T) {
	f := newFixture(t)
	node7 := identity.With(context.Background(), identity.Identity{DN: "/O=Grid/CN=host/node7"})
	if _, err := f.r.announceHost(node7, announcement(t, goodHost, "PT3M")); err != nil {
		t.Fatal(err)
	}
	rec := f.recordAudit()
	node8 := identity.With(context.Background(), identity.Identity{DN: "/O=Grid/CN=host/node8"})
	ownAddress := strings.Replace(goodHost, "https://node7:8443", "https://node8:8443", 1)
	if _, err := f.r.announceHost(node8, announcement(t, ownAddress, "PT3M")); !errors.Is(err, errdefs.ErrAuthorization) {
		t.Fatalf("node8 announcing node7's name: %v, want an authorization fault", err)
	}
	wantAudited(t, "a host name another identity announces", rec.take(), []string{"/O=Grid/CN=host/node8 announce-host node7 denied", `host name "node7" is announced by /O=Grid/CN=host/node7`})
	ownName := strings.Replace(goodHost, ">node7<", ">node8<", 1)
	if _, err := f.r.announceHost(node8, announcement(t, ownName, "PT3M")); !errors.Is(err, errdefs.ErrAuthorization) {
		t.Fatalf("node8 announcing node7's manager address: %v, want an authorization fault", err)
	}
	wantAudited(t, "a manager address another identity announces", rec.take(), []string{"/O=Grid/CN=host/node8 announce-host node8 denied", "manager address https://node7:8443"})

	many := identity.With(context.Background(), identity.Identity{DN: "/O=Grid/CN=host/many"})
	named := func(i int) string {
		n := fmt.Sprintf("m%d", i)
		return strings.ReplaceAll(goodHost, "node7", n)
	}
	for i := range maxHostNamesPerIdentity {
		if _, err := f.r.announceHost(many, announcement(t, named(i), "PT3M")); err != nil {
			t.Fatalf("name %d: %v", i, err)
		}
	}
	rec.take()
	if _, err := f.r.announceHost(many, announcement(t, named(maxHostNamesPerIdentity), "PT3M")); !errors.Is(err, errdefs.ErrAuthorization) {
		t.Fatalf("one name too many: %v, want an authorization fault", err)
	}
	wantAudited(t, "one host name too many", rec.take(), []string{fmt.Sprintf("/O=Grid/CN=host/many announce-host m%d denied", maxHostNamesPerIdentity), "host names already"})
}
