package factory

import (
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/vws-grid/vws/internal/errdefs"
	"github.com/vws-grid/vws/internal/wsrf"
)

// TestCreateRefusesTheDescriptionsLifetimeAskedTwice: the description's
// vw:lifeCycle/vw:requestedLifetime is a request of the lifetime like Create's own
// (the Factory takes it when nothing else asks, and refuses it beside a description
// terminationTime: "never asked for twice"). Beside fac:RequestedTerminationTime or
// fac:RequestedLifetime it is silently overridden instead: a description asking for
// PT2H makes a workspace living 10 days whose vw:lifeCycle then says both
// requestedLifetime PT2H and a terminationTime 10 days away.
func TestCreateRefusesTheDescriptionsLifetimeAskedTwice(t *testing.T) {
	now := time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)
	desc := `<vw:virtualWorkspace><vw:category>vm</vw:category>
		<vw:lifeCycle><vw:requestedLifetime>PT2H</vw:requestedLifetime></vw:lifeCycle>
		<sw:software><sw:image><sw:name>debian-12</sw:name></sw:image></sw:software></vw:virtualWorkspace>`
	for _, other := range []string{
		`<fac:RequestedTerminationTime>` + wsrf.FormatTime(now.Add(240*time.Hour)) + `</fac:RequestedTerminationTime>`,
		`<fac:RequestedLifetime>P9D</fac:RequestedLifetime>`,
	} {
		reg := &recordingRegistry{images: poolOfTwo()}
		_, err := runCreate(t, reg, now, desc+other)
		if !errors.Is(err, errdefs.ErrMetadata) || !strings.Contains(err.Error(), "asked for twice") {
			got := "nothing"
			if reg.got != nil {
				got = "a workspace ending " + wsrf.FormatTime(reg.got.Termination) + " recorded as requestedLifetime " + wsrf.FormatDuration(reg.got.RequestedLifetime)
			}
			t.Errorf("description requestedLifetime PT2H and %s: err %v; registered %s", other, err, got)
		}
	}
}
