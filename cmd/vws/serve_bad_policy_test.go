package main

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// A mistyped --policy or --grid-mapfile fails vws serve before it touches the data
// directory: a fresh one is left empty (no database created, nothing migrated).
func TestServeBadPolicyFileLeavesTheDataDirectoryAlone(t *testing.T) {
	for _, flag := range []string{"--policy", "--grid-mapfile"} {
		t.Run(flag, func(t *testing.T) {
			data := filepath.Join(t.TempDir(), "data")
			missing := filepath.Join(t.TempDir(), "no-such-file")
			r := vwsRun(t, context.Background(), "serve", "--insecure", "--role", "factory,repository", "--listen", "127.0.0.1:0",
				"--data", data, flag, missing)
			if r.code == 0 || !strings.Contains(r.stderr, missing) {
				t.Fatalf("vws serve %s %s: exit %d, %s", flag, missing, r.code, r.stderr)
			}
			if left, _ := os.ReadDir(data); len(left) != 0 {
				var names []string
				for _, e := range left {
					names = append(names, e.Name())
				}
				t.Errorf("vws serve refused %s %s, yet left in the data directory: %s", flag, missing, strings.Join(names, ", "))
			}
		})
	}
}
