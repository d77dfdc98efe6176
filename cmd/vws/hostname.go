package main

import (
	"context"
	"fmt"
	"regexp"
	"strings"

	"github.com/vws-grid/vws/internal/vwsns"
	"github.com/vws-grid/vws/internal/wsa"
)

// hostNameRE is a host name as a manager announces itself under (vws serve
// --host-name): what --host and the host commands take besides a manager's URL.
// A colon makes it a URL without its scheme instead, the commoner slip. No '_':
// a Repository takes no host by such a name (the schema's vw:HostName), so none
// can have announced itself under one.
var hostNameRE = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9.-]{0,252}$`)

// isHostName says whether s names a host rather than giving a URL.
func isHostName(s string) bool { return !strings.Contains(s, "://") && hostNameRE.MatchString(s) }

// checkManagerArg refuses what is neither a vws URL nor a host name.
func checkManagerArg(from, s string) error {
	if isHostName(s) {
		return nil
	}
	if err := checkBaseURL(from, s); err != nil {
		return fmt.Errorf("%w, or the name of a host vws host list shows (letters, digits, '.' and '-')", err)
	}
	return nil
}

// managerAt is the manager service of hostOrURL: a base URL, or the name a host
// announced itself to the Repository at base under (its repo:KnownHost).
func managerAt(ctx context.Context, base, hostOrURL, from string) (*wsa.EPR, error) {
	if !isHostName(hostOrURL) {
		if err := checkManagerArg(from, hostOrURL); err != nil {
			return nil, err
		}
		addr := strings.TrimRight(hostOrURL, "/") + managerPath
		noteAddress(addr, from)
		return &wsa.EPR{Version: wsa.V200508, Address: addr}, nil
	}
	repo := &wsa.EPR{Version: wsa.V200508, Address: baseURL(base) + "/wsrf/services/" + vwsns.RepositoryService}
	hosts, err := soapClient().GetResourceProperty(ctx, repo, wsa.QName{Space: vwsns.Repository, Local: "KnownHost"})
	if err != nil {
		return nil, fmt.Errorf("look up host %s at the repository: %w", hostOrURL, err)
	}
	for _, h := range hosts {
		if txt(h, "HostName") != hostOrURL {
			continue
		}
		ref := h.SelectElement("ManagerReference")
		if ref == nil {
			break
		}
		mgr, err := wsa.ParseEPR(ref)
		if err != nil {
			return nil, fmt.Errorf("the repository's reference to host %s's manager: %w", hostOrURL, err)
		}
		noteAddress(mgr.Address, "the manager address host "+hostOrURL+" announced to the repository")
		return mgr, nil
	}
	return nil, fmt.Errorf("no host named %q has announced itself to the repository at %s (vws host list shows those that have): give its manager's URL, http://HOST:PORT, instead",
		hostOrURL, baseURL(base))
}
