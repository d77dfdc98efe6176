package manager

import (
	"fmt"
	"net/url"
	"strings"

	"github.com/vws-grid/vws/internal/errdefs"
	"github.com/vws-grid/vws/internal/vwsns"
)

// A Deploy names the Repository to call in its EPR's address. Calling whatever a
// caller names would let anyone make this host send requests, under its host
// credentials, to any address its network reaches (and read the start of the
// answer in the fault), so a manager deploys the workspaces of the Repositories
// its administrator listed (vws serve --repository) and of the one in its own
// process, and refuses any other before it sends anything.

// repoScope is one Repository whose workspaces this manager deploys: a base URL.
type repoScope struct {
	scheme, host, port, path string
}

// parseRepoScope reads a Repository's base URL (scheme://host[:port][/path]).
func parseRepoScope(s string) (repoScope, error) {
	u, err := url.Parse(strings.TrimSpace(s))
	if err != nil {
		return repoScope{}, fmt.Errorf("repository URL %q: %w", s, err)
	}
	if u.Scheme != "http" && u.Scheme != "https" || u.Hostname() == "" || u.User != nil || u.RawQuery != "" || u.Fragment != "" {
		return repoScope{}, fmt.Errorf("repository URL %q: give the base URL of a vws server, e.g. https://repo.example.org:8443", s)
	}
	return scopeOf(u), nil
}

func scopeOf(u *url.URL) repoScope {
	port := u.Port()
	if port == "" {
		port = map[string]string{"http": "80", "https": "443"}[u.Scheme]
	}
	return repoScope{scheme: u.Scheme, host: strings.ToLower(u.Hostname()), port: port, path: strings.TrimRight(u.Path, "/")}
}

func (r repoScope) String() string {
	return r.scheme + "://" + r.host + ":" + r.port + r.path
}

// workspacePath is where a vws server's WorkspaceService is, below its base URL: the
// address of every workspace EPR a Repository hands out.
const workspacePath = "/wsrf/services/" + vwsns.WorkspaceService

// covers says whether address is the WorkspaceService of the Repository at r. Any
// other address on its server is not a workspace's (its status page, another
// service): a reference naming it was made up.
func (r repoScope) covers(address *url.URL) bool {
	a := scopeOf(address)
	return a.scheme == r.scheme && a.host == r.host && a.port == r.port &&
		address.Path == r.path+workspacePath && address.RawQuery == "" && address.Fragment == ""
}

// repositories lists the Repositories this manager deploys workspaces of.
func (m *Manager) repositories() []repoScope {
	scopes := m.scopes
	if m.cfg.LocalRepository != nil {
		if own, err := parseRepoScope(m.cfg.LocalRepository()); err == nil {
			scopes = append([]repoScope{own}, scopes...)
		}
	}
	return scopes
}

// checkRepository refuses a workspace whose Repository this manager does not serve.
func (m *Manager) checkRepository(address string) error {
	u, err := url.Parse(address)
	if err != nil || u.Scheme == "" || u.Host == "" {
		return fmt.Errorf("%w: the workspace reference's address %q is not a URL", errdefs.ErrBadRequest, address)
	}
	scopes := m.repositories()
	names := make([]string, len(scopes))
	for i, s := range scopes {
		if s.covers(u) {
			return nil
		}
		names[i] = s.String()
	}
	served := "none"
	if len(names) > 0 {
		served = strings.Join(names, ", ")
	}
	return errdefs.WithAdvice(fmt.Errorf("%w: host %s deploys the workspaces of its site's repositories only (their %s at %s), not %s; nothing was done",
		errdefs.ErrAuthorization, m.cfg.Host, workspacePath, served, address),
		"pass the EPR its repository's Create returned, deploy the workspace on a host of that repository's site, "+
			"or ask this host's administrator to add the repository (vws serve --repository URL)")
}
