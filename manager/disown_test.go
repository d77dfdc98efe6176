package manager

import (
	"bytes"
	"context"
	"errors"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"slices"
	"strings"
	"sync"
	"testing"

	"github.com/beevik/etree"

	"github.com/vws-grid/vws/internal/client"
	"github.com/vws-grid/vws/internal/soap"
	"github.com/vws-grid/vws/internal/vwsns"
	"github.com/vws-grid/vws/internal/wsa"
	"github.com/vws-grid/vws/vmm"
)

// disownRecorder is a Repository that answers Disown, noting each workspace key and
// the manager address it was sent with.
type disownRecorder struct {
	mu       sync.Mutex
	disowned []string
	managers []string
}

func (d *disownRecorder) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	data, _ := io.ReadAll(r.Body)
	env, err := soap.Parse(data)
	if err != nil || env.Payload == nil || env.Payload.Tag != "Disown" {
		http.Error(w, "not a Disown", http.StatusBadRequest)
		return
	}
	d.mu.Lock()
	for _, h := range env.Headers {
		if h.Tag == "WorkspaceKey" {
			d.disowned = append(d.disowned, h.Text())
		}
	}
	if ref := env.Payload.FindElement("ManagerReference"); ref != nil {
		if epr, err := wsa.ParseEPR(ref); err == nil {
			d.managers = append(d.managers, epr.Address)
		}
	}
	d.mu.Unlock()
	out := etree.NewElement("r:DisownResponse")
	out.CreateAttr("xmlns:r", vwsns.Workspace)
	out.CreateElement("r:State").SetText("shutdown")
	answerSOAP(w, out)
}

// domainsHV is crashHV knowing domains by name: those of keys, and no other.
type domainsHV struct {
	*crashHV
	keys []string
}

func (h *domainsHV) State(ctx context.Context, name string) (vmm.State, error) {
	for _, k := range h.keys {
		if name == domainName(k) {
			return h.crashHV.State(ctx, name)
		}
	}
	return 0, vmm.ErrNoDomain
}

// TestDisownNotHeld: of the workspaces a Repository says it has checked out to this
// host but the host did not list, the manager disowns only those it holds no record
// of and no domain of (one still defined says the records, not the workspace, are
// missing), and none whose deploy or undeploy is under way; an announcement lists
// what the host holds, unless a record could not be read.
func TestDisownNotHeld(t *testing.T) {
	const held, lost, busy, defined = "k-held", "k-lost", "k-busy", "k-defined"
	m, hv, _ := crashManager(t, held, stateRunning, false)
	m.hv = &domainsHV{crashHV: hv, keys: []string{held, defined}}
	var logged bytes.Buffer
	m.log = slog.New(slog.NewTextHandler(&logged, nil))
	repo := &disownRecorder{}
	srv := httptest.NewServer(repo)
	defer srv.Close()
	m.repo = &repoClient{soap: &client.Client{HTTP: srv.Client()}, http: srv.Client()}
	self := &wsa.EPR{Version: wsa.V200508, Address: "http://h:8080/wsrf/services/WorkspaceManagerService"}
	ctx := context.Background()

	body, _, _ := m.announcement(ctx, self)
	holds := body.FindElement("Holds")
	if holds == nil {
		t.Fatal("the announcement does not say what the host holds")
	}
	var listed []string
	for _, k := range holds.ChildElements() {
		listed = append(listed, k.Text())
	}
	if !slices.Equal(listed, []string{held}) {
		t.Fatalf("the announcement holds %v, want [%s]", listed, held)
	}

	answer := etree.NewElement("r:AnnounceHostResponse")
	for _, k := range []string{held, lost, busy, defined} {
		answer.CreateElement("r:NotHeld").SetText(k)
	}
	unlock := m.locks.lock(busy) // a deploy of it under way
	m.disownNotHeld(ctx, srv.URL, self, answer)
	unlock()
	if !slices.Equal(repo.disowned, []string{lost}) {
		t.Fatalf("disowned %v, want only %s (not %s, which the host holds, nor %s, whose deploy is under way, nor %s, whose domain is defined here)", repo.disowned, lost, held, busy, defined)
	}
	if !strings.Contains(logged.String(), "whose domain is defined here, but the manager holds no record of it") {
		t.Errorf("the workspace kept for its domain is not logged:\n%s", logged.String())
	}
	if !slices.Equal(repo.managers, []string{self.Address}) {
		t.Fatalf("Disown named the managers %v, want %s", repo.managers, self.Address)
	}

	// An unreadable record: the host cannot tell what it holds, so it does not say.
	if err := os.WriteFile(m.journal.path("k-garbled"), []byte("{not json"), 0o600); err != nil {
		t.Fatal(err)
	}
	if body, _, _ := m.announcement(ctx, self); body.FindElement("Holds") != nil {
		t.Fatal("with a record it could not read, the announcement still said what the host holds")
	}
}

// TestRecoverKeepsFilesUnderADefinedDomain: at start, the files of a workspace the
// manager holds no record of go (a deploy that died before its first journal write)
// — unless a domain of that workspace is defined here, which runs on them: then the
// record is what is missing, and the files stay.
func TestRecoverKeepsFilesUnderADefinedDomain(t *testing.T) {
	const held, stray, defined = "k-held", "k-stray", "k-defined"
	m, hv, _ := crashManager(t, held, stateRunning, false)
	m.hv = &domainsHV{crashHV: hv, keys: []string{held, defined}}
	for _, k := range []string{stray, defined} {
		if err := os.MkdirAll(m.workspaceDir(k), 0o700); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(m.workspaceDir(k)+"/overlay.qcow2", []byte("disk"), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	m.recover(context.Background())
	if _, err := os.Stat(m.workspaceDir(stray)); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("the files of a workspace with neither record nor domain stay: %v", err)
	}
	if _, err := os.Stat(m.workspaceDir(defined) + "/overlay.qcow2"); err != nil {
		t.Errorf("the files under a defined domain were removed: %v", err)
	}
	if _, err := os.Stat(m.workspaceDir(held)); err != nil {
		t.Errorf("the files of the workspace held were removed: %v", err)
	}
}
