package manager

import (
	"context"
	"errors"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/beevik/etree"

	"github.com/vws-grid/vws/internal/dialect"
	"github.com/vws-grid/vws/internal/errdefs"
	"github.com/vws-grid/vws/internal/vwsns"
	"github.com/vws-grid/vws/internal/wsa"
	"github.com/vws-grid/vws/internal/wsrf"
	"github.com/vws-grid/vws/vmm"
)

// draining is an Update (or Delete) of mgr:Draining to value.
func draining(kind wsrf.ModKind, value string) []wsrf.Modification {
	v := etree.NewElement("mgr:Draining")
	v.CreateAttr("xmlns:mgr", vwsns.Manager)
	v.SetText(value)
	return []wsrf.Modification{{Kind: kind, Property: PropDraining, Values: []*etree.Element{v}}}
}

// TestDraining: a drained host refuses a new deployment and nothing of it is
// journaled, a workspace already there is still answered for, the drain outlives a
// restart, and only mgr:Draining may be set, to a boolean.
func TestDraining(t *testing.T) {
	const k = "ws-here"
	m, rec := servingManager(t, k, stateRunning)
	rec.Owner = "/O=Grid/CN=owner"
	if err := m.journal.put(rec); err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	if err := m.SetProperties(ctx, "", draining(wsrf.Update, "true")); err != nil || !m.Draining() {
		t.Fatalf("drain: %v (draining %v)", err, m.Draining())
	}
	if !readDraining(m.cfg.Dir) {
		t.Fatal("the drain is not on disk: a restarted manager would take workspaces again")
	}
	other := *workspaceEPR(rec)
	key := etree.NewElement("vw:WorkspaceKey")
	key.CreateAttr("xmlns:vw", vwsns.Workspace)
	key.SetText("ws-new")
	other.References = []*etree.Element{key}
	_, err := m.Deploy(ctx, &other, "")
	if !errors.Is(err, errdefs.ErrState) || !strings.Contains(err.Error(), "host h is draining for maintenance") ||
		!strings.Contains(errdefs.Advice(err), "another host") {
		t.Fatalf("Deploy on a draining host: %v (%s)", err, errdefs.Advice(err))
	}
	if _, err := m.journal.get("ws-new"); err == nil {
		t.Fatal("the refused deploy left a journal record")
	}
	// The workspace already here: its deploy is answered as before (it is here).
	if _, err := m.Deploy(ctx, workspaceEPR(rec), ""); !errors.Is(err, errdefs.ErrState) || !strings.Contains(err.Error(), "deployed/running on h") {
		t.Fatalf("Deploy of the workspace already here: %v", err)
	}

	for _, bad := range []struct {
		mods []wsrf.Modification
		want error
		says string
	}{
		{draining(wsrf.Update, "soon"), errdefs.ErrInvalidModification, `"soon" is not an xs:boolean`},
		{[]wsrf.Modification{{Kind: wsrf.Update, Property: PropCPUs, Values: []*etree.Element{etree.NewElement("mgr:CPUs")}}}, errdefs.ErrUnableToModify, "describes the host and is read-only"},
	} {
		if err := m.SetProperties(ctx, "", bad.mods); !errors.Is(err, bad.want) || !strings.Contains(err.Error(), bad.says) {
			t.Errorf("SetProperties: %v, want %v saying %q", err, bad.want, bad.says)
		}
		if !m.Draining() {
			t.Fatal("a refused modification ended the drain")
		}
	}

	props, err := m.hostProperties(ctx, dialect.GT4)
	if err != nil {
		t.Fatal(err)
	}
	told := false
	for _, p := range props {
		switch p.Tag {
		case "Draining":
			told = p.Text() == "true"
		case "DeployedWorkspaces":
			// The workspace's reference, in the reader's WS-Addressing version: what
			// vws host evacuate moves it by.
			ref, err := wsa.ParseEPR(p.FindElement("Workspace/WorkspaceReference"))
			if err != nil || ref.Version != wsa.V200403 || ref.Address != rec.WorkspaceAddress || strings.TrimSpace(ref.References[0].Text()) != k {
				t.Errorf("the host's reference to the workspace: %+v (%v)", ref, err)
			}
		}
	}
	if !told {
		t.Error("the host properties do not say it is draining")
	}

	if err := m.SetProperties(ctx, "", draining(wsrf.Delete, "")); err != nil || m.Draining() || readDraining(m.cfg.Dir) {
		t.Fatalf("Delete of mgr:Draining: %v (draining %v, on disk %v)", err, m.Draining(), readDraining(m.cfg.Dir))
	}
}

// slowHostHV is crashHV whose Host call (libvirt's node info, a round trip) waits
// until released.
type slowHostHV struct {
	*crashHV
	entered, release chan struct{}
}

func (h *slowHostHV) Host(ctx context.Context) (vmm.HostInfo, error) {
	close(h.entered)
	<-h.release
	return vmm.HostInfo{}, nil
}

// TestDrainIsNotBypassedByADeployInFlight: once SetDraining(true) has returned (and
// vws host evacuate has read the host's workspace list, empty), no new workspace may
// be checked out to the host: a Deploy that passed the drain check just before, and
// was still asking libvirt for the host's facts, is refused once it has journaled.
func TestDrainIsNotBypassedByADeployInFlight(t *testing.T) {
	const k = "ws-drain-race"
	m, hv0, rec := crashManager(t, "ws-other", stateShutdown, false)
	hv := &slowHostHV{crashHV: hv0, entered: make(chan struct{}), release: make(chan struct{})}
	m.hv = hv
	repo := &fakeRepo{deployment: "in-repository"}
	hs := httptest.NewServer(repo)
	defer hs.Close()
	scope, err := parseRepoScope(hs.URL + "/")
	if err != nil {
		t.Fatal(err)
	}
	m.scopes = []repoScope{scope}
	m.repo = &repoClient{soap: clientFor(hs), http: hs.Client()}
	m.journal.remove(rec.Key)

	epr := workspaceEPR(&record{Key: k, WorkspaceAddress: hs.URL + "/wsrf/services/WorkspaceService", WSAVersion: rec.WSAVersion})
	done := make(chan error, 1)
	go func() { _, err := m.Deploy(context.Background(), epr, ""); done <- err }()
	<-hv.entered
	if err := m.SetDraining(context.Background(), true); err != nil {
		t.Fatal(err)
	}
	recs, _ := m.journal.all()
	t.Logf("drained; the host lists %d workspace(s) (what vws host evacuate would move)", len(recs))
	close(hv.release)
	err = <-done
	t.Logf("Deploy: %v; repository saw %v", err, repo.calls)
	if repo.seen("CheckOut") {
		t.Fatalf("a Deploy checked workspace %s out to host %s after its drain began (the drain check ran before SetDraining, nothing re-checks it)", k, m.cfg.Host)
	}
	if !errors.Is(err, errdefs.ErrState) || !strings.Contains(err.Error(), "draining") {
		t.Fatalf("the Deploy under way when the drain began: %v, want the drain's WorkspaceStateFault", err)
	}
	if _, err := m.journal.get(k); err == nil {
		t.Fatal("the refused Deploy left a journal record")
	}
}

// TestHostPropertiesNameTheArchitecture: a site admin reads, and a client choosing a
// host for a description's architecture checks, which CPUs the host has.
func TestHostPropertiesNameTheArchitecture(t *testing.T) {
	m, hv, _ := crashManager(t, "ws-arch", stateRunning, false)
	m.hv = hostInfoHV{crashHV: hv, info: vmm.HostInfo{VMMType: "qemu", DomainType: "qemu", Arch: "aarch64", CPUs: 4, MemoryMiB: 8192, FreeMiB: 4096}}
	props, err := m.hostProperties(context.Background(), dialect.WSRF12)
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, p := range props {
		if p.Tag == "Architecture" && p.NamespaceURI() == vwsns.Manager {
			got = append(got, p.Text())
		}
	}
	if len(got) != 1 || got[0] != "aarch64" {
		t.Fatalf("mgr:Architecture properties %q, want one saying aarch64", got)
	}
}

// hostInfoHV is crashHV describing a host of its own.
type hostInfoHV struct {
	*crashHV
	info vmm.HostInfo
}

func (h hostInfoHV) Host(context.Context) (vmm.HostInfo, error) { return h.info, nil }
