package manager

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/beevik/etree"

	"github.com/vws-grid/vws/internal/errdefs"
	"github.com/vws-grid/vws/internal/identity"
	"github.com/vws-grid/vws/internal/vwsns"
	"github.com/vws-grid/vws/internal/wsa"
	"github.com/vws-grid/vws/policy"
)

// TestOperationOnAnUnfinishedDeployment: an operation on a workspace whose undeploy
// (or deploy) failed part-way, which the reconciler finishes (or undoes), is refused
// with a state fault saying so and what comes next, naming the operation.
func TestOperationOnAnUnfinishedDeployment(t *testing.T) {
	m := &Manager{cfg: Config{Host: "h1"}, journal: &journal{dir: t.TempDir()}}
	key := strings.Repeat("c", 32)
	ref := etree.NewElement("WorkspaceKey")
	ref.CreateAttr("xmlns", vwsns.Workspace)
	ref.SetText(key)
	epr := &wsa.EPR{Version: wsa.V200508, Address: "http://repo/wsrf/services/WorkspaceService", References: []*etree.Element{ref}}
	for phase, want := range map[string]string{
		phaseUnstaging: "workspace " + key + " is unstaging on host h1 (being handed back to the Repository); Pause is refused",
		phaseStaging:   "workspace " + key + " is staging on host h1 (a deploy not finished); Pause is refused",
	} {
		rec := sampleRecord(key)
		rec.Phase = phase
		if err := m.journal.put(rec); err != nil {
			t.Fatal(err)
		}
		_, err := m.Pause(context.Background(), epr)
		if !errors.Is(err, errdefs.ErrState) || !strings.Contains(err.Error(), want) || !strings.Contains(errdefs.Advice(err), "by itself") {
			t.Errorf("Pause of a workspace %s: %v (advice %q); want a state error saying %q", phase, err, errdefs.Advice(err), want)
		}
	}
}

// TestOperationsAreAuthorizedByName: the decision on an operation on a deployed
// workspace names the operation (for the audit trail and a denial), not only its
// class: Start, Pause and Shutdown are told apart.
func TestOperationsAreAuthorizedByName(t *testing.T) {
	const k = "ws-named"
	m, _, rec := crashManager(t, k, stateShutdown, false)
	var asked []string
	m.cfg.Authorize = func(_ context.Context, op policy.Operation, res policy.Resource) error {
		asked = append(asked, string(op)+" "+res.String())
		return nil
	}
	ctx := context.Background()
	for _, call := range []func() error{
		func() error { _, err := m.Start(ctx, workspaceEPR(rec)); return err },
		func() error { _, err := m.Pause(ctx, workspaceEPR(rec)); return err },
		func() error { _, err := m.Shutdown(ctx, workspaceEPR(rec), ModeTrash, time.Second); return err },
		func() error { _, err := m.Console(ctx, workspaceEPR(rec), 0, 10); return err },
	} {
		if err := call(); err != nil {
			t.Fatal(err)
		}
	}
	svc := vwsns.ManagerService + "/"
	want := []string{"manage " + svc + "Start", "manage " + svc + "Pause", "manage " + svc + "Shutdown (Trash)", "inspect " + svc + "Console"}
	for i, w := range want {
		if i >= len(asked) || !strings.HasPrefix(asked[i], w+" ") {
			t.Errorf("decision %d: %q, want it to begin %q", i, asked, w)
		}
	}
}

// TestDeployRefusesTheUserBeforeTellingTheState: a Deploy of a workspace deployed
// here, by a caller who may not manage it, is refused as such, without its state or
// host; its owner is told it is already deployed. A deploy still waiting for its
// check-out (no owner known yet) is refused without its phase.
func TestDeployRefusesTheUserBeforeTellingTheState(t *testing.T) {
	const k = "ws-alice"
	m, rec := servingManager(t, k, statePaused)
	alice, bob := "/O=Grid/CN=alice", "/O=Grid/CN=bob"
	rec.Owner, rec.Name = alice, "alicews"
	if err := m.journal.put(rec); err != nil {
		t.Fatal(err)
	}
	rules, err := policy.Parse(strings.NewReader("allow manage *\n"), "rules")
	if err != nil {
		t.Fatal(err)
	}
	m.cfg.Authorize = func(ctx context.Context, op policy.Operation, res policy.Resource) error {
		_, err := rules.Authorize(ctx, op, res)
		return err
	}
	as := func(dn string) context.Context { return identity.With(context.Background(), identity.Identity{DN: dn}) }
	noState := func(who string, err error) {
		t.Helper()
		for _, leak := range []string{statePaused, phaseDeployed, phaseStaging, " on h"} {
			if strings.Contains(err.Error(), leak) || strings.Contains(errdefs.Advice(err), leak) {
				t.Errorf("%s's refusal tells %q: %v; %s", who, leak, err, errdefs.Advice(err))
			}
		}
	}

	_, err = m.Deploy(as(bob), workspaceEPR(rec), "")
	if !errors.Is(err, errdefs.ErrAuthorization) || !strings.Contains(err.Error(), bob+" may not manage") {
		t.Fatalf("bob's Deploy of alice's deployed workspace: %v", err)
	}
	noState("bob", err)
	if _, err := m.Deploy(as(alice), workspaceEPR(rec), ""); !errors.Is(err, errdefs.ErrState) || !strings.Contains(err.Error(), "deployed/paused on h") {
		t.Fatalf("alice's second Deploy: %v", err)
	}

	rec.Phase, rec.Owner, rec.Name = phaseStaging, "", ""
	if err := m.journal.put(rec); err != nil {
		t.Fatal(err)
	}
	_, err = m.Deploy(as(bob), workspaceEPR(rec), "")
	if !errors.Is(err, errdefs.ErrState) || !strings.Contains(err.Error(), "under way") {
		t.Fatalf("a Deploy while a check-out is unanswered: %v", err)
	}
	noState("bob", err)
}

// servingManager is crashManager's manager with a workspace in state, serving the
// Repository its record's EPR names, as a Deploy needs.
func servingManager(t *testing.T, key, state string) (*Manager, *record) {
	t.Helper()
	m, _, rec := crashManager(t, key, state, false)
	scope, err := parseRepoScope("http://127.0.0.1:1/")
	if err != nil {
		t.Fatal(err)
	}
	m.scopes = []repoScope{scope}
	return m, rec
}

// TestUnfinishedDeploymentIsNotToldToStrangers: a caller who may not manage a
// workspace learns nothing of an unfinished deployment of it on this host: the
// authorization refusal comes before the state.
func TestUnfinishedDeploymentIsNotToldToStrangers(t *testing.T) {
	const k = "ws-stranger"
	m, _, rec := crashManager(t, k, stateShutdown, false)
	rec.Phase, rec.Owner = phaseUnstaging, "/O=Grid/CN=alice"
	if err := m.journal.put(rec); err != nil {
		t.Fatal(err)
	}
	m.cfg.Authorize = func(_ context.Context, op policy.Operation, res policy.Resource) error {
		return fmt.Errorf("%w: not the owner", errdefs.ErrAuthorization)
	}
	_, err := m.Pause(context.Background(), workspaceEPR(rec))
	if !errors.Is(err, errdefs.ErrAuthorization) || strings.Contains(err.Error(), "unstaging") {
		t.Fatalf("a stranger's Pause of a workspace unstaging here: %v", err)
	}
}

// TestOperationsWaitForAnUnknownOutcome: a Serialize that libvirtd fell silent under
// (it may still finish the save) leaves its mark; every operation is refused until
// the reconciler learns the outcome, so that none overwrites the mark and a repeated
// Serialize does not remove the memory image libvirtd wrote.
func TestOperationsWaitForAnUnknownOutcome(t *testing.T) {
	const k = "ws-unknown"
	ctx := context.Background()
	for _, pending := range []string{pendingSerialize, pendingShutdown} {
		m, _, rec := crashManager(t, k, stateRunning, false)
		mem := filepath.Join(m.workspaceDir(k), "memory.save")
		if err := os.WriteFile(mem, []byte("LibvirtQemudSave and the RAM"), 0o600); err != nil {
			t.Fatal(err)
		}
		rec.Pending = pending
		if err := m.journal.put(rec); err != nil {
			t.Fatal(err)
		}
		epr := workspaceEPR(rec)
		for name, call := range map[string]func() error{
			"Serialize": func() error { _, err := m.Shutdown(ctx, epr, ModeSerialize, time.Second); return err },
			"Normal":    func() error { _, err := m.Shutdown(ctx, epr, ModeNormal, time.Second); return err },
			"Trash":     func() error { _, err := m.Shutdown(ctx, epr, ModeTrash, time.Second); return err },
			"Pause":     func() error { _, err := m.Pause(ctx, epr); return err },
			"Undeploy":  func() error { _, err := m.Undeploy(ctx, epr); return err },
		} {
			if err := call(); !errors.Is(err, errdefs.ErrState) || !strings.Contains(err.Error(), "not known yet") {
				t.Errorf("%s pending: %s: %v", pending, name, err)
			}
		}
		if r, _ := m.journal.get(k); r.Pending != pending {
			t.Errorf("%s pending: the mark became %q", pending, r.Pending)
		}
		if _, err := os.Stat(mem); err != nil {
			t.Errorf("%s pending: the memory image went: %v", pending, err)
		}
	}
}

// TestUndeployWithLibvirtdDownChangesNothing: an Undeploy libvirtd cannot serve is
// refused before the hand-back begins: the workspace stays deployed, not unstaging.
func TestUndeployWithLibvirtdDownChangesNothing(t *testing.T) {
	const k = "ws-undeploy-down"
	m, hv, rec := crashManager(t, k, stateShutdown, false)
	hv.fail = map[string]error{"state": fmt.Errorf("%w: libvirtd is unreachable; nothing was changed", errdefs.ErrHypervisor)}
	if _, err := m.Undeploy(context.Background(), workspaceEPR(rec)); !errors.Is(err, errdefs.ErrHypervisor) {
		t.Fatalf("Undeploy with libvirtd down: %v", err)
	}
	if r, _ := m.journal.get(k); r.Phase != phaseDeployed {
		t.Fatalf("the refused Undeploy left the workspace %s", r.Phase)
	}
}
