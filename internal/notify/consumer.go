package notify

import (
	"cmp"
	"crypto/sha256"
	"crypto/subtle"
	"fmt"
	"io"
	"net/http"
	"strings"
	"sync"
	"time"

	"github.com/beevik/etree"

	"github.com/vws-grid/vws/internal/dialect"
	"github.com/vws-grid/vws/internal/identity"
	"github.com/vws-grid/vws/internal/soap"
	"github.com/vws-grid/vws/internal/vwsns"
	"github.com/vws-grid/vws/internal/wsa"
	"github.com/vws-grid/vws/internal/wssec"
)

// Notification is one NotificationMessage as a consumer reads it.
type Notification struct {
	Dialect *dialect.Dialect
	Topic   wsa.QName
	// Producer is the resource the message is about (nil if the message has none).
	Producer *wsa.EPR
	// Old and New are a value change's property instances (Old may be empty).
	Old, New []*etree.Element
	// Terminated is set for a ResourceTermination message, with its reason.
	Terminated bool
	Reason     string
	// Message is the NotificationMessage element itself.
	Message *etree.Element
}

// ListenerKey is the reference parameter a Consumer puts in its ConsumerReference:
// every Notify for it carries the value back as a header, so the consumer takes
// messages only from subscriptions it made.
var ListenerKey = wsa.QName{Space: vwsns.Notification, Local: "Listener"}

// maxNotifyBytes bounds a Notify a Consumer reads: vws's are ~8 KiB signed (an RSA
// host chain), and a parsed body keeps up to ~30 bytes of tree per byte.
const maxNotifyBytes = 64 << 10

// A Notify body must arrive within notifyBodyTimeout (64 KiB at 64 kbit/s), or the
// connection is closed: anyone who reaches the listener could otherwise hold
// connections and goroutines for ever by trickling bodies.
const notifyBodyTimeout = 10 * time.Second

// notifyParsing bounds the Notify messages parsed and in process at once (a
// producer sends one subscriber at most 4 at once); one that finds no room within
// notifyParseWait is answered 503, and the producer tries again.
const (
	notifyParsing   = 4
	notifyParseWait = 5 * time.Second
)

// Consumer is an HTTP notification consumer: it takes Notify messages carrying its
// token and hands each NotificationMessage to Deliver.
type Consumer struct {
	// Token is the ListenerKey value Notify messages must carry.
	Token   string
	Deliver func(Notification)
	// Verifier, if set, requires every Notify to be signed (WS-Security X.509) by a
	// certificate it trusts, over the token too, and seen once; Signer then decides
	// whether that signer may send notifications (a host, say).
	Verifier *wssec.Verifier
	Signer   func(identity.Identity) error

	slotsOnce   sync.Once
	slots       chan struct{}
	bodyTimeout time.Duration // 0: notifyBodyTimeout (tests shorten it)

	// taken are the digests of the Notify bodies lately taken, oldest first: a
	// producer that got no answer to one (a connection cut, an answer later than its
	// timeout) sends the same bytes again, which are acknowledged, not delivered a
	// second time nor refused as a replay (which the producer counts as a message
	// lost, and enough of them as a consumer gone).
	takenMu sync.Mutex
	taken   map[[sha256.Size]byte]bool
	takenQ  [][sha256.Size]byte
}

// maxTaken bounds the Notify bodies a Consumer remembers having taken: a producer
// sends one subscription's messages one at a time, retrying each for seconds.
const maxTaken = 1024

// take records the Notify body of digest sum as taken; false if it was already.
func (c *Consumer) take(sum [sha256.Size]byte) bool {
	c.takenMu.Lock()
	defer c.takenMu.Unlock()
	if c.taken[sum] {
		return false
	}
	if c.taken == nil {
		c.taken = map[[sha256.Size]byte]bool{}
	}
	if len(c.takenQ) >= maxTaken {
		delete(c.taken, c.takenQ[0])
		c.takenQ = c.takenQ[1:]
	}
	c.taken[sum] = true
	c.takenQ = append(c.takenQ, sum)
	return true
}

func (c *Consumer) wasTaken(sum [sha256.Size]byte) bool {
	c.takenMu.Lock()
	defer c.takenMu.Unlock()
	return c.taken[sum]
}

// Reference is the consumer's EPR at address, in WS-Addressing version v.
func (c *Consumer) Reference(v wsa.Version, address string) *wsa.EPR {
	return &wsa.EPR{Version: v, Address: address,
		References: []*etree.Element{textElement(ListenerKey.Space, "vwn", ListenerKey.Local, c.Token)}}
}

func (c *Consumer) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodPost {
		http.Error(w, "this is a WS-BaseNotification consumer: POST Notify messages", http.StatusMethodNotAllowed)
		return
	}
	// net/http sets no deadline on a body (the listener's server has none either), and
	// reads what a handler left of one before answering: set it before anything.
	_ = http.NewResponseController(w).SetReadDeadline(time.Now().Add(cmp.Or(c.bodyTimeout, notifyBodyTimeout)))
	if r.ContentLength > maxNotifyBytes {
		w.Header().Set("Connection", "close")
		http.Error(w, fmt.Sprintf("a Notify of %d bytes: this consumer takes at most %d", r.ContentLength, maxNotifyBytes), http.StatusRequestEntityTooLarge)
		return
	}
	data, err := io.ReadAll(io.LimitReader(r.Body, maxNotifyBytes+1))
	switch {
	case err != nil:
		w.Header().Set("Connection", "close")
		http.Error(w, fmt.Sprintf("the Notify did not arrive whole within %s: %v", cmp.Or(c.bodyTimeout, notifyBodyTimeout), err), http.StatusRequestTimeout)
		return
	case len(data) > maxNotifyBytes:
		w.Header().Set("Connection", "close")
		http.Error(w, fmt.Sprintf("a Notify larger than %d bytes: this consumer takes at most that", maxNotifyBytes), http.StatusRequestEntityTooLarge)
		return
	}
	sum := sha256.Sum256(data)
	if c.wasTaken(sum) {
		w.WriteHeader(http.StatusOK) // a retry of a Notify taken already: it has been delivered
		return
	}
	// A slot once the body is in, held while its tree lives: a trickled body holds none.
	c.slotsOnce.Do(func() { c.slots = make(chan struct{}, notifyParsing) })
	wait := time.NewTimer(notifyParseWait)
	defer wait.Stop()
	select {
	case c.slots <- struct{}{}:
		defer func() { <-c.slots }()
	case <-wait.C:
		w.Header().Set("Retry-After", "1")
		http.Error(w, "the consumer is busy with other messages: send it again", http.StatusServiceUnavailable)
		return
	case <-r.Context().Done():
		return
	}
	env, err := soap.Parse(data)
	if err != nil {
		http.Error(w, "not a SOAP 1.1 envelope: "+err.Error(), http.StatusBadRequest)
		return
	}
	token := ""
	var tokenHeader *etree.Element
	for _, h := range env.Headers {
		if h.Tag == ListenerKey.Local && h.NamespaceURI() == ListenerKey.Space {
			token, tokenHeader = strings.TrimSpace(h.Text()), h
		}
	}
	if subtle.ConstantTimeCompare([]byte(token), []byte(c.Token)) != 1 {
		http.Error(w, "this consumer takes messages of its own subscriptions only", http.StatusForbidden)
		return
	}
	if c.Verifier != nil {
		res, err := c.Verifier.Verify(env)
		switch {
		case err != nil:
			http.Error(w, "the Notify's signature: "+err.Error(), http.StatusForbidden)
			return
		case !res.Signed:
			http.Error(w, "this consumer takes signed Notify messages only", http.StatusForbidden)
			return
		case !res.Covers(tokenHeader):
			http.Error(w, "the Notify's signature does not cover its listener header", http.StatusForbidden)
			return
		}
		if c.Signer != nil {
			if err := c.Signer(res.Identity); err != nil {
				http.Error(w, err.Error(), http.StatusForbidden)
				return
			}
		}
	}
	msgs, err := ParseNotify(env.Payload)
	if err != nil {
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}
	if c.take(sum) { // else the same bytes were taken meanwhile, by a retry that overtook them
		for _, m := range msgs {
			c.Deliver(m)
		}
	}
	w.WriteHeader(http.StatusOK)
}

// ParseNotify reads the NotificationMessages of a Notify body in either dialect.
func ParseNotify(body *etree.Element) ([]Notification, error) {
	if body == nil || body.Tag != "Notify" {
		return nil, fmt.Errorf("the body is not a wsnt:Notify")
	}
	var d *dialect.Dialect
	for _, dd := range dialect.Dialects {
		if body.NamespaceURI() == dd.BN {
			d = dd
		}
	}
	if d == nil {
		return nil, fmt.Errorf("Notify in unknown namespace %q", body.NamespaceURI())
	}
	var out []Notification
	for _, nm := range body.ChildElements() {
		if nm.Tag != "NotificationMessage" || nm.NamespaceURI() != d.BN {
			continue
		}
		n := Notification{Dialect: d, Message: nm}
		for _, c := range nm.ChildElements() {
			switch {
			case c.Tag == "Topic" && c.NamespaceURI() == d.BN:
				q, err := wsa.ResolveQName(c, strings.TrimSpace(c.Text()))
				if err != nil {
					return nil, fmt.Errorf("Topic: %w", err)
				}
				n.Topic = q
			case c.Tag == "ProducerReference" && c.NamespaceURI() == d.BN:
				if epr, err := wsa.ParseEPR(c); err == nil {
					n.Producer = epr
				}
			case c.Tag == "Message" && c.NamespaceURI() == d.BN:
				readMessage(d, c, &n)
			}
		}
		out = append(out, n)
	}
	if len(out) == 0 {
		return nil, fmt.Errorf("Notify holds no NotificationMessage")
	}
	return out, nil
}

func readMessage(d *dialect.Dialect, msg *etree.Element, n *Notification) {
	for _, p := range msg.ChildElements() {
		switch {
		case p.Tag == "TerminationNotification" && p.NamespaceURI() == d.RL:
			n.Terminated = true
			if r := p.FindElement("./TerminationReason"); r != nil {
				n.Reason = strings.TrimSpace(r.Text())
			}
		case p.Tag == "ResourcePropertyValueChangeNotification" && p.NamespaceURI() == d.RP:
			for _, v := range p.ChildElements() {
				switch v.Tag {
				case "OldValue", "OldValues":
					n.Old = append(n.Old, v.ChildElements()...)
				case "NewValue", "NewValues":
					n.New = append(n.New, v.ChildElements()...)
				}
			}
		}
	}
}
