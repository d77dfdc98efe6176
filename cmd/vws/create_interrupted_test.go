package main

import (
	"context"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/beevik/etree"
)

// TestCreateInterruptedSaysHowToFindOut: Ctrl-C while the Factory (or, for a clone,
// the workspace) has not answered may still leave a new workspace, whose key the
// user never saw. They are told where to look for it: vws list, by the --name they
// gave, and that -o's file was not written.
func TestCreateInterruptedSaysHowToFindOut(t *testing.T) {
	for _, tc := range []struct {
		what string
		args []string
		says []string
	}{
		{"create named", []string{"create", "--image", "debian", "--name", "mine"}, []string{"create", "vws list", `"mine"`, "not written"}},
		{"create unnamed", []string{"create", "--image", "debian"}, []string{"create", "vws list", "generated name", "not written"}},
		{"clone named", []string{"clone", "ws-src", "--name", "copy"}, []string{"clone", "vws list", `"copy"`, "not written"}},
	} {
		t.Run(tc.what, func(t *testing.T) {
			ctx, cancel := context.WithCancel(context.Background())
			defer cancel()
			svc := &fakeSOAP{handle: func(op string, p *etree.Element) (*etree.Element, string) {
				cancel() // the user's Ctrl-C while the service works
				time.Sleep(50 * time.Millisecond)
				return nil, "too late"
			}}
			hs := httptest.NewServer(svc)
			defer hs.Close()
			out := filepath.Join(t.TempDir(), "ws.xml")
			r := vwsRun(t, ctx, append(tc.args, "--url", hs.URL, "-o", out)...)
			if r.code != exitInterrupted {
				t.Fatalf("want exit 130, got exit %d\nstdout: %q\nstderr: %q", r.code, r.stdout, r.stderr)
			}
			for _, want := range append(tc.says, out) {
				if !strings.Contains(r.stderr, want) {
					t.Errorf("stderr does not say %q\nstderr: %q", want, r.stderr)
				}
			}
		})
	}
}
