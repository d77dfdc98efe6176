package notify

import (
	"context"
	"errors"
	"testing"

	"github.com/vws-grid/vws/internal/dialect"
	"github.com/vws-grid/vws/internal/errdefs"
)

// A consumer at a link-local IPv6 address with a zone (fe80::1%eth0) is an IP
// address, which README says is checked at Subscribe: it must be refused there, not
// taken and then never sent anything (the delivery check refuses it each time until
// the subscription ends as if its consumer were gone).
func TestZonedLinkLocalConsumerIsRefusedAtSubscribe(t *testing.T) {
	b := newBroker(t, nil, nil)
	d := dialect.GT4
	for _, addr := range []string{"http://[fe80::1%25eth0]:8080/c", "http://[fe80::a9fe:a9fe%251]/latest"} {
		_, err := b.Subscribe(exists("ws1"))(context.Background(), subscribeRequest(t, d, "ws1", consumerRef(d, addr)+topicFilter(d, "vw:state")))
		if !errors.Is(err, errdefs.ErrSubscribe) {
			t.Errorf("consumer %s: %v, want SubscribeCreationFailedFault", addr, err)
		}
	}
	if n := len(b.home.Keys()); n != 0 {
		t.Fatalf("refused Subscribes left %d subscriptions", n)
	}
}
