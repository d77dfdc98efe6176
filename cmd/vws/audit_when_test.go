package main

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/vws-grid/vws/internal/identity"
)

// A count of days too large for a duration is refused, not wrapped around: 213600d
// (some 585 years) became about 96 days, and --prune-before 213600d, which should
// remove nothing, removed every record older than that, without --yes.
func TestAuditRefusesDaysPastADuration(t *testing.T) {
	now := time.Now()
	for _, s := range []string{"213600d", "2136000d", "106752d", "106751d2562047h"} {
		if when, err := parseWhen(s, now); err == nil {
			t.Errorf("parseWhen(%q) = %s (%s back), want an error", s, when.Format(time.RFC3339), now.Sub(when))
		}
	}
	if when, err := parseWhen("106751d", now); err != nil || now.Sub(when) != 106751*24*time.Hour {
		t.Errorf("parseWhen(106751d) = %s, %v", when, err)
	}

	dir, db, l := openAudit(t)
	l.Record(identity.With(context.Background(), identity.Identity{DN: "/O=Grid/CN=alice"}), "create", "ws", "done", "")
	db.Close()
	if out, err := auditCLI(t, "--data", dir, "--prune-before", "213600d"); err == nil || !strings.Contains(err.Error(), "--prune-before") {
		t.Errorf("--prune-before 213600d: %v\n%s", err, out)
	}
}
