package notify

import (
	"testing"

	"github.com/vws-grid/vws/internal/dialect"
)

// A consumer's reference parameters are echoed as header blocks of each Notify,
// marked wsa:IsReferenceParameter in WS-Addressing 1.0 under a prefix of vws's own.
// A parameter that itself uses that prefix for its own namespace must keep its name:
// rebound, {urn:x}Action became a second wsa:Action (or RelatesTo, To…) of a message
// the host signs, which the Subscribe check against addressing headers is there to
// prevent.
func TestReferenceParameterKeepsItsNamespace(t *testing.T) {
	c := newConsumer(t)
	b := newBroker(t, nil, nil)
	d := dialect.WSRF12
	ref := `<wsnt:ConsumerReference><wsa:Address>` + c.URL + `</wsa:Address><wsa:ReferenceParameters>` +
		`<wsa-rp:Action xmlns:wsa-rp="urn:x">http://example.org/not-a-notify</wsa-rp:Action>` +
		`</wsa:ReferenceParameters></wsnt:ConsumerReference>`
	subscribe(t, b, d, "ws1", ref+topicFilter(d, "vw:state"))
	b.Changed("ws1", props("running", "deployed"), props("paused", "deployed"))
	env := c.waitFor(t, 1)[0]
	actions, echoed := 0, 0
	for _, h := range env.Headers {
		switch {
		case h.Tag == "Action" && h.NamespaceURI() == d.WSA.Namespace():
			actions++
		case h.Tag == "Action" && h.NamespaceURI() == "urn:x":
			echoed++
		}
	}
	if actions != 1 || echoed != 1 {
		t.Fatalf("the Notify has %d wsa:Action headers (want 1) and %d echoed {urn:x}Action (want 1):\n%s",
			actions, echoed, xmlOf(env.Root))
	}
}
