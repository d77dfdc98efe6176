package repository

import (
	"context"
	"errors"
	"fmt"
	"net"
	"reflect"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/beevik/etree"

	"github.com/vws-grid/vws/internal/container"
	"github.com/vws-grid/vws/internal/describe"
	"github.com/vws-grid/vws/internal/dialect"
	"github.com/vws-grid/vws/internal/errdefs"
	"github.com/vws-grid/vws/internal/identity"
	"github.com/vws-grid/vws/internal/pki"
	"github.com/vws-grid/vws/internal/soap"
	"github.com/vws-grid/vws/internal/vwsns"
	"github.com/vws-grid/vws/internal/wsa"
	"github.com/vws-grid/vws/internal/wsrf"
)

const digestA = "sha256:aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"

// announcement is an AnnounceHost body: a valid one with the host part's children
// hostXML and ValidFor validFor.
func announcement(t *testing.T, hostXML, validFor string) *container.Request {
	t.Helper()
	doc := etree.NewDocument()
	err := doc.ReadFromString(`<repo:AnnounceHost xmlns:repo="` + vwsns.Repository + `" xmlns:wsa="http://www.w3.org/2005/08/addressing"><repo:Host>` +
		hostXML + `</repo:Host><repo:ValidFor>` + validFor + `</repo:ValidFor></repo:AnnounceHost>`)
	if err != nil {
		t.Fatal(err)
	}
	return &container.Request{Payload: doc.Root()}
}

const goodHost = `<repo:HostName>node7</repo:HostName>
<repo:ManagerReference><wsa:Address>https://node7:8443/wsrf/services/WorkspaceManagerService</wsa:Address></repo:ManagerReference>
<repo:DomainType>kvm</repo:DomainType><repo:Architecture>x86_64</repo:Architecture><repo:CPUs>8</repo:CPUs>
<repo:MemoryTotalMiB>32768</repo:MemoryTotalMiB><repo:MemoryFreeMiB>16384</repo:MemoryFreeMiB><repo:DeployedWorkspaces>2</repo:DeployedWorkspaces>
<repo:Networks><repo:Network><repo:Name>default</repo:Name><repo:Active>true</repo:Active></repo:Network></repo:Networks>
<repo:CachedImage>` + digestA + `</repo:CachedImage>`

// TestAnnounceHostRefusesBadOffers: each malformed announcement is a client fault that
// says what is wrong, and records nothing.
func TestAnnounceHostRefusesBadOffers(t *testing.T) {
	f := newFixture(t)
	ctx := identity.With(context.Background(), identity.Identity{DN: "/O=Grid/CN=host/node7"})
	repl := func(old, new string) string { return strings.Replace(goodHost, old, new, 1) }
	for _, tc := range []struct{ name, host, validFor, says string }{
		{"no host name", repl("<repo:HostName>node7</repo:HostName>", ""), "PT3M", "no HostName"},
		{"path-like host name", repl(">node7<", ">../etc<"), "PT3M", "is not a host name"},
		{"manager address not http", repl("https://node7:8443", "file:///etc/passwd"), "PT3M", "is not the http(s) URL of a manager service"},
		{"manager address with credentials", repl("https://node7:8443", "https://u:p@node7:8443"), "PT3M", "is not the http(s) URL"},
		{"unknown domain type", repl(">kvm<", ">vmware<"), "PT3M", `DomainType "vmware" is not kvm, qemu or xen`},
		{"unknown architecture", repl(">x86_64<", ">pdp11<"), "PT3M", `Architecture "pdp11"`},
		{"negative CPUs", repl(">8<", ">-1<"), "PT3M", `CPUs "-1" is not a whole number`},
		{"no CPUs", repl(">8<", ">0<"), "PT3M", "CPUs 0: a host offers at least one"},
		{"more memory free than there is", repl(">16384<", ">65536<"), "PT3M", "MemoryFreeMiB 65536 is more than MemoryTotalMiB 32768"},
		{"capacity missing without a problem", repl("<repo:CPUs>8</repo:CPUs>", ""), "PT3M", "are required unless Problem says why"},
		{"bad digest", repl(digestA, "sha256:xyz"), "PT3M", `CachedImage "sha256:xyz" is not a sha256:<64 hex> digest`},
		{"not a boolean", repl(">true<", ">yes<"), "PT3M", `Active "yes" is not a boolean`},
		{"a network kind no manager knows", repl("</repo:Active>", "</repo:Active><repo:Kind>direct</repo:Kind>"), "PT3M", `Kind "direct" is not network or bridge`},
		{"a bridge no interface is named", repl("<repo:Name>default</repo:Name><repo:Active>true</repo:Active>",
			"<repo:Name>a-bridge-name-too-long</repo:Name><repo:Active>true</repo:Active><repo:Kind>bridge</repo:Kind>"), "PT3M", "is not a network interface name"},
		{"libvirtNetworksUnknown not a boolean", repl("<repo:Networks>", `<repo:Networks libvirtNetworksUnknown="perhaps">`), "PT3M", `libvirtNetworksUnknown "perhaps" is not a boolean`},
		{"unknown element", goodHost + "<repo:Owner>x</repo:Owner>", "PT3M", "Owner is not part of a host offer"},
		{"element twice", goodHost + "<repo:CPUs>9</repo:CPUs>", "PT3M", "CPUs appears twice"},
		{"foreign element", goodHost + `<x:y xmlns:x="urn:x"/>`, "PT3M", `element y in namespace "urn:x"`},
		{"Draining not a boolean", goodHost + "<repo:Draining>maybe</repo:Draining>", "PT3M", `Draining "maybe" is not a boolean`},
		{"Draining empty", goodHost + "<repo:Draining/>", "PT3M", `Draining "" is not a boolean`},
		{"ValidFor too short", goodHost, "PT1S", `ValidFor "PT1S" is not a duration between 10s and 1h0m0s`},
		{"ValidFor too long", goodHost, "P1D", "is not a duration between"},
		{"ValidFor not a duration", goodHost, "soon", "is not a duration between"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := f.r.announceHost(ctx, announcement(t, tc.host, tc.validFor))
			if !errors.Is(err, errdefs.ErrBadRequest) || !strings.Contains(err.Error(), tc.says) {
				t.Fatalf("got %v, want a bad request saying %q", err, tc.says)
			}
			if live := f.r.hosts.Live(f.r.now()); len(live) != 0 {
				t.Fatalf("a refused announcement was recorded: %+v", live)
			}
		})
	}
}

// TestAnnounceHost: a valid announcement is listed until it expires; another
// identity cannot announce the same host name meanwhile.
func TestAnnounceHost(t *testing.T) {
	f := newFixture(t)
	node7 := identity.With(context.Background(), identity.Identity{DN: "/O=Grid/CN=host/node7"})
	out, err := f.r.announceHost(node7, announcement(t, goodHost, "PT3M"))
	if err != nil {
		t.Fatal(err)
	}
	if out.Tag != "AnnounceHostResponse" || childText(out, vwsns.Repository, "Expires") == "" {
		t.Fatalf("response: %s", elementString(out))
	}
	live := f.r.hosts.Live(f.r.now())
	if len(live) != 1 {
		t.Fatalf("live hosts: %+v", live)
	}
	h := live[0]
	if h.Name != "node7" || h.Offer.CPUs != 8 || h.Offer.FreeMiB != 16384 || h.Deployed != 2 || !h.Cached[digestA] ||
		len(h.Offer.Networks) != 1 || !h.Offer.Networks[0].Active || h.AnnouncedBy != "/O=Grid/CN=host/node7" ||
		h.Manager.Address != "https://node7:8443/wsrf/services/WorkspaceManagerService" {
		t.Fatalf("recorded %+v", h)
	}
	// A GT4 reader gets the manager's reference in WS-Addressing 2004/03, whichever
	// version the manager announced it in.
	for _, d := range []*dialect.Dialect{dialect.GT4, dialect.WSRF12} {
		ref := child(hostElement("KnownHost", h, d, true), vwsns.Repository, "ManagerReference")
		epr, err := wsa.ParseEPR(ref)
		if err != nil || epr.Version != d.WSA || epr.Address != h.Manager.Address {
			t.Errorf("%s reader: manager reference %s (%v)", d.Name, elementString(ref), err)
		}
	}
	node8 := identity.With(context.Background(), identity.Identity{DN: "/O=Grid/CN=host/node8"})
	if _, err := f.r.announceHost(node8, announcement(t, goodHost, "PT3M")); !errors.Is(err, errdefs.ErrAuthorization) || !strings.Contains(err.Error(), "announced by /O=Grid/CN=host/node7") {
		t.Fatalf("node8 announcing node7: %v", err)
	}
	// A host whose hypervisor cannot be read is listed, with the problem, without capacity.
	problem := `<repo:HostName>node9</repo:HostName><repo:ManagerReference><wsa:Address>http://node9/wsrf/services/WorkspaceManagerService</wsa:Address></repo:ManagerReference>
<repo:DeployedWorkspaces>0</repo:DeployedWorkspaces><repo:Problem>libvirtd is not running</repo:Problem>`
	if _, err := f.r.announceHost(node8, announcement(t, problem, "PT10S")); err != nil {
		t.Fatal(err)
	}
	if live := f.r.hosts.Live(f.r.now()); len(live) != 2 || live[1].Problem != "libvirtd is not running" {
		t.Fatalf("live hosts: %+v", live)
	}
}

func elementString(el *etree.Element) string {
	doc := etree.NewDocument()
	doc.SetRoot(el.Copy())
	s, _ := doc.WriteToString()
	return s
}

// TestCheckOutChargesTheHost: a check-out to an announced host counts against what it
// announced until it announces again, so deploys placed at the same time spread.
func TestCheckOutChargesTheHost(t *testing.T) {
	f := newFixture(t)
	node7 := identity.With(context.Background(), identity.Identity{DN: "/O=Grid/CN=host/node7"})
	if _, err := f.r.announceHost(node7, announcement(t, goodHost, "PT3M")); err != nil {
		t.Fatal(err)
	}
	doc := etree.NewDocument()
	if err := doc.ReadFromString(`<vw:virtualWorkspace xmlns:vw="` + vwsns.Workspace + `" xmlns:hw="` + vwsns.Hardware + `"><vw:category>vm</vw:category>` +
		`<hw:hardware><hw:RAM><hw:size>1024</hw:size></hw:RAM></hw:hardware></vw:virtualWorkspace>`); err != nil {
		t.Fatal(err)
	}
	c, err := f.r.Create(context.Background(), CreateSpec{Name: "charged", Owner: "o", Description: doc.Root(), BaseImage: f.base,
		KernelImage: f.kernel, Termination: time.Now().Add(time.Hour)})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := f.r.CheckOut(node7, c.Key, "node7", "", nil, &tester); err != nil {
		t.Fatal(err)
	}
	h := f.r.hosts.Live(f.r.now())[0]
	if h.Offer.FreeMiB != 16384-1024 || h.Deployed != 3 || !h.Cached[f.base] || !h.Cached[f.kernel] || !h.Cached[digestA] {
		t.Fatalf("after a check-out of 1024 MiB: free %d MiB, %d deployed, cached %v", h.Offer.FreeMiB, h.Deployed, h.Cached)
	}
	// The host's next announcement states the facts again.
	if _, err := f.r.announceHost(node7, announcement(t, goodHost, "PT3M")); err != nil {
		t.Fatal(err)
	}
	if h := f.r.hosts.Live(f.r.now())[0]; h.Offer.FreeMiB != 16384 || h.Deployed != 2 {
		t.Fatalf("after the next announcement: free %d MiB, %d deployed", h.Offer.FreeMiB, h.Deployed)
	}
}

// TestAnnouncementsSurviveARestart: a restarted Repository places on the hosts that
// announced themselves before, until their announcements expire.
func TestAnnouncementsSurviveARestart(t *testing.T) {
	f := newFixture(t)
	node7 := identity.With(context.Background(), identity.Identity{DN: "/O=Grid/CN=host/node7"})
	if _, err := f.r.announceHost(node7, announcement(t, goodHost, "PT3M")); err != nil {
		t.Fatal(err)
	}
	short := strings.Replace(strings.Replace(goodHost, ">node7<", ">node8<", 1), "https://node7", "https://node8", 1)
	if _, err := f.r.announceHost(node7, announcement(t, short, "PT10S")); err != nil {
		t.Fatal(err)
	}
	before := f.r.hosts.Live(f.r.now())
	f.reopen()
	after := f.r.hosts.Live(f.r.now())
	if len(after) != 2 || after[0].Name != "node7" || !reflect.DeepEqual(after[0].Offer, before[0].Offer) || after[0].Deployed != 2 ||
		!after[0].Cached[digestA] || after[0].AnnouncedBy != "/O=Grid/CN=host/node7" || !after[0].Expires.Equal(before[0].Expires.Truncate(time.Millisecond)) ||
		after[0].Manager.Address != before[0].Manager.Address {
		t.Fatalf("after a restart: %+v\nbefore: %+v", after, before)
	}
	// Restarted 20 s later, node8's 10-second announcement is gone.
	later := time.Now().Add(20 * time.Second)
	f.now = func() time.Time { return later }
	f.reopen()
	if live := f.r.hosts.Live(f.r.now()); len(live) != 1 || live[0].Name != "node7" {
		t.Fatalf("restarted after node8's announcement expired: %+v", live)
	}
}

// placeRequest is a Place call on workspace key with the body's children children.
func placeRequest(t *testing.T, key, children string) *container.Request {
	t.Helper()
	doc := etree.NewDocument()
	if err := doc.ReadFromString(`<vw:Place xmlns:vw="` + vwsns.Workspace + `">` + children + `</vw:Place>`); err != nil {
		t.Fatal(err)
	}
	header := etree.NewElement("vw:WorkspaceKey")
	header.CreateAttr("xmlns:vw", vwsns.Workspace)
	header.SetText(key)
	return &container.Request{Service: &container.Service{Key: vwsns.WorkspaceKey}, Dialect: dialect.WSRF12,
		Envelope: &soap.Envelope{Headers: []*etree.Element{header}}, Payload: doc.Root()}
}

// placed is a PlaceResponse as "candidates | unsuitable host: reason; …".
func placed(out *etree.Element) string {
	var cands, unfit []string
	for _, c := range out.ChildElements() {
		switch c.Tag {
		case "Candidate":
			cands = append(cands, childText(c, vwsns.Workspace, "HostName"))
		case "Unsuitable":
			unfit = append(unfit, childText(c, vwsns.Workspace, "HostName")+": "+childText(c, vwsns.Workspace, "Reason"))
		}
	}
	return strings.Join(cands, " ") + " | " + strings.Join(unfit, "; ")
}

// TestDrainingHostIsNotPlaced: a host that announces it is draining is listed so,
// across a restart too, and placement passes it over.
func TestDrainingHostIsNotPlaced(t *testing.T) {
	f := newPlacingFixture(t)
	node7 := identity.With(context.Background(), identity.Identity{DN: "/O=Grid/CN=host/node7"})
	for _, offer := range []string{goodHost + "<repo:Draining>true</repo:Draining>", strings.ReplaceAll(goodHost, "node7", "node8")} {
		if _, err := f.r.announceHost(node7, announcement(t, offer, "PT3M")); err != nil {
			t.Fatal(err)
		}
	}
	f.reopen()
	known := hostElement("KnownHost", f.r.hosts.Live(f.r.now())[0], dialect.WSRF12, true)
	if childText(known, vwsns.Repository, "HostName") != "node7" || childText(known, vwsns.Repository, "Draining") != "true" {
		t.Fatalf("after a restart, node7 is listed as %s", elementString(known))
	}
	c, err := f.r.Create(context.Background(), CreateSpec{Name: "placed", Owner: "o", Description: minimalVM(t), BaseImage: f.base, Termination: time.Now().Add(time.Hour)})
	if err != nil {
		t.Fatal(err)
	}
	out, err := f.r.place(context.Background(), placeRequest(t, c.Key, ""))
	if err != nil {
		t.Fatal(err)
	}
	if got := placed(out); got != "node8 | node7: draining for maintenance: its administrator takes no new workspaces there" {
		t.Fatalf("placement with node7 draining: %q", got)
	}
}

// newClockedFixture is a fixture whose Repository reads a clock the test moves with
// advance (its own goroutines read it too).
func newClockedFixture(t *testing.T) (*fixture, func(time.Duration)) {
	t.Helper()
	f := newFixture(t)
	var now atomic.Int64
	now.Store(time.Now().UTC().Truncate(time.Millisecond).UnixNano())
	f.now = func() time.Time { return time.Unix(0, now.Load()).UTC() }
	f.reopen()
	return f, func(d time.Duration) { now.Add(int64(d)) }
}

// newPlacingFixture is a fixture whose Repository validates descriptions, as Place
// needs.
func newPlacingFixture(t *testing.T) *fixture {
	t.Helper()
	f := newFixture(t)
	v, err := describe.NewValidator()
	if err != nil {
		t.Fatal(err)
	}
	f.validator = v
	f.reopen()
	return f
}

// minimalVM is the schema's smallest valid VM description.
func minimalVM(t *testing.T) *etree.Element {
	t.Helper()
	doc := etree.NewDocument()
	if err := doc.ReadFromFile("../schema/samples/minimal-vm.xml"); err != nil {
		t.Fatal(err)
	}
	return doc.Root()
}

// TestPlaceMove: Place with Move ranks the hosts a deployed workspace could move to,
// its own host listed as unsuitable; without Move its own host is its only candidate.
func TestPlaceMove(t *testing.T) {
	f := newPlacingFixture(t)
	node7 := identity.With(context.Background(), identity.Identity{DN: "/O=Grid/CN=host/node7"})
	for _, name := range []string{"node7", "node8"} {
		offer := strings.ReplaceAll(goodHost, "node7", name)
		if _, err := f.r.announceHost(node7, announcement(t, offer, "PT3M")); err != nil {
			t.Fatal(err)
		}
	}
	c, err := f.r.Create(context.Background(), CreateSpec{Name: "mover", Owner: "o", Description: minimalVM(t), BaseImage: f.base,
		Termination: time.Now().Add(time.Hour)})
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	want := func(what, children, want string) {
		t.Helper()
		out, err := f.r.place(ctx, placeRequest(t, c.Key, children))
		if err != nil {
			t.Fatalf("%s: %v", what, err)
		}
		if got := placed(out); got != want {
			t.Fatalf("%s: %q, want %q", what, got, want)
		}
	}
	want("in the repository", ``, "node7 node8 | ")
	want("in the repository, Move has no effect", `<vw:Move>true</vw:Move>`, "node7 node8 | ")
	if _, err := f.r.CheckOut(node7, c.Key, "node7", "",
		&wsa.EPR{Version: wsa.V200508, Address: "https://node7:8443/wsrf/services/WorkspaceManagerService"}, &tester); err != nil {
		t.Fatal(err)
	}
	want("deployed on node7", ``, "node7 | ")
	want("deployed on node7, Move false", `<vw:Move>0</vw:Move>`, "node7 | ")
	want("moving off node7", `<vw:Move>true</vw:Move><vw:InitialState>running</vw:InitialState>`, "node8 | node7: the workspace is deployed there now")
	want("moving off node7 (1)", `<vw:Move>1</vw:Move>`, "node8 | node7: the workspace is deployed there now")
	for _, bad := range []struct{ children, says string }{
		{`<vw:Move>yes</vw:Move>`, `Move: "yes" is not an xs:boolean`},
		{`<vw:InitialState>flying</vw:InitialState>`, `InitialState "flying" is not shutdown, running or paused`},
	} {
		if _, err := f.r.place(ctx, placeRequest(t, c.Key, bad.children)); !errors.Is(err, errdefs.ErrBadRequest) || !strings.Contains(err.Error(), bad.says) {
			t.Errorf("Place with %s: %v, want a bad request saying %q", bad.children, err, bad.says)
		}
	}
}

// TestAnnouncedManagerMustBeTheCertificatesHost: over TLS, a host announces, and
// checks workspaces out under, a manager address its certificate names, so that it
// cannot send placed deploys to another host; the refusal records nothing.
func TestAnnouncedManagerMustBeTheCertificatesHost(t *testing.T) {
	f := newFixture(t)
	ca, err := pki.NewCA(pki.CAOptions{KeyType: pki.KeyTypeECDSA})
	if err != nil {
		t.Fatal(err)
	}
	as := func(o pki.HostOptions) context.Context {
		t.Helper()
		o.KeyType = pki.KeyTypeECDSA
		cred, err := ca.IssueHost(o)
		if err != nil {
			t.Fatal(err)
		}
		return identity.With(context.Background(), identity.Identity{DN: identity.OneLineDN(cred.Certificate.Subject), Certificate: cred.Certificate})
	}
	node7 := as(pki.HostOptions{Name: "node7", IPs: []net.IP{net.ParseIP("10.0.0.7")}})
	at := func(address string) string {
		return strings.Replace(goodHost, "https://node7:8443", address, 1)
	}
	for _, ok := range []string{"https://node7:8443", "https://10.0.0.7:8443", "http://node9:8080"} {
		if _, err := f.r.announceHost(node7, announcement(t, at(ok), "PT3M")); err != nil {
			t.Errorf("node7's certificate announcing %s: %v", ok, err)
		}
	}
	// A host certificate without subject alternative names, as old Globus ones are,
	// names its host by CN=host/NAME.
	legacy := as(pki.HostOptions{Name: "10.9.9.9"})
	legacyHost := strings.ReplaceAll(at("https://10.9.9.9:8443"), "node7", "legacy")
	if _, err := f.r.announceHost(legacy, announcement(t, legacyHost, "PT3M")); err != nil {
		t.Errorf("CN=host/10.9.9.9 announcing https://10.9.9.9:8443: %v", err)
	}
	before := f.r.hosts.Live(f.r.now())
	_, err = f.r.announceHost(node7, announcement(t, at("https://node8:8443"), "PT3M"))
	if !errors.Is(err, errdefs.ErrAuthorization) || !strings.Contains(err.Error(), `names host "node8", which the caller's certificate (/O=Grid/OU=vws/CN=host/node7) does not: it names node7, 10.0.0.7`) {
		t.Fatalf("node7's certificate announcing node8's address: %v", err)
	}
	if after := f.r.hosts.Live(f.r.now()); !reflect.DeepEqual(after, before) {
		t.Fatalf("a refused announcement changed the hosts:\n%+v\nwas\n%+v", after, before)
	}

	c, err := f.r.Create(context.Background(), CreateSpec{Name: "vouched", Owner: "o", Description: minimalVM(t), BaseImage: f.base, Termination: time.Now().Add(time.Hour)})
	if err != nil {
		t.Fatal(err)
	}
	checkOut := func(ctx context.Context, address string) error {
		doc := etree.NewDocument()
		if err := doc.ReadFromString(`<vw:CheckOut xmlns:vw="` + vwsns.Workspace + `" xmlns:wsa="http://www.w3.org/2005/08/addressing"><vw:Host>node7</vw:Host>` +
			`<vw:ManagerReference><wsa:Address>` + address + `</wsa:Address></vw:ManagerReference><vw:OnBehalfOf>o</vw:OnBehalfOf></vw:CheckOut>`); err != nil {
			t.Fatal(err)
		}
		req := placeRequest(t, c.Key, "")
		req.Payload = doc.Root()
		_, err := f.r.checkOutHandler(ctx, req)
		return err
	}
	if err := checkOut(node7, "https://node8:8443/wsrf/services/WorkspaceManagerService"); !errors.Is(err, errdefs.ErrAuthorization) || !strings.Contains(err.Error(), `names host "node8"`) {
		t.Fatalf("node7 checking out with node8's manager address: %v", err)
	}
	if d := f.prop(c.Key, PropDeployment); d != "in-repository" {
		t.Fatalf("after a refused check-out the workspace is %s", d)
	}
	if err := checkOut(node7, "https://node7:8443/wsrf/services/WorkspaceManagerService"); err != nil {
		t.Fatalf("node7 checking out with its own manager address: %v", err)
	}
	if d := f.prop(c.Key, PropDeployment); d != "staging" {
		t.Fatalf("after a check-out the workspace is %s", d)
	}
}

// TestSilentHostMarksItsWorkspaces: a workspace deployed on a host whose announcement
// expired says since when its host is silent (its state is only the last report),
// across a restart of the Repository too; the mark goes when the host announces itself
// or reports again, and a workspace in the repository is never marked.
func TestSilentHostMarksItsWorkspaces(t *testing.T) {
	f, advance := newClockedFixture(t)
	clock := f.now
	ctx := context.Background()
	node7 := identity.With(ctx, identity.Identity{DN: "/O=Grid/CN=host/node7"})
	announce := func() {
		t.Helper()
		if _, err := f.r.announceHost(node7, announcement(t, goodHost, "PT10S")); err != nil {
			t.Fatal(err)
		}
	}
	create := func(name string) string {
		t.Helper()
		c, err := f.r.Create(ctx, CreateSpec{Name: name, Owner: "o", Description: minimalVM(t), BaseImage: f.base, Termination: clock().Add(time.Hour)})
		if err != nil {
			t.Fatal(err)
		}
		return c.Key
	}
	announce()
	lastHeard := clock()
	out, home := create("out-on-node7"), create("at-home")
	m, err := f.r.CheckOut(node7, out, "node7", "", &wsa.EPR{Version: wsa.V200508, Address: "https://node7:8443/wsrf/services/WorkspaceManagerService"}, &tester)
	if err != nil {
		t.Fatal(err)
	}
	want := func(what, outMark string) {
		t.Helper()
		f.r.markSilentHosts(ctx)
		if got := f.prop(out, PropHostSilentSince); got != outMark {
			t.Fatalf("%s: the deployed workspace's hostSilentSince is %q, want %q", what, got, outMark)
		}
		if got := f.prop(home, PropHostSilentSince); got != "" {
			t.Fatalf("%s: the workspace in the repository is marked %q", what, got)
		}
	}
	want("node7 announced", "")
	advance(11 * time.Second)
	want("node7 silent", wsrf.FormatTime(lastHeard))
	// The Repository lists node7 as silent, with the one workspace deployed there.
	if els := f.r.silentHostElements(f.r.List(Filter{})); len(els) != 1 || childText(els[0], vwsns.Repository, "HostName") != "node7" ||
		childText(els[0], vwsns.Repository, "LastSeen") != wsrf.FormatTime(lastHeard) || childText(els[0], vwsns.Repository, "DeployedWorkspaces") != "1" {
		t.Fatalf("repo:SilentHost: %d elements, the first %v", len(els), els)
	}
	advance(time.Second)
	announce()
	lastHeard = clock()
	want("node7 back", "")
	if els := f.r.silentHostElements(f.r.List(Filter{})); len(els) != 0 {
		t.Fatalf("node7 announced again, yet %d repo:SilentHost", len(els))
	}

	advance(11 * time.Second)
	want("node7 silent again", wsrf.FormatTime(lastHeard))
	f.reopen()
	want("after a restart", wsrf.FormatTime(lastHeard))
	// A report is news from node7, not an announcement: it stays silent, last heard
	// from when it reported, also after a restart.
	advance(time.Second)
	if _, _, _, err := f.r.ReportState(node7, out, m.Token, "node7", "running", "deployed", "", time.Time{}); err != nil {
		t.Fatal(err)
	}
	lastHeard = clock()
	want("node7 reported", wsrf.FormatTime(lastHeard))
	f.reopen()
	want("node7 reported, after a restart", wsrf.FormatTime(lastHeard))
}

// TestLongSilentHostsDropOutOfTheList: a host silent for more than a week is listed
// only while workspaces the caller sees are still deployed there.
func TestLongSilentHostsDropOutOfTheList(t *testing.T) {
	f, advance := newClockedFixture(t)
	node7 := identity.With(context.Background(), identity.Identity{DN: "/O=Grid/CN=host/node7"})
	if _, err := f.r.announceHost(node7, announcement(t, goodHost, "PT10S")); err != nil {
		t.Fatal(err)
	}
	advance(listSilentFor - time.Minute)
	if els := f.r.silentHostElements(nil); len(els) != 1 {
		t.Fatalf("silent for less than a week: %d repo:SilentHost", len(els))
	}
	advance(2 * time.Minute)
	if els := f.r.silentHostElements(nil); len(els) != 0 {
		t.Fatalf("silent for more than a week, nothing there: %d repo:SilentHost", len(els))
	}
	if els := f.r.silentHostElements([]Summary{{Host: "node7", Deployment: "deployed"}}); len(els) != 1 {
		t.Fatalf("silent for more than a week, a workspace there: %d repo:SilentHost", len(els))
	}
	// The Repository still knows it went silent after a restart.
	f.reopen()
	if silent, _ := f.r.hosts.Silent(f.now()); silent["node7"].IsZero() {
		t.Fatal("after a restart the Repository forgot that node7 went silent")
	}
}

// TestAnnounceHostRefusesAnotherHostsManager: a live host's manager address cannot be
// announced under another name by another identity (it would draw placements to that
// manager with made-up capacity); its own identity may rename it, and once the
// announcement expired the address is free.
func TestAnnounceHostRefusesAnotherHostsManager(t *testing.T) {
	f, advance := newClockedFixture(t)
	node7 := identity.With(context.Background(), identity.Identity{DN: "/O=Grid/CN=host/node7"})
	if _, err := f.r.announceHost(node7, announcement(t, goodHost, "PT10S")); err != nil {
		t.Fatal(err)
	}
	node8 := identity.With(context.Background(), identity.Identity{DN: "/O=Grid/CN=host/node8"})
	for _, addr := range []string{"https://node7:8443/wsrf/services/WorkspaceManagerService", "HTTPS://Node7:8443/wsrf/services/WorkspaceManagerService"} {
		other := strings.Replace(strings.Replace(goodHost, ">node7<", ">node8<", 1), "https://node7:8443/wsrf/services/WorkspaceManagerService", addr, 1)
		_, err := f.r.announceHost(node8, announcement(t, other, "PT3M"))
		if !errors.Is(err, errdefs.ErrAuthorization) || !strings.Contains(err.Error(), `is announced by /O=Grid/CN=host/node7 for host "node7"`) {
			t.Fatalf("node8 announcing node7's manager at %s: %v", addr, err)
		}
	}
	if live := f.r.hosts.Live(f.r.now()); len(live) != 1 || live[0].Name != "node7" {
		t.Fatalf("a refused announcement was recorded: %+v", live)
	}
	renamed := strings.Replace(goodHost, ">node7<", ">node7b<", 1)
	if _, err := f.r.announceHost(node7, announcement(t, renamed, "PT10S")); err != nil {
		t.Fatalf("node7 announcing its own manager under a new name: %v", err)
	}
	advance(11 * time.Second)
	other := strings.Replace(goodHost, ">node7<", ">node8<", 1)
	if _, err := f.r.announceHost(node8, announcement(t, other, "PT3M")); err != nil {
		t.Fatalf("the address once node7's announcements expired: %v", err)
	}
}

// TestPlaceListsSilentHosts: a host whose announcements stopped is listed as
// unsuitable, saying since when, so that a deploy is refused with the reason rather
// than sent to some default manager; after a week of silence it is forgotten.
func TestPlaceListsSilentHosts(t *testing.T) {
	f, advance := newClockedFixture(t)
	v, err := describe.NewValidator()
	if err != nil {
		t.Fatal(err)
	}
	f.validator = v
	f.reopen()
	node7 := identity.With(context.Background(), identity.Identity{DN: "/O=Grid/CN=host/node7"})
	if _, err := f.r.announceHost(node7, announcement(t, goodHost, "PT10S")); err != nil {
		t.Fatal(err)
	}
	lastSeen := f.now()
	c, err := f.r.Create(context.Background(), CreateSpec{Name: "placed", Owner: "o", Description: minimalVM(t), BaseImage: f.base, Termination: f.now().Add(30 * 24 * time.Hour)})
	if err != nil {
		t.Fatal(err)
	}
	advance(11 * time.Second)
	out, err := f.r.place(context.Background(), placeRequest(t, c.Key, ""))
	if err != nil {
		t.Fatal(err)
	}
	want := " | node7: silent since " + wsrf.FormatTime(lastSeen) + ": its manager stopped announcing itself; nothing is placed there until it does"
	if got := placed(out); got != want {
		t.Fatalf("placement with node7 silent: %q, want %q", got, want)
	}
	ref := child(child(out, vwsns.Workspace, "Unsuitable"), vwsns.Workspace, "ManagerReference")
	if epr, err := wsa.ParseEPR(ref); err != nil || epr.Address != "https://node7:8443/wsrf/services/WorkspaceManagerService" {
		t.Fatalf("the silent host's manager reference: %v %v", epr, err)
	}
	advance(listSilentFor)
	if out, err = f.r.place(context.Background(), placeRequest(t, c.Key, "")); err != nil {
		t.Fatal(err)
	}
	if got := placed(out); got != " | " {
		t.Fatalf("placement with node7 silent for over a week: %q", got)
	}
}

// TestCheckOutUnderAnotherHostsNameRefused: a host cannot check a workspace out under
// the name another identity announces: the workspace would say it is deployed on a
// host that never took it, and that host's offer would be charged for it.
func TestCheckOutUnderAnotherHostsNameRefused(t *testing.T) {
	f := newFixture(t)
	ctx := context.Background()
	node7 := identity.With(ctx, identity.Identity{DN: "/O=Grid/CN=host/node7"})
	node8 := identity.With(ctx, identity.Identity{DN: "/O=Grid/CN=host/node8"})
	if _, err := f.r.announceHost(node7, announcement(t, goodHost, "PT3M")); err != nil {
		t.Fatal(err)
	}
	key := f.create("claimed", "", "")
	if _, err := f.r.CheckOut(node8, key, "node7", "", nil, &tester); !errors.Is(err, errdefs.ErrAuthorization) {
		t.Fatalf("node8 checking a workspace out under node7's announced name: %v, want an authorization fault", err)
	}
	f.wantUntouched(key)
	if h := f.r.hosts.Live(f.r.now())[0]; h.Deployed != 2 {
		t.Fatalf("node8's check-out under node7's name charged node7: %d deployed", h.Deployed)
	}
	if _, err := f.r.CheckOut(node7, key, "node7", "", nil, &tester); err != nil {
		t.Fatalf("node7 checking out under its own name: %v", err)
	}
}

// TestOneIdentityAnnouncesBoundedHostNames: a host identity that announces ever new
// host names (a manager whose --host-name changes at each start, or a host
// credential misused) does not grow the Repository's hosts, in memory and in its
// database, without end: past maxHostNamesPerIdentity names, the longest-silent of
// its names that no workspace is deployed on is forgotten; one that holds a workspace
// is kept (it is how Reclaim knows the host went quiet), and when none can go the
// new name is refused and nothing is recorded.
func TestOneIdentityAnnouncesBoundedHostNames(t *testing.T) {
	f, advance := newClockedFixture(t)
	ctx := context.Background()
	node7 := identity.With(ctx, identity.Identity{DN: "/O=Grid/CN=host/node7"})
	named := func(name string) string { return strings.Replace(goodHost, ">node7<", ">"+name+"<", 1) }
	c, err := f.r.Create(ctx, CreateSpec{Name: "out", Owner: "o", Description: minimalVM(t), BaseImage: f.base, Termination: f.now().Add(time.Hour)})
	if err != nil {
		t.Fatal(err)
	}
	names := func() map[string]bool {
		out := map[string]bool{}
		for _, h := range f.r.hosts.Live(f.now()) {
			out[h.Name] = true
		}
		silent, _ := f.r.hosts.Silent(f.now())
		for name := range silent {
			out[name] = true
		}
		return out
	}
	for i := range maxHostNamesPerIdentity + 10 {
		name := fmt.Sprintf("n%d", i)
		if _, err := f.r.announceHost(node7, announcement(t, named(name), "PT10S")); err != nil {
			t.Fatalf("announcing %s: %v", name, err)
		}
		if i == 0 {
			// n0 holds a workspace: it must be remembered however long it is silent.
			if _, err := f.r.CheckOut(node7, c.Key, "n0", "", &wsa.EPR{Version: wsa.V200508, Address: "https://node7:8443/wsrf/services/WorkspaceManagerService"}, &tester); err != nil {
				t.Fatal(err)
			}
		}
		advance(11 * time.Second)
	}
	check := func(when string) {
		t.Helper()
		got := names()
		if len(got) > maxHostNamesPerIdentity || !got["n0"] || !got[fmt.Sprintf("n%d", maxHostNamesPerIdentity+9)] {
			t.Fatalf("%s: the Repository keeps %d host names of one identity (at most %d), n0 (a workspace is there) %v, the latest %v",
				when, len(got), maxHostNamesPerIdentity, got["n0"], got[fmt.Sprintf("n%d", maxHostNamesPerIdentity+9)])
		}
	}
	check("after the announcements")
	f.reopen()
	check("after a restart")

	// With every name live, a new one has nothing to make room with: refused.
	node9 := identity.With(ctx, identity.Identity{DN: "/O=Grid/CN=host/node9"})
	for i := range maxHostNamesPerIdentity {
		if _, err := f.r.announceHost(node9, announcement(t, named(fmt.Sprintf("m%d", i)), "PT3M")); err != nil {
			t.Fatal(err)
		}
	}
	_, err = f.r.announceHost(node9, announcement(t, named("one-more"), "PT3M"))
	if !errors.Is(err, errdefs.ErrAuthorization) || !strings.Contains(err.Error(), "host names") {
		t.Fatalf("one name too many, all live: %v", err)
	}
	if names()["one-more"] {
		t.Fatal("a refused announcement was recorded")
	}
}
