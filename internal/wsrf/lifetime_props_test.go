package wsrf_test

import (
	"context"
	"errors"
	"sync/atomic"
	"testing"
	"time"

	"github.com/beevik/etree"

	"github.com/vws-grid/vws/internal/dialect"
	"github.com/vws-grid/vws/internal/errdefs"
	"github.com/vws-grid/vws/internal/store/storetest"
	"github.com/vws-grid/vws/internal/wsa"
	"github.com/vws-grid/vws/internal/wsrf"
)

// TestLifetimePropertiesAreReadOnlyNotUnknown: wsrl:CurrentTime and
// wsrl:TerminationTime are properties of every document (GetResourceProperty answers
// them, the WSDL's document sequence declares them); a SetResourceProperties naming
// them names a read-only property, which WS-RP answers with
// UnableToModifyResourcePropertyFault, not InvalidResourcePropertyQNameFault (which
// says the name is not in the document).
func TestLifetimePropertiesAreReadOnlyNotUnknown(t *testing.T) {
	ctx := context.Background()
	h := newHome(t, storetest.Open(t), nil)
	term := time.Now().Add(time.Hour).Truncate(time.Millisecond)
	if err := h.Create(ctx, "k", []*etree.Element{prop(propA, "1")}, &term); err != nil {
		t.Fatal(err)
	}
	for _, d := range dialect.Dialects {
		for _, local := range []string{"TerminationTime", "CurrentTime"} {
			q := wsa.QName{Space: d.RL, Local: local}
			// It is a property of the document: GetResourceProperty answers it.
			if vals, err := h.Property(ctx, d, "k", q); err != nil || len(vals) != 1 {
				t.Fatalf("%s: GetResourceProperty: %v %v", q, vals, err)
			}
			later := wsrf.TimeElement(d.RL, local, &time.Time{})
			for _, m := range []wsrf.Modification{
				{Kind: wsrf.Update, Property: q, Values: []*etree.Element{later}},
				{Kind: wsrf.Delete, Property: q},
			} {
				err := h.SetProperties(ctx, "k", []wsrf.Modification{m})
				if !errors.Is(err, errdefs.ErrUnableToModify) {
					t.Errorf("%s of %s (%s): err = %v; want UnableToModifyResourcePropertyFault", kind(m.Kind), q.Local, d.Name, err)
				}
			}
		}
	}
}

func kind(k wsrf.ModKind) string {
	return map[wsrf.ModKind]string{wsrf.Insert: "Insert", wsrf.Update: "Update", wsrf.Delete: "Delete"}[k]
}

// TestExpiryFollowsTheWallClock: the scheduler must destroy a resource within about a
// second of its termination time by the clock the home reads, also when that clock
// moved on faster than the timer it sleeps on (a wall-clock step, a host suspended
// and resumed: Go timers run on the monotonic clock, which stands still meanwhile).
func TestExpiryFollowsTheWallClock(t *testing.T) {
	ctx := context.Background()
	var now atomic.Int64
	now.Store(time.Now().UnixNano())
	clock := func() time.Time { return time.Unix(0, now.Load()) }
	destroyed := make(chan string, 1)
	h, err := wsrf.NewHome(ctx, wsrf.HomeConfig{
		Service: "test", Document: docName, Declared: []wsa.QName{propA}, Store: storetest.Open(t), Now: clock,
		OnDestroy: func(ctx context.Context, s *wsrf.Snapshot) error { destroyed <- s.Key; return nil },
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(h.Close)
	term := clock().Add(10 * time.Minute)
	if err := h.Create(ctx, "k", nil, &term); err != nil {
		t.Fatal(err)
	}
	time.Sleep(100 * time.Millisecond) // the scheduler has gone to sleep until term
	now.Add(int64(11 * time.Minute))   // the clock passes term
	select {
	case <-destroyed:
	case <-time.After(3 * time.Second):
		t.Fatal("the termination time passed 3 s ago by the home's clock, and the resource is still there")
	}
}
