package factory

import (
	"context"
	"log/slog"
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
	log   *slog.Logger

	mu           sync.Mutex
	read         time.Time
	vmms, archs  []string
	haveAnnounce bool
	failing      bool // the last question went unanswered (logged once, until it is)
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
		// What is read serves every caller for offerTTL: not cut short by this one's
		// hanging up.
		ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 2*time.Second)
		offers, err := s.hosts.Offers(ctx)
		cancel()
		// Asked again only after offerTTL either way: an unanswering Repository must
		// not hold every property read for the timeout.
		s.read = time.Now()
		switch {
		case err != nil && !s.failing:
			s.failing = true
			s.logger().Warn("factory: cannot read the hosts' announcements from the Repository; VMMTypes and Architectures say what they said last (or the configured guess) until it answers",
				"err", err)
		case err == nil && s.failing:
			s.failing = false
			s.logger().Info("factory: the Repository answers again; VMMTypes and Architectures follow the announced hosts")
		}
		if err == nil {
			s.vmms, s.archs = union(offers)
			s.haveAnnounce = len(offers) > 0
		}
	}
	if !s.haveAnnounce {
		return cfg.VMMTypes, cfg.Architectures
	}
	return s.vmms, s.archs
}

func (s *siteOffer) logger() *slog.Logger {
	if s.log == nil {
		return slog.Default()
	}
	return s.log
}

// union is every VMM type and architecture one of offers runs, sorted: only guests a
// manager defines (hostfit.DefinedArchitectures) run, so a host of another
// architecture (a ppc64le machine running a manager) offers neither.
func union(offers []hostfit.Offer) (vmms, archs []string) {
	for _, o := range offers {
		runs := slices.DeleteFunc(o.Architectures(), func(a string) bool { return !slices.Contains(hostfit.DefinedArchitectures, a) })
		if len(runs) == 0 {
			continue
		}
		vmms = append(vmms, o.VMMTypes()...)
		archs = append(archs, runs...)
	}
	slices.Sort(vmms)
	slices.Sort(archs)
	return slices.Compact(vmms), slices.Compact(archs)
}
