package wsrf_test

import (
	"context"
	"sync/atomic"
	"testing"
	"time"
	"unsafe"

	"github.com/beevik/etree"

	"github.com/vws-grid/vws/internal/container"
	"github.com/vws-grid/vws/internal/dialect"
	"github.com/vws-grid/vws/internal/soap"
	"github.com/vws-grid/vws/internal/store/storetest"
	"github.com/vws-grid/vws/internal/wsa"
	"github.com/vws-grid/vws/internal/wsrf"
)

// steppedClock is time.Now with its wall clock stepped forward by step seconds and its
// monotonic clock left as it is: what a process sees after an NTP step, or after its
// host (or its VM) was suspended and resumed. Go keeps both readings in a time.Time
// from time.Now; the wall seconds sit above bit 30 of its first word.
type steppedClock struct{ step atomic.Int64 }

func (c *steppedClock) now() time.Time {
	t := time.Now()
	if s := c.step.Load(); s != 0 {
		*(*uint64)(unsafe.Pointer(&t)) += uint64(s) << 30
	}
	return t
}

// TestDurationTerminationFollowsTheWallClock: a WSRF 1.2 SetTerminationTime with
// RequestedLifetimeDuration must end the resource when its TerminationTime passes by
// the home's clock, as one set with RequestedTerminationTime does
// (TestExpiryFollowsTheWallClock). now().Add(dur) keeps time.Now's monotonic reading,
// so the scheduler and expire compare on the monotonic clock, which a clock step or a
// suspend leaves behind: the resource outlives the TerminationTime it advertises.
func TestDurationTerminationFollowsTheWallClock(t *testing.T) {
	ctx := context.Background()
	clock := &steppedClock{}
	destroyed := make(chan string, 2)
	h, err := wsrf.NewHome(ctx, wsrf.HomeConfig{
		Service: "test", Document: docName, Declared: []wsa.QName{propA}, Store: storetest.Open(t), Now: clock.now,
		OnDestroy: func(ctx context.Context, s *wsrf.Snapshot) error { destroyed <- s.Key; return nil },
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(h.Close)
	far := clock.now().UTC().Add(24 * time.Hour) // as the Factory makes them: wall clock only
	for _, k := range []string{"by-duration", "by-time"} {
		if err := h.Create(ctx, k, nil, &far); err != nil {
			t.Fatal(err)
		}
	}
	keyQ := wsa.QName{Space: "urn:t", Local: "Key"}
	set := wsrf.SetTerminationTime(h, clock.now)
	call := func(key, body string) {
		t.Helper()
		hdr := etree.NewElement("t:Key")
		hdr.CreateAttr("xmlns:t", keyQ.Space)
		hdr.SetText(key)
		doc := etree.NewDocument()
		if err := doc.ReadFromString(`<wsrl:SetTerminationTime xmlns:wsrl="` + dialect.WSRF12.RL + `">` + body + `</wsrl:SetTerminationTime>`); err != nil {
			t.Fatal(err)
		}
		req := &container.Request{Service: &container.Service{Key: keyQ}, Dialect: dialect.WSRF12,
			Envelope: &soap.Envelope{Headers: []*etree.Element{hdr}}, Payload: doc.Root()}
		if _, err := set(ctx, req); err != nil {
			t.Fatalf("SetTerminationTime %s: %v", key, err)
		}
	}
	call("by-duration", `<wsrl:RequestedLifetimeDuration>PT1H</wsrl:RequestedLifetimeDuration>`)
	call("by-time", `<wsrl:RequestedTerminationTime>`+wsrf.FormatTime(clock.now().Add(time.Hour))+`</wsrl:RequestedTerminationTime>`)

	time.Sleep(100 * time.Millisecond)
	clock.step.Store(int64(2 * time.Hour / time.Second)) // the wall clock jumps 2 h: both ended 1 h ago
	if got := clock.now().Round(0).Sub(time.Now().Round(0)); got < 2*time.Hour-time.Second {
		t.Fatalf("precondition: the stepped clock is only %s ahead", got)
	}
	gone := map[string]bool{}
	deadline := time.After(3 * time.Second)
	for len(gone) < 2 {
		select {
		case k := <-destroyed:
			gone[k] = true
		case <-deadline:
			for _, k := range []string{"by-time", "by-duration"} {
				if !gone[k] {
					doc, _ := h.Document(ctx, dialect.WSRF12, k)
					var cur, term string
					if doc != nil {
						for _, c := range doc.ChildElements() {
							switch c.Tag {
							case "CurrentTime":
								cur = c.Text()
							case "TerminationTime":
								term = c.Text()
							}
						}
					}
					t.Errorf("%s: its TerminationTime %s passed an hour ago by the home's clock (CurrentTime %s), and it is still there", k, term, cur)
				}
			}
			return
		}
	}
}

// TestExpiryNotHeldBackByABusyResource: the expiry scheduler destroys each resource
// within about a second of its termination time (README). expire waits for the
// resource's lock on the scheduler's one goroutine: while an operation holds one
// expired resource (in the Repository, a CheckOut hashing a large overlay or computing
// a base image's chunk list, a Clone freezing a layer, a store write that stalls), no
// other resource expires, however long that takes.
func TestExpiryNotHeldBackByABusyResource(t *testing.T) {
	ctx := context.Background()
	destroyed := make(chan string, 2)
	h, err := wsrf.NewHome(ctx, wsrf.HomeConfig{
		Service: "test", Document: docName, Declared: []wsa.QName{propA}, Store: storetest.Open(t),
		OnDestroy: func(ctx context.Context, s *wsrf.Snapshot) error { destroyed <- s.Key; return nil },
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(h.Close)
	soon := time.Now().UTC().Add(300 * time.Millisecond)
	later := soon.Add(200 * time.Millisecond)
	if err := h.Create(ctx, "busy", nil, &soon); err != nil {
		t.Fatal(err)
	}
	if err := h.Create(ctx, "idle", nil, &later); err != nil {
		t.Fatal(err)
	}
	release := make(chan struct{})
	held := make(chan struct{})
	go h.Modify(ctx, "busy", func(s *wsrf.Snapshot) error { // a long operation on "busy"
		close(held)
		<-release
		return nil
	})
	<-held
	defer close(release)
	select {
	case k := <-destroyed:
		if k != "idle" {
			t.Fatalf("%s destroyed first", k)
		}
	case <-time.After(3 * time.Second):
		t.Fatal("\"idle\" passed its termination time 2.5 s ago and is still there: the scheduler waits for \"busy\"'s lock")
	}
}
