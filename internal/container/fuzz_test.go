package container_test

import (
	"bytes"
	"context"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/beevik/etree"

	"github.com/vws-grid/vws/internal/server"
	"github.com/vws-grid/vws/internal/soap"
	"github.com/vws-grid/vws/internal/vwsns"
)

// panicCatcher fails the fuzz run when the container reports a recovered handler panic,
// which it otherwise turns into an ordinary server fault.
type panicCatcher struct{ panics atomic.Int64 }

func (p *panicCatcher) Enabled(context.Context, slog.Level) bool { return true }
func (p *panicCatcher) Handle(_ context.Context, r slog.Record) error {
	if r.Message == "handler panic" {
		p.panics.Add(1)
	}
	return nil
}
func (p *panicCatcher) WithAttrs([]slog.Attr) slog.Handler { return p }
func (p *panicCatcher) WithGroup(string) slog.Handler      { return p }

// FuzzServeSOAP feeds arbitrary bodies to the envelope parser and dispatcher of a real
// server (all services, a seeded workspace) and checks every answer is a well-formed
// SOAP response: 200 with a body, or a fault carrying a BaseFault detail.
func FuzzServeSOAP(f *testing.F) {
	golden, _ := filepath.Glob("../../test/testdata/gt4-0/*.xml")
	for _, g := range golden {
		data, err := os.ReadFile(g)
		if err != nil {
			f.Fatal(err)
		}
		s := strings.ReplaceAll(string(data), "http://example.org/workspace", vwsns.Workspace)
		s = strings.ReplaceAll(s, "ns1:Status", "ns1:state")
		f.Add([]byte(s))
	}
	f.Add([]byte(`<s:Envelope xmlns:s="http://schemas.xmlsoap.org/soap/envelope/" xmlns:wsa="http://www.w3.org/2005/08/addressing"><s:Header><wsa:Action>http://docs.oasis-open.org/wsrf/rpw-2/QueryResourceProperties/QueryResourcePropertiesRequest</wsa:Action><vw:WorkspaceKey xmlns:vw="` + vwsns.Workspace + `">abc</vw:WorkspaceKey></s:Header><s:Body><rp:QueryResourceProperties xmlns:rp="http://docs.oasis-open.org/wsrf/rp-2"><rp:QueryExpression Dialect="http://www.w3.org/TR/1999/REC-xpath-19991116">//*</rp:QueryExpression></rp:QueryResourceProperties></s:Body></s:Envelope>`))
	f.Add([]byte(`<!DOCTYPE a [<!ENTITY b "c">]><a>&b;</a>`))

	catcher := &panicCatcher{}
	srv, err := server.New(context.Background(), server.Config{DataDir: f.TempDir(), Logger: slog.New(catcher)})
	if err != nil {
		f.Fatal(err)
	}
	f.Cleanup(srv.Close)
	state := etree.NewElement("vw:state")
	state.CreateAttr("xmlns:vw", vwsns.Workspace)
	state.SetText("shutdown")
	if err := srv.Repository.Workspaces.Create(context.Background(), "abc", []*etree.Element{state}, nil); err != nil {
		f.Fatal(err)
	}
	h := srv.Handler()

	f.Fuzz(func(t *testing.T, body []byte) {
		for _, svc := range []string{vwsns.WorkspaceService, vwsns.FactoryService} {
			rec := httptest.NewRecorder()
			req := httptest.NewRequest(http.MethodPost, "/wsrf/services/"+svc, bytes.NewReader(body))
			req.Header.Set("Content-Type", "text/xml; charset=utf-8")
			h.ServeHTTP(rec, req)
			if n := catcher.panics.Load(); n > 0 {
				t.Fatalf("handler panicked on %q", body)
			}
			env, err := soap.Parse(rec.Body.Bytes())
			if err != nil {
				t.Fatalf("HTTP %d answer is not a SOAP envelope: %v\n%s", rec.Code, err, rec.Body.Bytes())
			}
			switch rec.Code {
			case http.StatusOK:
				if env.Payload == nil || soap.IsFault(env.Payload) {
					t.Fatalf("200 without a response element: %s", rec.Body.Bytes())
				}
			case http.StatusInternalServerError, http.StatusRequestEntityTooLarge:
				if !soap.IsFault(env.Payload) {
					t.Fatalf("HTTP %d without a fault: %s", rec.Code, rec.Body.Bytes())
				}
				if f := soap.ParseFault(env.Payload); len(f.Detail) != 1 || f.Detail[0].SelectElement("Description") == nil {
					t.Fatalf("fault without a BaseFault detail: %s", rec.Body.Bytes())
				}
			default:
				t.Fatalf("unexpected HTTP %d", rec.Code)
			}
		}
	})
}
