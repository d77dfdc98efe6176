package notify

import (
	"context"
	"encoding/json"
	"fmt"
	"io/fs"
	"strings"
	"time"

	"github.com/beevik/etree"

	"github.com/vws-grid/vws/internal/container"
	"github.com/vws-grid/vws/internal/dialect"
	"github.com/vws-grid/vws/internal/errdefs"
	"github.com/vws-grid/vws/internal/vwsns"
	"github.com/vws-grid/vws/internal/wsrf"
)

// Service builds SubscriptionManagerService: the WSRF operations on subscriptions
// (their properties, Destroy, SetTerminationTime), WSN's PauseSubscription and
// ResumeSubscription, and WSN 1.3's Renew and Unsubscribe.
func (b *Broker) Service(contract fs.FS) (*container.Service, error) {
	svc, err := container.NewService(contract, "wsdl", vwsns.SubscriptionManagerService, vwsns.SubscriptionKey)
	if err != nil {
		return nil, err
	}
	wsrf.HandleProperties(svc, b.home)
	wsrf.HandleLifetime(svc, b.home, b.cfg.Now)
	svc.Handle("PauseSubscription", b.pauseHandler(true))
	svc.Handle("ResumeSubscription", b.pauseHandler(false))
	svc.Handle("Renew", b.renew)
	svc.Handle("Unsubscribe", b.unsubscribe)
	// bw-2 declares Renew and Unsubscribe in PausableSubscriptionManager too, whose
	// default actions a client generated from that port type sends.
	for _, op := range []string{"Renew", "Unsubscribe"} {
		if err := svc.AcceptAction(dialect.WSRF12, "http://docs.oasis-open.org/wsn/bw-2/PausableSubscriptionManager/"+op+"Request", op); err != nil {
			return nil, err
		}
	}
	return svc, nil
}

func subscriptionKey(req *container.Request) (string, error) {
	k, ok := req.ResourceKey()
	if !ok || k == "" {
		return "", errdefs.WithAdvice(fmt.Errorf("%w: the request has no %s header", errdefs.ErrResourceUnknown, vwsns.SubscriptionKey),
			"send the request to the SubscriptionReference that Subscribe answered, its reference property or parameter as a SOAP header")
	}
	return k, nil
}

func bnResponse(d *dialect.Dialect, local string) *etree.Element {
	el := etree.NewElement("wsnt:" + local)
	el.CreateAttr("xmlns:wsnt", d.BN)
	return el
}

// pauseHandler answers PauseSubscription (pause) or ResumeSubscription. A paused
// subscription is sent nothing; what happens meanwhile is not kept for later.
func (b *Broker) pauseHandler(pause bool) container.Handler {
	return func(ctx context.Context, req *container.Request) (*etree.Element, error) {
		key, err := subscriptionKey(req)
		if err != nil {
			return nil, err
		}
		if err := b.setPaused(ctx, key, pause); err != nil {
			return nil, err
		}
		if pause {
			return bnResponse(req.Dialect, "PauseSubscriptionResponse"), nil
		}
		return bnResponse(req.Dialect, "ResumeSubscriptionResponse"), nil
	}
}

func (b *Broker) setPaused(ctx context.Context, key string, pause bool) error {
	return b.home.Modify(ctx, key, func(s *wsrf.Snapshot) error {
		var rec record
		if err := json.Unmarshal(s.Private, &rec); err != nil {
			return fmt.Errorf("subscription %s: %w", key, err)
		}
		rec.Paused = pause
		private, err := json.Marshal(rec)
		if err != nil {
			return err
		}
		s.Private = private
		if p := s.Property(PropPaused); p != nil {
			p.SetText(fmt.Sprint(pause))
		}
		return nil // the live subscription follows once this is stored (pausedChanged)
	})
}

// pausedChanged makes the live subscription follow its stored Paused property; the
// home calls it after each committed change, under the resource's lock, so a Pause
// and a Resume racing end as the one stored last.
func (b *Broker) pausedChanged(key string, _, after []*etree.Element) {
	live := b.lookup(key)
	if live == nil {
		return
	}
	paused := false
	for _, p := range after {
		if p.Tag == PropPaused.Local && p.NamespaceURI() == PropPaused.Space {
			paused = strings.TrimSpace(p.Text()) == "true"
		}
	}
	live.mu.Lock()
	defer live.mu.Unlock()
	live.paused = paused
	if paused {
		live.queue = dropAllButLast(live.queue)
	}
}

// dropAllButLast keeps only a queue's ending message, if it has one.
func dropAllButLast(q []message) []message {
	var kept []message
	for _, m := range q {
		if m.last {
			kept = append(kept, m)
		}
	}
	return kept
}

// renew answers WSN 1.3 Renew: a new termination time (a dateTime, or a duration from
// now), at most the site's maximum subscription lifetime from now.
func (b *Broker) renew(ctx context.Context, req *container.Request) (*etree.Element, error) {
	key, err := subscriptionKey(req)
	if err != nil {
		return nil, err
	}
	d, now := req.Dialect, b.cfg.Now()
	var asked *time.Time
	for _, c := range req.Payload.ChildElements() {
		if c.Tag == "TerminationTime" && c.NamespaceURI() == d.BN {
			if asked != nil {
				// One of two would be a guess at the end the subscriber meant.
				return nil, errdefs.WithAdvice(&errdefs.TimeBoundsError{Err: fmt.Errorf("%w: Renew holds more than one TerminationTime", errdefs.ErrUnacceptableTermTime),
					Min: now, Max: now.Add(b.cfg.MaxLifetime)}, "send one TerminationTime")
			}
			t, err := initialTermination(d, c, now)
			if err != nil {
				msg := strings.TrimPrefix(err.Error(), errdefs.ErrUnacceptableInitialTermTime.Error()+": ")
				return nil, &errdefs.TimeBoundsError{Err: fmt.Errorf("%w: %s", errdefs.ErrUnacceptableTermTime, msg),
					Min: now, Max: now.Add(b.cfg.MaxLifetime)}
			}
			asked = t
		}
	}
	if asked == nil {
		return nil, errdefs.WithAdvice(&errdefs.TimeBoundsError{Err: fmt.Errorf("%w: Renew holds no TerminationTime", errdefs.ErrUnacceptableTermTime),
			Min: now, Max: now.Add(b.cfg.MaxLifetime)},
			"send <wsnt:TerminationTime> with an xsd:dateTime or an xsd:duration such as PT1H")
	}
	if max := now.Add(b.cfg.MaxLifetime); asked.After(max) {
		asked = &max
	}
	got, err := b.home.SetTerminationTime(ctx, key, asked)
	if err != nil {
		return nil, err
	}
	out := bnResponse(d, "RenewResponse")
	out.CreateElement("wsnt:TerminationTime").SetText(wsrf.FormatTime(*got))
	out.CreateElement("wsnt:CurrentTime").SetText(wsrf.FormatTime(now))
	return out, nil
}

// unsubscribe answers WSN 1.3 Unsubscribe: the subscription is destroyed.
func (b *Broker) unsubscribe(ctx context.Context, req *container.Request) (*etree.Element, error) {
	key, err := subscriptionKey(req)
	if err != nil {
		return nil, err
	}
	if err := b.home.Destroy(ctx, key); err != nil {
		return nil, err
	}
	return bnResponse(req.Dialect, "UnsubscribeResponse"), nil
}
