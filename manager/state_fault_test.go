package manager

import (
	"context"
	"errors"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/vws-grid/vws/internal/container/faulttest"
	"github.com/vws-grid/vws/internal/dialect"
	"github.com/vws-grid/vws/internal/errdefs"
	"github.com/vws-grid/vws/internal/wsrf"
)

// TestStateRefusalsNameBothStates: the Manager's refusals of an operation in the
// workspace's state (an unfinished deployment or operation, a drain, an operation
// under way) are WorkspaceStateFaults that vws-faults.xsd accepts: each names the
// state the workspace is in and the one the refused operation would lead to, and
// says what it said before, in its own words.
func TestStateRefusalsNameBothStates(t *testing.T) {
	const k = "ws-refused"
	ctx := context.Background()
	// inPhase is crashManager's manager with the workspace recorded in phase,
	// state and pending operation, its owner unknown (no authorization asked).
	inPhase := func(phase, state, pending string) (*Manager, *record) {
		m, rec := servingManager(t, k, state)
		rec.Phase, rec.Pending = phase, pending
		if err := m.journal.put(rec); err != nil {
			t.Fatal(err)
		}
		return m, rec
	}
	for _, tt := range []struct {
		name               string
		refuse             func() error
		says               string
		current, requested string
	}{
		{"a Deploy on a draining host", func() error {
			m, rec := servingManager(t, k, stateRunning)
			if err := m.SetProperties(ctx, "", draining(wsrf.Update, "true")); err != nil {
				t.Fatal(err)
			}
			m.journal.remove(k)
			_, err := m.Deploy(ctx, workspaceEPR(rec), "")
			return err
		}, "is draining for maintenance", "in-repository", phaseDeployed},
		{"a Pause of a workspace unstaging", func() error {
			m, rec := inPhase(phaseUnstaging, stateShutdown, "")
			_, err := m.Pause(ctx, workspaceEPR(rec))
			return err
		}, "is unstaging on host h", phaseUnstaging, statePaused},
		{"a Start of a workspace whose deploy is not finished", func() error {
			m, rec := inPhase(phaseStaging, stateShutdown, "")
			_, err := m.Start(ctx, workspaceEPR(rec))
			return err
		}, "(a deploy not finished); Start is refused", phaseStaging, stateRunning},
		{"a Deploy while a check-out is unanswered", func() error {
			m, rec := inPhase(phaseStaging, stateShutdown, "")
			_, err := m.Deploy(ctx, workspaceEPR(rec), "")
			return err
		}, "has a deploy under way on this host", phaseStaging, phaseDeployed},
		{"a Deploy over a record this host cannot read", func() error {
			m, rec := servingManager(t, k, stateShutdown)
			unread := *rec
			unread.Key = "ws-unreadable"
			if err := os.WriteFile(m.journal.path(unread.Key), []byte("{not json"), 0o600); err != nil {
				t.Fatal(err)
			}
			_, err := m.Deploy(ctx, workspaceEPR(&unread), "")
			return err
		}, "a record of workspace ws-unreadable that it cannot read", phaseDeployed, phaseDeployed},
		{"an Undeploy while a Serialize's outcome is unknown", func() error {
			m, rec := inPhase(phaseDeployed, stateRunning, pendingSerialize)
			_, err := m.Undeploy(ctx, workspaceEPR(rec))
			return err
		}, "is not known yet", stateRunning, "in-repository"},
		{"a Pause after a Trash failed part-way", func() error {
			m, rec := inPhase(phaseDeployed, stateRunning, pendingTrash)
			_, err := m.Pause(ctx, workspaceEPR(rec))
			return err
		}, "a Trash of workspace ws-refused failed part-way", stateRunning, statePaused},
		// What vws move reads a workspace serialized before it by: the state it is
		// in is the one asked for.
		{"a Serialize of a workspace serialized already", func() error {
			m, rec := inPhase(phaseDeployed, statePaused, "")
			rec.Hot = true
			if err := m.journal.put(rec); err != nil {
				t.Fatal(err)
			}
			_, err := m.Shutdown(ctx, workspaceEPR(rec), ModeSerialize, time.Second)
			return err
		}, "already paused (serialized)", stateSerialized, stateSerialized},
		{"a Serialize while an Undeploy is under way", func() error {
			m, rec := inPhase(phaseDeployed, stateShutdown, "")
			unlock, err := m.lockWorkspace(ctx, k, "Undeploy")
			if err != nil {
				t.Fatal(err)
			}
			defer unlock()
			short, cancel := context.WithTimeout(ctx, 20*time.Millisecond)
			defer cancel()
			_, err = m.Shutdown(short, workspaceEPR(rec), ModeSerialize, time.Second)
			return err
		}, "was not begun: Undeploy has been under way", phaseUnstaging, stateSerialized},
	} {
		t.Run(tt.name, func(t *testing.T) {
			err := tt.refuse()
			if !errors.Is(err, errdefs.ErrState) || !strings.Contains(err.Error(), tt.says) {
				t.Fatalf("%v, want a state refusal saying %q", err, tt.says)
			}
			for _, d := range dialect.Dialects {
				el := faulttest.ValidDetail(t, err, d)
				if cur, req := faulttest.States(el); cur != tt.current || req != tt.requested {
					t.Errorf("%s: CurrentState %q, RequestedState %q; want %q, %q", d.Name, cur, req, tt.current, tt.requested)
				}
				if desc := el.SelectElement("Description").Text(); !strings.HasPrefix(desc, err.Error()+"; "+errdefs.Advice(err)) {
					t.Errorf("%s: description %q, want the refusal's words and advice", d.Name, desc)
				}
			}
		})
	}
}

// TestEveryOperationNamesTheStateItAsksFor: each operation name a refusal may name
// leads to a state a WorkspaceStateFault can say.
func TestEveryOperationNamesTheStateItAsksFor(t *testing.T) {
	for _, op := range []string{"Deploy", "Start", "Pause", "Unpause", "Undeploy",
		"Shutdown (" + ModeNormal + ")", "Shutdown (" + ModeTrash + ")", "Shutdown (" + ModeSerialize + ")",
		ModeNormal, ModeTrash, ModeSerialize} {
		if requestedState(op) == "" {
			t.Errorf("%s leads to no state", op)
		}
	}
}
