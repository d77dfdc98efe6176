package audit_test

import (
	"errors"
	"strings"
	"testing"

	"github.com/vws-grid/vws/internal/audit"
	"github.com/vws-grid/vws/internal/container"
	"github.com/vws-grid/vws/internal/dialect"
)

// TestUnrecordedFullSaysWhere: a decision refused because the audit trail's storage is
// full tells the caller so, and where, in both dialects: the administrator they ask
// must know where to make room. Another failure to record is an incident: the
// database's words stay in the server's log.
func TestUnrecordedFullSaysWhere(t *testing.T) {
	full := audit.Unrecorded(errors.New("insert audit record: database or disk is full"), "/srv/vws")
	other := audit.Unrecorded(errors.New("insert audit record: SQL logic error: no such table: audit"), "/srv/vws")
	for _, d := range dialect.Dialects {
		desc := container.FaultDetail(full, d).SelectElement("Description").Text()
		for _, s := range []string{"the server's storage is full (/srv/vws): the audit trail cannot record this decision, so nothing was done",
			"the site administrator must free space there, then retry"} {
			if !strings.Contains(desc, s) || strings.Contains(desc, "incident") {
				t.Errorf("%s: %q, want it to say %q and to name no incident", d.Name, desc, s)
			}
		}
		desc = container.FaultDetail(other, d).SelectElement("Description").Text()
		if strings.Contains(desc, "no such table") || !strings.Contains(desc, "incident") {
			t.Errorf("%s: %q, want an incident without the database's words", d.Name, desc)
		}
	}
}

// TestUnrecordedOtherSaysNothingWasDone: a decision the trail could not record for
// another reason is the server's own failure, an incident, whose cause the caller
// cannot act on; but that nothing was done is the caller's to know (a retry is then
// safe), and the fault still says it, in both dialects.
func TestUnrecordedOtherSaysNothingWasDone(t *testing.T) {
	other := audit.Unrecorded(errors.New("insert audit record: SQL logic error: no such table: audit"), "/srv/vws")
	for _, d := range dialect.Dialects {
		desc := container.FaultDetail(other, d).SelectElement("Description").Text()
		if !strings.Contains(desc, "incident") || !strings.Contains(desc, "nothing was done") {
			t.Errorf("%s: %q, want an incident that says nothing was done", d.Name, desc)
		}
		if n := strings.Count(desc, "if it persists"); n != 1 {
			t.Errorf("%s: %q says \"if it persists\" %d times", d.Name, desc, n)
		}
	}
}
