package manager

import (
	"bytes"
	"context"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/vws-grid/vws/internal/client"
	"github.com/vws-grid/vws/internal/errdefs"
	"github.com/vws-grid/vws/internal/vwsns"
	"github.com/vws-grid/vws/vmm"
)

// TestDeployKeepsAnUnreadableRecord: a journal record this manager cannot
// read (written by a newer vws, or damaged) is kept for an operator or a newer vws
// to look at (TestJournalVersionMismatch). A Deploy of that workspace must not
// overwrite or remove it: the domain it describes is still defined and running here.
func TestDeployKeepsAnUnreadableRecord(t *testing.T) {
	const k = "ws-future"
	m, rec := servingManager(t, k, stateRunning)
	m.repo = &repoClient{soap: &client.Client{HTTP: http.DefaultClient}, http: http.DefaultClient, timeout: 2 * time.Second}
	path := m.journal.path(k)
	future := []byte(`{"version": 2, "key": "ws-future", "phase": "deployed", "state": "running", "token": "tok", "newField": {"x": 1}}`)
	if err := os.WriteFile(path, future, 0o600); err != nil {
		t.Fatal(err)
	}
	m.journal = &journal{dir: m.journal.dir} // a manager started on that journal
	_, err := m.Deploy(context.Background(), workspaceEPR(rec), "")
	t.Logf("Deploy: %v", err)
	got, rerr := os.ReadFile(path)
	if rerr != nil {
		t.Fatalf("the unreadable record of a running workspace was removed by a Deploy: %v", rerr)
	}
	if !bytes.Equal(got, future) {
		t.Fatalf("the unreadable record was overwritten by a Deploy:\n%s", got)
	}
	if err == nil {
		t.Fatal("Deploy over an unreadable record succeeded")
	}
}

// TestAPausedDomainOfAShutDownRecordIsObserved: Deploy --state paused boots the
// domain paused (StartPaused) after journaling it deployed/shutdown; a manager killed
// between the boot and its record comes back to a record saying shutdown and a domain
// paused in RAM. Start's equivalent (domain running) is observed running; the paused
// one must be observed paused, or the workspace is stuck: Start fails in libvirt
// (domain already active), Unpause is refused (state shutdown), and the Repository
// says shutdown of a guest holding RAM.
func TestAPausedDomainOfAShutDownRecordIsObserved(t *testing.T) {
	const k = "ws-startpaused"
	m, hv, rec := crashManager(t, k, stateShutdown, false)
	if err := m.startPaused(context.Background(), rec); err != nil {
		t.Fatal(err)
	}
	onDisk := hv.onDisk["start"] // killed right at the boot: the record on disk then
	// The running equivalent is observed:
	if got := restartPlan(onDisk, &vmm.Domain{Name: domainName(k), UUID: domainUUID(k), State: vmm.StateRunning}); len(got) == 0 || got[0].Kind != observe || got[0].State != stateRunning {
		t.Fatalf("control: running domain of a shutdown record: %+v", got)
	}
	// Restart on the disk's record with the domain paused.
	m.journal = &journal{dir: m.journal.dir}
	if err := os.WriteFile(m.journal.path(k), mustJSON(t, onDisk), 0o600); err != nil {
		t.Fatal(err)
	}
	m.reconcile(context.Background())
	r, err := m.journal.get(k)
	if err != nil {
		t.Fatal(err)
	}
	if r.State != statePaused {
		t.Fatalf("after a restart, a workspace whose domain is paused in RAM is recorded %q (domain %v); want paused", r.State, hv.dom.State)
	}
}

func mustJSON(t *testing.T, r *record) []byte {
	t.Helper()
	j := &journal{dir: t.TempDir()}
	if err := j.put(r); err != nil {
		t.Fatal(err)
	}
	b, err := os.ReadFile(filepath.Join(j.dir, r.Key+".json"))
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// offAwareHV is crashHV whose Shutdown behaves as vmm.Libvirt.Shutdown documents: a
// domain already off (or that goes off by itself during the grace period, whichever
// way) is "nil, false", the power-off request being moot; crashDuring makes the
// guest's QEMU die while the guest is being asked to power off.
type offAwareHV struct {
	*crashHV
	crashDuring bool
}

func (h *offAwareHV) Shutdown(ctx context.Context, name string, grace time.Duration) (bool, error) {
	h.at("shutdown")
	if h.dom == nil {
		return false, vmm.ErrNoDomain
	}
	if s := h.dom.State; s != vmm.StateRunning && s != vmm.StatePaused {
		return false, nil // IsActive false: "a domain already off returns nil, false"
	}
	if h.crashDuring {
		h.set(vmm.StateCrashed, false, false) // polled inactive: returns nil, false
		return false, nil
	}
	h.set(vmm.StateShutOff, false, false)
	return false, nil
}

// TestANormalShutdownOfAGuestAlreadyLost: a guest that crashed (or whose domain
// was destroyed behind vws's back) just before a Normal shutdown, before the
// reconciler's round saw it, lost its RAM: the reconciler records such a workspace
// corrupted. A Normal shutdown arriving in that window must not turn it into a clean
// "shutdown" — after which the reconciler never learns of the crash again (a record
// saying shutdown of a crashed domain plans nothing).
func TestANormalShutdownOfAGuestAlreadyLost(t *testing.T) {
	for name, set := range map[string]func(*crashHV){
		"crashed":            func(h *crashHV) { h.set(vmm.StateCrashed, false, false) },
		"destroyed by virsh": func(h *crashHV) { h.set(vmm.StateShutOff, true, false) },
	} {
		t.Run(name, func(t *testing.T) {
			const k = "ws-lost"
			m, chv, rec := crashManager(t, k, stateRunning, false)
			hv := &offAwareHV{crashHV: chv}
			m.hv = hv
			// Control: the reconciler alone records it corrupted.
			if got := restartPlan(rec, chvDom(chv, set)); len(got) != 1 || got[0].State != stateCorrupted {
				t.Fatalf("control: reconciler plans %+v, want corrupted", got)
			}
			set(chv)
			_, err := m.Shutdown(context.Background(), workspaceEPR(rec), ModeNormal, time.Second)
			var se *errdefs.StateError
			if !errors.As(err, &se) || se.Current != stateCorrupted {
				t.Errorf("Shutdown Normal of a guest lost already: %v; want a state fault saying corrupted", err)
			}
			m.reconcile(context.Background())
			r, _ := m.journal.get(k)
			if r.State != stateCorrupted {
				t.Fatalf("a guest that had %s before a Normal shutdown is recorded %q (detail %q); want corrupted, as the reconciler records it", name, r.State, r.Detail)
			}
		})
	}
}

func chvDom(h *crashHV, set func(*crashHV)) *vmm.Domain {
	saved := h.dom
	set(h)
	d := *h.dom
	h.dom = saved
	return &d
}

// TestAGuestCrashDuringANormalShutdown: a guest whose QEMU ends otherwise than by
// its own power-off while a Normal shutdown waits for it is, per the reconciler
// (plan: pendingShutdown, crashed), shut down "forced off": not clean. The live path
// must say the same, not record a clean power-off with no detail.
func TestAGuestCrashDuringANormalShutdown(t *testing.T) {
	const k = "ws-crash-grace"
	m, chv, rec := crashManager(t, k, stateRunning, false)
	m.hv = &offAwareHV{crashHV: chv, crashDuring: true}
	if _, err := m.Shutdown(context.Background(), workspaceEPR(rec), ModeNormal, time.Second); err != nil {
		t.Fatal(err)
	}
	r, _ := m.journal.get(k)
	// What a manager killed at that moment records instead:
	want := restartPlan(withPending(rec.clone(), pendingShutdown), chv.dom)
	if len(want) != 1 || want[0].Detail == "" {
		t.Fatalf("control: %+v", want)
	}
	if r.State != stateShutdown || r.Detail == "" {
		t.Fatalf("a guest whose QEMU crashed during a Normal shutdown's grace is recorded %q with detail %q (a clean power-off); the reconciler records %q %q",
			r.State, r.Detail, want[0].State, want[0].Detail)
	}
}

// lockedRepo is a Repository that loses the answer to the first CheckOut (the
// connection drops after the request arrived: its outcome is unknown) and refuses
// every later one with WorkspaceLockedFault, as the real one does for a workspace
// deployed (not staging) on this host.
type lockedRepo struct{ calls int }

func (l *lockedRepo) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	io.ReadAll(r.Body)
	l.calls++
	if l.calls == 1 {
		conn, _, err := w.(http.Hijacker).Hijack()
		if err == nil {
			conn.Close()
		}
		return
	}
	w.Header().Set("Content-Type", "text/xml; charset=utf-8")
	w.WriteHeader(http.StatusInternalServerError)
	io.WriteString(w, `<soapenv:Envelope xmlns:soapenv="http://schemas.xmlsoap.org/soap/envelope/"><soapenv:Body><soapenv:Fault>`+
		`<faultcode>soapenv:Client</faultcode><faultstring>the workspace is locked by h on h</faultstring>`+
		`<detail><vw:WorkspaceLockedFault xmlns:vw="`+vwsns.Workspace+`"><vw:Description>locked by h on h</vw:Description></vw:WorkspaceLockedFault></detail>`+
		`</soapenv:Fault></soapenv:Body></soapenv:Envelope>`)
}

// TestADeployOverAnUnreadableRecordLeavesTheGuest: the same Deploy, when the
// Repository's answer to its CheckOut is lost, leaves a staging record in place of
// the unreadable one; the reconciler then "undoes the interrupted deploy": it stops
// and undefines the domain of the workspace that was running here and deletes its
// directory — the guest's disk.
func TestADeployOverAnUnreadableRecordLeavesTheGuest(t *testing.T) {
	const k = "ws-future2"
	m, hv, rec := crashManager(t, k, stateRunning, false)
	srv := httptest.NewServer(&lockedRepo{})
	defer srv.Close()
	scope, err := parseRepoScope(srv.URL + "/")
	if err != nil {
		t.Fatal(err)
	}
	m.scopes = []repoScope{scope}
	m.repo = &repoClient{soap: &client.Client{HTTP: srv.Client()}, http: srv.Client(), timeout: 5 * time.Second}
	rec.WorkspaceAddress = srv.URL + "/wsrf/services/WorkspaceService"
	future := []byte(`{"version": 2, "key": "` + k + `", "phase": "deployed", "state": "running", "token": "tok"}`)
	if err := os.WriteFile(m.journal.path(k), future, 0o600); err != nil {
		t.Fatal(err)
	}
	m.journal = &journal{dir: m.journal.dir} // a manager started on that journal
	_, err = m.Deploy(context.Background(), workspaceEPR(rec), "")
	t.Logf("Deploy: %v", err)
	m.reconcile(context.Background())
	if hv.dom == nil {
		t.Errorf("the reconciler undefined the domain of the workspace running here")
	} else if hv.dom.State != vmm.StateRunning {
		t.Errorf("the reconciler left the running guest %v", hv.dom.State)
	}
	if _, err := os.Stat(rec.Run); err != nil {
		t.Errorf("the running guest's disk is gone: %v", err)
	}
	if got, err := os.ReadFile(m.journal.path(k)); err != nil || !bytes.Equal(got, future) {
		t.Errorf("the unreadable record: %q, %v", got, err)
	}
}

// TestANormalShutdownOfAGuestOffAlready: a guest that powered itself off before a
// Normal shutdown came is shut down, as the caller asked, and says why.
func TestANormalShutdownOfAGuestOffAlready(t *testing.T) {
	const k = "ws-off"
	m, chv, rec := crashManager(t, k, stateRunning, false)
	m.hv = &offAwareHV{crashHV: chv}
	chv.set(vmm.StateShutOff, false, false)
	res, err := m.Shutdown(context.Background(), workspaceEPR(rec), ModeNormal, time.Second)
	if err != nil || res.State != stateShutdown {
		t.Fatalf("Shutdown Normal of a guest off already: %+v, %v", res, err)
	}
	if r, _ := m.journal.get(k); r.State != stateShutdown || r.Detail != detailPoweredOff || r.Pending != "" {
		t.Fatalf("recorded %q %q (pending %q); want shutdown, %q", r.State, r.Detail, r.Pending, detailPoweredOff)
	}
}

// TestANormalShutdownOfAGuestLostAsItsRunLogTells: a guest found shut off for no
// reason libvirt still knows (libvirtd restarted since) whose run log says it ended
// destroyed, crashed or killed lost its RAM: the reconciler records it corrupted
// (TestPowerOffReadFromTheRunLog). A Normal shutdown arriving before the reconciler's
// round must record it as the reconciler does, not as a guest that powered itself off.
func TestANormalShutdownOfAGuestLostAsItsRunLogTells(t *testing.T) {
	const k = "ws-lost-runlog"
	for _, run := range []*vmm.LastRun{
		{Ended: true, Reason: "destroyed", EndedAt: "T"},
		{Killed: "terminating on signal 9"},
	} {
		m, chv, rec := crashManager(t, k, stateRunning, false)
		m.hv = &offAwareHV{crashHV: chv}
		chv.set(vmm.StateShutOff, false, false) // libvirt's reason forgotten: not "forced", not "crashed"
		chv.lastRun = run
		_, err := m.Shutdown(context.Background(), workspaceEPR(rec), ModeNormal, time.Second)
		r, _ := m.journal.get(k)
		if r.State != stateCorrupted {
			t.Errorf("run %+v: a Normal shutdown of a guest lost already recorded it %q (%q), answering %v; want corrupted, as the reconciler records it",
				run, r.State, r.Detail, err)
		}
		var se *errdefs.StateError
		if !errors.As(err, &se) || se.Current != stateCorrupted {
			t.Errorf("run %+v: Shutdown Normal answered %v; want a state fault saying corrupted", run, err)
		}
	}
}
