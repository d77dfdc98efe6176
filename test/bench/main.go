// Command bench measures GetResourceProperty over loopback HTTP with keep-alive against
// a real vws server, next to a bare net/http handler answering the same bytes in the
// same run (the floor any SOAP container on this machine stands on).
package main

import (
	"bytes"
	"context"
	"flag"
	"fmt"
	"io"
	"log"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"runtime"
	"time"

	"github.com/beevik/etree"

	"github.com/vws-grid/vws/internal/dialect"
	"github.com/vws-grid/vws/internal/server"
	"github.com/vws-grid/vws/internal/vwsns"
	"github.com/vws-grid/vws/test/loadgen"
)

func main() {
	duration := flag.Duration("duration", 5*time.Second, "how long each measurement runs")
	conns := flag.Int("conns", 4, "concurrent keep-alive connections")
	creates := flag.Int("creates", 200, "Create calls per image size")
	flag.Parse()
	if err := run(*duration, *conns, *creates); err != nil {
		log.Fatal(err)
	}
}

func run(d time.Duration, conns, creates int) error {
	ctx := context.Background()
	dir, err := os.MkdirTemp("", "vws-bench-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)
	// Request logs stay on (formatted and discarded) so the cost of logging is counted.
	logger := slog.New(slog.NewTextHandler(io.Discard, nil))
	srv, err := server.New(ctx, server.Config{DataDir: dir, Logger: logger})
	if err != nil {
		return err
	}
	defer srv.Close()
	state := etree.NewElement("vw:state")
	state.CreateAttr("xmlns:vw", vwsns.Workspace)
	state.SetText("shutdown")
	if err := srv.Repository.Workspaces.Create(ctx, "bench", []*etree.Element{state}, nil); err != nil {
		return err
	}
	hs := httptest.NewServer(srv.Handler())
	defer hs.Close()
	srv.SetBaseURL(hs.URL)
	url := hs.URL + "/wsrf/services/" + vwsns.WorkspaceService
	client := &http.Client{Transport: loadgen.Transport(conns)}

	fmt.Printf("GetResourceProperty over loopback HTTP/1.1 keep-alive, %d connections, %s each, GOMAXPROCS=%d\n", conns, d, runtimeProcs())
	for _, dl := range dialect.Dialects {
		body := request(dl, url)
		// Capture the real answer so the bare handler serves exactly the same bytes.
		resp, err := client.Post(url, "text/xml", bytes.NewReader(body))
		if err != nil {
			return err
		}
		answer, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != 200 {
			return fmt.Errorf("%s: HTTP %d: %s", dl.Name, resp.StatusCode, answer)
		}
		bare := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			_, _ = io.Copy(io.Discard, r.Body)
			w.Header().Set("Content-Type", "text/xml; charset=utf-8")
			_, _ = w.Write(answer)
		}))
		rawRes := loadgen.Run(ctx, client, bare.URL, body, conns, d, 200)
		bare.Close()
		vwsRes := loadgen.Run(ctx, client, url, body, conns, d, 200)
		fmt.Printf("  %-7s vws              %s\n", dl.Name, vwsRes)
		fmt.Printf("  %-7s bare net/http    %s\n", dl.Name, rawRes)
		if vwsRes.Errors > 0 {
			return fmt.Errorf("%d failed requests", vwsRes.Errors)
		}
	}
	fmt.Println("target: ≥ 5000 req/s and p50 ≤ 1 ms for vws (GT4's Java container: ~10 ms per call)")
	fmt.Println()
	if err := benchCreate(ctx, hs.URL, dir, creates); err != nil {
		return err
	}
	fmt.Println()
	return benchQuery(ctx, hs.URL, 1000, 50)
}

func request(d *dialect.Dialect, to string) []byte {
	action := "http://docs.oasis-open.org/wsrf/rpw-2/GetResourceProperty/GetResourcePropertyRequest"
	if d == dialect.GT4 {
		action = "http://docs.oasis-open.org/wsrf/2004/06/wsrf-WS-ResourceProperties/GetResourceProperty"
	}
	return []byte(fmt.Sprintf(`<?xml version="1.0" encoding="UTF-8"?><soapenv:Envelope xmlns:soapenv="http://schemas.xmlsoap.org/soap/envelope/" xmlns:wsa="%s"><soapenv:Header><wsa:MessageID>uuid:bench</wsa:MessageID><wsa:To>%s</wsa:To><wsa:Action>%s</wsa:Action><ns1:WorkspaceKey xmlns:ns1="%s">bench</ns1:WorkspaceKey></soapenv:Header><soapenv:Body><GetResourceProperty xmlns="%s" xmlns:ns1="%s">ns1:state</GetResourceProperty></soapenv:Body></soapenv:Envelope>`,
		d.WSA.Namespace(), to, action, vwsns.Workspace, d.RP, vwsns.Workspace))
}

func runtimeProcs() int { return runtime.GOMAXPROCS(0) }
