// Command bench measures GetResourceProperty over loopback HTTP with keep-alive against
// a real vws server, next to a bare net/http handler answering the same bytes in the
// same run (the floor any SOAP container on this machine stands on).
package main

import (
	"bytes"
	"context"
	"database/sql"
	"flag"
	"fmt"
	"io"
	"log"
	"log/slog"
	"net/http"
	"net/http/httptest"
	neturl "net/url"
	"os"
	"runtime"
	"time"

	"github.com/beevik/etree"

	"github.com/vws-grid/vws/internal/dialect"
	"github.com/vws-grid/vws/internal/server"
	"github.com/vws-grid/vws/internal/store"
	"github.com/vws-grid/vws/internal/vwsns"
	"github.com/vws-grid/vws/test/loadgen"
)

func main() {
	duration := flag.Duration("duration", 5*time.Second, "how long each measurement runs")
	conns := flag.Int("conns", 4, "concurrent keep-alive connections")
	creates := flag.Int("creates", 200, "Create calls per image size")
	postgres := flag.String("postgres", "", "run the server on a throwaway database of this PostgreSQL server (postgres:///postgres?host=/var/run/postgresql) instead of SQLite")
	flag.Parse()
	if err := run(*duration, *conns, *creates, *postgres); err != nil {
		log.Fatal(err)
	}
}

func run(d time.Duration, conns, creates int, postgres string) error {
	ctx := context.Background()
	dir, err := os.MkdirTemp("", "vws-bench-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)
	database := ""
	if postgres != "" {
		var drop func()
		if database, drop, err = throwawayDatabase(postgres); err != nil {
			return err
		}
		defer drop()
		fmt.Println("records in PostgreSQL:", store.RedactURL(database))
	}
	// Request logs stay on (formatted and discarded) so the cost of logging is counted.
	logger := slog.New(slog.NewTextHandler(io.Discard, nil))
	srv, err := server.New(ctx, server.Config{DataDir: dir, Database: database, Logger: logger})
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

// throwawayDatabase creates an empty database on the PostgreSQL server serverURL names
// and returns its URL and how to drop it.
func throwawayDatabase(serverURL string) (string, func(), error) {
	u, err := neturl.Parse(serverURL)
	if err != nil {
		return "", nil, fmt.Errorf("-postgres: %w", err)
	}
	admin, err := sql.Open("pgx", serverURL)
	if err != nil {
		return "", nil, err
	}
	name := fmt.Sprintf("vws_bench_%d", time.Now().UnixNano())
	if _, err := admin.Exec(`CREATE DATABASE ` + name); err != nil {
		admin.Close()
		return "", nil, fmt.Errorf("create the benchmark's database on %s: %w", store.RedactURL(serverURL), err)
	}
	u.Path = "/" + name
	return u.String(), func() {
		if _, err := admin.Exec(`DROP DATABASE IF EXISTS ` + name + ` WITH (FORCE)`); err != nil {
			log.Printf("drop %s: %v", name, err)
		}
		admin.Close()
	}, nil
}
