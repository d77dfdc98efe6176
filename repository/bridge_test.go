package repository

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/beevik/etree"

	"github.com/vws-grid/vws/internal/dialect"
	"github.com/vws-grid/vws/internal/identity"
	"github.com/vws-grid/vws/internal/vwsns"
)

// vmOn is the minimal VM description with one NIC joining network of kind (""
// leaves net:kind out).
func vmOn(t *testing.T, network, kind string) *etree.Element {
	t.Helper()
	d := minimalVM(t)
	if kind != "" {
		kind = "<net:kind>" + kind + "</net:kind>"
	}
	doc := etree.NewDocument()
	if err := doc.ReadFromString(`<net:network xmlns:net="http://vws.dev/ns/2026/workspace/network"><net:nic><net:name>eth0</net:name>` +
		`<net:association><net:name>` + network + `</net:name>` + kind + `</net:association></net:nic></net:network>`); err != nil {
		t.Fatal(err)
	}
	d.InsertChildAt(d.SelectElement("software").Index(), doc.Root())
	return d
}

// TestPlaceByPublishedBridges: a NIC on a host bridge is placed only on hosts whose
// announcement lists that bridge (Kind bridge) — not on one of an older manager,
// which lists none, nor on one that has a libvirt network of that name — and on a
// host whose libvirt networks could not be listed if it publishes the bridge. What
// the announcements said survives a restart of the Repository, and KnownHost tells it.
func TestPlaceByPublishedBridges(t *testing.T) {
	f := newPlacingFixture(t)
	node := func(name, networks string) string {
		h := strings.ReplaceAll(goodHost, "node7", name)
		start, end := strings.Index(h, "<repo:Networks>"), strings.Index(h, "</repo:Networks>")+len("</repo:Networks>")
		return h[:start] + networks + h[end:]
	}
	net := func(name, kind string) string {
		if kind != "" {
			kind = "<repo:Kind>" + kind + "</repo:Kind>"
		}
		return "<repo:Network><repo:Name>" + name + "</repo:Name><repo:Active>true</repo:Active>" + kind + "</repo:Network>"
	}
	ctx := identity.With(context.Background(), identity.Identity{DN: "/O=Grid/CN=host/node7"})
	for _, offer := range []string{
		node("node7", "<repo:Networks>"+net("default", "")+net("br-grid", "bridge")+"</repo:Networks>"),
		// An older manager: no Kind, and its bridges unlisted.
		node("node8", "<repo:Networks>"+net("default", "")+"</repo:Networks>"),
		// A libvirt network named like the bridge is not the bridge.
		node("node9", "<repo:Networks>"+net("br-grid", "network")+"</repo:Networks>"),
		node("node10", `<repo:Networks libvirtNetworksUnknown="true">`+net("br-grid", "bridge")+"</repo:Networks>"),
	} {
		if _, err := f.r.announceHost(ctx, announcement(t, offer, "PT3M")); err != nil {
			t.Fatal(err)
		}
	}
	f.reopen()
	// A reason starts with the element the host cannot satisfy.
	const nic = "/vw:virtualWorkspace/net:network/net:nic[1]/net:association/net:name: NIC eth0 joins "
	for i, tc := range []struct {
		name, network, kind, want string
	}{
		{"a published bridge", "br-grid", "bridge",
			"node10 node7 | node8: " + nic + "host bridge \"br-grid\", which this host does not publish: it publishes no bridge; " +
				"node9: " + nic + "host bridge \"br-grid\", which this host does not publish: it publishes no bridge"},
		{"a bridge no host publishes", "br-mgmt", "bridge",
			" | node10: " + nic + "host bridge \"br-mgmt\", which this host does not publish: it publishes only bridges br-grid; " +
				"node7: " + nic + "host bridge \"br-mgmt\", which this host does not publish: it publishes only bridges br-grid; " +
				"node8: " + nic + "host bridge \"br-mgmt\", which this host does not publish: it publishes no bridge; " +
				"node9: " + nic + "host bridge \"br-mgmt\", which this host does not publish: it publishes no bridge"},
		{"a libvirt network: a host whose networks are unknown is not refused", "default", "",
			"node10 node7 node8 | node9: " + nic + "network \"default\"; this host's networks are: br-grid"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c, err := f.r.Create(context.Background(), CreateSpec{Name: fmt.Sprintf("bridged-%d", i), Owner: "o", Description: vmOn(t, tc.network, tc.kind), BaseImage: f.base, Termination: time.Now().Add(time.Hour)})
			if err != nil {
				t.Fatal(err)
			}
			out, err := f.r.place(context.Background(), placeRequest(t, c.Key, ""))
			if err != nil {
				t.Fatal(err)
			}
			if got := placed(out); got != tc.want {
				t.Fatalf("placed %q\nwant   %q", got, tc.want)
			}
		})
	}
	for _, h := range f.r.hosts.Live(f.r.now()) {
		if h.Name != "node10" {
			continue
		}
		nets := hostElement("KnownHost", h, dialect.WSRF12, true).FindElement("Networks")
		if nets == nil || nets.SelectAttrValue("libvirtNetworksUnknown", "") != "true" ||
			childText(nets.SelectElement("Network"), vwsns.Repository, "Kind") != "bridge" {
			t.Errorf("KnownHost node10 lists %v", nets)
		}
	}
}
