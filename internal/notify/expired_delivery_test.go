package notify

import (
	"context"
	"errors"
	"sync"
	"testing"
	"time"

	"github.com/vws-grid/vws/internal/dialect"
	"github.com/vws-grid/vws/internal/errdefs"
	"github.com/vws-grid/vws/internal/identity"
	"github.com/vws-grid/vws/internal/wsa"
)

// A subscription past its termination time is over, whether or not the expiry
// scheduler has destroyed it yet (it looks at the clock each second, starts anew
// after a restart, and tries a failed destroy again 10 s later): a clock step, a
// host resumed from suspend, a start after the time passed while vws was down, or a
// busy database must not get its consumer more messages.
func TestExpiredSubscriptionIsSentNothing(t *testing.T) {
	var mu sync.Mutex
	now := time.Now()
	clock := func() time.Time { mu.Lock(); defer mu.Unlock(); return now }
	c := newConsumer(t)
	st := &flakyStore{Store: openStore(t)}
	st.failing.Store(true) // the expiry's destroy fails: the subscription stays a while
	b, err := New(context.Background(), Config{Topics: []wsa.QName{propState, propDeployment}, Retries: []time.Duration{},
		MaxFailures: 2, Store: st, Now: clock})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(b.Close)
	d := dialect.WSRF12
	subscribe(t, b, d, "ws1", consumerRef(d, c.URL)+topicFilter(d, "vw:state")+
		`<wsnt:InitialTerminationTime>PT1H</wsnt:InitialTerminationTime>`)
	mu.Lock()
	now = now.Add(2 * time.Hour)
	mu.Unlock()
	b.Changed("ws1", props("running", "deployed"), props("paused", "deployed"))
	time.Sleep(300 * time.Millisecond)
	if n := len(c.messages()); n != 0 {
		t.Fatalf("a subscription an hour past its termination time was sent %d messages", n)
	}
}

// An expired subscription not destroyed yet answers ResourceUnknown to what would use
// or renew it, but what destroys it (Destroy, Unsubscribe) is still authorized as its
// subscriber's: its owner is known to authorization, which otherwise decides for an
// unknown key by the operation class alone.
func TestExpiredSubscriptionKeepsItsOwnerForDestroy(t *testing.T) {
	var mu sync.Mutex
	now := time.Now()
	clock := func() time.Time { mu.Lock(); defer mu.Unlock(); return now }
	st := &flakyStore{Store: openStore(t)}
	st.failing.Store(true)
	b, err := New(context.Background(), Config{Topics: []wsa.QName{propState, propDeployment}, Store: st, Now: clock})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(b.Close)
	d := dialect.WSRF12
	alice := identity.With(context.Background(), identity.Identity{DN: "/O=Grid/CN=alice"})
	out, err := b.Subscribe(exists("ws1"))(alice, subscribeRequest(t, d, "ws1", consumerRef(d, "http://127.0.0.1:9/c")+
		`<wsnt:InitialTerminationTime>PT1H</wsnt:InitialTerminationTime>`))
	if err != nil {
		t.Fatal(err)
	}
	key := out.FindElement("./SubscriptionReference/ReferenceParameters/SubscriptionKey").Text()
	mu.Lock()
	now = now.Add(2 * time.Hour)
	mu.Unlock()
	if _, err := b.home.Property(context.Background(), d, key, wsa.QName{Space: d.RL, Local: "TerminationTime"}); !errors.Is(err, errdefs.ErrResourceUnknown) {
		t.Errorf("TerminationTime of an expired subscription: %v; want ResourceUnknown", err)
	}
	if owner, _, _, err := b.Owner(context.Background(), key); err != nil || owner != "/O=Grid/CN=alice" {
		t.Errorf("Owner of an expired subscription = %q, %v; want alice's DN", owner, err)
	}
}
