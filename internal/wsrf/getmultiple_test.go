package wsrf_test

import (
	"context"
	"strings"
	"testing"

	"github.com/beevik/etree"

	"github.com/vws-grid/vws/internal/container"
	"github.com/vws-grid/vws/internal/dialect"
	"github.com/vws-grid/vws/internal/wsa"
	"github.com/vws-grid/vws/internal/wsrf"
)

// TestGetMultipleAnswersARepeatedNameOnce: one GetMultipleResourceProperties naming
// the same property over and over, as many times as fit in the default 1 MiB SOAP
// body, builds the property set (Singleton.Build: for the Repository, its pool listing
// and its policy filter over every workspace) once and answers the property once —
// not once per repetition.
func TestGetMultipleAnswersARepeatedNameOnce(t *testing.T) {
	ns := "urn:t"
	big := wsa.QName{Space: ns, Local: "Workspace"}
	builds := 0
	s := &wsrf.Singleton{
		DocName:  wsa.QName{Space: ns, Local: "Doc"},
		Declared: []wsa.QName{big},
		Build: func(context.Context, *dialect.Dialect) ([]*etree.Element, error) {
			builds++
			return []*etree.Element{wsrf.TextProperty(big, strings.Repeat("x", 1024))}, nil
		},
	}
	d := dialect.WSRF12
	one := `<rp:ResourceProperty>t:Workspace</rp:ResourceProperty>`
	n := (1 << 20) / len(one) // what the container's default body limit lets through
	body := `<rp:GetMultipleResourceProperties xmlns:rp="` + d.RP + `" xmlns:t="` + ns + `">` +
		strings.Repeat(one, n) + `</rp:GetMultipleResourceProperties>`
	doc := etree.NewDocument()
	if err := doc.ReadFromString(body); err != nil {
		t.Fatal(err)
	}
	req := &container.Request{Service: &container.Service{Name: "WorkspaceRepositoryService"}, Dialect: d, Payload: doc.Root()}
	out, err := wsrf.GetMultipleResourceProperties(s)(context.Background(), req)
	if err != nil {
		t.Fatalf("refused: %v (a bound would be fine)", err)
	}
	resp, _ := etree.NewDocumentWithRoot(out).WriteToBytes()
	t.Logf("request %d bytes, %d names; property set built %d times; response %d bytes (%.0fx)",
		len(body), n, builds, len(resp), float64(len(resp))/float64(len(body)))
	if got := len(out.ChildElements()); got != 1 {
		t.Errorf("the property answered %d times, want once", got)
	}
	if builds > 1 || len(resp) > 4*len(body) {
		t.Fatalf("one %d-byte request made the service build its properties %d times and answer %d bytes: GetMultipleResourceProperties has no bound on repeated names", len(body), builds, len(resp))
	}
}
