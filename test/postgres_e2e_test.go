package test

import (
	"context"
	"database/sql"
	"fmt"
	"io"
	"net/http"
	neturl "net/url"
	"strings"
	"testing"
	"time"

	"github.com/vws-grid/vws/internal/audit"
	"github.com/vws-grid/vws/internal/store"
	"github.com/vws-grid/vws/internal/store/storetest"
	"github.com/vws-grid/vws/test/harness"
)

// One server per PostgreSQL database: a second `vws serve` on a running server's
// database is refused at start, saying who holds it and what to do; a URL that is not
// PostgreSQL, or a server that does not answer, is refused without the password.
func TestServeOnePerDatabase(t *testing.T) {
	storetest.Server(t) // or a skip
	a := StartMgrServer(t, MgrServerOptions{Roles: []string{"factory", "repository"}})
	db, ok := dirDatabases.Load(a.Dir)
	if !ok {
		t.Fatal("the server got no database of its own")
	}
	r := runVWS(t, nil, "serve", "--insecure", "--listen", "127.0.0.1:0", "--data", t.TempDir(),
		"--role", "factory,repository", "--database", db.(string))
	if r.code != 1 || !strings.Contains(r.stderr, "is in use by another vws server") ||
		!strings.Contains(r.stderr, "one server with the repository role per database") {
		t.Errorf("a second server on the database: %+v", r)
	}
	resp, err := http.Get(a.URL + "/healthz")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Errorf("the first server's /healthz after the refusal: %s", resp.Status)
	}

	for _, c := range []struct{ url, want string }{
		{"mysql://vws:s3cret@db/vws", "want a PostgreSQL URL"},
		{"postgres://vws:s3cret@127.0.0.1:1/vws?connect_timeout=2", "127.0.0.1"},
	} {
		r := runVWS(t, nil, "serve", "--insecure", "--listen", "127.0.0.1:0", "--data", t.TempDir(), "--database", c.url)
		if r.code != 1 || !strings.Contains(r.stderr, c.want) || strings.Contains(r.stderr, "s3cret") {
			t.Errorf("--database %s: %+v", c.url, r)
		}
	}
}

// A server whose session (and lock) was cut, and whose database another server took
// meanwhile, stops, saying why, rather than go on writing over the other's records.
func TestServeStopsWhenItsDatabaseIsTaken(t *testing.T) {
	storetest.Server(t) // or a skip
	a := StartMgrServer(t, MgrServerOptions{Roles: []string{"factory", "repository"}})
	url, _ := dirDatabases.Load(a.Dir)
	db, err := sql.Open("pgx", url.(string))
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	storetest.CutLock(t, db)
	var other *store.DB
	for deadline := time.Now().Add(5 * time.Second); other == nil; time.Sleep(20 * time.Millisecond) {
		if other, err = store.OpenPostgres(context.Background(), url.(string)); err != nil && time.Now().After(deadline) {
			t.Fatalf("take the database: %v", err) // the first server was quicker every time
		}
	}
	defer other.Close()
	select {
	case <-a.exited:
	case <-time.After(15 * time.Second):
		t.Fatalf("vws serve goes on without its database's lock:\n%s", a.Logs())
	}
	if code := a.cmd.ProcessState.ExitCode(); code != 1 || !strings.Contains(a.Logs(), "another vws server took the database") {
		t.Fatalf("vws serve exited %d:\n%s", code, a.Logs())
	}
}

// A lab moves to PostgreSQL: its server stopped, `vws database copy` takes its
// records, and a server on the same data directory with --database goes on where the
// other stopped: the workspace, its image and manifest, and the audit trail.
func TestCopyALabToPostgres(t *testing.T) {
	if testing.Short() {
		t.Skip("starts real vws processes with libvirt (make test)")
	}
	storetest.Server(t) // or a skip
	lab := StartMgrServer(t, MgrServerOptions{HostName: "lab", SQLite: true})
	ImportGuest(t, lab)
	w := CreateWorkspace(t, lab, TickerDescription(t))
	name := WSProps(t, w, "name")["name"]
	u, _ := neturl.Parse(lab.URL)
	lab.Kill()

	db := testDatabase(t)
	r := runVWS(t, nil, "database", "copy", "--data", lab.Dir, "--to", db)
	if r.code != 0 || !strings.Contains(r.stdout, "audit chain intact in PostgreSQL") {
		t.Fatalf("vws database copy: exit %d\n%s%s", r.code, r.stdout, r.stderr)
	}
	s := StartMgrServer(t, MgrServerOptions{Dir: lab.Dir, HostName: "lab", Database: db, Args: []string{"--listen", u.Host}})
	if got := WSProps(t, w, "name")["name"]; got != name {
		t.Fatalf("the workspace after the move: name %q, want %q", got, name)
	}
	s.MustCLI(t, "deploy", w.EPRFile, "--host", s.URL)
	WantWSProps(t, w, "deployment", "deployed")
	s.MustCLI(t, "undeploy", w.EPRFile)
	WantWSProps(t, w, "deployment", "in-repository")
	if r := runVWS(t, nil, "audit", "--database", db, "--verify"); r.code != 0 {
		t.Fatalf("vws audit --verify on PostgreSQL: exit %d\n%s%s", r.code, r.stdout, r.stderr)
	}
	s.MustCLI(t, "destroy", w.EPRFile)
}

// A database restart (every session of the server cut) costs no request: writes go
// on at once, and the server holds its database again within seconds.
func TestServeRidesOutADatabaseRestart(t *testing.T) {
	if testing.Short() {
		t.Skip("starts real vws processes (make test)")
	}
	storetest.Server(t) // or a skip
	a := StartMgrServer(t, MgrServerOptions{HostName: "restart"})
	ImportGuest(t, a)
	w := CreateWorkspace(t, a, TickerDescription(t))
	url, _ := dirDatabases.Load(a.Dir)
	db, err := sql.Open("pgx", url.(string))
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	cut := storetest.LockHolder(t, db)
	if _, err := db.Exec(`SELECT pg_terminate_backend(pid) FROM pg_stat_activity
		WHERE datname = current_database() AND pid <> pg_backend_pid()`); err != nil {
		t.Fatal(err)
	}
	time.Sleep(50 * time.Millisecond)
	for i := 0; i < 5; i++ { // more than one pooled connection's worth
		a.MustCLI(t, "wsrf", "set-termination-time", "-e", w.EPRFile, fmt.Sprint(3600+i))
	}
	for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(200 * time.Millisecond) {
		if pid := storetest.LockHolder(t, db); pid != 0 && pid != cut {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("the server did not lock its database again")
		}
	}
	select {
	case <-a.exited:
		t.Fatalf("vws serve stopped:\n%s", a.Logs())
	default:
	}
}

// A path with NUL and bytes that are not UTF-8 is answered as any unknown image is,
// and audited (with those bytes replaced): on PostgreSQL, whose text refuses them,
// the audit record failed and the request was refused as server trouble (503).
func TestOddBytesInAPathAreAudited(t *testing.T) {
	s := harness.Start(t)
	resp, err := http.Get(s.URL + "/images/sha256:%00%ff%fe")
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode == http.StatusServiceUnavailable || resp.StatusCode >= 500 {
		t.Fatalf("GET an image path with odd bytes: %s: %s", resp.Status, body)
	}
	es, err := audit.New(s.DB(), nil).Query(context.Background(), audit.Filter{Resource: "/images/sha256:\uFFFD\uFFFD"})
	if err != nil || len(es) != 1 || es[0].Decision != "allowed" {
		t.Fatalf("the audit trail has %+v (%v)", es, err)
	}
	if n, err := audit.New(s.DB(), nil).Verify(context.Background()); err != nil || n == 0 {
		t.Fatalf("verify: %d, %v", n, err)
	}
}
