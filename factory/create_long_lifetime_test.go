package factory

import (
	"errors"
	"testing"
	"time"

	"github.com/vws-grid/vws/internal/errdefs"
)

// TestCreateBoundsALongDurationAsAFarDateTime: README — Create "bounds the lifetime by
// the site maximum (clamped, and the response says so)", or refuses it under
// --lifetime-policy refuse. A RequestedTerminationTime in year 9999 is; the same wish
// as a duration over 100 years (P200Y, in Create's RequestedLifetime or the
// description's vw:requestedLifetime) must be answered alike, not refused as
// malformed.
func TestCreateBoundsALongDurationAsAFarDateTime(t *testing.T) {
	now := time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)
	const image = `<sw:software><sw:image><sw:name>debian-12</sw:name></sw:image></sw:software>`
	asks := []struct{ what, lifeCycle, extra string }{
		{"RequestedTerminationTime 9999", ``, `<fac:RequestedTerminationTime>9999-12-31T00:00:00Z</fac:RequestedTerminationTime>`},
		{"RequestedLifetime P200Y", ``, `<fac:RequestedLifetime>P200Y</fac:RequestedLifetime>`},
		{"vw:requestedLifetime P200Y", `<vw:lifeCycle><vw:requestedLifetime>P200Y</vw:requestedLifetime></vw:lifeCycle>`, ``},
	}
	body := func(lifeCycle, extra string) string {
		return `<vw:virtualWorkspace><vw:category>vm</vw:category>` + lifeCycle + image + `</vw:virtualWorkspace>` + extra
	}
	max := now.Add(30 * 24 * time.Hour)
	for _, a := range asks {
		reg := &recordingRegistry{images: poolOfTwo()}
		out, err := runCreate(t, reg, now, body(a.lifeCycle, a.extra))
		if err != nil {
			t.Errorf("%s: %v; want the site maximum, clamped", a.what, err)
			continue
		}
		if reg.got == nil || !reg.got.Termination.Equal(max) || out.SelectElement("LifetimeClamped") == nil {
			t.Errorf("%s: registered %+v; want termination %s, clamped", a.what, reg.got, max)
		}
	}
	refuseLongLifetimes = true
	defer func() { refuseLongLifetimes = false }()
	for _, a := range asks {
		reg := &recordingRegistry{images: poolOfTwo()}
		_, err := runCreate(t, reg, now, body(a.lifeCycle, a.extra))
		var me *errdefs.MetadataError
		if !errors.As(err, &me) || me.Path != "/fac:Create" || reg.got != nil {
			t.Errorf("%s under the refuse policy: %v; want a WorkspaceMetadataFault at /fac:Create beyond the maximum, nothing registered", a.what, err)
		}
	}
}
