package manager

import (
	"errors"
	"net/url"
	"strings"
	"testing"

	"github.com/beevik/etree"

	"github.com/vws-grid/vws/internal/errdefs"
	"github.com/vws-grid/vws/internal/vwsns"
)

func TestRepoScopeCovers(t *testing.T) {
	for _, c := range []struct {
		base, address string
		covers        bool
	}{
		{"https://repo.example.org:8443", "https://repo.example.org:8443/wsrf/services/WorkspaceService", true},
		{"https://Repo.Example.org:8443/", "https://repo.example.org:8443/wsrf/services/WorkspaceService", true},
		{"https://repo.example.org", "https://repo.example.org:443/wsrf/services/WorkspaceService", true},
		{"http://repo.example.org", "http://REPO.example.org:80/wsrf/services/WorkspaceService", true},
		{"https://repo.example.org:8443/site1", "https://repo.example.org:8443/site1/wsrf/services/WorkspaceService", true},
		// Other addresses on the repository's server are no workspace's.
		{"http://repo.example.org", "http://repo.example.org/healthz", false},
		{"http://repo.example.org", "http://repo.example.org/metrics", false},
		{"http://repo.example.org", "http://repo.example.org/wsrf/services/WorkspaceManagerService", false},
		{"http://repo.example.org", "http://repo.example.org/wsrf/services/WorkspaceService/", false},
		{"http://repo.example.org", "http://repo.example.org/wsrf/services/WorkspaceService?x=1", false},
		{"http://repo.example.org", "http://repo.example.org/x/../wsrf/services/WorkspaceService", false},
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
	for _, other := range []string{"http://10.0.0.9:8080/wsrf/services/WorkspaceService", own + "/healthz"} {
		err = m.checkRepository(other)
		if !errors.Is(err, errdefs.ErrAuthorization) || !strings.Contains(err.Error(), "node7") || !strings.Contains(err.Error(), other) ||
			!strings.Contains(err.Error(), "http://127.0.0.1:8080, https://repo.example.org:8443") || !strings.Contains(errdefs.Advice(err), "--repository") {
			t.Errorf("%s: %v (%s)", other, err, errdefs.Advice(err))
		}
	}
	if err := m.checkRepository("not a url"); !errors.Is(err, errdefs.ErrBadRequest) {
		t.Errorf("an address that is no URL: %v", err)
	}
	if _, err := New(Config{Dir: t.TempDir(), Host: "h"}, nil, nil); err == nil || !strings.Contains(err.Error(), "--repository") {
		t.Errorf("a manager with no repository: %v", err)
	}
}

// TestWorkspaceReferenceIsUnambiguous: the manager acts on the one workspace a
// request names, read as the WorkspaceService reads it, and refuses to guess.
func TestWorkspaceReferenceIsUnambiguous(t *testing.T) {
	const key = "0123456789abcdef0123456789abcdef"
	ref := func(keys ...string) string {
		out := `<mgr:WorkspaceReference xmlns:mgr="` + vwsns.Manager + `" xmlns:wsa="http://www.w3.org/2005/08/addressing" xmlns:vw="` + vwsns.Workspace + `">` +
			`<wsa:Address>http://127.0.0.1:8080/wsrf/services/WorkspaceService</wsa:Address><wsa:ReferenceParameters>`
		for _, k := range keys {
			out += `<vw:WorkspaceKey>` + k + `</vw:WorkspaceKey>`
		}
		return out + `</wsa:ReferenceParameters></mgr:WorkspaceReference>`
	}
	body := func(inner string) *etree.Element {
		doc := etree.NewDocument()
		if err := doc.ReadFromString(`<mgr:Deploy xmlns:mgr="` + vwsns.Manager + `">` + inner + `</mgr:Deploy>`); err != nil {
			t.Fatal(err)
		}
		return doc.Root()
	}
	for _, c := range []struct {
		name, body string
		want       error // nil: key
	}{
		{"one key", ref(key), nil},
		{"an indented key, as pretty-printed EPR files have it", ref("\n      " + key + "\n    "), nil},
		{"two keys", ref(key, key), errdefs.ErrBadRequest},
		{"no key", ref(), errdefs.ErrResourceUnknown},
		{"two references", ref(key) + ref(key), errdefs.ErrBadRequest},
		{"no reference", "", errdefs.ErrBadRequest},
		{"a reference in another namespace", `<x:WorkspaceReference xmlns:x="urn:wrong"/>`, errdefs.ErrBadRequest},
	} {
		epr, err := workspaceRef(body(c.body))
		var got string
		if err == nil {
			got, err = keyOf(epr)
		}
		switch {
		case c.want == nil && (err != nil || got != key):
			t.Errorf("%s: %q, %v; want %s", c.name, got, err, key)
		case c.want != nil && !errors.Is(err, c.want):
			t.Errorf("%s: %q, %v; want %v", c.name, got, err, c.want)
		}
	}
}
