package container_test

import (
	"strings"
	"testing"

	"github.com/vws-grid/vws/internal/dialect"
)

// TestEntityDeclarationAfterAProcessingInstructionIsRefused: PROTOCOL.md, "any DTD or
// entity declaration is refused" — also an <!ENTITY> declaration
// placed after a processing instruction whose data holds "<!--": no handler runs.
func TestEntityDeclarationAfterAProcessingInstructionIsRefused(t *testing.T) {
	s := startWSAServer(t)
	for _, d := range dialect.Dialects {
		t.Run(d.Name, func(t *testing.T) {
			body := strings.Replace(envelope(d, s.getRP(t, d), "Version"), `<s:Body>`,
				`<s:Body><?x <!-- ?><!ENTITY xxe SYSTEM "file:///etc/passwd"><!-- -->`, 1)
			before := s.calls.Load()
			r := s.post(t, body)
			if r.status != 500 || s.calls.Load() != before {
				t.Fatalf("HTTP %d, handler ran %d time(s): the entity declaration was accepted\n%s", r.status, s.calls.Load()-before, r.raw)
			}
			if !strings.Contains(r.raw, "DTDs and entity declarations are not accepted") {
				t.Fatalf("refused, but the fault does not say why:\n%s", r.raw)
			}
		})
	}
}
