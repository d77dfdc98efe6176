package factory

import (
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/vws-grid/vws/internal/errdefs"
)

// TestCreateRefusesTheResourceRequestsItCannotHonour: fac:ResourceRequest may name
// preferred hosts — "at most 64; the service refuses more" (factory.xsd) — and the
// group "whose quota the workspace counts against". A Create with 65, or naming a
// group, was created all the same: the workspace counted against the owner's quotas,
// not the group it named, and nothing said so. Placement wishes within bounds (as in
// schema/samples/messages/Create.xml), and an empty ResourceRequest, are created.
func TestCreateRefusesTheResourceRequestsItCannotHonour(t *testing.T) {
	now := time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)
	desc := `<vw:virtualWorkspace><vw:category>vm</vw:category>
		<sw:software><sw:image><sw:name>debian-12</sw:name></sw:image></sw:software></vw:virtualWorkspace>`
	for _, c := range []struct{ name, req string }{
		{"a group to charge", `<fac:Group>/O=Grid/OU=atlas</fac:Group>`},
		{"65 preferred hosts", strings.Repeat(`<fac:PreferredHost>node7</fac:PreferredHost>`, 65)},
	} {
		reg := &recordingRegistry{images: poolOfTwo()}
		_, err := runCreate(t, reg, now, desc+`<fac:ResourceRequest>`+c.req+`</fac:ResourceRequest>`)
		if !errors.Is(err, errdefs.ErrMetadata) || reg.got != nil {
			t.Errorf("Create with a ResourceRequest asking for %s: err %v; registered: %v", c.name, err, reg.got != nil)
		}
	}
	for _, req := range []string{``, strings.Repeat(`<fac:PreferredHost>node7</fac:PreferredHost>`, 64) + `<fac:VMMType>qemu</fac:VMMType>`} {
		reg := &recordingRegistry{images: poolOfTwo()}
		if _, err := runCreate(t, reg, now, desc+`<fac:ResourceRequest>`+req+`</fac:ResourceRequest>`); err != nil || reg.got == nil {
			t.Errorf("Create with ResourceRequest %.60q: %v", req, err)
		}
	}
}
