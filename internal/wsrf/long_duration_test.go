package wsrf_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/vws-grid/vws/internal/dialect"
	"github.com/vws-grid/vws/internal/errdefs"
)

// A termination time beyond the home's maximum lifetime is refused with
// TerminationTimeChangeRejectedFault whichever way it is asked for (README, as
// Subscribe and Renew grant the maximum for it): a RequestedLifetimeDuration of 200
// years as a RequestedTerminationTime in year 9999 is, not as a malformed request.
func TestLongLifetimeDurationIsBeyondTheMaximum(t *testing.T) {
	ctx := context.Background()
	h, now, set := setTerminationHome(t, 30*24*time.Hour)
	for _, body := range []string{
		`<wsrl:RequestedTerminationTime>9999-12-31T00:00:00Z</wsrl:RequestedTerminationTime>`,
		`<wsrl:RequestedLifetimeDuration>P200Y</wsrl:RequestedLifetimeDuration>`,
	} {
		key := "k" + body[6:30]
		was := now.Add(time.Hour)
		if err := h.Create(ctx, key, nil, &was); err != nil {
			t.Fatal(err)
		}
		if err := set(dialect.WSRF12, key, body); !errors.Is(err, errdefs.ErrTermTimeRejected) {
			t.Errorf("%s: err = %v; want TerminationTimeChangeRejectedFault", body, err)
		}
	}
}
