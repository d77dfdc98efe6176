package notify

import (
	"context"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/beevik/etree"

	"github.com/vws-grid/vws/internal/dialect"
	"github.com/vws-grid/vws/internal/vwsns"
	"github.com/vws-grid/vws/internal/wsa"
	"github.com/vws-grid/vws/internal/wsrf"
)

// A workspace past its termination time that its expiry has not destroyed yet (the
// Repository's scheduler runs in the background from the start) reads as unknown,
// but is not gone: Resync must leave its subscriptions to the expiry's destroy, whose
// notice tells them why it ended, and not tell them first that it no longer exists.
func TestResyncLeavesAnExpiredWorkspaceToItsExpiry(t *testing.T) {
	var mu sync.Mutex
	now := time.Now()
	clock := func() time.Time { mu.Lock(); defer mu.Unlock(); return now }
	c := newConsumer(t)
	b := newBroker(t, nil, nil)
	// The workspaces' home as the Repository's: expiry deferred at the start, its
	// destroy telling the subscribers "its lifetime expired".
	workspaces, err := wsrf.NewHome(context.Background(), wsrf.HomeConfig{
		Service: "WorkspaceService", Document: wsa.QName{Space: vwsns.Workspace, Local: "Workspace"},
		Declared: []wsa.QName{propState, propDeployment}, DeferExpiry: true, Now: clock,
		AfterDestroy: func(s *wsrf.Snapshot) { b.Terminated(s.Key, "its lifetime expired") },
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(workspaces.Close)
	term := now.Add(time.Hour)
	if err := workspaces.Create(context.Background(), "ws1", props("shutdown", "in-repository"), &term); err != nil {
		t.Fatal(err)
	}
	d := dialect.WSRF12
	subscribe(t, b, d, "ws1", consumerRef(d, c.URL)+
		`<wsnt:Filter><wsnt:TopicExpression Dialect="`+simpleWSN13+`" xmlns:wsrl="`+d.RL+`">wsrl:ResourceTermination</wsnt:TopicExpression></wsnt:Filter>`)
	mu.Lock()
	now = now.Add(2 * time.Hour) // it expired while vws was down
	mu.Unlock()

	// As the Repository's Properties.
	b.Resync(context.Background(), func(ctx context.Context, key string) ([]*etree.Element, error) {
		var out []*etree.Element
		err := workspaces.View(ctx, key, func(s *wsrf.Snapshot) error { out = s.Props; return nil })
		return out, err
	})
	workspaces.StartExpiry()
	got := c.waitFor(t, 1)
	reason := got[0].Payload.FindElement(".//Message/TerminationNotification/TerminationReason")
	if reason == nil || strings.TrimSpace(reason.Text()) != "its lifetime expired" {
		t.Fatalf("the subscriber of an expired workspace was told: %s; want the reason \"its lifetime expired\"", xmlOf(got[0].Payload))
	}
	time.Sleep(200 * time.Millisecond)
	if n := len(c.messages()); n != 1 {
		t.Errorf("the subscriber got %d termination messages, want 1", n)
	}
}
