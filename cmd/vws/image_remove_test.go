package main

import (
	"bytes"
	"context"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
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
// servePool serves a fresh image pool holding "deb12" as the container mounts it,
// at $VWS_URL.
func servePool(t *testing.T, deb12 []byte, m imagepool.Meta) *imagepool.Pool {
	t.Helper()
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
	if _, _, err := pool.Import(ctx, bytes.NewReader(deb12), m); err != nil {
		t.Fatal(err)
	}
	mux := http.NewServeMux() // as the container mounts the pool
	mux.Handle("/images", pool)
	mux.Handle("/images/", pool)
	s := httptest.NewServer(mux)
	t.Cleanup(s.Close)
	t.Setenv("VWS_URL", s.URL)
	return pool
}

func TestCLIImageRemoveOfAPathLikeNameIsRefused(t *testing.T) {
	ctx := context.Background()
	pool := servePool(t, []byte("a raw disk"), imagepool.Meta{Name: "deb12"})
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

// vws image import of an image's own file under its name with another kernel label
// is refused, as other metadata: kernel labels are told apart by case, by the pool
// (which keeps the label as given) and by the Factory's matching of a requested kernel.
func TestCLIImageImportAgainWithAKernelOfOtherCaseIsRefused(t *testing.T) {
	ctx := context.Background()
	data := []byte("a raw disk")
	servePool(t, data, imagepool.Meta{Name: "deb12", Kernel: "6.1.0-rt"})
	file := filepath.Join(t.TempDir(), "disk.raw")
	if err := os.WriteFile(file, data, 0o644); err != nil {
		t.Fatal(err)
	}
	if r := vwsRun(t, ctx, "image", "import", file, "--name", "deb12", "--kernel", "6.1.0-rt"); r.code != 0 || !strings.Contains(r.stdout, "nothing to do") {
		t.Fatalf("import again with the image's kernel: exit %d\nstdout: %q\nstderr: %q", r.code, r.stdout, r.stderr)
	}
	r := vwsRun(t, ctx, "image", "import", file, "--name", "deb12", "--kernel", "6.1.0-RT")
	if r.code != exitFault || strings.Contains(r.stdout, "nothing to do") || !strings.Contains(r.stderr, `with --kernel "6.1.0-rt", not "6.1.0-RT"`) {
		t.Errorf("import again with another kernel label: exit %d\nstdout: %q\nstderr: %q; want it refused as other metadata", r.code, r.stdout, r.stderr)
	}
}
