package repository

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/beevik/etree"

	"github.com/vws-grid/vws/internal/container"
	"github.com/vws-grid/vws/internal/dialect"
	"github.com/vws-grid/vws/internal/errdefs"
	"github.com/vws-grid/vws/internal/identity"
	"github.com/vws-grid/vws/internal/vwsns"
	"github.com/vws-grid/vws/internal/wsrf"
)

// TestCloneBoundsALongDurationAsAFarDateTime: Clone bounds the lifetime by the site
// maximum as Create does — clamped and said so, or refused under --lifetime-policy
// refuse — for a RequestedTerminationTime in year 9999, and so for the same wish
// put as a duration over 100 years (P200Y), not refused as malformed.
func TestCloneBoundsALongDurationAsAFarDateTime(t *testing.T) {
	needQemu(t)
	f := newFixture(t)
	src := f.mustCreateFor(alice, "src", 0)
	ctx := identity.With(context.Background(), alice)
	clamp := f.r.clone(wsrf.LifetimePolicy{Default: 24 * time.Hour, Maximum: 30 * 24 * time.Hour})
	refuse := f.r.clone(wsrf.LifetimePolicy{Default: 24 * time.Hour, Maximum: 30 * 24 * time.Hour, Refuse: true})
	for i, ask := range []string{
		`<vw:RequestedTerminationTime>9999-12-31T00:00:00Z</vw:RequestedTerminationTime>`,
		`<vw:RequestedLifetime>P200Y</vw:RequestedLifetime>`,
	} {
		before := time.Now()
		out, err := clamp(ctx, cloneRequest(t, src, `<vw:Name>far`+string(rune('0'+i))+`</vw:Name>`+ask))
		if err != nil {
			t.Errorf("Clone with %s: %v; want the site maximum, clamped", ask, err)
		} else if term, _ := wsrf.ParseDateTime(childText(out, vwsns.Workspace, "TerminationTime")); term.Sub(before) > 30*24*time.Hour+time.Minute ||
			term.Sub(before) < 30*24*time.Hour-time.Minute || childText(out, vwsns.Workspace, "LifetimeClamped") != "true" {
			t.Errorf("Clone with %s: ends %s (clamped %q); want 30 days from now, clamped", ask, term, childText(out, vwsns.Workspace, "LifetimeClamped"))
		}
		_, err = refuse(ctx, cloneRequest(t, src, `<vw:Name>refused`+string(rune('0'+i))+`</vw:Name>`+ask))
		var me *errdefs.MetadataError
		if !errors.As(err, &me) || me.Path != "/vw:Clone" {
			t.Errorf("Clone with %s under the refuse policy: %v; want a WorkspaceMetadataFault at /vw:Clone beyond the maximum", ask, err)
		}
	}
}

// TestRegisterTakesALongRequestedLifetime: RegisterWorkspace's RequestedLifetime only
// records what Create was asked for (the Factory has bounded the TerminationTime). A
// request over 100 years, which Create bounds by the maximum, is recorded, not refused
// as malformed after the Factory granted it.
func TestRegisterTakesALongRequestedLifetime(t *testing.T) {
	f := newFixture(t)
	for i, asked := range []string{"P200Y", wsrf.FormatDuration(time.Duration(1<<63 - 1))} {
		doc := etree.NewDocument()
		d := etree.NewDocument()
		d.SetRoot(description())
		desc, _ := d.WriteToString()
		if err := doc.ReadFromString(`<r:RegisterWorkspace xmlns:r="` + vwsns.Repository + `">` + desc +
			`<r:Name>long` + string(rune('0'+i)) + `</r:Name><r:Owner>o</r:Owner><r:BaseImage>` + f.base + `</r:BaseImage>` +
			`<r:TerminationTime>` + wsrf.FormatTime(time.Now().Add(time.Hour)) + `</r:TerminationTime>` +
			`<r:RequestedLifetime>` + asked + `</r:RequestedLifetime></r:RegisterWorkspace>`); err != nil {
			t.Fatal(err)
		}
		if _, err := f.r.registerWorkspace(context.Background(), &container.Request{Dialect: dialect.WSRF12, Payload: doc.Root(),
			Address: "http://repo/wsrf/services/RepositoryService"}); err != nil {
			t.Errorf("RegisterWorkspace with RequestedLifetime %s: %v", asked, err)
		}
	}
}
