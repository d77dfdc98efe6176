package notify

import (
	"context"
	"testing"

	"github.com/beevik/etree"

	"github.com/vws-grid/vws/internal/dialect"
)

// A change the Repository records at start-up, before Resync (its sweep marking a
// workspace corrupted), from a value whose message was lost when the process
// stopped: the consumer, last sent shutdown, must be told shutdown -> corrupted, not
// running -> corrupted, a value it never had. README: "each message's old value is
// the previous message's new one".
func TestChangeQueuedBeforeResyncStartsFromWhatWasSent(t *testing.T) {
	db := openStore(t)
	c := newConsumer(t)
	d := dialect.GT4
	b1 := newBroker(t, db, nil)
	subscribe(t, b1, d, "ws1", consumerRef(d, c.URL)+topicFilter(d, "vw:state")) // sent: shutdown
	b1.Close()                                                                   // the change to running is recorded, its message lost

	b2 := newBroker(t, db, nil)
	b2.Changed("ws1", props("running", "deployed"), props("corrupted", "deployed")) // the start-up sweep
	b2.Resync(context.Background(), producerOf(map[string][]*etree.Element{"ws1": props("corrupted", "deployed")}))
	b2.Changed("ws1", props("corrupted", "deployed"), props("shutdown", "deployed")) // a mark: nothing else comes before it
	got := c.waitFor(t, 2)
	var chain []string
	for _, env := range got {
		n, err := ParseNotify(env.Payload)
		if err != nil {
			t.Fatal(err)
		}
		chain = append(chain, values(n[0].Old)+" -> "+values(n[0].New))
	}
	if len(chain) != 2 || chain[0] != "shutdown -> corrupted" || chain[1] != "corrupted -> shutdown" {
		t.Fatalf("the consumer, last sent shutdown, was told %q; want [shutdown -> corrupted, corrupted -> shutdown]", chain)
	}
}
