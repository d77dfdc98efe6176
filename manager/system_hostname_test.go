package manager

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// A system host name no Repository takes (the schema's HostName has no '_') would
// make every check-out fail long after start: without --host-name it is refused by
// CheckConfig, which a server runs before it touches its data directory, saying to
// pass --host-name; New refuses it too, before making its directory.
func TestSystemHostNameNoRepositoryTakesIsRefused(t *testing.T) {
	orig := systemHostname
	t.Cleanup(func() { systemHostname = orig })
	systemHostname = func() (string, error) { return "build_host.example.org", nil }

	cfg := Config{Repositories: []string{"http://repo.example.org:8080"}}
	err := CheckConfig(cfg)
	if err == nil {
		t.Fatal("CheckConfig took the system host name build_host.example.org")
	}
	for _, want := range []string{`"build_host.example.org"`, "system's host name", "pass --host-name"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("the refusal does not say %q: %v", want, err)
		}
	}

	dir := filepath.Join(t.TempDir(), "manager")
	cfg.Dir = dir
	if _, err := New(cfg, nil, nil); err == nil || !strings.Contains(err.Error(), "pass --host-name") {
		t.Errorf("New with the system host name build_host.example.org: %v", err)
	}
	if _, err := os.Stat(dir); err == nil {
		t.Errorf("New refused the host name, yet made %s", dir)
	}

	// A --host-name given is checked itself, whatever the system's name.
	cfg.Host = "node7.example.org"
	if err := CheckConfig(cfg); err != nil {
		t.Errorf("with --host-name node7.example.org: %v", err)
	}
}
