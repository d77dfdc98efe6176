package manager

import (
	"context"
	"errors"
	"strings"
	"testing"

	"github.com/beevik/etree"

	"github.com/vws-grid/vws/internal/errdefs"
	"github.com/vws-grid/vws/internal/vwsns"
	"github.com/vws-grid/vws/internal/wsa"
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
