package main

import (
	"strings"
	"testing"
)

// Without --policy and --grid-mapfile a TLS server (the default) keeps callers to
// their own workspaces and names no admin (policy.Authenticated); only --insecure
// allows everything. The flag's help must not tell an administrator otherwise.
func TestServePolicyHelpSaysWhatTheDefaultIs(t *testing.T) {
	f := newServeCommand().Flags().Lookup("policy")
	if f == nil {
		t.Fatal("no --policy flag")
	}
	if strings.Contains(f.Usage, "default: allow everything") {
		t.Errorf("--policy help says the default allows everything, which is true only with --insecure: %q", f.Usage)
	}
	for _, want := range []string{"own workspaces", "--insecure"} {
		if !strings.Contains(f.Usage, want) {
			t.Errorf("--policy help %q does not say %q", f.Usage, want)
		}
	}
}
