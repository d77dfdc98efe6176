package container_test

import (
	"context"
	"net/http"
	"sync/atomic"
	"testing"
	"time"

	"github.com/beevik/etree"

	"github.com/vws-grid/vws/internal/client"
	"github.com/vws-grid/vws/internal/container"
	"github.com/vws-grid/vws/internal/vwsns"
	"github.com/vws-grid/vws/internal/wsa"
)

// TestParseBudgetAdmitsASelfCall: a handler that calls its own server (the Factory
// registering with the Repository, a Manager checking out from the Repository in the
// same process) holds its share of the budget while it waits for that call. With the
// budget taken by such requests, the calls they wait for must still be admitted, or
// each waits the whole ParseWait and is refused 503, failing the request that made
// it, and a body as large as the budget could never be served at all.
func TestParseBudgetAdmitsASelfCall(t *testing.T) {
	body := paddedRequest(64 << 10)
	var url string
	var outer atomic.Bool
	hs, _ := budgetServer(t, int64(len(body)), 300*time.Millisecond, func(ctx context.Context, _ *container.Request) (*etree.Element, error) {
		if !outer.CompareAndSwap(false, true) {
			return etree.NewElement("inner"), nil
		}
		epr := &wsa.EPR{Version: wsa.V200508, Address: url + "/wsrf/services/" + vwsns.FactoryService}
		if _, err := client.New(http.DefaultClient).GetResourceProperty(ctx, epr, wsa.QName{Space: vwsns.Factory, Local: "Version"}); err != nil {
			return nil, err
		}
		return etree.NewElement("outer"), nil
	})
	url = hs.URL
	if a := post(hs, body); a.status != http.StatusOK {
		t.Fatalf("a request whose handler calls its own server, under a budget of its body: HTTP %d %v\n%.1000s", a.status, a.err, a.body)
	}
}
