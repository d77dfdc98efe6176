// Package harness starts a real vws server on a loopback port for end-to-end and
// interoperability tests, and seeds workspace resources until the Factory's Create
// lands (the seeding goes through the same resource home Create will use).
package harness

import (
	"context"
	"database/sql"
	"io"
	"log/slog"
	"net/http/httptest"
	"os"
	"testing"
	"time"

	"github.com/beevik/etree"

	"github.com/vws-grid/vws/internal/server"
	"github.com/vws-grid/vws/internal/store/storetest"
	"github.com/vws-grid/vws/internal/vwsns"
	"github.com/vws-grid/vws/internal/wsrf"
)

// Server is a vws server listening on 127.0.0.1.
type Server struct {
	URL     string
	DataDir string
	Srv     *server.Server
	http    *httptest.Server
}

// Option changes the server config.
type Option func(*server.Config)

// Start runs a server (all roles) until the test ends.
func Start(t testing.TB, opts ...Option) *Server {
	t.Helper()
	dir := t.TempDir()
	cfg := server.Config{DataDir: dir, Logger: slog.New(slog.NewTextHandler(io.Discard, nil))}
	if storetest.Postgres() {
		cfg.Database = storetest.NewPostgres(t, os.Getenv(storetest.Env))
	}
	for _, o := range opts {
		o(&cfg)
	}
	srv, err := server.New(context.Background(), cfg)
	if err != nil {
		t.Fatalf("start server: %v", err)
	}
	hs := httptest.NewServer(srv.Handler())
	srv.SetBaseURL(hs.URL)
	t.Cleanup(func() {
		hs.Close()
		srv.Close()
	})
	return &Server{URL: hs.URL, DataDir: dir, Srv: srv, http: hs}
}

// ServiceURL is the endpoint of a mounted service.
func (s *Server) ServiceURL(name string) string { return s.URL + "/wsrf/services/" + name }

// SeedWorkspace registers a shut-down, in-repository workspace named name under key.
func (s *Server) SeedWorkspace(t testing.TB, key, name string, termination *time.Time) {
	t.Helper()
	now := time.Now().UTC()
	el := func(ns, local, text string) *etree.Element {
		e := etree.NewElement("p:" + local)
		e.CreateAttr("xmlns:p", ns)
		e.SetText(text)
		return e
	}
	cat := el(vwsns.Workspace, "category", "vm")
	cat.CreateAttr("vmm", "qemu")
	hw := etree.NewElement("hw:hardware")
	hw.CreateAttr("xmlns:hw", vwsns.Hardware)
	props := []*etree.Element{
		el(vwsns.Workspace, "name", name),
		cat,
		el(vwsns.Workspace, "state", "shutdown"),
		el(vwsns.Workspace, "creationTime", wsrf.FormatTime(now)),
		el(vwsns.Workspace, "lastModified", wsrf.FormatTime(now)),
		el(vwsns.Workspace, "deployment", "in-repository"),
		el(vwsns.Workspace, "owner", "/O=Grid/OU=Test/CN=Alice"),
	}
	if err := s.Srv.Repository.Workspaces.Create(context.Background(), key, props, termination); err != nil {
		t.Fatalf("seed workspace %s: %v", key, err)
	}
}

// DB is the server's database, for checks on what is not exposed over SOAP (the audit
// trail).
func (s *Server) DB() *sql.DB { return s.Srv.DB() }
