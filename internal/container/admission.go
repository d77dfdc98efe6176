package container

import (
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"math"
	"strconv"
	"sync"
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
// as long as its parsed tree lives: until its answer is written, or until its handler
// has read what it needs and lets the tree go (DoneReading).
type admission struct {
	sem    *semaphore.Weighted // nil: no bound
	size   int64
	wait   time.Duration
	metric *Metrics
	// live are the admission tokens of the requests in process, and how many nested
	// requests each has in process (see AdmittedHeader).
	mu   sync.Mutex
	live map[string]int
}

// AdmittedHeader carries, on a call a handler makes with its request's context (the
// Factory registering with the Repository, a Manager checking out from the Repository
// of its process), the admission token of the request it serves. That request holds
// its share of the budget until the call is answered: were the call to wait for
// budget like any other, a budget full of such requests, or one body as large as the
// budget, would have every call wait ParseWait and be refused. A call bearing a live
// token is admitted at once, its parent's share standing for it (or, once the parent
// has let go of its tree, the server's own making of the call). The token is random,
// good only while its request is in process and for maxNested calls at once; a peer
// that is sent it can only skip this server's budget wait meanwhile.
const AdmittedHeader = "Vws-Admitted"

// maxNested bounds the calls one request's token admits at once: a chain of calls
// (Repository → Manager → Repository) is a few deep.
const maxNested = 4

type admittedKey struct{}

// AdmittedToken is the admission token of the request ctx serves ("" none), for
// AdmittedHeader.
func AdmittedToken(ctx context.Context) string {
	s, _ := ctx.Value(admittedKey{}).(string)
	return s
}

// nested admits a call bearing token, live: at once and outside the budget.
func (a *admission) nested(token string) (release func(), ok bool) {
	if token == "" {
		return nil, false
	}
	a.mu.Lock()
	defer a.mu.Unlock()
	n, live := a.live[token]
	if !live || n >= maxNested {
		return nil, false
	}
	a.live[token] = n + 1
	return func() {
		a.mu.Lock()
		defer a.mu.Unlock()
		if _, ok := a.live[token]; ok {
			a.live[token]--
		}
	}, true
}

// token makes a request's admission token, live until its release.
func (a *admission) token() (token string, release func()) {
	token = rand.Text()
	a.mu.Lock()
	a.live[token] = 0
	a.mu.Unlock()
	return token, func() {
		a.mu.Lock()
		delete(a.live, token)
		a.mu.Unlock()
	}
}

func newAdmission(budget int64, wait time.Duration, m *Metrics) *admission {
	a := &admission{size: budget, wait: wait, metric: m, live: map[string]int{}}
	if budget > 0 {
		a.sem = semaphore.NewWeighted(budget)
	}
	return a
}

// admit waits up to the configured wait (or until the caller hangs up) for n bytes of
// the budget. It returns the request's share, or an error that says the server is busy.
func (a *admission) admit(ctx context.Context, n int64) (*share, error) {
	if a.sem == nil {
		return &share{}, nil
	}
	// A body larger than the whole budget (--max-body above it) is parsed alone
	// rather than never.
	n = min(n, a.size)
	start := time.Now()
	wctx, cancel := context.WithTimeout(ctx, a.wait)
	err := a.sem.Acquire(wctx, n)
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
	return &share{a: a, n: n}, nil
}

// share is the part of the budget one request holds.
type share struct {
	a  *admission // nil: no bound
	mu sync.Mutex
	n  int64
}

// shrink gives back all of the share but keep bytes (a share never grows).
func (s *share) shrink(keep int64) {
	if s.a == nil {
		return
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	back := s.n - max(0, min(keep, s.n))
	if back == 0 {
		return
	}
	s.n -= back
	if s.a.metric != nil {
		s.a.metric.admitted.Sub(float64(back))
	}
	s.a.sem.Release(back)
}

// release gives back the whole share.
func (s *share) release() { s.shrink(0) }

// retryAfter is the Retry-After of a busy refusal, in whole seconds: by then the
// requests that held the budget for the whole wait have most likely been answered.
func (a *admission) retryAfter() string {
	return strconv.Itoa(max(1, int(math.Ceil(a.wait.Seconds()))))
}
