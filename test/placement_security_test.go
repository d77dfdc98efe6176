package test

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/beevik/etree"

	"github.com/vws-grid/vws/internal/client"
	"github.com/vws-grid/vws/internal/vwsns"
	"github.com/vws-grid/vws/internal/wsa"
)

// TestPlacementOverTLS: over mutual TLS the server's manager announces its host as
// the host certificate; a user cannot announce a host (nor take over one's name), and
// only who may manage a workspace learns where it would be placed.
func TestPlacementOverTLS(t *testing.T) {
	s := newSecSite(t)
	ctx := context.Background()
	asAlice, asBob := s.as(s.users["alice"]), s.as(s.users["bob"])
	repo := s.epr(vwsns.RepositoryService)
	h := waitKnownHost(t, asAlice, repo, "sec-host")
	if by := elText(h, "AnnouncedBy"); by != s.hostDN {
		t.Fatalf("sec-host announced by %q, want the host certificate %q", by, s.hostDN)
	}

	// Bob is no host: his announcement, of a new name or of sec-host, is refused.
	for _, name := range []string{"bobs-host", "sec-host"} {
		body := etree.NewElement("repo:AnnounceHost")
		body.CreateAttr("xmlns:repo", vwsns.Repository)
		hb := body.CreateElement("repo:Host")
		hb.CreateElement("repo:HostName").SetText(name)
		(&wsa.EPR{Version: wsa.V200508, Address: "https://bob.example.org/wsrf/services/WorkspaceManagerService"}).ChildElement(hb, "repo:ManagerReference", "wsa")
		hb.CreateElement("repo:DomainType").SetText("kvm")
		hb.CreateElement("repo:Architecture").SetText("x86_64")
		hb.CreateElement("repo:CPUs").SetText("64")
		hb.CreateElement("repo:MemoryFreeMiB").SetText("999999")
		hb.CreateElement("repo:DeployedWorkspaces").SetText("0")
		body.CreateElement("repo:ValidFor").SetText("PT1H")
		_, err := asBob.Invoke(ctx, repo, "AnnounceHost", body)
		wantFaultType(t, "bob announces "+name, err, "WorkspaceAuthorizationFault", "CN=bob")
	}
	if h := knownHost(t, asAlice, repo, "sec-host"); h == nil || elText(h, "AnnouncedBy") != s.hostDN {
		t.Fatal("bob's refused announcement changed sec-host's")
	}

	// Alice may place her workspace; bob, who may not manage it, learns nothing.
	s.importImage("sec")
	epr, err := s.create(asAlice, "placed")
	if err != nil {
		t.Fatal(err)
	}
	place := etree.NewElement("vw:Place")
	place.CreateAttr("xmlns:vw", vwsns.Workspace)
	resp, err := asAlice.Invoke(ctx, epr, "Place", place)
	if err != nil {
		t.Fatalf("alice places her workspace: %v", err)
	}
	// libvirt's test driver reports 3 MiB free: sec-host is named, as unsuitable.
	named := false
	for _, el := range append(resp.SelectElements("Candidate"), resp.SelectElements("Unsuitable")...) {
		named = named || elText(el, "HostName") == "sec-host"
	}
	if !named {
		t.Fatalf("alice's placement does not name sec-host: %d candidates, %d unsuitable", len(resp.SelectElements("Candidate")), len(resp.SelectElements("Unsuitable")))
	}
	_, err = asBob.Invoke(ctx, epr, "Place", place.Copy())
	wantFaultType(t, "bob places alice's workspace", err, "WorkspaceAuthorizationFault", "CN=bob")
}

// elText is the trimmed text of el's child local, "" when it has none.
func elText(el *etree.Element, local string) string {
	if c := el.SelectElement(local); c != nil {
		return strings.TrimSpace(c.Text())
	}
	return ""
}

// knownHost is the Repository's repo:KnownHost property for host name (any host for
// ""), read through c; nil when it has none.
func knownHost(t *testing.T, c *client.Client, repo *wsa.EPR, name string) *etree.Element {
	t.Helper()
	hosts, err := c.GetResourceProperty(context.Background(), repo, wsa.QName{Space: vwsns.Repository, Local: "KnownHost"})
	if err != nil {
		t.Fatal(err)
	}
	for _, h := range hosts {
		if name == "" || elText(h, "HostName") == name {
			return h
		}
	}
	return nil
}

// waitKnownHost waits until host name (any host for "") has announced itself to the
// Repository at repo (a server's own manager does within a second of start).
func waitKnownHost(t *testing.T, c *client.Client, repo *wsa.EPR, name string) *etree.Element {
	t.Helper()
	for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(100 * time.Millisecond) {
		if h := knownHost(t, c, repo, name); h != nil {
			return h
		}
		if time.Now().After(deadline) {
			t.Fatalf("no host %q announced itself to %s within 10 s", name, repo.Address)
		}
	}
}

// TestDrainOverTLS: only a site administrator drains a host (WS-RP
// SetResourceProperties of mgr:Draining on the Manager); a user's attempt, a value
// that is no boolean and any other property are refused, changing nothing; the
// drain reaches the Repository with the host's next announcement.
func TestDrainOverTLS(t *testing.T) {
	s := newSecSite(t)
	ctx := context.Background()
	asAdmin, asBob := s.as(s.users["admin"]), s.as(s.users["bob"])
	mgr, repo := s.epr(vwsns.ManagerService), s.epr(vwsns.RepositoryService)
	waitKnownHost(t, asAdmin, repo, "sec-host")
	set := func(c *client.Client, local, value string) error {
		body := etree.NewElement("wsrp:SetResourceProperties")
		body.CreateAttr("xmlns:wsrp", "http://docs.oasis-open.org/wsrf/rp-2")
		v := body.CreateElement("wsrp:Update").CreateElement("mgr:" + local)
		v.CreateAttr("xmlns:mgr", vwsns.Manager)
		v.SetText(value)
		_, err := c.Invoke(ctx, mgr, "SetResourceProperties", body)
		return err
	}
	draining := func() string {
		t.Helper()
		els, err := asBob.GetResourceProperty(ctx, mgr, wsa.QName{Space: vwsns.Manager, Local: "Draining"})
		if err != nil || len(els) != 1 {
			t.Fatalf("mgr:Draining: %v (%d)", err, len(els))
		}
		return strings.TrimSpace(els[0].Text())
	}
	wantFaultType(t, "bob drains the host", set(asBob, "Draining", "true"), "WorkspaceAuthorizationFault", "CN=bob")
	wantFaultType(t, "admin sets mgr:Draining to maybe", set(asAdmin, "Draining", "maybe"), "InvalidModificationFault", `"maybe" is not an xs:boolean`)
	wantFaultType(t, "admin sets mgr:CPUs", set(asAdmin, "CPUs", "64"), "UnableToModifyResourcePropertyFault", "read-only")
	if d := draining(); d != "false" {
		t.Fatalf("after refused modifications mgr:Draining is %q", d)
	}
	if err := set(asAdmin, "Draining", "true"); err != nil {
		t.Fatalf("admin drains the host: %v", err)
	}
	if d := draining(); d != "true" {
		t.Fatalf("after the admin's drain mgr:Draining is %q", d)
	}
	deadline := time.Now().Add(10 * time.Second)
	for elText(knownHost(t, asAdmin, repo, "sec-host"), "Draining") != "true" {
		if time.Now().After(deadline) {
			t.Fatal("the Repository was not told of the drain within 10 s")
		}
		time.Sleep(100 * time.Millisecond)
	}
	if err := set(asAdmin, "Draining", "false"); err != nil || draining() != "false" {
		t.Fatalf("admin ends the drain: %v (mgr:Draining %q)", err, draining())
	}
}
