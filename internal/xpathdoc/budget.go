package xpathdoc

import (
	"context"
	"fmt"
	"time"
)

// checkEvery is how many steps may pass between two looks at the clock and
// the context.
const checkEvery = 1024

// budget counts the work of one evaluation. It is shared by all navigators
// of that evaluation and used from one goroutine only.
type budget struct {
	steps    int
	limit    int // check() runs once steps exceeds limit
	max      int
	timeout  time.Duration
	deadline time.Time
	ctx      context.Context
}

// abort carries a budget error out of the xpath library, which has no way
// to stop an evaluation; Evaluate recovers it.
type abort struct{ err error }

func newBudget(ctx context.Context, lim Limits) *budget {
	b := &budget{max: lim.MaxSteps, timeout: lim.Timeout, ctx: ctx, deadline: time.Now().Add(lim.Timeout)}
	b.limit = min(checkEvery, b.max)
	return b
}

// tick charges n steps.
func (b *budget) tick(n int) {
	b.steps += n
	if b.steps > b.limit {
		b.check()
	}
}

func (b *budget) check() {
	if err := b.err(); err != nil {
		panic(abort{err})
	}
	b.limit = min(b.steps+checkEvery, b.max)
}

// err reports whether the evaluation must stop.
func (b *budget) err() error {
	if b.steps > b.max {
		return fmt.Errorf("%w: the query needs more than %d evaluation steps; make it more selective (avoid nested // and repeated count()/string() over the whole document)", ErrBudgetExceeded, b.max)
	}
	if err := b.ctx.Err(); err != nil {
		return fmt.Errorf("%w: evaluation stopped after %d steps: %w", ErrBudgetExceeded, b.steps, err)
	}
	if !time.Now().Before(b.deadline) {
		return fmt.Errorf("%w: the query ran longer than %v; make it more selective", ErrBudgetExceeded, b.timeout)
	}
	return nil
}
