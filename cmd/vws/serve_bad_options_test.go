package main

import (
	"context"
	"errors"
	"io/fs"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// wantServeRefused runs vws serve with args on a data directory not made yet and
// fails unless the start is refused with one line mentioning each of mentions, and
// the data directory is still not there: no directory, lock file or database made.
func wantServeRefused(t *testing.T, args []string, mentions ...string) cliRun {
	t.Helper()
	data := filepath.Join(t.TempDir(), "data")
	all := append([]string{"serve", "--insecure", "--listen", "127.0.0.1:0", "--libvirt-uri", "test:///default", "--data", data}, args...)
	// A start that is not refused serves until this ends.
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	r := vwsRun(t, ctx, all...)
	wantError(t, r, mentions...)
	if _, err := os.Stat(data); !errors.Is(err, fs.ErrNotExist) {
		var names []string
		_ = filepath.WalkDir(data, func(p string, _ fs.DirEntry, _ error) error {
			names = append(names, p)
			return nil
		})
		t.Errorf("vws serve %s was refused, yet made %s", strings.Join(args, " "), strings.Join(names, ", "))
	}
	return r
}

// A manager option only its flags decide on fails the start before the data
// directory is made or written.
func TestServeBadManagerOptionLeavesTheDataDirectoryAlone(t *testing.T) {
	for _, c := range []struct {
		args     []string
		mentions []string
	}{
		{[]string{"--repository", "notaurl"}, []string{"--repository", "notaurl"}},
		{[]string{"--role", "manager"}, []string{"--repository"}},
		{[]string{"--role", "manager", "--repository", "http://repo.example.org:8080", "--host-name", "my host"}, []string{"--host-name", "my host"}},
	} {
		t.Run(strings.Join(c.args, " "), func(t *testing.T) { _ = wantServeRefused(t, c.args, c.mentions...) })
	}
}

// A --database that is no PostgreSQL URL, or names one that cannot be reached, fails
// the start before the data directory is made or locked, with one line that names
// the flag, the database without its password, and why.
func TestServeBadDatabaseLeavesTheDataDirectoryAlone(t *testing.T) {
	_ = wantServeRefused(t, []string{"--database", "vws.db"}, "--database", "postgres://")

	// A port nothing listens on.
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	r := wantServeRefused(t, []string{"--database", "postgres://vws:s3cret@" + addr + "/vws"},
		"--database postgres://vws:xxxxx@"+addr+"/vws", "could not be reached", "connection refused")
	if strings.Contains(r.stderr, "s3cret") {
		t.Errorf("the refusal shows the password: %s", r.stderr)
	}
}

// A --data that is a file is refused as that, and the file is left as it was.
func TestServeDataThatIsAFile(t *testing.T) {
	file := filepath.Join(t.TempDir(), "data")
	if err := os.WriteFile(file, []byte("not a directory\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	wantError(t, vwsRun(t, ctx, "serve", "--insecure", "--role", "factory,repository", "--listen", "127.0.0.1:0", "--data", file),
		"--data "+file+" is not a directory")
	if got, err := os.ReadFile(file); err != nil || string(got) != "not a directory\n" {
		t.Errorf("the refused start changed --data's file: %q, %v", got, err)
	}
}

// A missing --policy or --grid-mapfile is told by its flag, not by the Go error.
func TestServeMissingPolicyFileNamesTheFlag(t *testing.T) {
	for _, flag := range []string{"--policy", "--grid-mapfile"} {
		t.Run(flag, func(t *testing.T) {
			missing := filepath.Join(t.TempDir(), "no-such-file")
			_ = wantServeRefused(t, []string{flag, missing}, flag+" "+missing, "does not exist")
		})
	}
}

// A --policy or --grid-mapfile that does not parse is refused by its flag, with the
// line at fault and what is wrong with it, before the data directory is touched.
func TestServeUnparsablePolicyFileNamesTheFlagAndLine(t *testing.T) {
	for _, c := range []struct {
		flag, text, says string
	}{
		{"--policy", "allow create *\nallow craete *\n", `unknown operation "craete"`},
		{"--grid-mapfile", "\"/O=Grid/CN=Alice\" alice\n\"/O=Grid/CN=Bob\"\n", "no account after the DN"},
	} {
		t.Run(c.flag, func(t *testing.T) {
			file := filepath.Join(t.TempDir(), "rules")
			if err := os.WriteFile(file, []byte(c.text), 0o600); err != nil {
				t.Fatal(err)
			}
			_ = wantServeRefused(t, []string{c.flag, file}, c.flag+" "+file, file+":2:", c.says, "correct")
		})
	}
}
