package notify

import (
	"context"
	"crypto/x509"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/beevik/etree"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/vws-grid/vws/internal/container"
	"github.com/vws-grid/vws/internal/dialect"
	"github.com/vws-grid/vws/internal/errdefs"
	"github.com/vws-grid/vws/internal/identity"
	"github.com/vws-grid/vws/internal/pki"
	"github.com/vws-grid/vws/internal/soap"
	"github.com/vws-grid/vws/internal/store"
	"github.com/vws-grid/vws/internal/store/storetest"
	"github.com/vws-grid/vws/internal/vwsns"
	"github.com/vws-grid/vws/internal/wsa"
	"github.com/vws-grid/vws/internal/wsrf"
	"github.com/vws-grid/vws/internal/wssec"
)

var (
	propState      = wsa.QName{Space: vwsns.Workspace, Local: "state"}
	propDeployment = wsa.QName{Space: vwsns.Workspace, Local: "deployment"}
)

// consumer is a notification consumer on loopback HTTP recording what it is sent.
type consumer struct {
	*httptest.Server
	mu       sync.Mutex
	got      []*soap.Envelope
	status   int // answer; 0: 200
	arrivals chan struct{}
}

func newConsumer(t *testing.T) *consumer {
	c := &consumer{arrivals: make(chan struct{}, 1000)}
	c.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		data, _ := io.ReadAll(r.Body)
		env, err := soap.Parse(data)
		if err != nil {
			t.Errorf("consumer got a message that is not SOAP: %v\n%s", err, data)
			return
		}
		c.mu.Lock()
		status := c.status
		if status == 0 || status/100 == 2 {
			c.got = append(c.got, env)
		}
		c.mu.Unlock()
		if status != 0 {
			w.WriteHeader(status)
		}
		c.arrivals <- struct{}{}
	}))
	t.Cleanup(c.Close)
	return c
}

func (c *consumer) messages() []*soap.Envelope {
	c.mu.Lock()
	defer c.mu.Unlock()
	return append([]*soap.Envelope(nil), c.got...)
}

// waitFor waits until the consumer holds n messages.
func (c *consumer) waitFor(t *testing.T, n int) []*soap.Envelope {
	t.Helper()
	deadline := time.After(10 * time.Second)
	for {
		if got := c.messages(); len(got) >= n {
			return got
		}
		select {
		case <-c.arrivals:
		case <-deadline:
			t.Fatalf("consumer got %d messages, want %d", len(c.messages()), n)
		}
	}
}

// openStore opens the real store (SQLite, or PostgreSQL under VWS_TEST_POSTGRES)
// until the test ends.
func openStore(t *testing.T) *store.DB {
	t.Helper()
	return storetest.Open(t)
}

func newBroker(t *testing.T, db *store.DB, mod func(*Config)) *Broker {
	t.Helper()
	cfg := Config{Topics: []wsa.QName{propState, propDeployment}, Retries: []time.Duration{}, MaxFailures: 2}
	if db != nil {
		cfg.Store = db
	}
	if mod != nil {
		mod(&cfg)
	}
	b, err := New(context.Background(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(b.Close)
	return b
}

const producerAddr = "http://vws.example.org:8080/wsrf/services/WorkspaceService"

// subscribeRequest builds a Subscribe to workspace key in dialect d with the given
// body children (XML, prefix wsnt bound to d's BN namespace, vw to the workspace's).
func subscribeRequest(t testing.TB, d *dialect.Dialect, key, inner string) *container.Request {
	t.Helper()
	doc := etree.NewDocument()
	if err := doc.ReadFromString(`<wsnt:Subscribe xmlns:wsnt="` + d.BN + `" xmlns:vw="` + vwsns.Workspace + `" xmlns:wsa="` +
		d.WSA.Namespace() + `">` + inner + `</wsnt:Subscribe>`); err != nil {
		t.Fatal(err)
	}
	k := etree.NewElement("vw:WorkspaceKey")
	k.CreateAttr("xmlns:vw", vwsns.Workspace)
	k.SetText(key)
	return &container.Request{
		Service:  &container.Service{Name: vwsns.WorkspaceService, Key: vwsns.WorkspaceKey},
		Dialect:  d,
		Envelope: &soap.Envelope{Headers: []*etree.Element{k}},
		Payload:  doc.Root(),
		Address:  producerAddr,
	}
}

// consumerRefOf renders epr as the ConsumerReference of a Subscribe.
func consumerRefOf(d *dialect.Dialect, epr *wsa.EPR) string {
	s, _ := etree.NewDocumentWithRoot(eprProperty(d, "ConsumerReference", epr)).WriteToString()
	return s
}

func consumerRef(d *dialect.Dialect, addr string) string {
	return `<wsnt:ConsumerReference><wsa:Address>` + addr + `</wsa:Address><wsa:` + d.WSA.ReferenceContainer() +
		`><c:Listener xmlns:c="urn:test">L1</c:Listener></wsa:` + d.WSA.ReferenceContainer() + `></wsnt:ConsumerReference>`
}

func topicFilter(d *dialect.Dialect, topic string) string {
	if d == dialect.GT4 {
		return `<wsnt:TopicExpression Dialect="` + simpleGT4 + `">` + topic + `</wsnt:TopicExpression>`
	}
	return `<wsnt:Filter><wsnt:TopicExpression Dialect="` + simpleWSN13 + `">` + topic + `</wsnt:TopicExpression></wsnt:Filter>`
}

// exists is a producer of the workspaces keys, shut down in the repository.
func exists(keys ...string) Producer {
	return producerOf(map[string][]*etree.Element{}, keys...)
}

// producerOf is a producer whose workspaces have the properties in current, or, for
// keys not there, are shut down in the repository.
func producerOf(current map[string][]*etree.Element, keys ...string) Producer {
	return func(_ context.Context, key string) ([]*etree.Element, error) {
		if p, ok := current[key]; ok {
			return p, nil
		}
		for _, k := range keys {
			if k == key {
				return props("shutdown", "in-repository"), nil
			}
		}
		return nil, errdefs.ErrResourceUnknown
	}
}

// subscribe subscribes and returns the subscription's key.
func subscribe(t *testing.T, b *Broker, d *dialect.Dialect, key, inner string) string {
	t.Helper()
	out, err := b.Subscribe(exists(key))(context.Background(), subscribeRequest(t, d, key, inner))
	if err != nil {
		t.Fatalf("Subscribe: %v", err)
	}
	ref := out.FindElement("./SubscriptionReference")
	if ref == nil || out.NamespaceURI() != d.BN {
		t.Fatalf("SubscribeResponse without SubscriptionReference: %s", xmlOf(out))
	}
	epr, err := wsa.ParseEPR(ref)
	if err != nil {
		t.Fatal(err)
	}
	if epr.Version != d.WSA || !strings.HasSuffix(epr.Address, "/wsrf/services/SubscriptionManagerService") {
		t.Fatalf("subscription EPR %+v", epr)
	}
	k := epr.Reference(vwsns.Notification, "SubscriptionKey")
	if k == nil {
		t.Fatalf("subscription EPR has no SubscriptionKey: %s", xmlOf(ref))
	}
	if d == dialect.WSRF12 && (out.FindElement("./CurrentTime") == nil || out.FindElement("./TerminationTime") == nil) {
		t.Fatalf("WSN 1.3 SubscribeResponse lacks CurrentTime/TerminationTime: %s", xmlOf(out))
	}
	return k.Text()
}

func xmlOf(el *etree.Element) string {
	s, _ := etree.NewDocumentWithRoot(el.Copy()).WriteToString()
	return s
}

func prop(q wsa.QName, v string) *etree.Element {
	el := etree.NewElement("vw:" + q.Local)
	el.CreateAttr("xmlns:vw", q.Space)
	el.SetText(v)
	return el
}

func props(state, deployment string) []*etree.Element {
	return []*etree.Element{prop(propState, state), prop(propDeployment, deployment)}
}

func header(env *soap.Envelope, ns, local string) string {
	for _, h := range env.Headers {
		if h.Tag == local && h.NamespaceURI() == ns {
			return strings.TrimSpace(h.Text())
		}
	}
	return ""
}

func TestValueChangeNotifiedInEachDialect(t *testing.T) {
	for _, d := range dialect.Dialects {
		t.Run(d.Name, func(t *testing.T) {
			c := newConsumer(t)
			b := newBroker(t, nil, nil)
			subscribe(t, b, d, "ws1", consumerRef(d, c.URL)+topicFilter(d, "vw:state"))

			b.Changed("ws1", props("shutdown", "in-repository"), props("shutdown", "staging")) // not the topic
			b.Changed("ws1", props("shutdown", "deployed"), props("running", "deployed"))
			b.Changed("other", props("shutdown", "deployed"), props("running", "deployed")) // another workspace
			got := c.waitFor(t, 1)
			time.Sleep(100 * time.Millisecond)
			if got = c.messages(); len(got) != 1 {
				t.Fatalf("consumer got %d messages, want only the state change", len(got))
			}
			env := got[0]
			wantAction := notifyActionWSN13
			if d == dialect.GT4 {
				wantAction = notifyActionGT4
			}
			if a := header(env, d.WSA.Namespace(), "Action"); a != wantAction {
				t.Errorf("wsa:Action %q, want %q", a, wantAction)
			}
			if to := header(env, d.WSA.Namespace(), "To"); to != c.URL {
				t.Errorf("wsa:To %q, want %q", to, c.URL)
			}
			if l := header(env, "urn:test", "Listener"); l != "L1" {
				t.Errorf("the consumer's reference parameter came back as %q, want L1", l)
			}
			if env.Payload.Tag != "Notify" || env.Payload.NamespaceURI() != d.BN {
				t.Fatalf("body is %s, want {%s}Notify", env.Payload.FullTag(), d.BN)
			}
			nm := env.Payload.FindElement("./NotificationMessage")
			topic := nm.FindElement("./Topic")
			q, err := wsa.ResolveQName(topic, topic.Text())
			if err != nil || q != propState {
				t.Errorf("Topic %q resolves to %v (%v), want %v", topic.Text(), q, err, propState)
			}
			producer, err := wsa.ParseEPR(nm.FindElement("./ProducerReference"))
			if err != nil || producer.Address != producerAddr || producer.Reference(vwsns.Workspace, "WorkspaceKey").Text() != "ws1" {
				t.Errorf("ProducerReference %+v (%v)", producer, err)
			}
			if d == dialect.WSRF12 && nm.FindElement("./SubscriptionReference") == nil {
				t.Error("WSN 1.3 NotificationMessage lacks SubscriptionReference")
			}
			change := nm.FindElement("./Message/ResourcePropertyValueChangeNotification")
			if change == nil || change.NamespaceURI() != d.RP {
				t.Fatalf("Message holds no {%s}ResourcePropertyValueChangeNotification: %s", d.RP, xmlOf(nm))
			}
			oldName, newName := "OldValues", "NewValues"
			if d == dialect.GT4 {
				oldName, newName = "OldValue", "NewValue"
			}
			if v := change.FindElement("./" + oldName + "/state"); v == nil || v.Text() != "shutdown" {
				t.Errorf("old value: %s", xmlOf(change))
			}
			if v := change.FindElement("./" + newName + "/state"); v == nil || v.Text() != "running" {
				t.Errorf("new value: %s", xmlOf(change))
			}
		})
	}
}

func TestChangesArriveInOrder(t *testing.T) {
	c := newConsumer(t)
	b := newBroker(t, nil, nil)
	d := dialect.WSRF12
	subscribe(t, b, d, "ws1", consumerRef(d, c.URL)) // no filter: every topic
	states := []string{"running", "paused", "running", "paused", "running", "shutdown"}
	prev := "shutdown"
	for i := 0; i < 5; i++ {
		for _, s := range states {
			b.Changed("ws1", props(prev, "deployed"), props(s, "deployed"))
			prev = s
		}
	}
	got := c.waitFor(t, 5*len(states))
	for i, env := range got {
		v := env.Payload.FindElement(".//NewValues/state")
		if v == nil || v.Text() != states[i%len(states)] {
			t.Fatalf("message %d: new state %v, want %s", i, v, states[i%len(states)])
		}
	}
}

func TestPausedSubscriptionIsSentNothing(t *testing.T) {
	c := newConsumer(t)
	b := newBroker(t, nil, nil)
	d := dialect.GT4
	key := subscribe(t, b, d, "ws1", consumerRef(d, c.URL)+topicFilter(d, "vw:state"))
	ctx := context.Background()
	if err := b.setPaused(ctx, key, true); err != nil {
		t.Fatal(err)
	}
	got, err := b.home.Property(ctx, d, key, PropPaused)
	if err != nil || len(got) != 1 || got[0].Text() != "true" {
		t.Fatalf("Paused property after PauseSubscription: %v %v", got, err)
	}
	b.Changed("ws1", props("running", "deployed"), props("paused", "deployed"))
	if err := b.setPaused(ctx, key, false); err != nil {
		t.Fatal(err)
	}
	b.Changed("ws1", props("paused", "deployed"), props("running", "deployed"))
	c.waitFor(t, 1)
	time.Sleep(100 * time.Millisecond)
	msgs := c.messages()
	if len(msgs) != 1 || msgs[0].Payload.FindElement(".//NewValue/state").Text() != "running" {
		t.Fatalf("got %d messages; want only the change after ResumeSubscription", len(msgs))
	}
}

func TestTerminationEndsSubscriptions(t *testing.T) {
	c := newConsumer(t)
	b := newBroker(t, nil, nil)
	d := dialect.WSRF12
	term := subscribe(t, b, d, "ws1", consumerRef(d, c.URL)+
		`<wsnt:Filter><wsnt:TopicExpression Dialect="`+simpleWSN13+`" xmlns:wsrl="`+d.RL+`">wsrl:ResourceTermination</wsnt:TopicExpression></wsnt:Filter>`)
	state := subscribe(t, b, d, "ws1", consumerRef(d, c.URL)+topicFilter(d, "vw:state"))
	b.Terminated("ws1", "its lifetime expired")
	got := c.waitFor(t, 1)
	tn := got[0].Payload.FindElement(".//Message/TerminationNotification")
	if tn == nil || tn.NamespaceURI() != d.RL || tn.FindElement("./TerminationReason").Text() != "its lifetime expired" {
		t.Fatalf("termination message: %s", xmlOf(got[0].Payload))
	}
	deadline := time.Now().Add(5 * time.Second)
	for b.Count("ws1") > 0 && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond)
	}
	for _, k := range []string{term, state} {
		if _, err := b.home.Document(context.Background(), d, k); !errors.Is(err, errdefs.ErrResourceUnknown) {
			t.Errorf("subscription %s outlived its workspace: %v", k, err)
		}
	}
	time.Sleep(100 * time.Millisecond)
	if n := len(c.messages()); n != 1 {
		t.Errorf("consumer got %d messages; the state subscriber must get no termination message", n)
	}
}

func TestUnreachableConsumerEndsSubscription(t *testing.T) {
	c := newConsumer(t)
	c.status = http.StatusInternalServerError
	b := newBroker(t, nil, nil) // MaxFailures 2, no retries
	d := dialect.GT4
	key := subscribe(t, b, d, "ws1", consumerRef(d, c.URL)+topicFilter(d, "vw:state"))
	b.Changed("ws1", props("running", "deployed"), props("paused", "deployed"))
	b.Changed("ws1", props("paused", "deployed"), props("running", "deployed"))
	deadline := time.Now().Add(5 * time.Second)
	for b.Count("ws1") > 0 && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond)
	}
	if _, err := b.home.Document(context.Background(), d, key); !errors.Is(err, errdefs.ErrResourceUnknown) {
		t.Fatalf("subscription still there after its consumer refused %d messages: %v", 2, err)
	}
}

func TestSubscriptionsSurviveRestart(t *testing.T) {
	db := openStore(t)
	c := newConsumer(t)
	d := dialect.GT4
	b1 := newBroker(t, db, nil)
	key := subscribe(t, b1, d, "ws1", consumerRef(d, c.URL)+topicFilter(d, "vw:deployment"))
	b1.Close()

	b2 := newBroker(t, db, nil)
	if b2.Count("ws1") != 1 {
		t.Fatalf("after a restart the workspace has %d subscriptions, want 1", b2.Count("ws1"))
	}
	doc, err := b2.home.Document(context.Background(), d, key)
	if err != nil {
		t.Fatal(err)
	}
	if cr := doc.FindElement("./ConsumerReference/Address"); cr == nil || cr.Text() != c.URL {
		t.Errorf("ConsumerReference after restart: %s", xmlOf(doc))
	}
	b2.Changed("ws1", props("shutdown", "in-repository"), props("shutdown", "staging"))
	got := c.waitFor(t, 1)
	if v := got[0].Payload.FindElement(".//NewValue/deployment"); v == nil || v.Text() != "staging" {
		t.Fatalf("message after restart: %s", xmlOf(got[0].Payload))
	}
}

func TestBadSubscribeChangesNothing(t *testing.T) {
	gt4, w := dialect.GT4, dialect.WSRF12
	good := consumerRef(gt4, "http://127.0.0.1:9/consumer")
	cases := []struct {
		name  string
		d     *dialect.Dialect
		key   string
		inner string
		want  error
	}{
		{"unknown workspace", gt4, "nope", good + topicFilter(gt4, "vw:state"), errdefs.ErrResourceUnknown},
		{"no consumer", gt4, "ws1", topicFilter(gt4, "vw:state"), errdefs.ErrSubscribe},
		{"anonymous consumer", gt4, "ws1", consumerRef(gt4, gt4.WSA.Anonymous()) + topicFilter(gt4, "vw:state"), errdefs.ErrSubscribe},
		{"ftp consumer", gt4, "ws1", consumerRef(gt4, "ftp://h/x") + topicFilter(gt4, "vw:state"), errdefs.ErrSubscribe},
		{"no topic (GT4)", gt4, "ws1", good, errdefs.ErrSubscribe},
		{"unknown topic", gt4, "ws1", good + topicFilter(gt4, "vw:owner"), errdefs.ErrTopicNotSupported},
		{"unbound prefix", gt4, "ws1", good + topicFilter(gt4, "x:state"), errdefs.ErrInvalidTopic},
		{"Full dialect", gt4, "ws1", good + `<wsnt:TopicExpression Dialect="` + fullGT4 + `">vw:*</wsnt:TopicExpression>`, errdefs.ErrTopicDialectUnknown},
		{"odd dialect", gt4, "ws1", good + `<wsnt:TopicExpression Dialect="urn:x">vw:state</wsnt:TopicExpression>`, errdefs.ErrTopicDialectUnknown},
		{"UseNotify false", gt4, "ws1", good + topicFilter(gt4, "vw:state") + `<wsnt:UseNotify>false</wsnt:UseNotify>`, errdefs.ErrSubscribe},
		{"past termination", gt4, "ws1", good + topicFilter(gt4, "vw:state") + `<wsnt:InitialTerminationTime>2001-01-01T00:00:00Z</wsnt:InitialTerminationTime>`, errdefs.ErrUnacceptableInitialTermTime},
		{"content filter", w, "ws1", consumerRef(w, "http://127.0.0.1:9/c") + `<wsnt:Filter><wsnt:MessageContent Dialect="urn:x">1</wsnt:MessageContent></wsnt:Filter>`, errdefs.ErrInvalidFilter},
		{"two topics", w, "ws1", consumerRef(w, "http://127.0.0.1:9/c") + `<wsnt:Filter><wsnt:TopicExpression Dialect="` + simpleWSN13 + `">vw:state</wsnt:TopicExpression><wsnt:TopicExpression Dialect="` + simpleWSN13 + `">vw:deployment</wsnt:TopicExpression></wsnt:Filter>`, errdefs.ErrInvalidFilter},
		{"bad duration", w, "ws1", consumerRef(w, "http://127.0.0.1:9/c") + `<wsnt:InitialTerminationTime>PTfoo</wsnt:InitialTerminationTime>`, errdefs.ErrUnacceptableInitialTermTime},
	}
	b := newBroker(t, nil, nil)
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			_, err := b.Subscribe(exists("ws1"))(context.Background(), subscribeRequest(t, tc.d, tc.key, tc.inner))
			if !errors.Is(err, tc.want) {
				t.Fatalf("got %v, want %v", err, tc.want)
			}
			if n := len(b.home.Keys()); n != 0 {
				t.Fatalf("a refused Subscribe left %d subscriptions", n)
			}
		})
	}
}

func TestSubscriptionsPerWorkspaceBounded(t *testing.T) {
	b := newBroker(t, nil, func(c *Config) { c.MaxPerProducer = 2 })
	d := dialect.GT4
	inner := consumerRef(d, "http://127.0.0.1:9/c") + topicFilter(d, "vw:state")
	subscribe(t, b, d, "ws1", inner)
	subscribe(t, b, d, "ws1", inner)
	if _, err := b.Subscribe(exists("ws1"))(context.Background(), subscribeRequest(t, d, "ws1", inner)); !errors.Is(err, errdefs.ErrSubscribe) {
		t.Fatalf("third subscription: %v, want refused", err)
	}
	subscribe(t, b, d, "ws2", strings.Replace(inner, "ws1", "ws2", 1)) // other workspaces are not affected
}

func TestLifetimeGrantedAndBounded(t *testing.T) {
	now := time.Date(2026, 11, 30, 12, 0, 0, 0, time.UTC)
	b := newBroker(t, nil, func(c *Config) {
		c.Now = func() time.Time { return now }
		c.MaxLifetime, c.DefaultLifetime = 48*time.Hour, time.Hour
	})
	d := dialect.WSRF12
	ref := consumerRef(d, "http://127.0.0.1:9/c")
	term := func(key string) string {
		p, err := b.home.Property(context.Background(), d, key, wsa.QName{Space: d.RL, Local: "TerminationTime"})
		if err != nil {
			t.Fatal(err)
		}
		return p[0].Text()
	}
	if got := term(subscribe(t, b, d, "ws1", ref)); got != "2026-11-30T13:00:00.000Z" {
		t.Errorf("default termination %s, want one hour from now", got)
	}
	if got := term(subscribe(t, b, d, "ws1", ref+`<wsnt:InitialTerminationTime>PT10M</wsnt:InitialTerminationTime>`)); got != "2026-11-30T12:10:00.000Z" {
		t.Errorf("relative termination %s", got)
	}
	if got := term(subscribe(t, b, d, "ws1", ref+`<wsnt:InitialTerminationTime>2030-01-01T00:00:00Z</wsnt:InitialTerminationTime>`)); got != "2026-12-02T12:00:00.000Z" {
		t.Errorf("termination beyond the maximum granted as %s, want the maximum", got)
	}
}

func TestProducerPropertiesNameEveryTopic(t *testing.T) {
	for _, d := range dialect.Dialects {
		var topics []wsa.QName
		for _, p := range ProducerProperties(d, []wsa.QName{propState, propDeployment}) {
			if p.Tag == "Topic" || p.Tag == "TopicExpression" {
				q, err := wsa.ResolveQName(p, p.Text())
				if err != nil {
					t.Fatal(err)
				}
				topics = append(topics, q)
			}
		}
		want := []wsa.QName{propState, propDeployment, Termination(d)}
		if len(topics) != len(want) {
			t.Fatalf("%s: topics %v, want %v", d.Name, topics, want)
		}
		for i := range want {
			if topics[i] != want[i] {
				t.Errorf("%s: topic %d is %v, want %v", d.Name, i, topics[i], want[i])
			}
		}
	}
}

func TestNetworks(t *testing.T) {
	var def Networks
	for ip, want := range map[string]bool{"127.0.0.1": true, "10.1.2.3": true, "::1": true, "169.254.169.254": false,
		"fe80::1": false, "224.0.0.1": false, "0.0.0.0": false, "::ffff:169.254.169.254": false,
		// A link-local IPv4 address reached by translation: NAT64, IPv4-compatible.
		"64:ff9b::a9fe:a9fe": false, "::a9fe:a9fe": false, "64:ff9b::a00:1": true, "::": false,
		// Metadata services outside link-local (AWS over IPv6, Alibaba Cloud), not
		// their neighbours.
		"fd00:ec2::254": false, "100.100.100.200": false, "64:ff9b::6464:64c8": false, "fd00:ec2::253": true, "100.100.100.201": true} {
		if got := def.Permits(net.ParseIP(ip)); got != want {
			t.Errorf("default networks permit %s: %v, want %v", ip, got, want)
		}
	}
	n, err := ParseNetworks([]string{"10.0.0.0/8", "192.0.2.7"})
	if err != nil {
		t.Fatal(err)
	}
	for ip, want := range map[string]bool{"10.9.9.9": true, "192.0.2.7": true, "192.0.2.8": false, "127.0.0.1": false} {
		if got := n.Permits(net.ParseIP(ip)); got != want {
			t.Errorf("10.0.0.0/8,192.0.2.7 permit %s: %v, want %v", ip, got, want)
		}
	}
	if _, err := ParseNetworks([]string{"10.0.0.0/33"}); err == nil {
		t.Error("10.0.0.0/33 accepted")
	}
}

// A consumer outside the site's networks is refused at Subscribe when its address is
// an IP, and sent nothing when its name resolves outside them.
func TestDeliveriesKeptToAllowedNetworks(t *testing.T) {
	nets, _ := ParseNetworks([]string{"10.0.0.0/8"})
	b := newBroker(t, nil, func(c *Config) { c.Networks = nets }) // HTTP from Networks
	d := dialect.GT4
	for _, addr := range []string{"http://127.0.0.1:9/c", "http://169.254.169.254/latest"} {
		_, err := b.Subscribe(exists("ws1"))(context.Background(), subscribeRequest(t, d, "ws1", consumerRef(d, addr)+topicFilter(d, "vw:state")))
		if !errors.Is(err, errdefs.ErrSubscribe) || !strings.Contains(err.Error(), "sends no notifications to") {
			t.Fatalf("consumer %s: %v, want refused", addr, err)
		}
	}
	c := newConsumer(t)
	named := strings.Replace(c.URL, "127.0.0.1", "localhost", 1)
	key := subscribe(t, b, d, "ws1", consumerRef(d, named)+topicFilter(d, "vw:state"))
	b.Changed("ws1", props("running", "deployed"), props("paused", "deployed"))
	b.Changed("ws1", props("paused", "deployed"), props("running", "deployed"))
	deadline := time.Now().Add(5 * time.Second)
	for b.Count("ws1") > 0 && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond)
	}
	if n := len(c.messages()); n != 0 {
		t.Fatalf("a consumer whose name resolves to 127.0.0.1 got %d messages outside 10.0.0.0/8", n)
	}
	if _, err := b.home.Document(context.Background(), d, key); !errors.Is(err, errdefs.ErrResourceUnknown) {
		t.Fatalf("the subscription lives on after every delivery was refused: %v", err)
	}
}

// Subscriptions of a workspace that went while the server was down end at start-up,
// with the termination message for those who asked for it.
func TestPruneEndsOrphanedSubscriptions(t *testing.T) {
	db := openStore(t)
	c := newConsumer(t)
	d := dialect.WSRF12
	b1 := newBroker(t, db, nil)
	subscribe(t, b1, d, "gone", consumerRef(d, c.URL)) // every topic
	subscribe(t, b1, d, "kept", consumerRef(d, c.URL))
	b1.Close()

	b2 := newBroker(t, db, nil)
	b2.Resync(context.Background(), exists("kept"))
	got := c.waitFor(t, 1)
	if n := got[0].Payload.FindElement(".//TerminationReason"); n == nil || n.Text() != "it no longer exists" {
		t.Fatalf("message to the orphan's subscriber: %s", xmlOf(got[0].Payload))
	}
	deadline := time.Now().Add(5 * time.Second)
	for b2.Count("gone") > 0 && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond)
	}
	if b2.Count("gone") != 0 || b2.Count("kept") != 1 {
		t.Fatalf("after Prune: %d subscriptions of the gone workspace, %d of the kept one; want 0 and 1", b2.Count("gone"), b2.Count("kept"))
	}
}

// The metrics count what consumers took, what was dropped, and the subscriptions vws
// ended itself.
func TestMetricsCount(t *testing.T) {
	reg := prometheus.NewRegistry()
	b := newBroker(t, nil, func(c *Config) { c.Metrics = reg })
	good, bad := newConsumer(t), newConsumer(t)
	bad.status = http.StatusServiceUnavailable
	d := dialect.GT4
	subscribe(t, b, d, "ws1", consumerRef(d, good.URL)+topicFilter(d, "vw:state"))
	subscribe(t, b, d, "ws1", consumerRef(d, bad.URL)+topicFilter(d, "vw:state"))
	if got := value(t, reg, "vws_subscriptions"); got != 2 {
		t.Fatalf("vws_subscriptions = %v, want 2", got)
	}
	b.Changed("ws1", props("running", "deployed"), props("paused", "deployed"))
	b.Changed("ws1", props("paused", "deployed"), props("running", "deployed"))
	good.waitFor(t, 2)
	deadline := time.Now().Add(5 * time.Second)
	for (b.Count("ws1") > 1 || value(t, reg, "vws_notifications_delivered_total") < 2) && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond) // the count follows the consumer's answer
	}
	for name, want := range map[string]float64{
		"vws_notifications_delivered_total":                            2,
		"vws_notifications_dropped_total":                              2,
		`vws_subscriptions_ended_by_vws_total{reason="consumer-gone"}`: 1,
		"vws_subscriptions":                                            1,
	} {
		if got := value(t, reg, name); got != want {
			t.Errorf("%s = %v, want %v", name, got, want)
		}
	}
}

// value reads one sample of the registry: name, with {label="value"} if labelled.
func value(t *testing.T, reg *prometheus.Registry, sample string) float64 {
	t.Helper()
	name, label, _ := strings.Cut(strings.TrimSuffix(sample, "}"), "{")
	fams, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range fams {
		if f.GetName() != name {
			continue
		}
		for _, m := range f.GetMetric() {
			if label != "" {
				k, v, _ := strings.Cut(label, "=")
				match := false
				for _, lp := range m.GetLabel() {
					if lp.GetName() == k && `"`+lp.GetValue()+`"` == v {
						match = true
					}
				}
				if !match {
					continue
				}
			}
			switch {
			case m.GetCounter() != nil:
				return m.GetCounter().GetValue()
			case m.GetGauge() != nil:
				return m.GetGauge().GetValue()
			}
		}
	}
	t.Fatalf("no sample %s", sample)
	return 0
}

// With the host's credential the broker signs each Notify; a consumer that trusts the
// site's CA takes it, and refuses unsigned or forged ones.
func TestSignedNotifications(t *testing.T) {
	ca, host, trust := signingSite(t)
	user, err := ca.IssueUser(pki.UserOptions{CN: "mallory", KeyType: pki.KeyTypeECDSA})
	if err != nil {
		t.Fatal(err)
	}
	got := make(chan Notification, 10)
	consumer := &Consumer{Token: "t1", Deliver: func(n Notification) { got <- n },
		Verifier: wssec.NewVerifier(func(chain []*x509.Certificate) (identity.Identity, error) { return trust.Verify(chain, time.Now()) }),
		Signer: func(id identity.Identity) error {
			if !strings.Contains(id.DN, "/CN=host/") {
				return fmt.Errorf("%s is not a host", id.DN)
			}
			return nil
		}}
	hs := httptest.NewServer(consumer)
	defer hs.Close()
	d := dialect.WSRF12
	ref := consumer.Reference(d.WSA, hs.URL)
	inner := func() string { return consumerRefOf(d, ref) + topicFilter(d, "vw:state") }
	// The signature is optional to a consumer that knows no WS-Security: it must not
	// refuse the message (MustUnderstand) for its Security header.
	plain := newConsumer(t)
	hostSigner := &wssec.Signer{Key: host.Key, Chain: host.FullChain()}
	b0 := newBroker(t, nil, func(cfg *Config) { cfg.Signer = hostSigner })
	subscribe(t, b0, d, "ws0", consumerRef(d, plain.URL)+topicFilter(d, "vw:state"))
	b0.Changed("ws0", props("running", "deployed"), props("paused", "deployed"))
	sec := plain.waitFor(t, 1)[0].Headers[0]
	if sec.Tag != "Security" || sec.SelectAttrValue("mustUnderstand", "") != "0" {
		t.Fatalf("the Notify's first header is %s mustUnderstand=%q, want an optional wsse:Security", sec.FullTag(), sec.SelectAttrValue("mustUnderstand", ""))
	}
	if hostSigner.Optional {
		t.Error("the broker changed the server's own signer, which signs its answers")
	}

	for _, c := range []struct {
		name   string
		signer *wssec.Signer
		taken  bool
	}{
		{"signed by the host", &wssec.Signer{Key: host.Key, Chain: host.FullChain()}, true},
		{"unsigned", nil, false},
		{"signed by a user", &wssec.Signer{Key: user.Key, Chain: user.FullChain()}, false},
	} {
		b := newBroker(t, nil, func(cfg *Config) { cfg.Signer = c.signer })
		subscribe(t, b, d, "ws1", inner())
		b.Changed("ws1", props("running", "deployed"), props("paused", "deployed"))
		select {
		case n := <-got:
			if !c.taken {
				t.Errorf("%s: the consumer took %v", c.name, n.New)
			}
		case <-time.After(time.Second):
			if c.taken {
				t.Errorf("%s: the consumer took nothing", c.name)
			}
		}
		b.Close()
	}
}

// A change whose message was lost when the server stopped (or that happened while it
// was down) reaches the subscriber after the restart, from the value it was last
// sent; a subscriber that is up to date is sent nothing.
func TestResyncAfterRestart(t *testing.T) {
	db := openStore(t)
	c := newConsumer(t)
	d := dialect.GT4
	b1 := newBroker(t, db, nil)
	lagging := subscribe(t, b1, d, "ws1", consumerRef(d, c.URL)+topicFilter(d, "vw:state"))
	subscribe(t, b1, d, "ws2", consumerRef(d, c.URL)+topicFilter(d, "vw:state"))
	subscribe(t, b1, d, "ws3", consumerRef(d, c.URL)+topicFilter(d, "vw:deployment"))
	b1.Changed("ws1", props("shutdown", "deployed"), props("running", "deployed"))
	c.waitFor(t, 1)
	deadline := time.Now().Add(5 * time.Second)
	for time.Now().Before(deadline) { // the delivery is recorded after the answer
		var rec record
		b1.home.View(context.Background(), lagging, func(s *wsrf.Snapshot) error { return json.Unmarshal(s.Private, &rec) })
		if strings.Contains(rec.Sent[propState.String()], ">running<") {
			break
		}
		time.Sleep(10 * time.Millisecond)
	}
	c.mu.Lock()
	c.status = http.StatusServiceUnavailable // the next message is lost
	c.mu.Unlock()
	b1.Changed("ws1", props("running", "deployed"), props("paused", "deployed"))
	time.Sleep(200 * time.Millisecond)
	b1.Close()

	c.mu.Lock()
	c.status, c.got = 0, nil
	c.mu.Unlock()
	b2 := newBroker(t, db, nil)
	// Now: ws1 paused (its subscriber was last sent running), ws2 started while the
	// server was down, ws3's deployment unchanged.
	b2.Resync(context.Background(), producerOf(map[string][]*etree.Element{
		"ws1": props("paused", "deployed"), "ws2": props("running", "deployed"), "ws3": props("shutdown", "in-repository"),
	}))
	got := c.waitFor(t, 2)
	time.Sleep(200 * time.Millisecond)
	if got = c.messages(); len(got) != 2 {
		t.Fatalf("after the restart the consumer got %d messages, want 2 (ws1 and ws2 only)", len(got))
	}
	seen := map[string]string{}
	for _, env := range got {
		n, err := ParseNotify(env.Payload)
		if err != nil {
			t.Fatal(err)
		}
		k := n[0].Producer.Reference(vwsns.Workspace, "WorkspaceKey").Text()
		seen[k] = values(n[0].Old) + " -> " + values(n[0].New)
	}
	if seen["ws1"] != "running -> paused" || seen["ws2"] != "shutdown -> running" {
		t.Fatalf("after the restart: %v; want ws1 running -> paused, ws2 shutdown -> running", seen)
	}
}

func values(els []*etree.Element) string {
	var s []string
	for _, e := range els {
		s = append(s, e.Text())
	}
	return strings.Join(s, ",")
}

// Concurrent Subscribes to one workspace stop at the bound, not past it.
func TestSubscriptionBoundHoldsUnderConcurrency(t *testing.T) {
	b := newBroker(t, nil, func(c *Config) { c.MaxPerProducer = 5 })
	d := dialect.GT4
	inner := consumerRef(d, "http://127.0.0.1:9/c") + topicFilter(d, "vw:state")
	var wg sync.WaitGroup
	var ok atomic.Int32
	for range 40 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if _, err := b.Subscribe(exists("ws1"))(context.Background(), subscribeRequest(t, d, "ws1", inner)); err == nil {
				ok.Add(1)
			}
		}()
	}
	wg.Wait()
	if ok.Load() != 5 || b.Count("ws1") != 5 || len(b.home.Keys()) != 5 {
		t.Fatalf("%d of 40 concurrent Subscribes succeeded, %d live, %d stored; want 5", ok.Load(), b.Count("ws1"), len(b.home.Keys()))
	}
}

// Read rights are checked again before each message, for the identity that
// subscribed (its DN and VO attributes, also after a restart): once policy withdraws
// them, the subscription ends, unannounced, and its consumer gets nothing more; a
// check that could not be made drops the message and keeps the subscription.
func TestSubscriptionEndsWhenReadRightsAreWithdrawn(t *testing.T) {
	reg := prometheus.NewRegistry()
	var verdict atomic.Pointer[error] // nil: allowed
	set := func(err error) { verdict.Store(&err) }
	var mu sync.Mutex
	var asked []string
	db := openStore(t)
	cfg := func(c *Config) {
		c.MayRead = func(_ context.Context, who identity.Identity, producer string) error {
			mu.Lock()
			asked = append(asked, who.DN+" "+strings.Join(who.Attributes, ",")+" "+producer)
			mu.Unlock()
			if p := verdict.Load(); p != nil {
				return *p
			}
			return nil
		}
	}
	b1 := newBroker(t, db, cfg)
	c := newConsumer(t)
	d := dialect.WSRF12
	bob := identity.With(context.Background(), identity.Identity{DN: "/O=Grid/CN=bob", Attributes: []string{"/vo/Role=reader"}})
	out, err := b1.Subscribe(exists("ws1"))(bob, subscribeRequest(t, d, "ws1", consumerRef(d, c.URL)))
	if err != nil {
		t.Fatal(err)
	}
	_ = out
	b1.Close()
	b := newBroker(t, db, func(c *Config) { cfg(c); c.Metrics = reg }) // after a restart
	b.Changed("ws1", props("running", "deployed"), props("paused", "deployed"))
	c.waitFor(t, 1)

	set(errors.New("the audit trail could not record this decision"))
	b.Changed("ws1", props("paused", "deployed"), props("running", "deployed"))
	time.Sleep(200 * time.Millisecond)
	if n := len(c.messages()); n != 1 || b.Count("ws1") != 1 {
		t.Fatalf("a check that could not be made: %d messages, %d subscriptions", n, b.Count("ws1"))
	}

	set(fmt.Errorf("%w: bob may not inspect ws1", errdefs.ErrAuthorization))
	b.Changed("ws1", props("running", "deployed"), props("paused", "deployed"))
	deadline := time.Now().Add(5 * time.Second)
	for b.Count("ws1") > 0 && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond)
	}
	if b.Count("ws1") != 0 {
		t.Fatal("the subscription outlived its subscriber's read rights")
	}
	time.Sleep(100 * time.Millisecond)
	if n := len(c.messages()); n != 1 {
		t.Errorf("the consumer got %d messages, want only the one from before", n)
	}
	mu.Lock()
	defer mu.Unlock()
	if len(asked) != 3 || asked[0] != "/O=Grid/CN=bob /vo/Role=reader ws1" {
		t.Errorf("MayRead was asked %q", asked)
	}
	for name, want := range map[string]float64{
		`vws_subscriptions_ended_by_vws_total{reason="rights-withdrawn"}`: 1,
		"vws_notifications_dropped_total":                                 1,
	} {
		if got := value(t, reg, name); got != want {
			t.Errorf("%s = %v, want %v", name, got, want)
		}
	}
}

// One subscriber holds at most a quarter of a workspace's subscriptions: a user the
// owner shared the workspace with cannot take every place and leave the owner none.
// Anonymous callers (--insecure) are not told apart, so not bounded so.
func TestOneSubscriberHoldsAQuarter(t *testing.T) {
	b := newBroker(t, nil, func(c *Config) { c.MaxPerProducer = 8 })
	d := dialect.GT4
	inner := consumerRef(d, "http://127.0.0.1:9/c") + topicFilter(d, "vw:state")
	subscribe := func(who string) error {
		ctx := context.Background()
		if who != "" {
			ctx = identity.With(ctx, identity.Identity{DN: who})
		}
		_, err := b.Subscribe(exists("ws1"))(ctx, subscribeRequest(t, d, "ws1", inner))
		return err
	}
	for i := range 2 {
		if err := subscribe("/O=Grid/CN=bob"); err != nil {
			t.Fatalf("bob's subscription %d: %v", i+1, err)
		}
	}
	if err := subscribe("/O=Grid/CN=bob"); !errors.Is(err, errdefs.ErrSubscribe) || !strings.Contains(err.Error(), "one subscriber") {
		t.Fatalf("bob's third subscription of 8 places: %v, want refused", err)
	}
	if err := subscribe("/O=Grid/CN=alice"); err != nil {
		t.Fatalf("the owner's subscription after bob's: %v", err)
	}
	for i := range 5 {
		if err := subscribe(""); err != nil {
			t.Fatalf("anonymous subscription %d: %v", i+1, err)
		}
	}
}

// signingSite is a site CA, a host credential it issued (repo.example.org) and the
// trust of a consumer that trusts the CA.
func signingSite(t *testing.T) (ca, host *pki.Credential, trust *pki.Trust) {
	t.Helper()
	ca, err := pki.NewCA(pki.CAOptions{KeyType: pki.KeyTypeECDSA})
	if err != nil {
		t.Fatal(err)
	}
	host, err = ca.IssueHost(pki.HostOptions{Name: "repo.example.org", KeyType: pki.KeyTypeECDSA})
	if err != nil {
		t.Fatal(err)
	}
	caDir := filepath.Join(t.TempDir(), "certificates")
	if _, err := pki.WriteCADir(caDir, ca.Certificate, nil); err != nil {
		t.Fatal(err)
	}
	if trust, err = pki.LoadTrust(caDir); err != nil {
		t.Fatal(err)
	}
	return ca, host, trust
}
