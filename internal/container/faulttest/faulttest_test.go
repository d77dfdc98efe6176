package faulttest_test

import (
	"fmt"
	"strings"
	"testing"

	"github.com/vws-grid/vws/internal/container"
	"github.com/vws-grid/vws/internal/container/faulttest"
	"github.com/vws-grid/vws/internal/dialect"
	"github.com/vws-grid/vws/internal/errdefs"
)

// TestWorkspaceStateFaultAlwaysNamesBothStates: vws-faults.xsd requires CurrentState
// and RequestedState in every WorkspaceStateFault. A refusal in its own words names
// its states and keeps its words and advice; one that names no state (a hypervisor's,
// or a fault passed on from a service that sent none) is still valid, saying that
// the states are unknown rather than guessing them.
func TestWorkspaceStateFaultAlwaysNamesBothStates(t *testing.T) {
	words := fmt.Errorf("%w: workspace k is unstaging on host a; Start is refused", errdefs.ErrState)
	for _, tt := range []struct {
		name                   string
		err                    error
		current, requested     string
		description, notInDesc string
	}{
		{"in its own words", errdefs.WithAdvice(&errdefs.StateError{Current: "unstaging", Requested: "running", Err: words}, "wait"),
			"unstaging", "running", words.Error() + "; wait", "cannot go to"},
		{"the states alone", &errdefs.StateError{Current: "shutdown", Requested: "paused"},
			"shutdown", "paused", "workspace is shutdown; cannot go to paused", ""},
		{"a bare ErrState", fmt.Errorf("undefine d: the domain is running; stop it first: %w", errdefs.ErrState),
			"unknown", "unknown", "undefine d: the domain is running; stop it first", ""},
		{"passed on without states", container.PassOn(errdefs.ErrState, "operation not valid in this state: busy; retry", nil, ""),
			"unknown", "unknown", "operation not valid in this state: busy; retry", ""},
	} {
		for _, d := range dialect.Dialects {
			t.Run(tt.name+"/"+d.Name, func(t *testing.T) {
				el := faulttest.ValidDetail(t, tt.err, d)
				if el.Tag != "WorkspaceStateFault" {
					t.Fatalf("a %s, want a WorkspaceStateFault", el.Tag)
				}
				if cur, req := faulttest.States(el); cur != tt.current || req != tt.requested {
					t.Errorf("states %q → %q, want %q → %q", cur, req, tt.current, tt.requested)
				}
				desc := el.SelectElement("Description").Text()
				if !strings.HasPrefix(desc, tt.description) {
					t.Errorf("description %q, want it to begin %q", desc, tt.description)
				}
				if tt.notInDesc != "" && strings.Contains(desc, tt.notInDesc) {
					t.Errorf("description %q says %q: the states stand in for the refusal's words", desc, tt.notInDesc)
				}
			})
		}
	}
}
