package notify

import (
	"context"
	"net/http"
	"net/http/httptest"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/beevik/etree"

	"github.com/vws-grid/vws/internal/dialect"
)

// A change the Repository records at start-up, before Resync (its sweep marking a
// workspace corrupted, say), is told by Changed; Resync must not tell it again while
// its consumer has not yet taken it. README: "each message's old value is the
// previous message's new one".
func TestResyncDoesNotRepeatAChangeToldSinceTheStart(t *testing.T) {
	db := openStore(t)
	release := make(chan struct{})
	var first sync.Once
	var told atomic.Int32
	hs := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		first.Do(func() { <-release }) // slow: the first message is on its way when Resync runs
		told.Add(1)
	}))
	defer hs.Close()
	d := dialect.GT4
	b1 := newBroker(t, db, nil)
	subscribe(t, b1, d, "ws1", consumerRef(d, hs.URL)+topicFilter(d, "vw:state"))
	b1.Close()

	b2 := newBroker(t, db, nil)
	b2.Changed("ws1", props("shutdown", "in-repository"), props("corrupted", "in-repository"))
	time.Sleep(100 * time.Millisecond) // at the consumer
	b2.Resync(context.Background(), producerOf(map[string][]*etree.Element{"ws1": props("corrupted", "in-repository")}))
	close(release)
	time.Sleep(500 * time.Millisecond)
	if n := told.Load(); n != 1 {
		t.Fatalf("the consumer was told the change shutdown -> corrupted %d times, want once", n)
	}
}
