package container_test

import (
	"strings"
	"testing"

	"github.com/vws-grid/vws/internal/dialect"
	"github.com/vws-grid/vws/internal/soap"
)

// TestBodyWithTwoRequestsIsRefused: a document/literal request holds one element in
// soap:Body, the operation's request (WS-I Basic Profile 1.1 R2201, R2210). A second
// one was ignored and the first answered as if it were all the request asked: a
// caller who sent two operations was told both went through. It is refused, and
// nothing runs.
func TestBodyWithTwoRequestsIsRefused(t *testing.T) {
	s := startWSAServer(t)
	for _, d := range dialect.Dialects {
		t.Run(d.Name, func(t *testing.T) {
			second := `<rp:GetResourceProperty xmlns:rp="` + d.RP + `" xmlns:f="urn:f">f:Other</rp:GetResourceProperty>`
			body := strings.Replace(envelope(d, s.getRP(t, d), "Version"), `</s:Body>`, second+`</s:Body>`, 1)
			before := s.calls.Load()
			r := s.post(t, body)
			if s.calls.Load() != before {
				t.Errorf("the operation ran for one of two body elements: HTTP %d\n%s", r.status, r.raw)
			}
			if r.status != 500 || r.env == nil || !soap.IsFault(r.env.Payload) {
				t.Fatalf("HTTP %d, want a fault", r.status)
			}
			if f := soap.ParseFault(r.env.Payload); f.Code != soap.CodeClient || !strings.Contains(f.String, "2 elements") {
				t.Errorf("fault %s %q, want a Client fault that counts the body elements", f.Code, f.String)
			}
		})
	}
}
