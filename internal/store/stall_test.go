package store_test

import (
	"context"
	"errors"
	"net/url"
	"path/filepath"
	"testing"
	"time"

	"github.com/vws-grid/vws/internal/store"
	"github.com/vws-grid/vws/test/sockproxy"
)

// throughProxy routes a PostgreSQL URL that reaches its server by a Unix socket
// (host=DIR) through a proxy the test can freeze; the test is skipped for a TCP URL.
func throughProxy(t *testing.T, dbURL string) (string, *sockproxy.Proxy) {
	t.Helper()
	u, err := url.Parse(dbURL)
	if err != nil {
		t.Fatal(err)
	}
	q := u.Query()
	dir := q.Get("host")
	if dir == "" || u.Host != "" {
		t.Skip("the test PostgreSQL is not reached by a Unix socket (host=DIR): no proxy to freeze")
	}
	port := q.Get("port")
	if port == "" {
		port = "5432"
	}
	sock := ".s.PGSQL." + port
	own := t.TempDir()
	p := &sockproxy.Proxy{Network: "unix", Path: filepath.Join(own, sock), Target: filepath.Join(dir, sock)}
	p.Listen(t)
	t.Cleanup(p.Close)
	q.Set("host", own)
	u.RawQuery = q.Encode()
	return u.String(), p
}

// TestPostgresStallKeepsTheLock: the network to PostgreSQL stalls long enough for a
// health check to give up on the lock's session; PostgreSQL never learns the
// connection is gone (no FIN crossed the stall), so that session lives on, holding
// the lock. When the network is back the server must take its own database again —
// not take its own stale session for "another vws server" and stop, nor leave the
// database held by a session nobody uses, so that no server could start on it.
func TestPostgresStallKeepsTheLock(t *testing.T) {
	ctx := context.Background()
	dbURL, proxy := throughProxy(t, postgresURL(t))
	db := openServer(t, dbURL)
	proxy.Freeze()
	time.Sleep(5 * time.Second) // two health checks (every 2 s, 2 s each) give up
	proxy.ThawNew()             // new connections pass; the old ones stay stuck
	defer proxy.ReleaseHeld()

	deadline := time.Now().Add(15 * time.Second)
	var err error
	for {
		if err = db.Ping(ctx); err == nil {
			break
		}
		if errors.Is(err, store.ErrInUse) || time.Now().After(deadline) {
			t.Fatalf("after the stall, the server's health check: %v", err)
		}
		time.Sleep(200 * time.Millisecond)
	}
	select {
	case err := <-db.Lost():
		t.Fatalf("after a stall the server was told another took its database: %v", err)
	default:
	}
	if other, err := store.OpenPostgres(ctx, dbURL); !errors.Is(err, store.ErrInUse) {
		if other != nil {
			other.Close()
		}
		t.Fatalf("a second server after the stall: %v", err)
	}
}
