package notify

import (
	"context"
	"strings"
	"testing"

	"github.com/beevik/etree"

	"github.com/vws-grid/vws/internal/authz"
	"github.com/vws-grid/vws/internal/container"
	"github.com/vws-grid/vws/internal/contract"
	"github.com/vws-grid/vws/internal/dialect"
	"github.com/vws-grid/vws/internal/identity"
	"github.com/vws-grid/vws/internal/soap"
	"github.com/vws-grid/vws/internal/vwsns"
	"github.com/vws-grid/vws/internal/wsa"
	"github.com/vws-grid/vws/policy"
)

type fixedRules struct{ rs *policy.Rules }

func (r fixedRules) Rules() *policy.Rules { return r.rs }

type discardAudit struct{}

func (discardAudit) RecordDecision(context.Context, string, string, bool, string, string) error {
	return nil
}

// A subscription an anonymous caller made (a share rule lets anonymous read a public
// workspace) is, like a workspace an anonymous caller created, nobody's to manage but
// an admin's: anonymous callers never count as an owner, and a subscription is its
// subscriber's to read, pause, renew or destroy. An owner "" would mean no owner at
// all: any user with manage rights could read it (its ConsumerReference carries the
// listener's token), pause, renew or destroy it.
func TestAnAnonymousSubscriptionIsNotEveryonesToManage(t *testing.T) {
	rs, err := policy.Parse(strings.NewReader("allow inspect anonymous\nshare inspect key:ws1 anonymous\nallow inspect /O=Grid/*\nallow manage /O=Grid/*\n"), "rules")
	if err != nil {
		t.Fatal(err)
	}
	b := newBroker(t, nil, nil)
	d := dialect.WSRF12
	// Subscribe as anonymous (no identity in the context).
	key := subscribe(t, b, d, "ws1", consumerRef(d, "http://127.0.0.1:9/c"))
	a := &authz.Authorizer{Policy: fixedRules{rs}, Audit: discardAudit{}, Subscriptions: b}
	req := func(op string) *container.Request {
		svc := &container.Service{Name: vwsns.SubscriptionManagerService, Key: vwsns.SubscriptionKey}
		h := etree.NewElement("vwn:SubscriptionKey")
		h.CreateAttr("xmlns:vwn", vwsns.Notification)
		h.SetText(key)
		return &container.Request{Service: svc, Operation: &contract.Operation{Name: op}, Envelope: &soap.Envelope{Headers: []*etree.Element{h}}}
	}
	mallory := identity.With(context.Background(), identity.Identity{DN: "/O=Grid/CN=mallory"})
	for _, op := range []string{"GetResourcePropertyDocument", "PauseSubscription", "Renew", "Unsubscribe", "Destroy"} {
		if err := a.Authorize(mallory, req(op)); err == nil {
			t.Errorf("mallory may %s an anonymous subscriber's subscription", op)
		}
	}
	// A named subscriber's subscription stays its own.
	alice := identity.With(context.Background(), identity.Identity{DN: "/O=Grid/CN=alice"})
	out, err := b.Subscribe(exists("ws1"))(alice, subscribeRequest(t, d, "ws1", consumerRef(d, "http://127.0.0.1:9/c")))
	if err != nil {
		t.Fatal(err)
	}
	ref, err := wsa.ParseEPR(out.FindElement("./SubscriptionReference"))
	if err != nil {
		t.Fatal(err)
	}
	key = strings.TrimSpace(ref.References[0].Text())
	if err := a.Authorize(alice, req("Renew")); err != nil {
		t.Errorf("alice may not renew her own subscription: %v", err)
	}
	if err := a.Authorize(mallory, req("Renew")); err == nil {
		t.Error("mallory may renew alice's subscription")
	}
}
