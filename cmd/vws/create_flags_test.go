package main

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// runCreate runs vws create with args against a server that is not there: every case
// here must be refused before anything is sent.
func runCreate(t *testing.T, args ...string) error {
	t.Helper()
	cmd := newCreateCommand()
	var out bytes.Buffer
	cmd.SetOut(&out)
	cmd.SetErr(&out)
	cmd.SetArgs(append(args, "--url", "http://127.0.0.1:9"))
	cmd.SetContext(context.Background())
	return cmd.Execute()
}

// TestCreateRefusesBeforeSending: an -o file that exists (without --force), or that
// is the description being read (even with --force), a -f description with --memory
// or --cpus (which only --image uses), and sizes the schema does not allow are refused
// in the flags' own terms, before anything is sent or written.
func TestCreateRefusesBeforeSending(t *testing.T) {
	dir := t.TempDir()
	desc := filepath.Join(dir, "desc.xml")
	epr := filepath.Join(dir, "ws.xml")
	for path, content := range map[string]string{desc: `<vw:virtualWorkspace xmlns:vw="http://vws.dev/ns/2026/workspace"/>`, epr: "<wsa:EndpointReference/>"} {
		if err := os.WriteFile(path, []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	for _, tc := range []struct {
		args []string
		says string
	}{
		{[]string{"--image", "deb", "-o", epr}, "exists (the EPR of another workspace?): give another file name, or --force"},
		{[]string{"-f", desc, "-o", desc, "--force"}, "is the file this command reads"},
		{[]string{"-f", desc, "--memory", "512"}, "--memory and --cpus go with --image"},
		{[]string{"--image", "deb", "--memory", "0"}, "--memory 0: give the memory in MiB, from 16"},
		{[]string{"--image", "deb", "--cpus", "-1"}, "--cpus -1: give from 1 to 512"},
		{[]string{"--image", "deb", "--lifetime", "1000000h"}, "--lifetime 1000000h0m0s is more than 100 years"},
	} {
		err := runCreate(t, tc.args...)
		if err == nil || !strings.Contains(err.Error(), tc.says) {
			t.Errorf("vws create %s: %v, want a refusal saying %q", strings.Join(tc.args, " "), err, tc.says)
		}
	}
	for path, was := range map[string]string{desc: `<vw:virtualWorkspace xmlns:vw="http://vws.dev/ns/2026/workspace"/>`, epr: "<wsa:EndpointReference/>"} {
		if got, _ := os.ReadFile(path); string(got) != was {
			t.Errorf("%s was changed: %q", path, got)
		}
	}
	if ents, _ := os.ReadDir(dir); len(ents) != 2 {
		t.Errorf("files left behind: %d entries in %s", len(ents), dir)
	}
	// With --force an existing file other than the input may be replaced: the
	// command goes on to call the (absent) server.
	if err := runCreate(t, "--image", "deb", "-o", epr, "--force"); err == nil || strings.Contains(err.Error(), "exists") {
		t.Errorf("--force: %v, want the call to the absent server to fail", err)
	}
}

// TestCloneRefusesToWriteOverItsSource: vws clone ws.xml -o ws.xml would replace the
// only handle on the source with the clone's; refused, even with --force.
func TestCloneRefusesToWriteOverItsSource(t *testing.T) {
	src := filepath.Join(t.TempDir(), "ws.xml")
	const eprXML = `<wsa:EndpointReference xmlns:wsa="http://www.w3.org/2005/08/addressing"><wsa:Address>http://127.0.0.1:9/wsrf/services/WorkspaceService</wsa:Address>` +
		`<wsa:ReferenceParameters><vw:WorkspaceKey xmlns:vw="http://vws.dev/ns/2026/workspace">a23db528</vw:WorkspaceKey></wsa:ReferenceParameters></wsa:EndpointReference>`
	if err := os.WriteFile(src, []byte(eprXML), 0o644); err != nil {
		t.Fatal(err)
	}
	cmd := newCloneCommand()
	var out bytes.Buffer
	cmd.SetOut(&out)
	cmd.SetErr(&out)
	cmd.SetArgs([]string{src, "-o", src, "--force"})
	cmd.SetContext(context.Background())
	if err := cmd.Execute(); err == nil || !strings.Contains(err.Error(), "is the file this command reads") {
		t.Fatalf("vws clone ws.xml -o ws.xml --force: %v", err)
	}
	if got, _ := os.ReadFile(src); string(got) != eprXML {
		t.Fatalf("the source's EPR file was changed: %s", got)
	}
}
