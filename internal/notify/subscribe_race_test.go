package notify

import (
	"context"
	"sync"
	"testing"
	"time"

	"github.com/beevik/etree"

	"github.com/vws-grid/vws/internal/dialect"
	"github.com/vws-grid/vws/internal/wsa"
	"github.com/vws-grid/vws/internal/wsrf"
)

// hookStore runs onPut once, at the first resource stored (a Subscribe's).
type hookStore struct {
	wsrf.Store
	once  sync.Once
	onPut func()
}

func (h *hookStore) PutResource(ctx context.Context, service string, r wsrf.StoredResource) error {
	h.once.Do(h.onPut)
	return h.Store.PutResource(ctx, service, r)
}

// A workspace that changes while Subscribe stores the subscription — after its
// current value was read, before the subscription is live — must not leave the
// subscriber untold: the Repository tells the broker of the change when it has no
// subscription to send it to, and the subscriber, which started from the old value,
// would hear of the new one only at its next change (or the next restart).
func TestAChangeDuringSubscribeIsNotLost(t *testing.T) {
	c := newConsumer(t)
	var mu sync.Mutex
	current := map[string][]*etree.Element{"ws1": props("shutdown", "deployed")}
	producer := func(_ context.Context, key string) ([]*etree.Element, error) {
		mu.Lock()
		defer mu.Unlock()
		return current[key], nil
	}
	var b *Broker
	st := &hookStore{Store: openStore(t), onPut: func() {
		// The workspace starts, its change committed and told meanwhile.
		mu.Lock()
		current["ws1"] = props("running", "deployed")
		mu.Unlock()
		b.Changed("ws1", props("shutdown", "deployed"), props("running", "deployed"))
	}}
	var err error
	b, err = New(context.Background(), Config{Topics: []wsa.QName{propState, propDeployment}, Retries: []time.Duration{}, MaxFailures: 2, Store: st})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(b.Close)
	d := dialect.WSRF12
	if _, err := b.Subscribe(producer)(context.Background(), subscribeRequest(t, d, "ws1", consumerRef(d, c.URL)+topicFilter(d, "vw:state"))); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(3 * time.Second)
	for len(c.messages()) == 0 && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond)
	}
	got := c.messages()
	if len(got) != 1 {
		t.Fatalf("the subscriber was sent %d messages of the workspace's start during its Subscribe, want 1", len(got))
	}
	n, err := ParseNotify(got[0].Payload)
	if err != nil {
		t.Fatal(err)
	}
	if was, now := values(n[0].Old), values(n[0].New); was != "shutdown" || now != "running" {
		t.Fatalf("the message says %s -> %s, want shutdown -> running", was, now)
	}
}
