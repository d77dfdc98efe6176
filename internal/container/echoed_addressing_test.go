package container_test

import (
	"testing"

	"github.com/vws-grid/vws/internal/dialect"
)

// TestReplyToWithAddressingReferenceParametersIsRefused: each reference parameter of
// a request's ReplyTo (or FaultTo) becomes a header block of the answer. One that is
// itself a WS-Addressing header (a wsa:RelatesTo, a wsa:Action) would be a second
// RelatesTo or Action of the service's answer — signed by the host when the request
// was signed — saying that it answers another message, or is another message: the
// request is refused before anything runs, with an answer carrying one of each.
func TestReplyToWithAddressingReferenceParametersIsRefused(t *testing.T) {
	s := startWSAServer(t)
	for _, d := range dialect.Dialects {
		v := d.WSA
		for _, header := range []string{"ReplyTo", "FaultTo"} {
			for _, param := range []string{`<wsa:RelatesTo>urn:uuid:someone-elses-message</wsa:RelatesTo>`, `<wsa:Action>urn:another-action</wsa:Action>`} {
				t.Run(d.Name+"/"+header+"/"+param, func(t *testing.T) {
					before := s.calls.Load()
					r := s.post(t, envelope(d, s.getRP(t, d), "Fail", `<wsa:`+header+`><wsa:Address>`+v.Anonymous()+`</wsa:Address><wsa:`+
						v.ReferenceContainer()+`>`+param+`</wsa:`+v.ReferenceContainer()+`></wsa:`+header+`>`))
					if n := s.calls.Load() - before; n != 0 || r.status != 500 {
						t.Errorf("HTTP %d, the handler ran %d time(s); want the request refused", r.status, n)
					}
					if n, m := len(r.headers(v.Namespace(), "RelatesTo")), len(r.headers(v.Namespace(), "Action")); n != 1 || m != 1 {
						t.Errorf("the answer carries %d wsa:RelatesTo and %d wsa:Action headers, want one of each:\n%s", n, m, r.raw)
					}
				})
			}
		}
	}
}
