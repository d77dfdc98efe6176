package container

import (
	"errors"
	"testing"

	"github.com/vws-grid/vws/internal/errdefs"
)

// TestSentinelOfRoundTrips: every fault type vws sends, passed on by another vws
// service, is classified as the same fault type again; ServiceFault, shared by several
// errors, stands for none.
func TestSentinelOfRoundTrips(t *testing.T) {
	for _, k := range faultKinds {
		got := SentinelOf(k.name)
		if k.name == fallbackKind.name {
			if got != nil {
				t.Errorf("SentinelOf(%s) = %v, want nil", k.name, got)
			}
			continue
		}
		if got == nil || classify(got).name != k.name {
			t.Errorf("SentinelOf(%s) = %v, classified as %s", k.name, got, classify(got).name)
		}
	}
	if !errors.Is(SentinelOf("WorkspaceQuotaExceededFault"), errdefs.ErrQuotaExceeded) {
		t.Errorf("a quota fault stands for %v", SentinelOf("WorkspaceQuotaExceededFault"))
	}
	if got := SentinelOf("NoSuchFault"); got != nil {
		t.Errorf("an unknown fault type stands for %v", got)
	}
}
