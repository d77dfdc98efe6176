package manager

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"sync"
	"time"

	"github.com/vws-grid/vws/internal/errdefs"
)

// A transfer may take hours on a slow link, so none has an overall timeout; one that
// moves no bytes for transferStall is given up instead (a silent peer, a cut link),
// and a deploy retried later resumes it.
var (
	transferStall = 2 * time.Minute
	// answerWait bounds the wait for the answer to an upload once its last byte is
	// sent: the Repository stores and syncs the file before it answers.
	answerWait = 10 * time.Minute
)

// errStalled is a transfer given up after moving no bytes for transferStall.
var errStalled = errors.New("the transfer stalled")

// transfer sends req (an image GET or upload) without the client's overall timeout,
// cancelled if no bytes move for transferStall: the response body and req's body are
// watched, and the wait for the answer once an upload is sent is bounded by answerWait.
func (c *repoClient) transfer(req *http.Request) (*http.Response, error) {
	ctx, cancel := context.WithCancelCause(req.Context())
	g := &stallGuard{cancel: cancel}
	g.arm(transferStall)
	req = req.WithContext(ctx)
	if req.Body != nil && req.Body != http.NoBody {
		req.Body = &guardedBody{ReadCloser: req.Body, g: g, atEOF: answerWait}
	}
	hc := *c.http
	hc.Timeout = 0
	resp, err := hc.Do(req)
	if err != nil {
		g.stop()
		return nil, g.explain(ctx, err)
	}
	resp.Body = &guardedBody{ReadCloser: resp.Body, g: g, ctx: ctx, closes: true}
	return resp, nil
}

// stallGuard cancels a transfer when arm's duration passes without another arm.
type stallGuard struct {
	mu     sync.Mutex
	timer  *time.Timer
	cancel context.CancelCauseFunc
}

func (g *stallGuard) arm(d time.Duration) {
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.timer != nil {
		g.timer.Stop()
	}
	g.timer = time.AfterFunc(d, func() { g.cancel(fmt.Errorf("%w: no bytes moved for %s", errStalled, d)) })
}

func (g *stallGuard) stop() {
	g.mu.Lock()
	defer g.mu.Unlock()
	g.timer.Stop()
	g.cancel(nil)
}

// stallAdvice is what a caller whose transfer stalled can do.
const stallAdvice = "check the network path between this host and the repository, then repeat the operation (a deploy resumes what was already transferred)"

// explain says that err came of a stall, and what to do, when it did.
func (g *stallGuard) explain(ctx context.Context, err error) error {
	cause := context.Cause(ctx)
	if !errors.Is(cause, errStalled) {
		return err
	}
	if !errors.Is(err, errStalled) {
		err = fmt.Errorf("%w (%w)", cause, err)
	}
	return errdefs.WithAdvice(err, stallAdvice)
}

// guardedBody re-arms its guard whenever bytes move through it.
type guardedBody struct {
	io.ReadCloser
	g      *stallGuard
	ctx    context.Context // set on a response body: its errors are explained
	atEOF  time.Duration   // set on a request body: the guard's next wait once it is sent
	closes bool            // closing it ends the transfer
}

func (b *guardedBody) Read(p []byte) (int, error) {
	n, err := b.ReadCloser.Read(p)
	switch {
	case err == io.EOF && b.atEOF > 0:
		b.g.arm(b.atEOF)
	case n > 0:
		b.g.arm(transferStall)
	}
	if err != nil && err != io.EOF && b.ctx != nil {
		err = b.g.explain(b.ctx, err)
	}
	return n, err
}

func (b *guardedBody) Close() error {
	err := b.ReadCloser.Close()
	if b.closes {
		b.g.stop()
	}
	return err
}
