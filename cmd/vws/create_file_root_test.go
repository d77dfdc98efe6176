package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestCreateNamesTheDescriptionsNamespace: a description file whose root is not
// vw:virtualWorkspace in the workspace namespace (no namespace declared, a prefix left
// undeclared, another element) is refused before anything is sent, saying what the
// root is and which namespace to declare. The Factory's fault ("{}virtualWorkspace is
// not an element of Create; send vw:virtualWorkspace") named neither.
func TestCreateNamesTheDescriptionsNamespace(t *testing.T) {
	dir := t.TempDir()
	for _, c := range []struct{ name, content, says string }{
		{"no namespace", `<virtualWorkspace><category>vm</category></virtualWorkspace>`, "in no namespace"},
		{"undeclared prefix", `<vw:virtualWorkspace><vw:category>vm</vw:category></vw:virtualWorkspace>`, `uses prefix "vw", which is not declared`},
		{"another element", `<vw:workspace xmlns:vw="http://vws.dev/ns/2026/workspace"/>`, "{http://vws.dev/ns/2026/workspace}workspace"},
	} {
		path := filepath.Join(dir, strings.ReplaceAll(c.name, " ", "-")+".xml")
		if err := os.WriteFile(path, []byte(c.content), 0o644); err != nil {
			t.Fatal(err)
		}
		err := runCreate(t, "-f", path)
		if err == nil || !strings.Contains(err.Error(), c.says) || !strings.Contains(err.Error(), `xmlns:vw="http://vws.dev/ns/2026/workspace"`) ||
			!strings.Contains(err.Error(), "-f "+path+" is not a workspace description") {
			t.Errorf("%s: %v", c.name, err)
		}
	}
	// A default namespace is as good as a prefix: the command goes on to call the
	// (absent) server.
	path := filepath.Join(dir, "default.xml")
	if err := os.WriteFile(path, []byte(`<virtualWorkspace xmlns="http://vws.dev/ns/2026/workspace"><category>vm</category></virtualWorkspace>`), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := runCreate(t, "-f", path); err == nil || !strings.Contains(err.Error(), "cannot reach vws") {
		t.Errorf("a description in the default namespace: %v, want the call to the absent server to fail", err)
	}
}
