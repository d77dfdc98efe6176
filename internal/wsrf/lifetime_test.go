package wsrf_test

import (
	"errors"
	"testing"
	"time"

	"github.com/vws-grid/vws/internal/errdefs"
	"github.com/vws-grid/vws/internal/wsrf"
)

// A termination time counts in milliseconds. A positive lifetime shorter than the
// millisecond it would be truncated into is no lifetime at all: the resource would end
// at or before the moment it was made. Resolve refuses it as it refuses a lifetime
// ending in the past, rather than granting a termination time that is not after now.
func TestResolveRefusesALifetimeThatTruncatesToNone(t *testing.T) {
	l := wsrf.LifetimePolicy{Default: time.Hour, Maximum: 30 * 24 * time.Hour}
	onMs := time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)
	late := onMs.Add(900 * time.Microsecond)
	for _, c := range []struct {
		what     string
		now      time.Time
		lifetime time.Duration
		at       time.Duration // from now, when not 0
	}{
		{"PT0.0001S on a millisecond", onMs, 100 * time.Microsecond, 0},
		{"PT0.00005S late in a millisecond", late, 50 * time.Microsecond, 0},
		{"a termination time 100µs ahead", onMs, 0, 100 * time.Microsecond},
	} {
		var at *time.Time
		if c.at != 0 {
			a := c.now.Add(c.at)
			at = &a
		}
		term, _, err := l.Resolve(c.now, c.lifetime, at)
		if !errors.Is(err, errdefs.ErrBadRequest) {
			t.Errorf("%s: granted %s at %s (err %v); want a BadRequest", c.what, term.Format(time.RFC3339Nano), c.now.Format(time.RFC3339Nano), err)
		}
	}
	// A millisecond is a lifetime.
	if term, _, err := l.Resolve(onMs, time.Millisecond, nil); err != nil || !term.After(onMs) {
		t.Errorf("PT0.001S: %s, %v", term, err)
	}
}
