package factory

import (
	"errors"
	"testing"
	"time"

	"github.com/vws-grid/vws/internal/errdefs"
)

// TestCreateRefusesAnEmptyLifetimeRequest: an empty fac:RequestedLifetime or
// fac:RequestedTerminationTime is no xs:duration or xs:dateTime (factory.xsd), nor a
// wish for the site's default: a script whose variable came out empty must be told,
// not given a workspace of the default lifetime, charged to its owner's quota.
func TestCreateRefusesAnEmptyLifetimeRequest(t *testing.T) {
	now := time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)
	desc := `<vw:virtualWorkspace><vw:category>vm</vw:category>
		<sw:software><sw:image><sw:name>debian-12</sw:name></sw:image></sw:software></vw:virtualWorkspace>`
	for _, c := range []struct{ el, path string }{
		{`<fac:RequestedLifetime></fac:RequestedLifetime>`, "/fac:Create/fac:RequestedLifetime"},
		{`<fac:RequestedTerminationTime> </fac:RequestedTerminationTime>`, "/fac:Create/fac:RequestedTerminationTime"},
	} {
		reg := &recordingRegistry{images: poolOfTwo()}
		_, err := runCreate(t, reg, now, desc+c.el)
		var me *errdefs.MetadataError
		if !errors.As(err, &me) || me.Path != c.path || reg.got != nil {
			registered := "nothing registered"
			if reg.got != nil {
				registered = "registered to end at " + reg.got.Termination.String()
			}
			t.Errorf("Create with %s: err %v, %s; want a WorkspaceMetadataFault at %s, nothing registered", c.el, err, registered, c.path)
		}
	}
}
