package test

import (
	"bufio"
	"context"
	"encoding/json"
	"io"
	"maps"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/beevik/etree"

	"github.com/vws-grid/vws/internal/dialect"
	"github.com/vws-grid/vws/internal/soap"
	"github.com/vws-grid/vws/internal/vwsns"
	"github.com/vws-grid/vws/internal/wsrf"
	"github.com/vws-grid/vws/test/harness"
)

// notifyStep is one line test/interop/zeep_notify.py prints: a step of the
// notification scenario as the client saw it.
type notifyStep struct {
	Step string `json:"step"`
	// subscribed
	Consumer        string   `json:"consumer"`
	Address         string   `json:"address"`
	Key             string   `json:"key"`
	References      []string `json:"references"`
	CurrentTime     string   `json:"currentTime"`
	TerminationTime string   `json:"terminationTime"`
	// subscribed, paused, resumed: GetResourceProperty vwn:Paused
	Paused string `json:"paused"`
	// messages the consumer holds that the client did not take
	Pending int `json:"pending"`
	// notified, notifiedAgain
	Notify *notifyReport `json:"notify"`
	// renewed: wsrl:TerminationTime read back
	Property []string `json:"property"`
	// ended
	Fault interopFault `json:"fault"`
}

// notifyReport is a Notify as the client's consumer received it and lxml read it.
type notifyReport struct {
	SOAPAction                     string            `json:"soapAction"`
	ContentType                    string            `json:"contentType"`
	Path                           string            `json:"path"`
	Action                         string            `json:"action"`
	To                             string            `json:"to"`
	MessageID                      string            `json:"messageID"`
	ConsumerID                     *string           `json:"consumerId"`
	ConsumerIDIsReferenceParameter *string           `json:"consumerIdIsReferenceParameter"`
	Messages                       int               `json:"messages"`
	Topic                          string            `json:"topic"`
	TopicDialect                   string            `json:"topicDialect"`
	ProducerAddress                string            `json:"producerAddress"`
	ProducerKey                    *string           `json:"producerKey"`
	SubscriptionKey                *string           `json:"subscriptionKey"`
	Old                            map[string]string `json:"old"`
	New                            map[string]string `json:"new"`
}

// The consumer reference the client puts into its ConsumerReference (zeep_notify.py).
const (
	notifyConsumerIDHeader = "urn:vws-interop:consumer"
	notifyConsumerID       = "zeep-consumer-7"
)

// notifyDialect is what a subscriber in dialect d must see on the wire.
func notifyDialect(d *dialect.Dialect) (action, simple string) {
	if d == dialect.GT4 {
		return "http://docs.oasis-open.org/wsn/2004/06/wsn-WS-BaseNotification/Notify",
			"http://docs.oasis-open.org/wsn/2004/06/TopicExpression/Simple"
	}
	return "http://docs.oasis-open.org/wsn/bw-2/NotificationConsumer/Notify",
		"http://docs.oasis-open.org/wsn/t-1/TopicExpression/Simple"
}

// setWorkspaceState changes a workspace's vw:state in the Repository, as the Manager's
// reports do; the change is committed, and handed to the subscribers, on return.
func setWorkspaceState(t *testing.T, s *harness.Server, key, state string) {
	t.Helper()
	if err := s.Srv.Repository.Workspaces.Update(context.Background(), key, func(props []*etree.Element) ([]*etree.Element, error) {
		for _, p := range props {
			if p.Tag == "state" && p.NamespaceURI() == vwsns.Workspace {
				p.SetText(state)
			}
		}
		return props, nil
	}); err != nil {
		t.Fatalf("set the state of %s to %s: %v", key, state, err)
	}
}

// subscriptionProperty reads a property of subscription key over SOAP, as vws's own
// test client: the server's view, next to what the outside client reported. prefixed
// is the property's name with prefix wsnt (the dialect's WS-BaseNotification) or vwn.
func subscriptionProperty(t *testing.T, s *harness.Server, d *dialect.Dialect, key, prefixed string) answer {
	t.Helper()
	url := s.ServiceURL(vwsns.SubscriptionManagerService)
	ref := `<vwn:SubscriptionKey xmlns:vwn="` + vwsns.Notification + `">` + key + `</vwn:SubscriptionKey>`
	if d == dialect.WSRF12 {
		ref = strings.Replace(ref, ">", ` wsa:IsReferenceParameter="true">`, 1)
	}
	return post(t, url, request(d, url, getRPAction(d), "",
		`<rp:GetResourceProperty xmlns:vwn="`+vwsns.Notification+`" xmlns:wsnt="`+d.BN+`">`+prefixed+`</rp:GetResourceProperty>`, ref))
}

// wantSubscriptionProperty fails unless the subscription's property prefixed has the
// one value want (its text, or for an EPR its wsa:Address).
func wantSubscriptionProperty(t *testing.T, s *harness.Server, d *dialect.Dialect, key, prefixed, want string) {
	t.Helper()
	a := subscriptionProperty(t, s, d, key, prefixed)
	if a.status != 200 || a.env == nil || a.env.Payload == nil {
		t.Fatalf("the server's %s of subscription %s: HTTP %d: %s", prefixed, key, a.status, a.raw)
	}
	vals := a.env.Payload.ChildElements()
	if len(vals) != 1 {
		t.Fatalf("the server's %s of subscription %s: %d values: %s", prefixed, key, len(vals), a.raw)
	}
	got := strings.TrimSpace(vals[0].Text())
	if addr := vals[0].SelectElement("Address"); addr != nil {
		got = strings.TrimSpace(addr.Text())
	}
	if got != want {
		t.Fatalf("the server's %s of subscription %s is %q, want %q", prefixed, key, got, want)
	}
}

// TestInteropNotifyZeep: python3-zeep, built from the live ?wsdl of WorkspaceService
// and SubscriptionManagerService, subscribes to a workspace's vw:state with a
// consumer the script runs itself (http.server on 127.0.0.1), in each dialect. The
// test changes the workspace's state; the consumer must receive the Notify, which
// lxml reads. zeep then pauses and resumes the subscription (a change made while it
// is paused must never be sent), renews it (WSRF 1.2 Renew PT2H; GT4
// SetTerminationTime) and ends it (Unsubscribe; GT4 Destroy), after which the
// subscription is unknown and its consumer hears nothing more.
func TestInteropNotifyZeep(t *testing.T) {
	if out, err := exec.Command(zeepPython, "-c", "import zeep; print(zeep.__version__)").CombinedOutput(); err != nil {
		t.Skipf("zeep interop test needs python3-zeep for %s (apt-get install python3-zeep): %v\n%s", zeepPython, err, out)
	}
	s := harness.Start(t)
	for _, d := range dialect.Dialects {
		t.Run(d.Name, func(t *testing.T) {
			t.Parallel()
			key := "zeep-notify-" + d.Name
			s.SeedWorkspace(t, key, "zeep-notified-"+d.Name, nil)
			notifyScenario(t, s, d, key)
		})
	}
}

func notifyScenario(t *testing.T, s *harness.Server, d *dialect.Dialect, key string) {
	start := time.Now()
	q := "?wsdl"
	if d == dialect.GT4 {
		q += "&dialect=gt4"
	}
	wsURL, subURL := s.ServiceURL(vwsns.WorkspaceService), s.ServiceURL(vwsns.SubscriptionManagerService)
	termination := time.Now().UTC().Add(2 * time.Hour).Truncate(time.Second)
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, zeepPython, "interop/zeep_notify.py",
		"--wsdl", wsURL+q, "--sub-wsdl", subURL+q, "--dialect", d.Name, "--key", key,
		"--termination", termination.Format(time.RFC3339), "--timeout", "15", "--quiet", "1")
	cmd.Env = append(os.Environ(), "PYTHONDONTWRITEBYTECODE=1")
	stdin, stdout, done := startDriven(t, cmd, "zeep_notify.py ("+d.Name+")", true)
	defer done()

	action, simple := notifyDialect(d)
	var consumer, subKey string
	checkNotify := func(st notifyStep, old, cur string) {
		t.Helper()
		n := st.Notify
		if n == nil {
			t.Fatalf("%s: no Notify reported", st.Step)
		}
		if n.Action != action || n.SOAPAction != `"`+action+`"` {
			t.Errorf("%s: Notify wsa:Action %q, SOAPAction %s, want %q", st.Step, n.Action, n.SOAPAction, action)
		}
		if n.To != consumer || n.Path != "/consumer" {
			t.Errorf("%s: Notify went to path %s, wsa:To %q; the consumer is %s", st.Step, n.Path, n.To, consumer)
		}
		if !strings.HasPrefix(n.ContentType, "text/xml") || n.MessageID == "" {
			t.Errorf("%s: Notify Content-Type %q, wsa:MessageID %q", st.Step, n.ContentType, n.MessageID)
		}
		// The ConsumerReference's own reference comes back as a header block: in WSRF
		// 1.2 marked as a reference parameter, in 2004/03 as it was (no such attribute).
		if n.ConsumerID == nil || *n.ConsumerID != notifyConsumerID {
			t.Errorf("%s: Notify lacks the consumer's {%s}ConsumerId header (got %v)", st.Step, notifyConsumerIDHeader, n.ConsumerID)
		}
		if d == dialect.WSRF12 && (n.ConsumerIDIsReferenceParameter == nil || *n.ConsumerIDIsReferenceParameter != "true") {
			t.Errorf("%s: the ConsumerId header is not marked wsa:IsReferenceParameter=\"true\"", st.Step)
		}
		if n.Messages != 1 || n.Topic != "{"+vwsns.Workspace+"}state" || n.TopicDialect != simple {
			t.Errorf("%s: Notify holds %d messages, topic %s in dialect %s; want one, {%s}state in %s",
				st.Step, n.Messages, n.Topic, n.TopicDialect, vwsns.Workspace, simple)
		}
		if n.ProducerAddress != wsURL || n.ProducerKey == nil || *n.ProducerKey != key {
			t.Errorf("%s: ProducerReference %s key %v, want %s key %s", st.Step, n.ProducerAddress, n.ProducerKey, wsURL, key)
		}
		// WSN 1.3's NotificationMessage names the subscription; 1.2 draft 01's has no
		// such element.
		if d == dialect.WSRF12 && (n.SubscriptionKey == nil || *n.SubscriptionKey != subKey) {
			t.Errorf("%s: NotificationMessage SubscriptionReference key %v, want %s", st.Step, n.SubscriptionKey, subKey)
		}
		state := "{" + vwsns.Workspace + "}state"
		if want := map[string]string{state: old}; !maps.Equal(n.Old, want) {
			t.Errorf("%s: old values %v, want %v", st.Step, n.Old, want)
		}
		if want := map[string]string{state: cur}; !maps.Equal(n.New, want) {
			t.Errorf("%s: new values %v, want %v", st.Step, n.New, want)
		}
		if st.Pending != 0 {
			t.Errorf("%s: the consumer received %d more messages", st.Step, st.Pending)
		}
	}
	wantTime := func(what, got string, want time.Time, slack time.Duration) {
		t.Helper()
		tt, err := wsrf.ParseDateTime(got)
		if err != nil {
			t.Errorf("%s: %v", what, err)
			return
		}
		if tt.Sub(want).Abs() > slack {
			t.Errorf("%s = %s, want %s", what, tt.Format(time.RFC3339Nano), want.Format(time.RFC3339Nano))
		}
	}

	var steps []string
	sc := bufio.NewScanner(stdout)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		var st notifyStep
		if err := json.Unmarshal(sc.Bytes(), &st); err != nil {
			t.Fatalf("zeep_notify.py printed a line that is not a step report: %v\n%s", err, sc.Text())
		}
		steps = append(steps, st.Step)
		t.Logf("step %-13s at %4.1fs: %s", st.Step, time.Since(start).Seconds(), sc.Bytes())
		switch st.Step {
		case "subscribed":
			consumer, subKey = st.Consumer, st.Key
			if st.Address != subURL || subKey == "" || !slices.Equal(st.References, []string{"{" + vwsns.Notification + "}SubscriptionKey"}) {
				t.Fatalf("SubscriptionReference: %s with references %v (key %q), want %s with vwn:SubscriptionKey", st.Address, st.References, subKey, subURL)
			}
			if st.Paused != "false" {
				t.Errorf("a new subscription's vwn:Paused is %q", st.Paused)
			}
			if d == dialect.WSRF12 {
				cur, err := wsrf.ParseDateTime(st.CurrentTime)
				if err != nil {
					t.Fatalf("SubscribeResponse CurrentTime: %v", err)
				}
				// no InitialTerminationTime: the default lifetime, 24 h
				wantTime("SubscribeResponse TerminationTime", st.TerminationTime, cur.Add(24*time.Hour), 0)
			}
			wantSubscriptionProperty(t, s, d, subKey, "wsnt:ConsumerReference", consumer)
			setWorkspaceState(t, s, key, "running")
		case "notified":
			checkNotify(st, "shutdown", "running")
		case "paused":
			if st.Paused != "true" {
				t.Errorf("vwn:Paused after PauseSubscription is %q", st.Paused)
			}
			wantSubscriptionProperty(t, s, d, subKey, "vwn:Paused", "true")
			setWorkspaceState(t, s, key, "paused") // must not be sent, ever
		case "resumed":
			if st.Paused != "false" || st.Pending != 0 {
				t.Errorf("after ResumeSubscription: vwn:Paused %q, %d messages came while paused", st.Paused, st.Pending)
			}
			wantSubscriptionProperty(t, s, d, subKey, "vwn:Paused", "false")
			setWorkspaceState(t, s, key, "shutdown")
		case "notifiedAgain":
			// old value "paused": the change made while paused was not sent late
			checkNotify(st, "paused", "shutdown")
		case "renewed":
			if d == dialect.WSRF12 {
				cur, err := wsrf.ParseDateTime(st.CurrentTime)
				if err != nil {
					t.Fatalf("RenewResponse CurrentTime: %v", err)
				}
				wantTime("RenewResponse TerminationTime (PT2H)", st.TerminationTime, cur.Add(2*time.Hour), 0)
			} else {
				wantTime("SetTerminationTimeResponse NewTerminationTime", st.TerminationTime, termination, 0)
			}
			if len(st.Property) != 1 {
				t.Errorf("wsrl:TerminationTime after the renewal: %q", st.Property)
			} else {
				wantTime("wsrl:TerminationTime after the renewal", st.Property[0], mustTime(t, st.TerminationTime), 0)
			}
		case "ended":
			checkInteropFault(t, "GetResourceProperty vwn:Paused after "+map[bool]string{true: "Unsubscribe", false: "Destroy"}[d == dialect.WSRF12],
				d, subURL, st.Fault, "ResourceUnknownFault", d.ResourceUnknownNS, subKey)
			if a := subscriptionProperty(t, s, d, subKey, "vwn:Paused"); a.env == nil || a.status != 500 {
				t.Errorf("the subscription answers after it ended: HTTP %d: %s", a.status, a.raw)
			} else if typ, _, _ := a.fault(t); typ != "ResourceUnknownFault" {
				t.Errorf("the ended subscription: %s, want ResourceUnknownFault", typ)
			}
			setWorkspaceState(t, s, key, "running") // nobody hears of it
		case "quiet":
			if st.Pending != 0 {
				t.Errorf("the consumer received %d messages after its subscription ended", st.Pending)
			}
		default:
			t.Fatalf("unknown step %q", st.Step)
		}
		if t.Failed() {
			return
		}
		if _, err := stdin.Write([]byte("ok\n")); err != nil {
			t.Fatal(err)
		}
	}
	want := []string{"subscribed", "notified", "paused", "resumed", "notifiedAgain", "renewed", "ended", "quiet"}
	if !slices.Equal(steps, want) {
		t.Fatalf("zeep_notify.py ran steps %v, want %v", steps, want)
	}
	t.Logf("%s: %s", d.Name, time.Since(start).Round(time.Millisecond))
}

func mustTime(t *testing.T, s string) time.Time {
	t.Helper()
	tt, err := wsrf.ParseDateTime(s)
	if err != nil {
		t.Fatal(err)
	}
	return tt
}

// notifyDelivery is one POST a consumer the test runs received.
type notifyDelivery struct {
	soapAction string
	body       []byte
}

// startConsumer runs a notification consumer that keeps every POST and answers 200
// with no body, as an Axis 1.4 one-way service does.
func startConsumer(t *testing.T) (url string, got chan notifyDelivery) {
	t.Helper()
	got = make(chan notifyDelivery, 16)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		got <- notifyDelivery{soapAction: r.Header.Get("SOAPAction"), body: body}
	}))
	t.Cleanup(srv.Close)
	return srv.URL + "/notify", got
}

// TestInteropNotifyAxis: Apache Axis 1.4, what GT 4.0 clients were built on. WSDL2Java
// -W generates stubs from the live GT4 WSDLs of WorkspaceService and
// SubscriptionManagerService, javac compiles them with
// test/interop/axis/Gt4NotifyClient.java, which subscribes to a workspace's vw:state
// with the generated Subscribe bean for a consumer the test runs (its
// ConsumerReference with a reference property of its own); the test changes the
// state and its consumer must receive the Notify. The client then destroys the
// subscription through the generated SubscriptionManagerService stub, on the address
// and reference properties of the SubscriptionReference, and a GetResourceProperty on
// it must come back as the generated ResourceUnknownFault class. GT4 only: WSN 1.3
// clients were not built on Axis 1.4.
func TestInteropNotifyAxis(t *testing.T) {
	axis := axisTools(t)
	s := harness.Start(t)
	d := dialect.GT4
	key := "axis-notify-gt4"
	s.SeedWorkspace(t, key, "axis-notified", nil)
	wsURL, subURL := s.ServiceURL(vwsns.WorkspaceService), s.ServiceURL(vwsns.SubscriptionManagerService)
	const q = "?wsdl&dialect=gt4"
	classes := axis.buildFrom(t, t.TempDir(), []string{wsURL + q, subURL + q},
		"Client.java", "Ops.java", "Fault.java", "Json.java", "Gt4NotifyClient.java")
	consumer, got := startConsumer(t)

	start := time.Now()
	argv := axis.command(classes, "vwsinterop.Gt4NotifyClient",
		"--wsdl", wsURL+q, "--sub-wsdl", subURL+q, "--key", key, "--consumer", consumer)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, argv[0], argv[1:]...)
	stdin, stdout, done := startDriven(t, cmd, "Gt4NotifyClient", true)
	defer done()
	next := func(within time.Duration) *notifyDelivery {
		select {
		case n := <-got:
			return &n
		case <-time.After(within):
			return nil
		}
	}

	var steps []string
	var subKey string
	sc := bufio.NewScanner(stdout)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		var st struct {
			Step       string            `json:"step"`
			Address    string            `json:"address"`
			Key        string            `json:"key"`
			References map[string]string `json:"references"`
			Fault      interopFault      `json:"fault"`
		}
		if err := json.Unmarshal(sc.Bytes(), &st); err != nil {
			t.Fatalf("Gt4NotifyClient printed a line that is not a step report: %v\n%s", err, sc.Text())
		}
		steps = append(steps, st.Step)
		t.Logf("step %-10s at %4.1fs: %s", st.Step, time.Since(start).Seconds(), sc.Bytes())
		switch st.Step {
		case "subscribed":
			subKey = st.Key
			if st.Address != subURL || subKey == "" || len(st.References) != 1 || st.References["0"] != "{"+vwsns.Notification+"}SubscriptionKey" {
				t.Fatalf("SubscriptionReference: %s with references %v, want %s with vwn:SubscriptionKey", st.Address, st.References, subURL)
			}
			wantSubscriptionProperty(t, s, d, subKey, "wsnt:ConsumerReference", consumer)
			setWorkspaceState(t, s, key, "running")
			n := next(10 * time.Second)
			if n == nil {
				t.Fatal("the consumer received no Notify within 10 s")
			}
			checkGT4Notify(t, n, consumer, wsURL, key, "shutdown", "running")
		case "destroyed":
			checkInteropFault(t, "GetResourceProperty vwn:Paused after Destroy", d, subURL, st.Fault,
				"ResourceUnknownFault", d.ResourceUnknownNS, subKey)
			setWorkspaceState(t, s, key, "shutdown") // nobody hears of it
			if n := next(time.Second); n != nil {
				t.Errorf("the consumer received a message after Destroy:\n%s", n.body)
			}
		default:
			t.Fatalf("unknown step %q", st.Step)
		}
		if t.Failed() {
			return
		}
		if _, err := stdin.Write([]byte("ok\n")); err != nil {
			t.Fatal(err)
		}
	}
	if want := []string{"subscribed", "destroyed"}; !slices.Equal(steps, want) {
		t.Fatalf("Gt4NotifyClient ran steps %v, want %v", steps, want)
	}
}

// checkGT4Notify checks a WSN 1.2 draft 01 Notify of a vw:state change from old to cur,
// sent to consumer, which subscribed with the ConsumerId reference property.
func checkGT4Notify(t *testing.T, n *notifyDelivery, consumer, producer, key, old, cur string) {
	t.Helper()
	d := dialect.GT4
	action, simple := notifyDialect(d)
	env, err := soap.Parse(n.body)
	if err != nil {
		t.Fatalf("Notify is not SOAP: %v\n%s", err, n.body)
	}
	if n.soapAction != `"`+action+`"` {
		t.Errorf("Notify SOAPAction %s, want %q", n.soapAction, action)
	}
	a := answer{status: 200, env: env, raw: string(n.body)}
	if got := a.header(d.WSA.Namespace(), "Action"); got != action {
		t.Errorf("Notify wsa:Action %q, want %q", got, action)
	}
	if got := a.header(d.WSA.Namespace(), "To"); got != consumer {
		t.Errorf("Notify wsa:To %q, want %q", got, consumer)
	}
	if got := a.header(notifyConsumerIDHeader, "ConsumerId"); got != "axis-consumer-4" {
		t.Errorf("Notify lacks the consumer's reference property ConsumerId (got %q):\n%s", got, n.body)
	}
	p := env.Payload
	if p == nil || p.Tag != "Notify" || p.NamespaceURI() != d.BN {
		t.Fatalf("Notify body: %s", n.body)
	}
	topic := p.FindElement("NotificationMessage/Topic")
	if topic == nil || topic.SelectAttrValue("Dialect", "") != simple {
		t.Fatalf("Notify topic not in the Simple dialect: %s", n.body)
	}
	prefix, local, _ := strings.Cut(strings.TrimSpace(topic.Text()), ":")
	if ns := topic.NamespaceURI(); local != "state" || lookupPrefix(topic, prefix) != vwsns.Workspace {
		t.Errorf("Notify topic %q (prefix bound to %q; element in %s), want vw:state", topic.Text(), lookupPrefix(topic, prefix), ns)
	}
	if got := p.FindElement("NotificationMessage/ProducerReference/ReferenceProperties/WorkspaceKey"); got == nil || got.Text() != key ||
		strings.TrimSpace(p.FindElement("NotificationMessage/ProducerReference/Address").Text()) != producer {
		t.Errorf("Notify ProducerReference is not %s key %s: %s", producer, key, n.body)
	}
	change := p.FindElement("NotificationMessage/Message/ResourcePropertyValueChangeNotification")
	if change == nil || change.NamespaceURI() != d.RP {
		t.Fatalf("Notify carries no WS-RP value change: %s", n.body)
	}
	for holder, want := range map[string]string{"OldValue": old, "NewValue": cur} {
		v := change.FindElement(holder + "/state")
		if v == nil || v.NamespaceURI() != vwsns.Workspace || v.Text() != want {
			t.Errorf("Notify %s is not vw:state %s: %s", holder, want, n.body)
		}
	}
}

// lookupPrefix is the namespace that prefix is bound to where el is.
func lookupPrefix(el *etree.Element, prefix string) string {
	for e := el; e != nil; e = e.Parent() {
		for _, a := range e.Attr {
			if (a.Space == "xmlns" && a.Key == prefix) || (prefix == "" && a.Space == "" && a.Key == "xmlns") {
				return a.Value
			}
		}
	}
	return ""
}
