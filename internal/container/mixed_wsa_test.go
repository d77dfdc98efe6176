package container_test

import (
	"strings"
	"testing"

	"github.com/vws-grid/vws/internal/dialect"
	"github.com/vws-grid/vws/internal/soap"
	"github.com/vws-grid/vws/internal/wsa"
)

// TestMixedAddressingVersionsAreRefused: a request whose addressing headers are in
// both WS-Addressing versions says two things at once (here two actions, one in each
// version): which the sender meant is a guess, as for one header sent twice, and a
// proxy or log reading the other version would see one operation while another runs.
// It is refused with the addressing fault of the version its first header is in, which
// names the mixing, and nothing runs; a request that starts with a stray header of the
// other version is not told that its operation does not exist.
func TestMixedAddressingVersionsAreRefused(t *testing.T) {
	s := startWSAServer(t)
	for _, d := range dialect.Dialects {
		v := d.WSA
		other := map[wsa.Version]wsa.Version{wsa.V200403: wsa.V200508, wsa.V200508: wsa.V200403}[v]
		stray := `<o:Action xmlns:o="` + other.Namespace() + `">urn:another</o:Action>`
		for name, body := range map[string]string{
			"after":  envelope(d, s.getRP(t, d), "Version", stray),
			"before": strings.Replace(envelope(d, s.getRP(t, d), "Version"), `<s:Header>`, `<s:Header>`+stray, 1),
		} {
			t.Run(d.Name+"/other version "+name, func(t *testing.T) {
				before := s.calls.Load()
				r := s.post(t, body)
				if s.calls.Load() != before {
					t.Errorf("the operation ran: HTTP %d\n%s", r.status, r.raw)
				}
				if r.status != 500 {
					t.Fatalf("HTTP %d, want 500", r.status)
				}
				first := v
				if name == "before" {
					first = other
				}
				if ns, local := r.faultCode(t); ns != first.Namespace() {
					t.Errorf("faultcode {%s}%s, want one in %s", ns, local, first.Namespace())
				} else if want := map[wsa.Version]string{wsa.V200508: "InvalidAddressingHeader", wsa.V200403: "InvalidMessageInformationHeader"}[first]; local != want {
					t.Errorf("faultcode %s, want %s", local, want)
				}
				if f := soap.ParseFault(r.env.Payload); !strings.Contains(f.String, "one WS-Addressing version") {
					t.Errorf("faultstring %q does not say the request mixes WS-Addressing versions", f.String)
				}
			})
		}
	}
}
