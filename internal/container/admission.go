package container

import (
	"context"
	"errors"
	"fmt"
	"math"
	"strconv"
	"time"

	"golang.org/x/sync/semaphore"

	"github.com/vws-grid/vws/internal/errdefs"
)

// DefaultParseBudget is how many bytes of SOAP request bodies may be parsed and in
// process at once, server-wide. A parsed tree costs up to ~37 bytes of heap per body
// byte (a 1 MiB body of empty elements, one per line, keeps 37 MB live and allocates
// 90 MB while parsed), so 8 MiB of bodies hold at most ~300 MB, however many
// connections send them; an ordinary request of a few KiB weighs so little that
// thousands fit.
const DefaultParseBudget = 8 << 20

// DefaultParseWait is how long a request whose body has arrived waits for room in the
// parse budget before it is answered 503.
const DefaultParseWait = 5 * time.Second

// errBusy is a request refused because the parse budget stayed full.
var errBusy = errors.New("the server is busy: too many large requests are being processed")

// admission bounds the body bytes of the SOAP requests between parse and answer. A
// request takes its share only once its whole body is in, so a client trickling a
// body holds a connection (until BodyTimeout) but never a share; it keeps the share
// until its answer is written, because the parsed tree lives as long as the request.
type admission struct {
	sem    *semaphore.Weighted // nil: no bound
	size   int64
	wait   time.Duration
	metric *Metrics
}

func newAdmission(budget int64, wait time.Duration, m *Metrics) *admission {
	a := &admission{size: budget, wait: wait, metric: m}
	if budget > 0 {
		a.sem = semaphore.NewWeighted(budget)
	}
	return a
}

// admit waits up to the configured wait (or until the caller hangs up) for n bytes of
// the budget. It returns the release, or an error that says the server is busy.
func (a *admission) admit(ctx context.Context, n int64) (release func(), err error) {
	if a.sem == nil {
		return func() {}, nil
	}
	// A body larger than the whole budget (--max-body above it) is parsed alone
	// rather than never.
	n = min(n, a.size)
	start := time.Now()
	wctx, cancel := context.WithTimeout(ctx, a.wait)
	err = a.sem.Acquire(wctx, n)
	cancel()
	if a.metric != nil {
		a.metric.admissionWait.Observe(time.Since(start).Seconds())
	}
	if err != nil {
		if a.metric != nil {
			a.metric.busy.Inc()
		}
		return nil, errdefs.WithAdvice(fmt.Errorf("%w (waited %s for room to read a %d-byte request)", errBusy, a.wait, n),
			"nothing was done; send the request again after "+a.retryAfter()+" seconds")
	}
	if a.metric != nil {
		a.metric.admitted.Add(float64(n))
	}
	return func() {
		if a.metric != nil {
			a.metric.admitted.Sub(float64(n))
		}
		a.sem.Release(n)
	}, nil
}

// retryAfter is the Retry-After of a busy refusal, in whole seconds: by then the
// requests that held the budget for the whole wait have most likely been answered.
func (a *admission) retryAfter() string {
	return strconv.Itoa(max(1, int(math.Ceil(a.wait.Seconds()))))
}
