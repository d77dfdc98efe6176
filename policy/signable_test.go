package policy

import (
	"strings"
	"testing"
)

// TestRequireSignatureNamesWhatVwsServes: a misspelt service or operation in a
// require-signature line is accepted and matches nothing, so the signature the site
// meant to require is silently not required (fail open) — the same class of typo
// checkReferences refuses for group names.
func TestRequireSignatureNamesWhatVwsServes(t *testing.T) {
	for _, line := range []string{
		"require-signature WorkspaceManager *",             // the service is WorkspaceManagerService
		"require-signature WorkspaceFactoryService create", // the operation is Create
		"require-signature /wsrf/services/WorkspaceService Destroy",
	} {
		rs, err := Parse(strings.NewReader(line+"\nallow * *\n"), "rules.conf")
		if err == nil {
			t.Errorf("%q parsed; RequiresSignature(WorkspaceManagerService, Deploy)=%v, (WorkspaceFactoryService, Create)=%v, (WorkspaceService, Destroy)=%v: nothing is required",
				line, rs.RequiresSignature("WorkspaceManagerService", "Deploy"),
				rs.RequiresSignature("WorkspaceFactoryService", "Create"), rs.RequiresSignature("WorkspaceService", "Destroy"))
		}
	}
}

// TestRequireSignatureTakesWhatVwsServes: the names the README shows still parse.
func TestRequireSignatureTakesWhatVwsServes(t *testing.T) {
	for _, line := range []string{
		"require-signature * *",
		"require-signature WorkspaceFactoryService Create",
		"require-signature WorkspaceManagerService *",
		"require-signature * Destroy",
		"require-signature WorkspaceService SetTerminationTime",
		"require-signature SubscriptionManagerService Unsubscribe",
	} {
		if _, err := Parse(strings.NewReader(line+"\nallow * *\n"), "rules.conf"); err != nil {
			t.Errorf("%q: %v", line, err)
		}
	}
}
