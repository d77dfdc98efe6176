package notify

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"net/url"
	"strings"
	"time"

	"github.com/beevik/etree"

	"github.com/vws-grid/vws/internal/container"
	"github.com/vws-grid/vws/internal/dialect"
	"github.com/vws-grid/vws/internal/errdefs"
	"github.com/vws-grid/vws/internal/identity"
	"github.com/vws-grid/vws/internal/vwsns"
	"github.com/vws-grid/vws/internal/wsa"
	"github.com/vws-grid/vws/internal/wsrf"
)

// maxAddressLength bounds a consumer's address: it is stored and dialled.
const maxAddressLength = 2048

// request is a Subscribe, read in either dialect.
type request struct {
	consumer *wsa.EPR
	// topicProp is the stored TopicExpression (GT4) or Filter (WSN 1.3) property.
	topicProp   *etree.Element
	topics      []wsa.QName // nil: every topic
	termination *time.Time  // nil: none asked for
}

// Subscribe answers WS-BaseNotification Subscribe on a producer's resource, which
// producer reads (errdefs.ErrResourceUnknown when it is not there).
func (b *Broker) Subscribe(producer Producer) container.Handler {
	return func(ctx context.Context, req *container.Request) (*etree.Element, error) {
		key, ok := req.ResourceKey()
		if !ok || key == "" {
			return nil, errdefs.WithAdvice(fmt.Errorf("%w: the request has no %s header", errdefs.ErrResourceUnknown, req.Service.Key),
				"send Subscribe to a workspace's EPR: its reference properties (GT4) or parameters (WSRF 1.2) go into the SOAP header")
		}
		current, err := producer(ctx, key)
		if err != nil {
			return nil, err
		}
		d := req.Dialect
		now := b.cfg.Now()
		r, err := b.readRequest(d, req.Payload, now)
		if err != nil {
			return nil, err
		}
		// Counted and added under one lock: concurrent Subscribes do not overshoot the bound.
		b.subscribing.Lock()
		defer b.subscribing.Unlock()
		if n := b.Count(key); n >= b.cfg.MaxPerProducer {
			return nil, errdefs.WithAdvice(fmt.Errorf("%w: the workspace has %d subscriptions, the most this site allows", errdefs.ErrSubscribe, n),
				"destroy (unsubscribe) subscriptions you no longer need")
		}
		// A quarter each: one subscriber (a user the owner shared the workspace with)
		// cannot take every place and leave the owner none. Not among anonymous callers
		// (--insecure), who are all one and nobody.
		if id := identity.From(ctx); !id.IsAnonymous() {
			if n, most := b.countBy(key, id.DN), max(b.cfg.MaxPerProducer/4, 1); n >= most {
				return nil, errdefs.WithAdvice(fmt.Errorf("%w: you hold %d subscriptions to this workspace, the most one subscriber may", errdefs.ErrSubscribe, n),
					"destroy (unsubscribe) those you no longer need, or renew one instead of subscribing again")
			}
		}
		term := now.Add(b.cfg.DefaultLifetime)
		if r.termination != nil {
			term = *r.termination
		}
		if max := now.Add(b.cfg.MaxLifetime); term.After(max) {
			term = max // the response says what was granted
		}

		subKey := newKey()
		ref := textElement(vwsns.Notification, "vwn", "SubscriptionKey", subKey)
		self := &wsa.EPR{Version: d.WSA, Address: siblingURL(req.Address, vwsns.SubscriptionManagerService), References: []*etree.Element{ref}}
		consumer := *r.consumer
		consumer.Version = d.WSA // messages go in the subscriber's dialect
		rec := record{Producer: key, ProducerEPR: eprXML(req.EPR()), Consumer: eprXML(&consumer), Self: eprXML(self),
			Dialect: d.Name, Owner: identity.From(ctx).DN, Attributes: identity.From(ctx).Attributes, Sent: map[string]string{}}
		// What the subscriber starts from: a change from here is what it is sent.
		for _, q := range b.cfg.Topics {
			rec.Sent[q.String()] = valueOf(current, q)
		}
		for _, q := range r.topics {
			rec.Topics = append(rec.Topics, q.String())
		}
		private, err := json.Marshal(rec)
		if err != nil {
			return nil, fmt.Errorf("encode subscription: %w", err)
		}
		props := []*etree.Element{eprProperty(d, "ConsumerReference", &consumer)}
		if r.topicProp != nil {
			props = append(props, r.topicProp)
		}
		if d == dialect.GT4 {
			props = append(props, textElement(d.BN, "wsnt", "UseNotify", "true"))
		}
		props = append(props, textElement(d.BN, "wsnt", "CreationTime", wsrf.FormatTime(now)),
			textElement(vwsns.Notification, "vwn", "Paused", "false"))
		live, err := parseRecord(subKey, private)
		if err != nil {
			return nil, err
		}
		if err := b.home.CreatePrivate(ctx, subKey, props, private, &term); err != nil {
			return nil, fmt.Errorf("%w: %w", errdefs.ErrSubscribe, err)
		}
		b.index(live)
		// A producer destroyed since the check above told nobody of this subscription;
		// one changed since was told of it before the subscription was live.
		latest, err := producer(ctx, key)
		if errors.Is(err, errdefs.ErrResourceUnknown) {
			_ = b.home.Destroy(ctx, subKey)
			return nil, err
		}
		if err == nil {
			b.catchUp(live, rec.Sent, latest)
		}
		b.cfg.Logger.Info("subscribed", "subscription", subKey, "workspace", key, "topics", topicList(r.topics),
			"consumer", consumer.Address, "until", wsrf.FormatTime(term), "subscriber", rec.Owner)

		out := etree.NewElement("wsnt:SubscribeResponse")
		out.CreateAttr("xmlns:wsnt", d.BN)
		self.ChildElement(out, "wsnt:SubscriptionReference", "wsa")
		if d == dialect.WSRF12 {
			out.CreateElement("wsnt:CurrentTime").SetText(wsrf.FormatTime(now))
			out.CreateElement("wsnt:TerminationTime").SetText(wsrf.FormatTime(term))
		}
		return out, nil
	}
}

func topicList(qs []wsa.QName) string {
	if qs == nil {
		return "all"
	}
	return names(qs)
}

// readRequest reads and checks a Subscribe body in dialect d.
func (b *Broker) readRequest(d *dialect.Dialect, payload *etree.Element, now time.Time) (*request, error) {
	r := &request{}
	var filter *etree.Element
	seen := map[string]bool{}
	for _, c := range payload.ChildElements() {
		if c.NamespaceURI() != d.BN {
			return nil, fmt.Errorf("%w: unexpected element %s in Subscribe", errdefs.ErrSubscribe, c.FullTag())
		}
		if seen[c.Tag] {
			// Each part comes at most once: taking one of two would send messages to
			// a consumer, or about a topic, the subscriber may not have meant.
			return nil, errdefs.WithAdvice(fmt.Errorf("%w: Subscribe holds more than one %s", errdefs.ErrSubscribe, c.Tag),
				"send one "+c.Tag+", and subscribe once more for another")
		}
		seen[c.Tag] = true
		switch c.Tag {
		case "ConsumerReference":
			epr, err := wsa.ParseEPR(c)
			if err != nil {
				return nil, errdefs.WithAdvice(fmt.Errorf("%w: ConsumerReference: %v", errdefs.ErrSubscribe, err),
					"give the EPR of your notification consumer: an http(s) address it listens on")
			}
			if err := b.checkConsumer(epr); err != nil {
				return nil, err
			}
			r.consumer = epr
		case "TopicExpression":
			if d != dialect.GT4 {
				return nil, fmt.Errorf("%w: in WSN 1.3 the TopicExpression goes inside a Filter", errdefs.ErrSubscribe)
			}
			topics, err := parseTopics(c, b.cfg.Topics)
			if err != nil {
				return nil, err
			}
			r.topics, r.topicProp = topics, wsa.Detach(c)
		case "Filter":
			if d == dialect.GT4 {
				return nil, fmt.Errorf("%w: Filter is WSN 1.3's; the 2004/06 draft takes a TopicExpression", errdefs.ErrSubscribe)
			}
			filter = c
		case "UseNotify":
			if d == dialect.GT4 && strings.TrimSpace(c.Text()) != "true" && strings.TrimSpace(c.Text()) != "1" {
				return nil, errdefs.WithAdvice(fmt.Errorf("%w: UseNotify=%s: vws sends every message wrapped in Notify", errdefs.ErrSubscribe, strings.TrimSpace(c.Text())),
					"leave UseNotify out, or set it to true")
			}
		case "Precondition", "Selector":
			return nil, errdefs.WithAdvice(fmt.Errorf("%w: %s is not supported", errdefs.ErrSubscribe, c.Tag),
				"subscribe to the topic alone; each message carries the old and new value to select on")
		case "SubscriptionPolicy":
			if ps := c.ChildElements(); len(ps) > 0 {
				return nil, &policyError{policy: wsa.QName{Space: ps[0].NamespaceURI(), Local: ps[0].Tag},
					known: ps[0].NamespaceURI() == dialect.WSRF12.BN && ps[0].Tag == "UseRaw"}
			}
			if strings.TrimSpace(c.Text()) != "" {
				return nil, fmt.Errorf("%w: no subscription policy is supported", errdefs.ErrSubscribe)
			}
		case "InitialTerminationTime":
			t, err := initialTermination(d, c, now)
			if err != nil {
				return nil, &errdefs.TimeBoundsError{Err: err, Min: now, Max: now.Add(b.cfg.MaxLifetime)}
			}
			r.termination = t
		default:
			return nil, fmt.Errorf("%w: unexpected element %s in Subscribe", errdefs.ErrSubscribe, c.Tag)
		}
	}
	if r.consumer == nil {
		return nil, errdefs.WithAdvice(fmt.Errorf("%w: Subscribe has no ConsumerReference", errdefs.ErrSubscribe),
			"give the EPR of your notification consumer")
	}
	if d == dialect.GT4 && r.topicProp == nil {
		return nil, errdefs.WithAdvice(fmt.Errorf("%w: Subscribe has no TopicExpression", errdefs.ErrSubscribe),
			"name a topic, e.g. <wsnt:TopicExpression Dialect=\""+simpleGT4+"\">vw:state</wsnt:TopicExpression>")
	}
	if filter != nil {
		for _, c := range filter.ChildElements() {
			if c.NamespaceURI() != d.BN || c.Tag != "TopicExpression" {
				return nil, &filterError{unknown: wsa.QName{Space: c.NamespaceURI(), Local: c.Tag}}
			}
			if r.topics != nil {
				return nil, errdefs.WithAdvice(&filterError{unknown: wsa.QName{Space: c.NamespaceURI(), Local: c.Tag},
					why: "more than one TopicExpression (a message would have to match all of them)"}, "subscribe once per topic")
			}
			topics, err := parseTopics(c, b.cfg.Topics)
			if err != nil {
				return nil, err
			}
			r.topics = topics
		}
		r.topicProp = wsa.Detach(filter)
	}
	return r, nil
}

// filterError is a Filter holding an expression vws does not evaluate.
type filterError struct {
	unknown wsa.QName
	why     string // "" for an expression of a kind vws has no use for
}

func (e *filterError) Error() string {
	if e.why != "" {
		return fmt.Sprintf("%v: %s", errdefs.ErrInvalidFilter, e.why)
	}
	return fmt.Sprintf("%v: %s is not supported; vws filters by TopicExpression only", errdefs.ErrInvalidFilter, e.unknown)
}

func (e *filterError) Unwrap() error { return errdefs.ErrInvalidFilter }

// UnknownFilter names the filter element refused, which WSN 1.3's InvalidFilterFault
// carries (wsnt:UnknownFilter).
func (e *filterError) UnknownFilter() (space, local string) { return e.unknown.Space, e.unknown.Local }

// policyError is a subscription policy vws does not honour: none is supported.
type policyError struct {
	policy wsa.QName
	known  bool // WSN 1.3's own (UseRaw): recognized, not supported
}

func (e *policyError) Error() string {
	if e.known {
		return fmt.Sprintf("%v: %s is not supported; vws sends every message wrapped in Notify", errdefs.ErrUnsupportedPolicy, e.policy)
	}
	return fmt.Sprintf("%v: %s is not a policy vws knows; it supports none", errdefs.ErrUnrecognizedPolicy, e.policy)
}

func (e *policyError) Unwrap() error {
	if e.known {
		return errdefs.ErrUnsupportedPolicy
	}
	return errdefs.ErrUnrecognizedPolicy
}

// RefusedPolicy names the policy refused, which WSN 1.3's UnrecognizedPolicyRequestFault
// and UnsupportedPolicyRequestFault carry.
func (e *policyError) RefusedPolicy() (space, local string) { return e.policy.Space, e.policy.Local }

// checkConsumer refuses an address vws cannot or may not deliver to.
func (b *Broker) checkConsumer(epr *wsa.EPR) error {
	advice := "give the http:// or https:// address your notification consumer listens on"
	if len(epr.Address) > maxAddressLength {
		return errdefs.WithAdvice(fmt.Errorf("%w: the consumer address is longer than %d bytes", errdefs.ErrSubscribe, maxAddressLength), advice)
	}
	if epr.Address == epr.Version.Anonymous() {
		return errdefs.WithAdvice(fmt.Errorf("%w: the consumer address is WS-Addressing's anonymous address; Notify messages are sent, not answered", errdefs.ErrSubscribe), advice)
	}
	u, err := url.Parse(epr.Address)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return errdefs.WithAdvice(fmt.Errorf("%w: consumer address %q is not an http or https URL", errdefs.ErrSubscribe, epr.Address), advice)
	}
	if u.User != nil {
		return errdefs.WithAdvice(fmt.Errorf("%w: consumer address %q carries credentials", errdefs.ErrSubscribe, epr.Address), advice)
	}
	// An IPv6 address with a zone (fe80::1%eth0) is an address too, which net.ParseIP
	// does not read: taken for a name, it would pass here and fail every delivery.
	if addr, err := netip.ParseAddr(u.Hostname()); err == nil && addr.Zone() != "" {
		return errdefs.WithAdvice(fmt.Errorf("%w: this site sends no notifications to %s (an address with a zone)", errdefs.ErrSubscribe, addr),
			"use a consumer address on a network the site allows (its administrator sets them with --notify-networks)")
	}
	// A name is checked when a message is sent, against what it resolves to then.
	if ip := net.ParseIP(u.Hostname()); ip != nil && !b.cfg.Networks.Permits(ip) {
		return errdefs.WithAdvice(fmt.Errorf("%w: this site sends no notifications to %s", errdefs.ErrSubscribe, ip),
			"use a consumer address on a network the site allows (its administrator sets them with --notify-networks)")
	}
	return nil
}

// never is the termination time asked for with xsi:nil: none, which Subscribe and
// Renew bound to the site's maximum as any time beyond it.
var never = time.Date(9999, 12, 31, 23, 59, 59, 0, time.UTC)

// initialTermination reads InitialTerminationTime: an xsd:dateTime, or in WSN 1.3
// also an xsd:duration from now, or xsi:nil (never), which WSN 1.3 declares nillable.
func initialTermination(d *dialect.Dialect, el *etree.Element, now time.Time) (*time.Time, error) {
	if d == dialect.WSRF12 && isNil(el) {
		t := never
		return &t, nil
	}
	v := strings.TrimSpace(el.Text())
	var t time.Time
	if d == dialect.WSRF12 && (strings.HasPrefix(v, "P") || strings.HasPrefix(v, "-P")) {
		var err error
		if t, err = wsrf.TimeAfter(now, v); err != nil {
			return nil, fmt.Errorf("%w: InitialTerminationTime %q: %v", errdefs.ErrUnacceptableInitialTermTime, v, err)
		}
	} else {
		var err error
		if t, err = wsrf.ParseDateTime(v); err != nil {
			return nil, fmt.Errorf("%w: InitialTerminationTime %q: %v", errdefs.ErrUnacceptableInitialTermTime, v, err)
		}
	}
	if !t.After(now) {
		return nil, fmt.Errorf("%w: InitialTerminationTime %s is not in the future (now %s)", errdefs.ErrUnacceptableInitialTermTime,
			wsrf.FormatTime(t), wsrf.FormatTime(now))
	}
	return &t, nil
}

// isNil reports whether el is xsi:nil.
func isNil(el *etree.Element) bool {
	for _, a := range el.Attr {
		if a.Key == "nil" && a.NamespaceURI() == "http://www.w3.org/2001/XMLSchema-instance" {
			v := strings.TrimSpace(a.Value)
			return v == "true" || v == "1"
		}
	}
	return false
}

// eprProperty renders epr as a standalone property {d.BN}local.
func eprProperty(d *dialect.Dialect, local string, epr *wsa.EPR) *etree.Element {
	holder := etree.NewElement("holder")
	el := epr.ChildElement(holder, "wsnt:"+local, "wsa")
	el.CreateAttr("xmlns:wsnt", d.BN)
	holder.RemoveChild(el)
	return el
}

// siblingURL is the address of service next to the one at addr.
func siblingURL(addr, service string) string {
	i := strings.LastIndex(addr, "/")
	return addr[:i+1] + service
}
