package wssec

import (
	"errors"
	"testing"
	"time"

	"github.com/vws-grid/vws/internal/soap"
	"github.com/vws-grid/vws/internal/wsa"
)

// TestReplayWithTheMessageIDMoved: a signed request whose signed wsa:MessageID is moved out of the
// header list (into an unknown wrapper header block) still verifies — the Reference
// still resolves, the digest still matches — but the verifier then sees no
// MessageID and would key the replay cache by the SignedInfo digest instead of by
// the MessageID, accepting the same signed message twice. A signed element out of
// its place is refused, and the SignedInfo digest is always a replay key.
func TestReplayWithTheMessageIDMoved(t *testing.T) {
	p := getPKI(t)
	v := p.verifier(t0)
	doc := request(wsa.NS200508, "urn:uuid:secreview-replay")
	if err := p.signer(RSASHA256, t0).Sign(doc); err != nil {
		t.Fatal(err)
	}
	data, err := doc.WriteToBytes()
	if err != nil {
		t.Fatal(err)
	}
	// First delivery: the legitimate one.
	env, err := soap.Parse(data)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := v.Verify(env); err != nil {
		t.Fatalf("first delivery: %v", err)
	}
	// Second delivery: the same bytes, but wsa:MessageID wrapped in a header block the
	// receiver does not know (not mustUnderstand, so ignored by the container).
	env2, err := soap.Parse(data)
	if err != nil {
		t.Fatal(err)
	}
	mid := header(t, env2, wsa.NS200508, "MessageID")
	hdr := mid.Parent()
	w := hdr.CreateElement("x:Wrapper")
	w.CreateAttr("xmlns:x", "urn:attacker")
	hdr.RemoveChild(mid)
	w.AddChild(mid)
	env2 = wire(t, env2.Doc)
	if maps, err := wsa.ReadMAPs(env2.Headers); err != nil || maps.MessageID != "" {
		t.Fatalf("the container would see MessageID %q (err %v)", maps.MessageID, err)
	}
	res, err := v.Verify(env2)
	if err == nil {
		t.Fatalf("REPLAY ACCEPTED: the second delivery of the same signed message (MessageID moved into a wrapper header) verified as %s", res.Identity.DN)
	}
	wantRefused(t, err, CodeInvalidSecurity)
}

// TestReplayCacheCountsAMessageOnce: a message known by several keys (its message id
// and its signature's digest) holds one place of its signer's share; a message with
// any key seen before is a replay, and records none of its other keys.
func TestReplayCacheCountsAMessageOnce(t *testing.T) {
	c := &ReplayCache{Max: 32, PerSigner: 2}
	until := t0.Add(time.Minute)
	if err := c.Check("alice", until, t0, "m1", "s1"); err != nil {
		t.Fatal(err)
	}
	if err := c.Check("alice", until, t0, "m2", "s2"); err != nil {
		t.Fatalf("a second message of two keys, within a share of two messages: %v", err)
	}
	if n := c.Len(); n != 2 {
		t.Fatalf("Len %d, want 2 messages", n)
	}
	if err := c.Check("bob", until, t0, "m9", "s1"); !errors.Is(err, ErrReplay) {
		t.Fatalf("a new message id on a signature seen before: %v", err)
	}
	if c.Seen("m9") {
		t.Fatal("the refused replay's message id was recorded")
	}
	if err := c.Check("bob", until, t0, "m9", "s9"); err != nil {
		t.Fatalf("the message id of a refused replay, sent afresh: %v", err)
	}
}
