package factory

import (
	"errors"
	"testing"
	"time"

	"github.com/vws-grid/vws/internal/errdefs"
)

// TestCreateRefusesALifetimeShorterThanAMillisecond: a termination time counts in
// milliseconds, so RequestedLifetime PT0.0001S would end the workspace at the moment
// Create makes it. Create refuses it, registering nothing, instead of answering with
// an EPR to a workspace that is gone at once.
func TestCreateRefusesALifetimeShorterThanAMillisecond(t *testing.T) {
	now := time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)
	reg := &recordingRegistry{images: poolOfTwo()}
	out, err := runCreate(t, reg, now, `<vw:virtualWorkspace><vw:category>vm</vw:category>
		<sw:software><sw:image><sw:name>debian-12</sw:name></sw:image></sw:software></vw:virtualWorkspace>
		<fac:RequestedLifetime>PT0.0001S</fac:RequestedLifetime>`)
	if !errors.Is(err, errdefs.ErrBadRequest) || reg.got != nil {
		granted := ""
		if out != nil {
			if tt := out.SelectElement("TerminationTime"); tt != nil {
				granted = tt.Text()
			}
		}
		t.Errorf("Create with RequestedLifetime PT0.0001S at %s: err = %v, termination %q; want a BadRequest and nothing registered",
			now.Format(time.RFC3339Nano), err, granted)
	}
}
