// Package notify is WS-BaseNotification for the workspace resources: Subscribe on a
// producer service (WorkspaceService), subscriptions as WS-Resources of their own with
// lifetimes (SubscriptionManagerService), and Notify messages delivered to consumers
// over HTTP, in the dialect each subscriber used (GT 4.0 / WSN 1.2 draft 01, or
// WSN 1.3).
//
// Subscriptions persist with the other resources and outlive a restart; messages
// waiting for delivery do not. A subscription ends at its termination time, when its
// subscriber destroys it, when its producer ends (after ResourceTermination is
// delivered), or after MaxFailures messages in a row could not be delivered.
package notify

import (
	"context"
	"crypto/rand"
	"crypto/tls"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"sync"
	"time"

	"github.com/beevik/etree"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/vws-grid/vws/internal/dialect"
	"github.com/vws-grid/vws/internal/errdefs"
	"github.com/vws-grid/vws/internal/identity"
	"github.com/vws-grid/vws/internal/vwsns"
	"github.com/vws-grid/vws/internal/wsa"
	"github.com/vws-grid/vws/internal/wsrf"
	"github.com/vws-grid/vws/internal/wssec"
)

// Config configures a Broker.
type Config struct {
	// Topics are the producer's value-change topics: the resource properties whose
	// changes are notified (ResourceTermination is always offered).
	Topics []wsa.QName
	// Store persists subscriptions; nil keeps them in memory.
	Store wsrf.Store
	// TLS is the client credential (and trust) for https consumers; nil: defaults.
	TLS *tls.Config
	// Signer, if set, signs every Notify (WS-Security X.509) with the host's
	// credential, so that a consumer can tell the service's messages from forgeries.
	// The Security header is optional to the consumer (mustUnderstand="0"): one that
	// knows no WS-Security still takes the message.
	Signer *wssec.Signer
	// Networks are where messages may go (default: anywhere but link-local and
	// multicast addresses).
	Networks Networks
	// HTTP, if set, sends Notify messages instead of a client built from TLS and
	// Networks (tests). Its timeout is not used: each delivery has DeliveryTimeout.
	HTTP *http.Client
	// MaxPerProducer bounds the subscriptions of one producer resource (default 32).
	MaxPerProducer int
	// MaxLifetime bounds a subscription's termination time (default 30 days); a
	// subscription asking for none gets DefaultLifetime (default 24 h).
	MaxLifetime, DefaultLifetime time.Duration
	// DeliveryTimeout bounds one HTTP delivery (default 10 s).
	DeliveryTimeout time.Duration
	// Retries are the waits before each new attempt at a message that failed
	// (default 1 s, 4 s): the message is dropped after the last.
	Retries []time.Duration
	// MaxFailures ends a subscription after this many messages in a row were
	// dropped (default 5): its consumer is gone.
	MaxFailures int
	// MaxQueue bounds the messages waiting for one subscription (default 256); when
	// a new one comes to a full queue, the oldest change is merged into the next of
	// its topic (shed), so that the messages sent still chain.
	MaxQueue int
	// MayRead, if set, says whether a subscriber may still read its producer, before
	// each message: rights granted at Subscribe can be withdrawn (a policy change).
	// An error wrapping errdefs.ErrAuthorization ends the subscription unannounced;
	// another error (the decision could not be audited) drops the message.
	MayRead func(ctx context.Context, subscriber identity.Identity, producer string) error
	// Metrics, if set, registers the broker's Prometheus instruments.
	Metrics prometheus.Registerer
	Logger  *slog.Logger
	Now     func() time.Time
}

func (c *Config) defaults() {
	if c.Signer != nil {
		optional := *c.Signer
		optional.Optional = true
		c.Signer = &optional
	}
	if c.MaxPerProducer <= 0 {
		c.MaxPerProducer = 32
	}
	if c.MaxLifetime <= 0 {
		c.MaxLifetime = 30 * 24 * time.Hour
	}
	if c.DefaultLifetime <= 0 {
		c.DefaultLifetime = 24 * time.Hour
	}
	if c.DefaultLifetime > c.MaxLifetime {
		c.DefaultLifetime = c.MaxLifetime
	}
	if c.DeliveryTimeout <= 0 {
		c.DeliveryTimeout = 10 * time.Second
	}
	if c.Retries == nil {
		c.Retries = []time.Duration{time.Second, 4 * time.Second}
	}
	if c.MaxFailures <= 0 {
		c.MaxFailures = 5
	}
	if c.MaxQueue <= 0 {
		c.MaxQueue = 256
	}
	if c.HTTP == nil {
		c.HTTP = deliveryClient(c.TLS, c.Networks)
	}
	if c.Logger == nil {
		c.Logger = slog.Default()
	}
	if c.Now == nil {
		c.Now = time.Now
	}
}

// Names of the subscription resources' own properties.
var (
	// Document is the subscription resource-property document.
	Document = wsa.QName{Space: vwsns.Notification, Local: "SubscriptionResourceProperties"}
	// PropPaused says whether the subscription is paused.
	PropPaused = wsa.QName{Space: vwsns.Notification, Local: "Paused"}
)

// declared lists the stored properties of a subscription document in schema order,
// both dialects' (a subscription's are in the dialect it was made in).
func declared() []wsa.QName {
	var qs []wsa.QName
	for _, d := range dialect.Dialects {
		for _, l := range []string{"ConsumerReference", "TopicExpression", "Filter", "UseNotify", "CreationTime"} {
			qs = append(qs, wsa.QName{Space: d.BN, Local: l})
		}
	}
	return append(qs, PropPaused)
}

// record is a subscription's private state, persisted with it.
type record struct {
	Producer string `json:"producer"` // the producer resource's key
	// ProducerEPR is the producer's EPR as the subscriber addressed it (XML).
	ProducerEPR string `json:"producerEPR"`
	// Consumer is where messages go (an EPR, XML).
	Consumer string `json:"consumer"`
	// Self is the subscription's own EPR (XML), sent in WSN 1.3 messages.
	Self    string   `json:"self"`
	Topics  []string `json:"topics,omitempty"` // Clark names; none: every topic
	Dialect string   `json:"dialect"`
	Paused  bool     `json:"paused,omitempty"`
	Owner   string   `json:"owner"` // the subscriber's identity
	// Attributes are the subscriber's VO attributes when it subscribed: what policy
	// decides its read rights on, with Owner, when they are checked again.
	Attributes []string `json:"attributes,omitempty"`
	// Sent is, by topic (Clark name), the value the consumer was last sent, or had
	// when it subscribed (valueOf).
	Sent map[string]string `json:"sent,omitempty"`
}

// sub is a live subscription: its record, parsed, and its delivery queue.
type sub struct {
	key      string
	producer string
	dialect  *dialect.Dialect
	consumer *wsa.EPR
	producerEPR,
	self *wsa.EPR
	topics map[wsa.QName]bool // nil: all
	owner  string
	attrs  []string

	mu       sync.Mutex // guards the fields below
	paused   bool
	queue    []message
	sending  bool
	failures int  // messages dropped in a row
	ended    bool // destroyed: deliver nothing more
	// queued are the topics a message was queued for (catchUp).
	queued map[wsa.QName]bool
	// unsent are, by topic (Clark name), the values in the record's Sent when it
	// was loaded at start, until a message of that topic is queued: that first
	// message starts from what the consumer was last sent, not from the value
	// before the change, which a message lost when the process stopped may have
	// left untold.
	unsent map[string]string
}

func (s *sub) wants(q wsa.QName) bool {
	if s.topics == nil {
		return true
	}
	if isTermination(q) {
		for t := range s.topics {
			if isTermination(t) {
				return true
			}
		}
		return false
	}
	return s.topics[q]
}

// Broker holds the subscriptions of one producer service and delivers their messages.
type Broker struct {
	cfg     Config
	home    *wsrf.Home
	metrics *metrics

	// subscribing serializes Subscribe's count of a producer's subscriptions with
	// the addition of one.
	subscribing sync.Mutex

	mu         sync.RWMutex
	subs       map[string]*sub
	byProducer map[string]map[string]*sub

	slots deliverySlots // bounds concurrent deliveries
	wg    sync.WaitGroup
	stop  chan struct{}
	once  sync.Once
}

// maxConcurrentDeliveries bounds the HTTP deliveries in flight, all subscriptions
// together; maxOwnerDeliveries those of one subscriber. A subscriber's deliveries
// beyond its first go only while fewer than sharedDeliveries are in flight: the
// other slots are for subscribers with none, so that a few whose consumers never
// answer (each delivery then takes the whole DeliveryTimeout) cannot hold every
// slot while everyone else's messages wait.
const (
	maxConcurrentDeliveries = 16
	maxOwnerDeliveries      = 4
	sharedDeliveries        = maxConcurrentDeliveries / 2
)

// New loads the subscriptions from the store and starts their expiry.
func New(ctx context.Context, cfg Config) (*Broker, error) {
	cfg.defaults()
	b := &Broker{cfg: cfg, subs: map[string]*sub{}, byProducer: map[string]map[string]*sub{},
		slots: deliverySlots{byOwner: map[string]int{}}, stop: make(chan struct{})}
	home, err := wsrf.NewHome(ctx, wsrf.HomeConfig{
		Service:      vwsns.SubscriptionManagerService,
		Document:     Document,
		Declared:     declared(),
		MaxLifetime:  cfg.MaxLifetime,
		Store:        cfg.Store,
		Now:          cfg.Now,
		Logger:       cfg.Logger,
		AfterDestroy: func(s *wsrf.Snapshot) { b.forget(s.Key) },
		OnChange:     b.pausedChanged,
	})
	if err != nil {
		return nil, err
	}
	b.home = home
	b.metrics = newMetrics(cfg.Metrics, b)
	var bad []string
	home.Range(func(s *wsrf.Snapshot) bool {
		live, err := parseRecord(s.Key, s.Private)
		if err != nil {
			cfg.Logger.Error("subscription unreadable; removing it", "subscription", s.Key, "err", err)
			bad = append(bad, s.Key)
			return true
		}
		live.unsent = sentOf(s.Private) // what its consumer was last sent, before this start
		b.index(live)
		return true
	})
	for _, k := range bad {
		if err := home.Destroy(ctx, k); err != nil {
			cfg.Logger.Error("remove an unreadable subscription", "subscription", k, "err", err)
		}
	}
	return b, nil
}

// Close stops expiry and waits for deliveries in flight to end (queued messages are
// dropped).
func (b *Broker) Close() {
	b.once.Do(func() {
		close(b.stop)
		b.home.Close()
	})
	b.wg.Wait()
}

// Home is the subscriptions' resource home (for the WSRF operations on them).
func (b *Broker) Home() *wsrf.Home { return b.home }

func parseRecord(key string, private []byte) (*sub, error) {
	var rec record
	if err := json.Unmarshal(private, &rec); err != nil {
		return nil, fmt.Errorf("subscription %s: %w", key, err)
	}
	d := dialect.GT4
	if rec.Dialect == dialect.WSRF12.Name {
		d = dialect.WSRF12
	}
	s := &sub{key: key, producer: rec.Producer, dialect: d, owner: rec.Owner, attrs: rec.Attributes, paused: rec.Paused}
	var err error
	if s.consumer, err = wsa.ReadEPRDocument([]byte(rec.Consumer)); err != nil {
		return nil, fmt.Errorf("subscription %s: consumer: %w", key, err)
	}
	if s.producerEPR, err = wsa.ReadEPRDocument([]byte(rec.ProducerEPR)); err != nil {
		return nil, fmt.Errorf("subscription %s: producer: %w", key, err)
	}
	if s.self, err = wsa.ReadEPRDocument([]byte(rec.Self)); err != nil {
		return nil, fmt.Errorf("subscription %s: own EPR: %w", key, err)
	}
	if len(rec.Topics) > 0 {
		s.topics = map[wsa.QName]bool{}
		for _, t := range rec.Topics {
			q, err := wsa.ParseClark(t)
			if err != nil {
				return nil, fmt.Errorf("subscription %s: topic: %w", key, err)
			}
			s.topics[q] = true
		}
	}
	return s, nil
}

// sentOf is the Sent of a subscription record parseRecord read.
func sentOf(private []byte) map[string]string {
	var rec record
	_ = json.Unmarshal(private, &rec)
	return rec.Sent
}

func (b *Broker) index(s *sub) {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.subs[s.key] = s
	m := b.byProducer[s.producer]
	if m == nil {
		m = map[string]*sub{}
		b.byProducer[s.producer] = m
	}
	m[s.key] = s
}

// forget drops a destroyed subscription from the index; its queue is dropped.
func (b *Broker) forget(key string) {
	b.mu.Lock()
	s := b.subs[key]
	delete(b.subs, key)
	if s != nil {
		if m := b.byProducer[s.producer]; m != nil {
			delete(m, key)
			if len(m) == 0 {
				delete(b.byProducer, s.producer)
			}
		}
	}
	b.mu.Unlock()
	if s != nil {
		s.mu.Lock()
		s.ended, s.queue = true, nil
		s.mu.Unlock()
	}
}

func (b *Broker) lookup(key string) *sub {
	b.mu.RLock()
	defer b.mu.RUnlock()
	return b.subs[key]
}

// of returns the live subscriptions of producer.
func (b *Broker) of(producer string) []*sub {
	b.mu.RLock()
	defer b.mu.RUnlock()
	out := make([]*sub, 0, len(b.byProducer[producer]))
	for _, s := range b.byProducer[producer] {
		out = append(out, s)
	}
	return out
}

// Count is the number of live subscriptions of producer.
func (b *Broker) Count(producer string) int {
	b.mu.RLock()
	defer b.mu.RUnlock()
	return len(b.byProducer[producer])
}

// countBy is the number of producer's subscriptions that subscriber holds.
func (b *Broker) countBy(producer, subscriber string) int {
	b.mu.RLock()
	defer b.mu.RUnlock()
	n := 0
	for _, s := range b.byProducer[producer] {
		if s.owner == subscriber {
			n++
		}
	}
	return n
}

// Owner returns the subscriber of subscription key and what it subscribes to, for
// authorization (a subscription is its subscriber's to manage); also of one past its
// termination time, whose Destroy must still be its subscriber's alone.
func (b *Broker) Owner(ctx context.Context, key string) (owner, name, holder string, err error) {
	err = b.home.ViewAny(ctx, key, func(*wsrf.Snapshot) error {
		if s := b.lookup(key); s != nil {
			// As a workspace's: "<anonymous>", never "" (no owner at all, which
			// would leave the subscription to anyone the operation class admits).
			owner, name = identity.Identity{DN: s.owner}.String(), "subscription to "+s.producer
		}
		return nil
	})
	return owner, name, "", err
}

func newKey() string {
	var k [16]byte
	if _, err := rand.Read(k[:]); err != nil {
		panic(err) // crypto/rand does not fail on Linux
	}
	return hex.EncodeToString(k[:])
}

func eprXML(e *wsa.EPR) string {
	s, _ := e.Document().WriteToString()
	return s
}

func textElement(ns, pfx, local, text string) *etree.Element {
	el := etree.NewElement(pfx + ":" + local)
	el.CreateAttr("xmlns:"+pfx, ns)
	el.SetText(text)
	return el
}

// Producer gives copies of the properties of producer resource key, or an error
// wrapping errdefs.ErrResourceUnknown when it is gone.
type Producer func(ctx context.Context, key string) ([]*etree.Element, error)

// Resync squares the subscriptions with their producers after a start: those whose
// producer is gone (destroyed while this process was down, or between its end and
// the message) end, their subscribers told as for any end; the others are sent each
// change their consumer was not sent (a message lost when the process stopped), from
// the value it was last sent to the current one.
func (b *Broker) Resync(ctx context.Context, producer Producer) {
	b.mu.RLock()
	producers := make([]string, 0, len(b.byProducer))
	for p := range b.byProducer {
		producers = append(producers, p)
	}
	b.mu.RUnlock()
	for _, p := range producers {
		props, err := producer(ctx, p)
		if errors.Is(err, wsrf.ErrExpired) {
			// Not gone: its expiry, running in the background from the start,
			// destroys it and tells its subscribers so (its lifetime expired).
			continue
		}
		if errors.Is(err, errdefs.ErrResourceUnknown) {
			b.cfg.Logger.Info("ending the subscriptions of a workspace that is gone", "workspace", p, "subscriptions", b.Count(p))
			b.Terminated(p, "it no longer exists")
			continue
		}
		if err != nil {
			b.cfg.Logger.Warn("subscriptions not squared with their workspace", "workspace", p, "err", err)
			continue
		}
		for _, s := range b.of(p) {
			var rec record
			if err := b.home.View(ctx, s.key, func(snap *wsrf.Snapshot) error { return json.Unmarshal(snap.Private, &rec) }); err != nil {
				continue
			}
			// A topic a message was queued for since the start (a change the
			// Repository recorded before this) is left alone, as in catchUp: that
			// message starts from the value last sent (enqueueLocked), and one
			// queued behind it would tell a change again.
			s.mu.Lock()
			for _, q := range b.cfg.Topics {
				was, known := rec.Sent[q.String()]
				now := valueOf(props, q)
				if !known || was == now || !s.wants(q) || s.queued[q] {
					continue
				}
				b.enqueueLocked(s, message{topic: q, old: parseValue(was), new: instances(props, q), newValue: now})
			}
			s.mu.Unlock()
		}
	}
}
