package container_test

import (
	"testing"

	"github.com/vws-grid/vws/internal/dialect"
)

// TestReplyToWithUnechoableReferenceParametersIsRefused: a ReplyTo (or FaultTo)
// reference parameter becomes a header block of the answer. A wsse:Security one
// would be a second Security header of an answer the host signs; one already marked
// wsa:IsReferenceParameter would carry that attribute twice (not well-formed XML).
// The request is refused before anything runs.
func TestReplyToWithUnechoableReferenceParametersIsRefused(t *testing.T) {
	s := startWSAServer(t)
	params := []string{
		`<wsse:Security xmlns:wsse="http://docs.oasis-open.org/wss/2004/01/oasis-200401-wss-wssecurity-secext-1.0.xsd"/>`,
		`<c:K xmlns:c="urn:c" xmlns:w="http://www.w3.org/2005/08/addressing" w:IsReferenceParameter="true">1</c:K>`,
	}
	for _, d := range dialect.Dialects {
		v := d.WSA
		for _, header := range []string{"ReplyTo", "FaultTo"} {
			for _, param := range params {
				t.Run(d.Name+"/"+header+"/"+param, func(t *testing.T) {
					before := s.calls.Load()
					r := s.post(t, envelope(d, s.getRP(t, d), "Fail", `<wsa:`+header+`><wsa:Address>`+v.Anonymous()+`</wsa:Address><wsa:`+
						v.ReferenceContainer()+`>`+param+`</wsa:`+v.ReferenceContainer()+`></wsa:`+header+`>`))
					if n := s.calls.Load() - before; n != 0 || r.status != 500 {
						t.Errorf("HTTP %d, the handler ran %d time(s); want the request refused:\n%s", r.status, n, r.raw)
					}
				})
			}
		}
	}
}
