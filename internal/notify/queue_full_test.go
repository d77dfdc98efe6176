package notify

import (
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/beevik/etree"

	"github.com/vws-grid/vws/internal/dialect"
	"github.com/vws-grid/vws/internal/soap"
)

// A consumer that falls MaxQueue messages behind loses messages, but what it is sent
// still chains: each message's old value is the previous message's new one, as the
// README promises. Dropping the oldest queued message left a hole: the consumer was
// told "s2 -> s3" right after "s0 -> s1" and never learnt how s1 became s2.
func TestAFullQueueKeepsTheChangesChained(t *testing.T) {
	release := make(chan struct{})
	var mu sync.Mutex
	var got []*soap.Envelope
	first := make(chan struct{})
	var once sync.Once
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		data, _ := io.ReadAll(r.Body)
		env, err := soap.Parse(data)
		if err != nil {
			t.Errorf("not SOAP: %v", err)
			return
		}
		mu.Lock()
		got = append(got, env)
		mu.Unlock()
		once.Do(func() { close(first) })
		<-release // a slow consumer: the first message holds the queue up
	}))
	t.Cleanup(srv.Close)
	t.Cleanup(func() {
		select {
		case <-release:
		default:
			close(release)
		}
	})
	b := newBroker(t, nil, func(c *Config) { c.MaxQueue = 3 })
	d := dialect.WSRF12
	subscribe(t, b, d, "ws1", consumerRef(d, srv.URL)+topicFilter(d, "vw:state"))

	states := []string{"s0", "s1", "s2", "s3", "s4", "s5", "s6"}
	b.Changed("ws1", props(states[0], "deployed"), props(states[1], "deployed"))
	select {
	case <-first:
	case <-time.After(5 * time.Second):
		t.Fatal("the consumer got no message")
	}
	for i := 2; i < len(states); i++ { // five more: two more than the queue holds
		b.Changed("ws1", props(states[i-1], "deployed"), props(states[i], "deployed"))
	}
	close(release)

	deadline := time.Now().Add(10 * time.Second)
	var chain []string
	for {
		mu.Lock()
		msgs := append([]*soap.Envelope(nil), got...)
		mu.Unlock()
		chain = chain[:0]
		for _, env := range msgs {
			n, err := ParseNotify(env.Payload)
			if err != nil {
				t.Fatal(err)
			}
			chain = append(chain, values(n[0].Old)+" -> "+values(n[0].New))
		}
		if len(chain) > 0 && strings.HasSuffix(chain[len(chain)-1], " -> "+states[len(states)-1]) {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the consumer never heard of the last state; it got %q", chain)
		}
		time.Sleep(10 * time.Millisecond)
	}
	prev := states[0]
	for i, c := range chain {
		old, nw, _ := strings.Cut(c, " -> ")
		if old != prev {
			t.Fatalf("message %d is %q, but the one before it left the consumer at %q (got %q)", i, c, prev, chain)
		}
		if old == nw {
			t.Fatalf("message %d changes nothing: %q (got %q)", i, c, chain)
		}
		prev = nw
	}
}

// Two queued changes that undo each other merge into none, not "running -> running".
func TestShedDropsAChangeMergedBackToItsStart(t *testing.T) {
	change := func(from, to string) message {
		return message{topic: propState, old: []*etree.Element{prop(propState, from)}, new: []*etree.Element{prop(propState, to)},
			newValue: valueOf([]*etree.Element{prop(propState, to)}, propState)}
	}
	q := shed([]message{change("paused", "running"), change("running", "paused"), change("paused", "running"), change("running", "paused")})
	var got []string
	for _, m := range q {
		got = append(got, values(m.old)+" -> "+values(m.new))
	}
	if strings.Join(got, "; ") != "paused -> running; running -> paused" {
		t.Fatalf("shed left %q, want the last two changes", got)
	}
}
