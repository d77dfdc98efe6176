package main

import (
	"bytes"
	"context"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"testing"

	"github.com/vws-grid/vws/internal/store"
	"github.com/vws-grid/vws/repository/imagepool"
)

// vws image remove of a path-like name is refused as not valid, in the pool's words,
// and removes nothing. Sent as it is, "." or ".." (or "../deb12") is cleaned out of
// the URL path into a DELETE of /images (405) or of no pool path (404, "is this a vws
// Repository?"), which says nothing of the name.
func TestCLIImageRemoveOfAPathLikeNameIsRefused(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	db, err := store.Open(ctx, dir)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	pool, err := imagepool.Open(ctx, filepath.Join(dir, "images"), db.SQL(), slog.New(slog.NewTextHandler(io.Discard, nil)))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { pool.Close() })
	if _, _, err := pool.Import(ctx, bytes.NewReader([]byte("a raw disk")), imagepool.Meta{Name: "deb12"}); err != nil {
		t.Fatal(err)
	}
	mux := http.NewServeMux() // as the container mounts the pool
	mux.Handle("/images", pool)
	mux.Handle("/images/", pool)
	s := httptest.NewServer(mux)
	defer s.Close()
	t.Setenv("VWS_URL", s.URL)
	for _, name := range []string{".", "..", "../deb12", "./", "deb12/.", "x/../deb12"} {
		r := vwsRun(t, ctx, "image", "remove", name)
		if r.code == 0 || strings.Contains(r.stdout, "removed") || !strings.Contains(r.stderr, "not valid") {
			t.Errorf("vws image remove %s: exit %d\nstdout: %q\nstderr: %q; want a refusal of the name", name, r.code, r.stdout, r.stderr)
		}
	}
	if _, err := pool.Get(ctx, "deb12"); err != nil {
		t.Errorf("the pool lost an image: %v", err)
	}
}
