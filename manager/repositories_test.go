package manager

import (
	"errors"
	"net/url"
	"strings"
	"testing"

	"github.com/vws-grid/vws/internal/errdefs"
)

func TestRepoScopeCovers(t *testing.T) {
	for _, c := range []struct {
		base, address string
		covers        bool
	}{
		{"https://repo.example.org:8443", "https://repo.example.org:8443/wsrf/services/WorkspaceService", true},
		{"https://Repo.Example.org:8443/", "https://repo.example.org:8443/wsrf/services/WorkspaceService", true},
		{"https://repo.example.org", "https://repo.example.org:443/wsrf/services/WorkspaceService", true},
		{"http://repo.example.org", "http://repo.example.org:80/x", true},
		{"https://repo.example.org:8443/site1", "https://repo.example.org:8443/site1/wsrf/services/WorkspaceService", true},
		{"https://repo.example.org:8443/site1", "https://repo.example.org:8443/site10/wsrf/services/WorkspaceService", false},
		{"https://repo.example.org:8443/site1", "https://repo.example.org:8443/wsrf/services/WorkspaceService", false},
		{"https://repo.example.org:8443", "http://repo.example.org:8443/wsrf/services/WorkspaceService", false},
		{"https://repo.example.org:8443", "https://repo.example.org:9443/wsrf/services/WorkspaceService", false},
		{"https://repo.example.org:8443", "https://repo.example.org.evil.net:8443/wsrf/services/WorkspaceService", false},
		{"http://127.0.0.1:8080", "http://localhost:8080/wsrf/services/WorkspaceService", false},
		{"http://127.0.0.1:8080", "http://169.254.169.254/latest/meta-data", false},
	} {
		scope, err := parseRepoScope(c.base)
		if err != nil {
			t.Fatal(err)
		}
		u, err := url.Parse(c.address)
		if err != nil {
			t.Fatal(err)
		}
		if got := scope.covers(u); got != c.covers {
			t.Errorf("%s covers %s: %v, want %v", c.base, c.address, got, c.covers)
		}
	}
}

func TestRepoScopeRefusesWhatIsNotABaseURL(t *testing.T) {
	for _, bad := range []string{"", "repo.example.org:8443", "ftp://repo.example.org", "https://", "https://u:p@repo.example.org",
		"https://repo.example.org/?x=1", "https://repo.example.org/#f"} {
		if _, err := parseRepoScope(bad); err == nil || !strings.Contains(err.Error(), "base URL") {
			t.Errorf("parseRepoScope(%q) = %v", bad, err)
		}
	}
}

func TestCheckRepository(t *testing.T) {
	own := "http://127.0.0.1:8080"
	scope, err := parseRepoScope("https://repo.example.org:8443")
	if err != nil {
		t.Fatal(err)
	}
	m := &Manager{cfg: Config{Host: "node7", LocalRepository: func() string { return own }}, scopes: []repoScope{scope}}
	for _, ok := range []string{own + "/wsrf/services/WorkspaceService", "https://repo.example.org:8443/wsrf/services/WorkspaceService"} {
		if err := m.checkRepository(ok); err != nil {
			t.Errorf("%s: %v", ok, err)
		}
	}
	err = m.checkRepository("http://10.0.0.9:8080/wsrf/services/WorkspaceService")
	if !errors.Is(err, errdefs.ErrAuthorization) || !strings.Contains(err.Error(), "node7") || !strings.Contains(err.Error(), "10.0.0.9:8080") ||
		!strings.Contains(err.Error(), "http://127.0.0.1:8080, https://repo.example.org:8443") || !strings.Contains(errdefs.Advice(err), "--repository") {
		t.Errorf("another repository: %v (%s)", err, errdefs.Advice(err))
	}
	if err := m.checkRepository("not a url"); !errors.Is(err, errdefs.ErrBadRequest) {
		t.Errorf("an address that is no URL: %v", err)
	}
	if _, err := New(Config{Dir: t.TempDir(), Host: "h"}, nil, nil); err == nil || !strings.Contains(err.Error(), "--repository") {
		t.Errorf("a manager with no repository: %v", err)
	}
}
