package notify

import (
	"context"
	"errors"
	"testing"

	"github.com/vws-grid/vws/internal/dialect"
	"github.com/vws-grid/vws/internal/errdefs"
)

// A consumer reference parameter is echoed as a header block of every Notify. A
// wsse:Security one makes the host's signature of each fail (the envelope already has
// one), so every message is dropped and the subscription ends after five; one already
// marked wsa:IsReferenceParameter would carry that attribute twice once echoed in WS-
// Addressing 1.0, which is not well-formed XML. Both are refused at Subscribe.
func TestSubscribeRefusesReferenceParametersItCannotEcho(t *testing.T) {
	const wsse = `http://docs.oasis-open.org/wss/2004/01/oasis-200401-wss-wssecurity-secext-1.0.xsd`
	params := map[string]string{
		"wsse:Security":        `<wsse:Security xmlns:wsse="` + wsse + `"/>`,
		"IsReferenceParameter": `<c:Listener xmlns:c="urn:test" xmlns:w="http://www.w3.org/2005/08/addressing" w:IsReferenceParameter="true">L1</c:Listener>`,
	}
	b := newBroker(t, nil, nil)
	for _, d := range dialect.Dialects {
		for name, param := range params {
			t.Run(d.Name+"/"+name, func(t *testing.T) {
				consumer := `<wsnt:ConsumerReference><wsa:Address>http://127.0.0.1:9/c</wsa:Address><wsa:` + d.WSA.ReferenceContainer() + `>` +
					param + `</wsa:` + d.WSA.ReferenceContainer() + `></wsnt:ConsumerReference>`
				_, err := b.Subscribe(exists("ws1"))(context.Background(), subscribeRequest(t, d, "ws1", consumer+topicFilter(d, "vw:state")))
				if !errors.Is(err, errdefs.ErrSubscribe) {
					t.Fatalf("got %v, want a SubscribeCreationFailedFault", err)
				}
				if n := len(b.home.Keys()); n != 0 {
					t.Fatalf("a refused Subscribe left %d subscriptions", n)
				}
			})
		}
	}
}
