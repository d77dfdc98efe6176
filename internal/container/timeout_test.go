package container_test

import (
	"bytes"
	"context"
	"io"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/beevik/etree"

	"github.com/vws-grid/vws/internal/container"
	"github.com/vws-grid/vws/internal/contract"
	"github.com/vws-grid/vws/internal/dialect"
	"github.com/vws-grid/vws/internal/vwsns"
	"github.com/vws-grid/vws/internal/wsa"
)

// TestHandlerTimeouts: an operation runs under the container's HandlerTimeout unless
// it was registered with HandleUnbounded (Deploy, Shutdown…: the work bounds them), and
// registering it again with Handle bounds it again.
func TestHandlerTimeouts(t *testing.T) {
	deadlineOf := func(ctx context.Context, _ *container.Request) (*etree.Element, error) {
		el := etree.NewElement("deadline")
		if d, ok := ctx.Deadline(); ok {
			el.SetText(time.Until(d).Round(time.Hour).String())
		} else {
			el.SetText("none")
		}
		return el, nil
	}
	serve := func(register func(*container.Service)) string {
		t.Helper()
		svc, err := container.NewService(contract.FS, "wsdl", vwsns.FactoryService, wsa.QName{})
		if err != nil {
			t.Fatal(err)
		}
		for _, d := range dialect.Dialects {
			for _, op := range svc.Contract(d).Operations {
				svc.Handle(op.Name, deadlineOf)
			}
		}
		register(svc)
		c, err := container.New(container.Config{HandlerTimeout: 5 * time.Hour}, svc)
		if err != nil {
			t.Fatal(err)
		}
		hs := httptest.NewServer(c)
		defer hs.Close()
		body := `<s:Envelope xmlns:s="http://schemas.xmlsoap.org/soap/envelope/"><s:Body><rp:GetResourceProperty xmlns:rp="http://docs.oasis-open.org/wsrf/rp-2" xmlns:f="` + vwsns.Factory + `">f:Version</rp:GetResourceProperty></s:Body></s:Envelope>`
		resp, err := hs.Client().Post(hs.URL+"/wsrf/services/"+vwsns.FactoryService, "text/xml", bytes.NewBufferString(body))
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		data, _ := io.ReadAll(resp.Body)
		return string(data)
	}
	if got := serve(func(*container.Service) {}); !strings.Contains(got, "<deadline>5h0m0s</deadline>") {
		t.Errorf("a bounded operation: %s", got)
	}
	if got := serve(func(s *container.Service) { s.HandleUnbounded("GetResourceProperty", deadlineOf) }); !strings.Contains(got, "<deadline>none</deadline>") {
		t.Errorf("an unbounded operation: %s", got)
	}
	if got := serve(func(s *container.Service) {
		s.HandleUnbounded("GetResourceProperty", deadlineOf)
		s.Handle("GetResourceProperty", deadlineOf)
	}); !strings.Contains(got, "<deadline>5h0m0s</deadline>") {
		t.Errorf("registered again with Handle: %s", got)
	}
}
