package test

import (
	"context"
	"errors"
	"net/http/httptest"
	"os"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/beevik/etree"

	"github.com/vws-grid/vws/internal/client"
	"github.com/vws-grid/vws/internal/dialect"
	"github.com/vws-grid/vws/internal/notify"
	"github.com/vws-grid/vws/internal/server"
	"github.com/vws-grid/vws/internal/vwsns"
	"github.com/vws-grid/vws/internal/wsa"
	"github.com/vws-grid/vws/internal/wsrf"
	"github.com/vws-grid/vws/test/harness"
)

func workspaceEPR(s *harness.Server, d *dialect.Dialect, key string) *wsa.EPR {
	k := etree.NewElement("vw:WorkspaceKey")
	k.CreateAttr("xmlns:vw", vwsns.Workspace)
	k.SetText(key)
	return &wsa.EPR{Version: d.WSA, Address: s.ServiceURL(vwsns.WorkspaceService), References: []*etree.Element{k}}
}

func bnElement(d *dialect.Dialect, local string) *etree.Element {
	el := etree.NewElement("wsnt:" + local)
	el.CreateAttr("xmlns:wsnt", d.BN)
	return el
}

// subscribeTo subscribes consumer to topic of ws and returns the subscription's EPR.
func subscribeTo(t *testing.T, cl *client.Client, ws *wsa.EPR, consumer *wsa.EPR, topic wsa.QName) *wsa.EPR {
	t.Helper()
	d := client.DialectOf(ws)
	body := bnElement(d, "Subscribe")
	consumer.ChildElement(body, "wsnt:ConsumerReference", "wsa")
	parent := body
	simple := "http://docs.oasis-open.org/wsn/2004/06/TopicExpression/Simple"
	if d == dialect.WSRF12 {
		parent, simple = body.CreateElement("wsnt:Filter"), "http://docs.oasis-open.org/wsn/t-1/TopicExpression/Simple"
	}
	te := parent.CreateElement("wsnt:TopicExpression")
	te.CreateAttr("Dialect", simple)
	te.CreateAttr("xmlns:t", topic.Space)
	te.SetText("t:" + topic.Local)
	resp, err := cl.Invoke(context.Background(), ws, "Subscribe", body)
	if err != nil {
		t.Fatalf("Subscribe: %v", err)
	}
	epr, err := wsa.ParseEPR(resp.FindElement("./SubscriptionReference"))
	if err != nil {
		t.Fatalf("SubscriptionReference: %v", err)
	}
	return epr
}

func faultType(err error) string {
	var fe *client.FaultError
	if errors.As(err, &fe) {
		return fe.Type
	}
	return ""
}

// The subscription manager's operations, over HTTP, in each dialect: a paused
// subscription is sent nothing, a renewed one lasts longer, an ended one is gone
// and sent nothing.
func TestSubscriptionManagerOperations(t *testing.T) {
	s := harness.Start(t)
	ctx := context.Background()
	cl := client.New(nil)
	paused := wsa.QName{Space: vwsns.Notification, Local: "Paused"}
	for _, d := range dialect.Dialects {
		t.Run(d.Name, func(t *testing.T) {
			key := "sm-" + d.Name
			s.SeedWorkspace(t, key, "subscribed-"+d.Name, nil)
			got := make(chan notify.Notification, 10)
			consumer := &notify.Consumer{Token: "token-" + d.Name, Deliver: func(n notify.Notification) { got <- n }}
			hs := httptest.NewServer(consumer)
			defer hs.Close()
			sub := subscribeTo(t, cl, workspaceEPR(s, d, key), consumer.Reference(d.WSA, hs.URL), vwsns.Q(vwsns.Workspace, "state"))
			quiet := func(why string) {
				t.Helper()
				select {
				case n := <-got:
					t.Fatalf("%s, yet the consumer got %s: %v -> %v", why, n.Topic, n.Old, n.New)
				case <-time.After(300 * time.Millisecond):
				}
			}
			isPaused := func() string {
				t.Helper()
				p, err := cl.GetResourceProperty(ctx, sub, paused)
				if err != nil || len(p) != 1 {
					t.Fatalf("GetResourceProperty Paused: %v %v", p, err)
				}
				return p[0].Text()
			}
			if v := isPaused(); v != "false" {
				t.Fatalf("a new subscription has Paused %q", v)
			}
			if _, err := cl.Invoke(ctx, sub, "PauseSubscription", bnElement(d, "PauseSubscription")); err != nil {
				t.Fatal(err)
			}
			if v := isPaused(); v != "true" {
				t.Fatalf("after PauseSubscription, Paused is %q", v)
			}
			setWorkspaceState(t, s, key, "running")
			quiet("the subscription is paused")
			if _, err := cl.Invoke(ctx, sub, "ResumeSubscription", bnElement(d, "ResumeSubscription")); err != nil {
				t.Fatal(err)
			}
			setWorkspaceState(t, s, key, "paused")
			select {
			case n := <-got:
				if len(n.Old) != 1 || n.Old[0].Text() != "running" || len(n.New) != 1 || n.New[0].Text() != "paused" {
					t.Fatalf("after ResumeSubscription: %v -> %v, want running -> paused", n.Old, n.New)
				}
			case <-time.After(10 * time.Second):
				t.Fatal("no notification after ResumeSubscription")
			}

			termination := func() string {
				t.Helper()
				p, err := cl.GetResourceProperty(ctx, sub, wsa.QName{Space: d.RL, Local: "TerminationTime"})
				if err != nil || len(p) != 1 {
					t.Fatalf("TerminationTime: %v %v", p, err)
				}
				return p[0].Text()
			}
			if d == dialect.WSRF12 {
				renew := func(v string) (*etree.Element, error) {
					body := bnElement(d, "Renew")
					body.CreateElement("wsnt:TerminationTime").SetText(v)
					return cl.Invoke(ctx, sub, "Renew", body)
				}
				// As a client generated from bw-2's PausableSubscriptionManager sends it.
				body := bnElement(d, "Renew")
				body.CreateElement("wsnt:TerminationTime").SetText("PT2H")
				resp, err := cl.Call(ctx, sub, "http://docs.oasis-open.org/wsn/bw-2/PausableSubscriptionManager/RenewRequest", body)
				if err != nil {
					t.Fatalf("Renew: %v", err)
				}
				at, err := wsrf.ParseDateTime(resp.FindElement("./TerminationTime").Text())
				if err != nil || at.Sub(time.Now()) < 119*time.Minute || at.Sub(time.Now()) > 121*time.Minute {
					t.Fatalf("Renew PT2H granted %v (%v)", at, err)
				}
				before := termination()
				if _, err := renew("2001-01-01T00:00:00Z"); faultType(err) != "UnacceptableTerminationTimeFault" {
					t.Fatalf("Renew into the past: %v, want UnacceptableTerminationTimeFault", err)
				}
				if after := termination(); after != before {
					t.Fatalf("a refused Renew changed the termination time %s -> %s", before, after)
				}
				if _, err := cl.Invoke(ctx, sub, "Unsubscribe", bnElement(d, "Unsubscribe")); err != nil {
					t.Fatalf("Unsubscribe: %v", err)
				}
			} else {
				want := time.Now().Add(90 * time.Minute).UTC().Truncate(time.Millisecond)
				if _, _, err := cl.SetTerminationTime(ctx, sub, &want); err != nil {
					t.Fatalf("SetTerminationTime: %v", err)
				}
				if got := termination(); got != wsrf.FormatTime(want) {
					t.Fatalf("TerminationTime %s after SetTerminationTime %s", got, wsrf.FormatTime(want))
				}
				if err := cl.Destroy(ctx, sub); err != nil {
					t.Fatalf("Destroy: %v", err)
				}
			}
			if _, err := cl.GetResourceProperty(ctx, sub, paused); faultType(err) != "ResourceUnknownFault" {
				t.Fatalf("an ended subscription answers %v, want ResourceUnknownFault", err)
			}
			setWorkspaceState(t, s, key, "running")
			quiet("the subscription ended")
		})
	}
}

// A consumer takes only messages of its own subscriptions.
func TestConsumerRefusesStrangers(t *testing.T) {
	var delivered atomic.Int32
	c := &notify.Consumer{Token: "mine", Deliver: func(notify.Notification) { delivered.Add(1) }}
	hs := httptest.NewServer(c)
	defer hs.Close()
	d := dialect.WSRF12
	body := `<s:Envelope xmlns:s="http://schemas.xmlsoap.org/soap/envelope/"><s:Header><vwn:Listener xmlns:vwn="` + vwsns.Notification +
		`">theirs</vwn:Listener></s:Header><s:Body><wsnt:Notify xmlns:wsnt="` + d.BN + `"><wsnt:NotificationMessage><wsnt:Message/></wsnt:NotificationMessage></wsnt:Notify></s:Body></s:Envelope>`
	a := post(t, hs.URL, []byte(body))
	if a.status != 403 || delivered.Load() != 0 {
		t.Fatalf("a Notify with another listener's token: HTTP %d, %d delivered; want 403 and none", a.status, delivered.Load())
	}
	a = post(t, hs.URL, []byte(strings.Replace(body, ">theirs<", ">mine<", 1)))
	if a.status != 200 || delivered.Load() != 1 {
		t.Fatalf("its own Notify: HTTP %d (%s), %d delivered", a.status, a.raw, delivered.Load())
	}
}

func subscriptionCount(t *testing.T, s *harness.Server) int {
	t.Helper()
	var n int
	if err := s.DB().QueryRow(`SELECT count(*) FROM resources WHERE service = $1`, vwsns.SubscriptionManagerService).Scan(&n); err != nil {
		t.Fatal(err)
	}
	return n
}

// vws wsrf subscribe as a user meets it: bad arguments are refused before anything
// is subscribed, --count ends it after that many messages, Ctrl-C with exit 130, and
// either way its subscriptions are destroyed.
func TestCLISubscribe(t *testing.T) {
	s := harness.Start(t)
	s.SeedWorkspace(t, "cs", "cli-subscribed", nil)
	env := []string{"VWS_URL=" + s.URL}
	key := []string{"-k", "{" + vwsns.Workspace + "}WorkspaceKey", "cs"}
	for _, c := range []struct {
		args []string
		says string
	}{
		{append(append([]string{"wsrf", "subscribe"}, key...), "owner"), "unknown topic"},
		{append(append([]string{"wsrf", "subscribe", "--consumer-url", "ftp://x/"}, key...), "state"), "--consumer-url"},
		{append(append([]string{"wsrf", "subscribe", "--lifetime", "0s"}, key...), "state"), "--lifetime"},
		{append(append([]string{"wsrf", "subscribe", "--listen", "256.0.0.1:0"}, key...), "state"), "--listen"},
		{append(append([]string{"wsrf", "subscribe", "--wait", "-1s"}, key...), "state"), "--wait -1s is negative"},
		{append(append([]string{"wsrf", "subscribe", "--count", "-1"}, key...), "state"), "--count -1 is negative"},
	} {
		r := runVWS(t, env, c.args...)
		if r.code != 1 || !strings.Contains(r.stderr, c.says) {
			t.Errorf("vws %v: exit %d, stderr %q; want exit 1 naming %s", c.args, r.code, r.stderr, c.says)
		}
	}
	if n := subscriptionCount(t, s); n != 0 {
		t.Fatalf("refused commands left %d subscriptions", n)
	}

	// --count 2: two changes, then it ends by itself and unsubscribes.
	sub := StartSubscriber(t, env, append(append([]string{"--count", "2"}, key...), "state")...)
	if n := subscriptionCount(t, s); n != 2 {
		t.Fatalf("a subscriber to state holds %d subscriptions, want 2 (state, and the end it stops at)", n)
	}
	setWorkspaceState(t, s, "cs", "running")
	setWorkspaceState(t, s, "cs", "paused")
	if code := sub.Wait(t, 20*time.Second); code != 0 {
		t.Fatalf("--count 2 ended with exit %d", code)
	}
	chains, _ := sub.Changes(t)
	WantChain(t, "state", chains["state"], []string{"shutdown", "running", "paused"})
	if n := subscriptionCount(t, s); n != 0 {
		t.Fatalf("after --count ended it, %d subscriptions are left", n)
	}

	// Ctrl-C: exit 130, subscriptions destroyed.
	sub = StartSubscriber(t, env, key...)
	if n := subscriptionCount(t, s); n != 3 {
		t.Fatalf("subscribing to every topic holds %d subscriptions, want 3 (state, deployment, termination)", n)
	}
	sub.cmd.Process.Signal(os.Interrupt)
	if code := sub.Wait(t, 20*time.Second); code != 130 {
		t.Fatalf("Ctrl-C ended vws wsrf subscribe with exit %d, want 130; stderr %q", code, sub.stderr())
	}
	if n := subscriptionCount(t, s); n != 0 {
		t.Fatalf("after Ctrl-C, %d subscriptions are left", n)
	}
}

// A listener running longer than its subscriptions' lifetime renews them: a change
// after that lifetime still reaches it.
func TestCLISubscribeRenews(t *testing.T) {
	s := harness.Start(t)
	s.SeedWorkspace(t, "cr", "renewed", nil)
	env := []string{"VWS_URL=" + s.URL}
	sub := StartSubscriber(t, env, "-k", "{"+vwsns.Workspace+"}WorkspaceKey", "cr", "--lifetime", "2s", "--count", "1", "state")
	time.Sleep(3500 * time.Millisecond) // past the 2 s the subscriptions were made for
	if n := subscriptionCount(t, s); n != 2 {
		t.Fatalf("after more than --lifetime, %d subscriptions are left; want them renewed (2)", n)
	}
	setWorkspaceState(t, s, "cr", "running")
	if code := sub.Wait(t, 20*time.Second); code != 0 {
		t.Fatalf("exit %d; stderr %q", code, sub.stderr())
	}
	chains, _ := sub.Changes(t)
	WantChain(t, "state", chains["state"], []string{"shutdown", "running"})
}

// A listener whose --lifetime is beyond what the service grants says so, and renews
// at half of what was granted: its subscriptions outlive the granted lifetime and a
// change after it still reaches it.
func TestCLISubscribeRenewsWithinWhatWasGranted(t *testing.T) {
	s := harness.Start(t, func(c *server.Config) { c.SubscriptionMaxLifetime = 3 * time.Second })
	s.SeedWorkspace(t, "cg", "granted", nil)
	env := []string{"VWS_URL=" + s.URL}
	sub := StartSubscriber(t, env, "-k", "{"+vwsns.Workspace+"}WorkspaceKey", "cg", "--lifetime", "1h", "--count", "1", "state")
	if !strings.Contains(sub.stderr(), "the service grants subscriptions 3s at most, not the 1h0m0s of --lifetime") {
		t.Errorf("no note of the shorter lifetime granted: %q", sub.stderr())
	}
	if !strings.Contains(sub.stderr(), "for state, termination") {
		t.Errorf("the topics are not named as the command line names them: %q", sub.stderr())
	}
	time.Sleep(4500 * time.Millisecond) // past the 3 s granted
	if n := subscriptionCount(t, s); n != 2 {
		t.Fatalf("after more than the lifetime granted, %d subscriptions are left; want them renewed (2)\nstderr %q", n, sub.stderr())
	}
	setWorkspaceState(t, s, "cg", "running")
	if code := sub.Wait(t, 20*time.Second); code != 0 {
		t.Fatalf("exit %d; stderr %q", code, sub.stderr())
	}
}
