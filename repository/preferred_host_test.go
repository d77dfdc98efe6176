package repository

import (
	"context"
	"errors"
	"strings"
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

// TestPlacePrefersTheCreatorsHosts: the hosts a workspace's creator preferred
// (fac:PreferredHost, handed over in RegisterWorkspace) were dropped, so Place ranked
// the workspace by cache and free memory alone and vws deploy put it elsewhere. They
// are kept with the workspace (across a restart too), and Place ranks those that fit
// first, in the order given, saying why; a preferred host that does not fit or never
// announced itself is not preferred. A registration with a host name that is none,
// or with more than 64, is refused and makes nothing.
func TestPlacePrefersTheCreatorsHosts(t *testing.T) {
	f := newPlacingFixture(t)
	register := func(name, hosts string) (string, error) {
		doc := etree.NewDocument()
		d := etree.NewDocument()
		d.SetRoot(minimalVM(t))
		desc, _ := d.WriteToString()
		if err := doc.ReadFromString(`<r:RegisterWorkspace xmlns:r="` + vwsns.Repository + `">` + desc +
			`<r:Name>` + name + `</r:Name><r:Owner>o</r:Owner><r:BaseImage>` + f.base + `</r:BaseImage>` +
			`<r:TerminationTime>` + wsrf.FormatTime(time.Now().Add(time.Hour)) + `</r:TerminationTime>` + hosts + `</r:RegisterWorkspace>`); err != nil {
			t.Fatal(err)
		}
		out, err := f.r.registerWorkspace(context.Background(), &container.Request{Dialect: dialect.WSRF12, Payload: doc.Root(),
			Address: "http://repo/wsrf/services/RepositoryService"})
		if err != nil {
			return "", err
		}
		return childText(out, vwsns.Repository, "Key"), nil
	}
	node := identity.With(context.Background(), identity.Identity{DN: "/O=Grid/CN=host/nodes"})
	for _, name := range []string{"node7", "node8", "node9"} {
		offer := strings.ReplaceAll(goodHost, "node7", name)
		if name == "node9" {
			offer = strings.Replace(offer, "<repo:MemoryFreeMiB>16384<", "<repo:MemoryFreeMiB>1<", 1)
		}
		if _, err := f.r.announceHost(node, announcement(t, offer, "PT3M")); err != nil {
			t.Fatal(err)
		}
	}
	pref := func(hosts ...string) string {
		var b strings.Builder
		for _, h := range hosts {
			b.WriteString(`<r:PreferredHost>` + h + `</r:PreferredHost>`)
		}
		return b.String()
	}
	key, err := register("preferring", pref("gone", "node9", "node8"))
	if err != nil {
		t.Fatal(err)
	}
	plain, err := register("plain", "")
	if err != nil {
		t.Fatal(err)
	}
	check := func(when string) {
		t.Helper()
		for _, c := range []struct{ key, want string }{{key, "node8 node7 | node9"}, {plain, "node7 node8 | node9"}} {
			out, err := f.r.place(context.Background(), placeRequest(t, c.key, ""))
			if err != nil {
				t.Fatalf("%s: %v", when, err)
			}
			if got := placed(out); !strings.HasPrefix(got, c.want+":") {
				t.Errorf("%s: placed %q, want %q and node9's reason", when, got, c.want)
			}
			for _, cand := range out.SelectElements("Candidate") {
				want := ""
				if c.key == key && childText(cand, vwsns.Workspace, "HostName") == "node8" {
					want = "preferred by the workspace's creator"
				}
				if got := childText(cand, vwsns.Workspace, "Preferred"); got != want {
					t.Errorf("%s: %s's Preferred is %q, want %q", when, childText(cand, vwsns.Workspace, "HostName"), got, want)
				}
			}
		}
	}
	check("just registered")
	f.reopen()
	check("after a restart")

	n := len(f.r.List(Filter{}))
	for _, bad := range []struct{ hosts, says string }{
		{pref("../etc"), `PreferredHost "../etc" is not a host name`},
		{strings.Repeat(pref("node7"), 65), "65 PreferredHosts; at most 64"},
	} {
		if _, err := register("refused", bad.hosts); !errors.Is(err, errdefs.ErrBadRequest) || !strings.Contains(err.Error(), bad.says) || errdefs.Advice(err) == "" {
			t.Errorf("RegisterWorkspace with %.60s: %v, want a bad request saying %q, with advice", bad.hosts, err, bad.says)
		}
	}
	if got := len(f.r.List(Filter{})); got != n {
		t.Errorf("refused registrations made %d workspaces", got-n)
	}
	if _, err := register("sixty-four", strings.Repeat(pref("node7"), 64)); err != nil {
		t.Errorf("RegisterWorkspace with 64 preferred hosts: %v", err)
	}
}
