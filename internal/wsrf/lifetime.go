package wsrf

import (
	"fmt"
	"time"

	"github.com/vws-grid/vws/internal/errdefs"
)

// LifetimePolicy bounds the lifetime of new resources (workspaces and their clones).
type LifetimePolicy struct {
	Default, Maximum time.Duration
	// Refuse, when set, faults a request beyond Maximum instead of clamping it.
	Refuse bool
}

// Resolve turns a requested lifetime or termination time into a termination time,
// clamped (or refused) at the maximum; clamped reports a shortened request.
func (l LifetimePolicy) Resolve(now time.Time, lifetime time.Duration, at *time.Time) (term time.Time, clamped bool, err error) {
	switch {
	case at != nil:
		lifetime = at.Sub(now)
	case lifetime == 0:
		lifetime = l.Default
	}
	if lifetime <= 0 {
		return time.Time{}, false, errdefs.WithAdvice(fmt.Errorf("%w: the requested lifetime ends in the past", errdefs.ErrBadRequest),
			"ask for a positive lifetime, e.g. PT2H")
	}
	if l.Maximum > 0 && lifetime > l.Maximum {
		if l.Refuse {
			return time.Time{}, false, errdefs.WithAdvice(fmt.Errorf("%w: requested lifetime %s exceeds the site maximum %s",
				errdefs.ErrTermTimeRejected, FormatDuration(lifetime), FormatDuration(l.Maximum)),
				"ask for at most "+FormatDuration(l.Maximum))
		}
		lifetime, clamped = l.Maximum, true
	}
	term = now.Add(lifetime).UTC().Truncate(time.Millisecond)
	if !term.After(now) {
		// A termination time counts in milliseconds: a shorter lifetime would end the
		// resource at or before the moment it is made.
		return time.Time{}, false, errdefs.WithAdvice(fmt.Errorf("%w: the requested lifetime ends within the millisecond it is asked in", errdefs.ErrBadRequest),
			"ask for a lifetime of at least a millisecond (PT0.001S), e.g. PT2H")
	}
	return term, clamped, nil
}
