package notify

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/beevik/etree"

	"github.com/vws-grid/vws/internal/dialect"
	"github.com/vws-grid/vws/internal/errdefs"
	"github.com/vws-grid/vws/internal/identity"
	"github.com/vws-grid/vws/internal/soap"
	"github.com/vws-grid/vws/internal/wsa"
	"github.com/vws-grid/vws/internal/wsrf"
)

// message is one notification, kept dialect-neutral until it is sent.
type message struct {
	topic wsa.QName // the property, or ResourceTermination (any dialect's)
	// A value change: the property's instances before and after (copies), and the
	// new ones as text (valueOf), which the subscription records once delivered.
	old, new []*etree.Element
	newValue string
	// A termination: when, and why.
	at     time.Time
	reason string
	// last ends the subscription once it is delivered (or dropped).
	last bool
	// skip sends nothing (a termination its subscriber did not ask to hear of).
	skip bool
}

// Notify actions: WSN 1.2 draft 01 as GT 4.0 sends it, and WSN 1.3.
const (
	notifyActionGT4   = "http://docs.oasis-open.org/wsn/2004/06/wsn-WS-BaseNotification/Notify"
	notifyActionWSN13 = "http://docs.oasis-open.org/wsn/bw-2/NotificationConsumer/Notify"
)

// Changed tells the subscribers of producer which of its topics' properties changed
// between before and after. It must be called in the order of the changes (a
// resource home calls it with the resource locked); it does not block.
func (b *Broker) Changed(producer string, before, after []*etree.Element) {
	subs := b.of(producer)
	if len(subs) == 0 {
		return
	}
	for _, q := range b.cfg.Topics {
		was, now := valueOf(before, q), valueOf(after, q)
		if was == now {
			continue
		}
		m := message{topic: q, old: instances(before, q), new: instances(after, q), newValue: now}
		for _, s := range subs {
			if s.wants(q) {
				b.enqueue(s, m)
			}
		}
	}
}

// Terminated tells the subscribers of producer that it ended (reason: "destroyed",
// "lifetime expired", …) and ends their subscriptions once that is delivered.
func (b *Broker) Terminated(producer, reason string) {
	m := message{topic: Termination(dialect.WSRF12), at: b.cfg.Now(), reason: reason, last: true}
	for _, s := range b.of(producer) {
		end := m
		end.skip = !s.wants(m.topic)
		b.enqueue(s, end)
	}
}

func instances(props []*etree.Element, q wsa.QName) []*etree.Element {
	var out []*etree.Element
	for _, p := range props {
		if p.Tag == q.Local && p.NamespaceURI() == q.Space {
			out = append(out, p.Copy())
		}
	}
	return out
}

// valueOf is the instances of property q in props as one string: equal strings are
// equal values, and parseValue gives the instances back.
func valueOf(props []*etree.Element, q wsa.QName) string {
	var b strings.Builder
	for _, p := range instances(props, q) {
		s, _ := etree.NewDocumentWithRoot(p).WriteToString()
		b.WriteString(s)
	}
	return b.String()
}

// parseValue is the instances valueOf wrote.
func parseValue(v string) []*etree.Element {
	doc := etree.NewDocument()
	if err := doc.ReadFromString("<v>" + v + "</v>"); err != nil {
		return nil
	}
	var out []*etree.Element
	for _, c := range doc.Root().ChildElements() {
		out = append(out, wsa.Detach(c))
	}
	return out
}

// catchUp sends a new subscription s the changes made between the read of its
// producer's properties it started from (sent) and its indexing, which Changed told
// no one: each topic's, from the value in sent to the one in current, read since. A
// topic a message was queued for meanwhile is left alone: that message, told after
// the read, starts where the subscription was live, and a catch-up queued behind it
// would send the changes out of order.
func (b *Broker) catchUp(s *sub, sent map[string]string, current []*etree.Element) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, q := range b.cfg.Topics {
		was, now := sent[q.String()], valueOf(current, q)
		if was == now || !s.wants(q) || s.queued[q] {
			continue
		}
		b.enqueueLocked(s, message{topic: q, old: parseValue(was), new: instances(current, q), newValue: now})
	}
}

// enqueue adds m to s's queue and starts its sender if none runs.
func (b *Broker) enqueue(s *sub, m message) {
	s.mu.Lock()
	defer s.mu.Unlock()
	b.enqueueLocked(s, m)
}

// enqueueLocked is enqueue with s.mu held.
func (b *Broker) enqueueLocked(s *sub, m message) {
	if s.queued == nil {
		s.queued = map[wsa.QName]bool{}
	}
	s.queued[m.topic] = true
	if s.ended {
		return
	}
	if s.paused && !m.last {
		return // a paused subscription is sent nothing, and keeps nothing for later
	}
	if was, ok := s.unsent[m.topic.String()]; ok && !isTermination(m.topic) {
		// The topic's first message since the start: from what the consumer was
		// last sent (a change queued at start-up, before Resync, would otherwise
		// chain from a value it was never told).
		delete(s.unsent, m.topic.String())
		if was == m.newValue {
			return // merged back to what the consumer has: no change
		}
		m.old = parseValue(was)
	}
	s.queue = append(s.queue, m)
	if len(s.queue) > b.cfg.MaxQueue {
		b.cfg.Logger.Warn("notification queue full; merging the oldest change into the next of its topic", "subscription", s.key, "consumer", s.consumer.Address)
		s.queue = shed(s.queue)
		b.metrics.dropped.Inc()
	}
	if !s.sending {
		s.sending = true
		b.wg.Add(1)
		go b.drain(s)
	}
}

// shed makes room in a full queue q by merging its oldest value change that a later
// one of the same topic follows into that one (which then starts from the dropped
// one's old value), so that what the consumer is sent still chains: each message's
// old value is the previous one's new. A change merged back to where it started is
// no change and goes too. With no such pair, the oldest message that does not end
// the subscription goes.
func shed(q []message) []message {
	for i, m := range q {
		if isTermination(m.topic) {
			continue
		}
		for j := i + 1; j < len(q); j++ {
			if q[j].topic != m.topic {
				continue
			}
			q[j].old = m.old
			out := append(q[:i:i], q[i+1:]...)
			if valueOf(m.old, m.topic) == q[j].newValue {
				out = append(out[:j-1:j-1], out[j:]...)
			}
			return out
		}
	}
	for i, m := range q {
		if !m.last {
			return append(q[:i:i], q[i+1:]...)
		}
	}
	return q
}

// drain sends s's queue in order, then exits.
func (b *Broker) drain(s *sub) {
	defer b.wg.Done()
	for {
		s.mu.Lock()
		// Stopping: what is queued is dropped (Resync tells it after the restart),
		// not sent, nor counted against the consumer.
		if len(s.queue) == 0 || s.ended || b.stopping() {
			s.sending = false
			s.mu.Unlock()
			return
		}
		m := s.queue[0]
		s.queue = s.queue[1:]
		s.mu.Unlock()

		if !m.skip && b.expired(s) {
			m.skip = true // over, though its expiry has not destroyed it yet
		}
		if !m.skip {
			switch err := b.mayRead(s); {
			case errors.Is(err, errdefs.ErrAuthorization):
				b.cfg.Logger.Info("ending a subscription whose subscriber may no longer read its workspace",
					"subscription", s.key, "subscriber", s.owner, "workspace", s.producer, "reason", err)
				b.metrics.ended.WithLabelValues("rights-withdrawn").Inc()
				b.end(s)
				return
			case err != nil:
				b.cfg.Logger.Warn("notification dropped: the subscriber's right to it could not be checked",
					"subscription", s.key, "err", err)
				b.metrics.dropped.Inc()
				m.skip = true
			}
		}
		if !m.skip {
			delivered := b.deliver(s, m)
			if !delivered && (b.stopping() || b.withdrawn(s, m) || b.expired(s)) {
				continue // the broker's shutdown, or the subscriber, not the consumer, failed it
			}
			if delivered && !isTermination(m.topic) {
				b.noteSent(s, m.topic, m.newValue)
			}
			s.mu.Lock()
			if delivered {
				s.failures = 0
			} else {
				s.failures++
			}
			gone := s.failures >= b.cfg.MaxFailures
			s.mu.Unlock()
			if gone && !m.last {
				b.cfg.Logger.Warn("ending a subscription whose consumer took no message", "subscription", s.key,
					"consumer", s.consumer.Address, "messages lost in a row", b.cfg.MaxFailures)
				b.metrics.ended.WithLabelValues("consumer-gone").Inc()
				b.end(s)
				return
			}
		}
		if m.last {
			b.metrics.ended.WithLabelValues("producer-ended").Inc()
			b.end(s)
			return
		}
	}
}

// noteSent records, with the subscription, the value of topic its consumer was last
// sent: after a restart the subscription is told what changed meanwhile (Resync).
func (b *Broker) noteSent(s *sub, topic wsa.QName, value string) {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	err := b.home.Modify(ctx, s.key, func(snap *wsrf.Snapshot) error {
		var rec record
		if err := json.Unmarshal(snap.Private, &rec); err != nil {
			return err
		}
		if rec.Sent == nil {
			rec.Sent = map[string]string{}
		}
		rec.Sent[topic.String()] = value
		private, err := json.Marshal(rec)
		snap.Private = private
		return err
	})
	if err != nil && !errors.Is(err, errdefs.ErrResourceUnknown) {
		b.cfg.Logger.Warn("record what a subscription was sent; after a restart it may be told a change again", "subscription", s.key, "err", err)
	}
}

// mayRead asks policy whether s's subscriber may still read its producer.
func (b *Broker) mayRead(s *sub) error {
	if b.cfg.MayRead == nil {
		return nil
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	return b.cfg.MayRead(ctx, identity.Identity{DN: s.owner, Attributes: s.attrs}, s.producer)
}

// end destroys subscription s. It is sent nothing more from now on; a destroy the
// store refuses (busy, say) is tried again until it is done or the broker stops
// (then at the next start, a dead consumer fails again).
func (b *Broker) end(s *sub) {
	s.mu.Lock()
	s.ended, s.queue, s.sending = true, nil, false
	s.mu.Unlock()
	for wait := endRetry; ; wait = min(2*wait, time.Minute) {
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		err := b.home.Destroy(ctx, s.key)
		cancel()
		if err == nil || errors.Is(err, errdefs.ErrResourceUnknown) {
			return
		}
		b.cfg.Logger.Error("end a subscription; trying again", "subscription", s.key, "in", wait, "err", err)
		select {
		case <-time.After(wait):
		case <-b.stop:
			return
		}
	}
}

// endRetry is the first wait before a failed end is tried again.
var endRetry = time.Second

var errStopping = errors.New("the broker is shutting down")

// stopping reports whether Close has begun.
func (b *Broker) stopping() bool {
	select {
	case <-b.stop:
		return true
	default:
		return false
	}
}

// deliver sends m to s's consumer, retrying; it reports whether the consumer took it.
func (b *Broker) deliver(s *sub, m message) bool {
	body, err := b.envelope(s, m)
	if err != nil {
		b.cfg.Logger.Error("render a notification", "subscription", s.key, "err", err)
		return false
	}
	var last error
	for attempt := 0; ; attempt++ {
		if last = b.post(s, body); last == nil {
			b.metrics.delivered.Inc()
			return true
		}
		if attempt >= len(b.cfg.Retries) {
			break
		}
		select {
		case <-time.After(b.cfg.Retries[attempt]):
		case <-b.stop:
			return false
		}
		if b.withdrawn(s, m) || b.expired(s) {
			return false // unsubscribed or paused while it waited: nothing more is sent
		}
	}
	b.cfg.Logger.Warn("notification not delivered; dropped", "subscription", s.key, "consumer", s.consumer.Address,
		"topic", m.topic.Local, "attempts", len(b.cfg.Retries)+1, "err", last)
	b.metrics.dropped.Inc()
	return false
}

// withdrawn reports whether s may no longer be sent m: it ended, or is paused (which
// holds back everything but its ending message).
func (b *Broker) withdrawn(s *sub, m message) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.ended || (s.paused && !m.last)
}

// expired reports whether s's termination time has passed (or it is gone): the
// expiry scheduler destroys it within a second, or later if the destroy fails, and
// after a restart only once it has started.
func (b *Broker) expired(s *sub) bool {
	over := false
	err := b.home.View(context.Background(), s.key, func(snap *wsrf.Snapshot) error {
		over = snap.Termination != nil && !snap.Termination.After(b.cfg.Now().Round(0)) // the wall clock, as expiry
		return nil
	})
	return over || errors.Is(err, errdefs.ErrResourceUnknown)
}

// deliverySlots are the deliveries in flight, in all and by subscriber, and the
// deliveries waiting for one, in the order they came.
type deliverySlots struct {
	mu       sync.Mutex
	inFlight int
	byOwner  map[string]int // subscribers with deliveries in flight: how many
	waiting  []*slotWaiter
}

type slotWaiter struct {
	owner   string
	granted chan struct{} // closed when the slot is the waiter's
}

// mayTakeLocked says whether a delivery of owner may start now.
func (d *deliverySlots) mayTakeLocked(owner string) bool {
	held := d.byOwner[owner]
	switch {
	case held >= maxOwnerDeliveries:
		return false
	case held > 0:
		return d.inFlight < sharedDeliveries
	default:
		return d.inFlight < maxConcurrentDeliveries
	}
}

func (d *deliverySlots) takeLocked(owner string) {
	d.inFlight++
	d.byOwner[owner]++
}

// take waits for a slot for a delivery of owner, or for stop (false).
func (d *deliverySlots) take(owner string, stop <-chan struct{}) bool {
	d.mu.Lock()
	if d.mayTakeLocked(owner) { // a waiter that may is let through when a slot frees
		d.takeLocked(owner)
		d.mu.Unlock()
		return true
	}
	w := &slotWaiter{owner: owner, granted: make(chan struct{})}
	d.waiting = append(d.waiting, w)
	d.mu.Unlock()
	select {
	case <-w.granted:
		return true
	case <-stop:
		d.mu.Lock()
		defer d.mu.Unlock()
		select {
		case <-w.granted: // given meanwhile: given back
			d.giveLocked(owner)
		default:
			d.waiting = slices.DeleteFunc(d.waiting, func(o *slotWaiter) bool { return o == w })
		}
		return false
	}
}

// give ends a delivery of owner; the slot goes to the first waiters that may start.
func (d *deliverySlots) give(owner string) {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.giveLocked(owner)
}

func (d *deliverySlots) giveLocked(owner string) {
	d.inFlight--
	if d.byOwner[owner]--; d.byOwner[owner] == 0 {
		delete(d.byOwner, owner) // not kept for each subscriber ever seen
	}
	d.waiting = slices.DeleteFunc(d.waiting, func(w *slotWaiter) bool {
		if !d.mayTakeLocked(w.owner) {
			return false
		}
		d.takeLocked(w.owner)
		close(w.granted)
		return true
	})
}

func (b *Broker) post(s *sub, body []byte) error {
	if b.stopping() {
		return errStopping // select below picks at random between a free slot and stop
	}
	if !b.slots.take(s.owner, b.stop) {
		return errStopping
	}
	defer b.slots.give(s.owner)
	ctx, cancel := context.WithTimeout(context.Background(), b.cfg.DeliveryTimeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, s.consumer.Address, bytes.NewReader(body))
	if err != nil {
		return err
	}
	action := notifyActionWSN13
	if s.dialect == dialect.GT4 {
		action = notifyActionGT4
	}
	req.Header.Set("Content-Type", "text/xml; charset=utf-8")
	req.Header.Set("SOAPAction", `"`+action+`"`)
	resp, err := b.cfg.HTTP.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 64<<10))
	if resp.StatusCode/100 != 2 {
		return fmt.Errorf("the consumer answered HTTP %d", resp.StatusCode)
	}
	return nil
}

// envelope renders m for s as a Notify envelope in s's dialect.
func (b *Broker) envelope(s *sub, m message) ([]byte, error) {
	d := s.dialect
	v := d.WSA
	action := notifyActionWSN13
	if d == dialect.GT4 {
		action = notifyActionGT4
	}
	headers := v.MessageHeaders(s.consumer.Address, action)
	headers = append(headers, s.consumer.Headers()...)

	notify := etree.NewElement("wsnt:Notify")
	notify.CreateAttr("xmlns:wsnt", d.BN)
	nm := notify.CreateElement("wsnt:NotificationMessage")
	if d == dialect.WSRF12 {
		s.self.ChildElement(nm, "wsnt:SubscriptionReference", "wsa")
	}
	topic := m.topic
	if isTermination(topic) {
		topic = Termination(d)
	}
	t := nm.CreateElement("wsnt:Topic")
	t.CreateAttr("Dialect", simpleDialect(d))
	t.CreateAttr("xmlns:t", topic.Space)
	t.SetText("t:" + topic.Local)
	producer := *s.producerEPR
	producer.Version = v
	producer.ChildElement(nm, "wsnt:ProducerReference", "wsa")
	nm.CreateElement("wsnt:Message").AddChild(payload(d, m))
	doc := (&soap.Message{Headers: headers, Body: notify}).Document()
	if b.cfg.Signer != nil {
		if err := b.cfg.Signer.Sign(doc); err != nil {
			return nil, fmt.Errorf("sign the Notify: %w", err)
		}
	}
	return doc.WriteToBytes()
}

// payload is the message's content: WS-ResourceProperties' value-change notification,
// or WS-ResourceLifetime's termination notification, in dialect d.
func payload(d *dialect.Dialect, m message) *etree.Element {
	if isTermination(m.topic) {
		el := etree.NewElement("wsrl:TerminationNotification")
		el.CreateAttr("xmlns:wsrl", d.RL)
		el.CreateElement("wsrl:TerminationTime").SetText(wsrf.FormatTime(m.at))
		el.CreateElement("wsrl:TerminationReason").SetText(m.reason)
		return el
	}
	el := etree.NewElement("wsrp:ResourcePropertyValueChangeNotification")
	el.CreateAttr("xmlns:wsrp", d.RP)
	oldName, newName := "OldValues", "NewValues"
	if d == dialect.GT4 {
		oldName, newName = "OldValue", "NewValue"
	}
	if len(m.old) > 0 {
		o := el.CreateElement("wsrp:" + oldName)
		for _, p := range m.old {
			o.AddChild(p.Copy())
		}
	}
	n := el.CreateElement("wsrp:" + newName)
	for _, p := range m.new {
		n.AddChild(p.Copy())
	}
	return el
}
