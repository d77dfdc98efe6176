package factory

import (
	"context"
	"slices"
	"sync"
	"time"

	"github.com/vws-grid/vws/internal/hostfit"
)

// Hosts tells what the site's hosts offer: the announcements the Repository keeps
// (hosts whose hypervisor could not be read left out).
type Hosts interface {
	Offers(ctx context.Context) ([]hostfit.Offer, error)
}

// offerTTL is how long the Factory reuses what the hosts offer: a host announces
// itself within seconds of a change, and a property read must not cost a call to
// the Repository each time.
const offerTTL = 5 * time.Second

// siteOffer is what the site's hosts offer, as the Factory's VMMTypes and
// Architectures say it: read from the Repository's announcements, cached briefly.
type siteOffer struct {
	hosts Hosts

	mu           sync.Mutex
	read         time.Time
	vmms, archs  []string
	haveAnnounce bool
}

// now is the VMM types and architectures the announced hosts offer, or cfg's until a
// host has announced itself (or when the Repository cannot say).
func (s *siteOffer) now(ctx context.Context, cfg Config) (vmms, archs []string) {
	if s.hosts == nil {
		return cfg.VMMTypes, cfg.Architectures
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if time.Since(s.read) > offerTTL {
		ctx, cancel := context.WithTimeout(ctx, 2*time.Second)
		offers, err := s.hosts.Offers(ctx)
		cancel()
		if err == nil {
			s.read = time.Now()
			s.vmms, s.archs = union(offers)
			s.haveAnnounce = len(offers) > 0
		}
	}
	if !s.haveAnnounce {
		return cfg.VMMTypes, cfg.Architectures
	}
	return s.vmms, s.archs
}

// union is every VMM type and architecture one of offers runs, sorted.
func union(offers []hostfit.Offer) (vmms, archs []string) {
	for _, o := range offers {
		vmms = append(vmms, o.VMMTypes()...)
		archs = append(archs, o.Architectures()...)
	}
	slices.Sort(vmms)
	slices.Sort(archs)
	return slices.Compact(vmms), slices.Compact(archs)
}
