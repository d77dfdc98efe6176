package schema_test

import (
	"encoding/xml"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/vws-grid/vws/schema"
)

// xmllint exit codes (libxml2): 0 valid, 1 not well-formed, 3 invalid, 5 schema failed
// to compile.
const (
	lintValid   = 0
	lintInvalid = 3
)

func xmllint(t *testing.T) string {
	t.Helper()
	p, err := exec.LookPath("xmllint")
	if err != nil {
		t.Skip("xmllint not found (Debian: apt-get install libxml2-utils); skipping XML Schema validation")
	}
	return p
}

// validate runs xmllint --schema and returns its exit code and output. Any exit code
// other than "valid" or "invalid" (a parse error, a schema that does not compile) fails
// the test.
func validate(t *testing.T, lint, xsd, doc string) (int, string) {
	t.Helper()
	out, err := exec.Command(lint, "--noout", "--nonet", "--schema", xsd, doc).CombinedOutput()
	code := 0
	var ee *exec.ExitError
	if errors.As(err, &ee) {
		code = ee.ExitCode()
	} else if err != nil {
		t.Fatalf("running xmllint: %v", err)
	}
	if code != lintValid && code != lintInvalid {
		t.Fatalf("xmllint --schema %s %s: exit %d (not a validation result):\n%s", xsd, doc, code, out)
	}
	return code, string(out)
}

func files(t *testing.T, dir, ext string) []string {
	t.Helper()
	matches, err := filepath.Glob(filepath.Join(dir, "*"+ext))
	if err != nil {
		t.Fatal(err)
	}
	if len(matches) == 0 {
		t.Fatalf("no %s files in %s", ext, dir)
	}
	return matches
}

func allSchemaFiles(t *testing.T) []string {
	t.Helper()
	var out []string
	for _, dir := range []string{"vws", "gt4", "wsrf12", "xml"} {
		out = append(out, files(t, dir, ".xsd")...)
	}
	return out
}

func wellFormed(path string) error {
	f, err := os.Open(path)
	if err != nil {
		return err
	}
	defer f.Close()
	d := xml.NewDecoder(f)
	for {
		if _, err := d.Token(); err == io.EOF {
			return nil
		} else if err != nil {
			return err
		}
	}
}

func TestWellFormed(t *testing.T) {
	var paths []string
	paths = append(paths, allSchemaFiles(t)...)
	err := filepath.WalkDir("samples", func(p string, d fs.DirEntry, err error) error {
		if err == nil && !d.IsDir() && strings.HasSuffix(p, ".xml") {
			paths = append(paths, p)
		}
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range paths {
		if err := wellFormed(p); err != nil {
			t.Errorf("%s is not well-formed: %v", p, err)
		}
	}
}

// TestSchemaLocations checks that every xs:import and xs:include names a relative
// schemaLocation that exists and stays inside this directory, so that the server can
// serve every schema from FS and rewrite the locations to its own URLs.
func TestSchemaLocations(t *testing.T) {
	root, err := filepath.Abs(".")
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range allSchemaFiles(t) {
		locs, err := schemaLocations(p)
		if err != nil {
			t.Fatalf("%s: %v", p, err)
		}
		for _, loc := range locs {
			if loc.where == "" {
				t.Errorf("%s: %s of %q has no schemaLocation", p, loc.kind, loc.ns)
				continue
			}
			if strings.Contains(loc.where, ":") || filepath.IsAbs(loc.where) {
				t.Errorf("%s: schemaLocation %q is not a relative path", p, loc.where)
				continue
			}
			target, err := filepath.Abs(filepath.Join(filepath.Dir(p), loc.where))
			if err != nil {
				t.Fatal(err)
			}
			if rel, err := filepath.Rel(root, target); err != nil || strings.HasPrefix(rel, "..") {
				t.Errorf("%s: schemaLocation %q leaves the schema directory", p, loc.where)
			}
			if _, err := os.Stat(target); err != nil {
				t.Errorf("%s: schemaLocation %q does not resolve: %v", p, loc.where, err)
			}
		}
	}
}

type schemaRef struct{ kind, ns, where string }

func schemaLocations(path string) ([]schemaRef, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	var refs []schemaRef
	d := xml.NewDecoder(f)
	for {
		tok, err := d.Token()
		if err == io.EOF {
			return refs, nil
		}
		if err != nil {
			return nil, err
		}
		se, ok := tok.(xml.StartElement)
		if !ok || se.Name.Space != "http://www.w3.org/2001/XMLSchema" {
			continue
		}
		if se.Name.Local != "import" && se.Name.Local != "include" && se.Name.Local != "redefine" {
			continue
		}
		r := schemaRef{kind: se.Name.Local}
		for _, a := range se.Attr {
			switch a.Name.Local {
			case "namespace":
				r.ns = a.Value
			case "schemaLocation":
				r.where = a.Value
			}
		}
		refs = append(refs, r)
	}
}

// TestSchemasCompile compiles every schema with libxml2: a document no schema declares
// must come back "invalid", not "schema failed to compile".
func TestSchemasCompile(t *testing.T) {
	lint := xmllint(t)
	probe := filepath.Join(t.TempDir(), "probe.xml")
	if err := os.WriteFile(probe, []byte(`<probe xmlns="urn:vws:test:probe"/>`), 0o644); err != nil {
		t.Fatal(err)
	}
	for _, xsd := range allSchemaFiles(t) {
		if code, out := validate(t, lint, xsd, probe); code != lintInvalid {
			t.Errorf("%s: unexpected result %d for the probe document:\n%s", xsd, code, out)
		}
	}
}

func TestDescriptionSamples(t *testing.T) {
	lint := xmllint(t)
	xsd := filepath.Join("vws", "workspace.xsd")
	for _, doc := range files(t, "samples", ".xml") {
		if code, out := validate(t, lint, xsd, doc); code != lintValid {
			t.Errorf("%s should be a valid workspace description:\n%s", doc, out)
		}
	}
	for _, doc := range files(t, filepath.Join("samples", "invalid"), ".xml") {
		if code, _ := validate(t, lint, xsd, doc); code != lintInvalid {
			t.Errorf("%s should fail validation against %s, but passed", doc, xsd)
		}
	}
}

// composite writes a schema importing each (namespace, location) pair, so that a sample
// whose root is in any of those namespaces can be validated with every schema in scope.
func composite(t *testing.T, imports [][2]string) string {
	t.Helper()
	var b strings.Builder
	b.WriteString(`<xs:schema xmlns:xs="http://www.w3.org/2001/XMLSchema" targetNamespace="urn:vws:test:composite">` + "\n")
	for _, imp := range imports {
		abs, err := filepath.Abs(imp[1])
		if err != nil {
			t.Fatal(err)
		}
		fmt.Fprintf(&b, "  <xs:import namespace=%q schemaLocation=%q/>\n", imp[0], abs)
	}
	b.WriteString("</xs:schema>\n")
	p := filepath.Join(t.TempDir(), "composite.xsd")
	if err := os.WriteFile(p, []byte(b.String()), 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}

// vwsImports lists the vws schemas; workspace-service.xsd comes first because it
// includes workspace.xsd, which the others import for the same namespace.
var vwsImports = [][2]string{
	{"http://vws.dev/ns/2026/workspace", "vws/workspace-service.xsd"},
	{"http://vws.dev/ns/2026/factory", "vws/factory.xsd"},
	{"http://vws.dev/ns/2026/repository", "vws/repository.xsd"},
	{"http://vws.dev/ns/2026/manager", "vws/manager.xsd"},
}

var dialectImports = map[string][][2]string{
	"gt4": {
		{"http://schemas.xmlsoap.org/ws/2004/03/addressing", "gt4/ws-addr-2004-03.xsd"},
		{"http://docs.oasis-open.org/wsrf/2004/06/wsrf-WS-BaseFaults-1.2-draft-01.xsd", "gt4/WS-BaseFaults-1.2-draft-01.xsd"},
		{"http://docs.oasis-open.org/wsrf/2004/06/wsrf-WS-ResourceProperties-1.2-draft-01.xsd", "gt4/WS-ResourceProperties-1.2-draft-01.xsd"},
		{"http://docs.oasis-open.org/wsrf/2004/06/wsrf-WS-ResourceLifetime-1.2-draft-01.xsd", "gt4/WS-ResourceLifetime-1.2-draft-01.xsd"},
		{"http://docs.oasis-open.org/wsn/2004/06/wsn-WS-BaseNotification-1.2-draft-01.xsd", "gt4/WS-BaseNotification-1.2-draft-01.xsd"},
		{"http://vws.dev/ns/2026/faults", "gt4/vws-faults.xsd"},
	},
	"wsrf12": {
		{"http://www.w3.org/2005/08/addressing", "wsrf12/ws-addr.xsd"},
		{"http://docs.oasis-open.org/wsrf/bf-2", "wsrf12/bf-2.xsd"},
		{"http://docs.oasis-open.org/wsrf/r-2", "wsrf12/r-2.xsd"},
		{"http://docs.oasis-open.org/wsrf/rp-2", "wsrf12/rp-2.xsd"},
		{"http://docs.oasis-open.org/wsrf/rl-2", "wsrf12/rl-2.xsd"},
		{"http://docs.oasis-open.org/wsn/b-2", "wsrf12/b-2.xsd"},
		{"http://vws.dev/ns/2026/faults", "wsrf12/vws-faults.xsd"},
	},
}

func TestMessageSamples(t *testing.T) {
	lint := xmllint(t)
	xsd := composite(t, vwsImports)
	for _, doc := range files(t, filepath.Join("samples", "messages"), ".xml") {
		if code, out := validate(t, lint, xsd, doc); code != lintValid {
			t.Errorf("%s should be a valid vws message:\n%s", doc, out)
		}
	}
}

// TestFaultSamples checks fault details of the shape the server emits against each
// dialect's schemas, and that shapes the specifications do not allow are refused.
func TestFaultSamples(t *testing.T) {
	lint := xmllint(t)
	for _, dialect := range []string{"gt4", "wsrf12"} {
		t.Run(dialect, func(t *testing.T) {
			xsd := composite(t, append(slices.Clone(vwsImports), dialectImports[dialect]...))
			for _, doc := range files(t, filepath.Join("samples", "faults", dialect), ".xml") {
				if code, out := validate(t, lint, xsd, doc); code != lintValid {
					t.Errorf("%s should be a valid %s fault detail:\n%s", doc, dialect, out)
				}
			}
			for _, doc := range files(t, filepath.Join("samples", "faults", "invalid", dialect), ".xml") {
				if code, _ := validate(t, lint, xsd, doc); code != lintInvalid {
					t.Errorf("%s should not be a valid %s fault detail, but passed", doc, dialect)
				}
			}
		})
	}
}

// TestNotificationSamples checks the subscription manager's messages and the
// notification payloads (WS-BaseNotification, WS-ResourceProperties value changes,
// WS-ResourceLifetime termination) against each dialect's schemas, and that the shapes
// of the other dialect, or of neither, are refused.
func TestNotificationSamples(t *testing.T) {
	lint := xmllint(t)
	for _, dialect := range []string{"gt4", "wsrf12"} {
		t.Run(dialect, func(t *testing.T) {
			imports := append(slices.Clone(vwsImports), dialectImports[dialect]...)
			imports = append(imports, [2]string{"http://vws.dev/ns/2026/notification", "vws/notification.xsd"})
			xsd := composite(t, imports)
			for _, doc := range files(t, filepath.Join("samples", "notification", dialect), ".xml") {
				if code, out := validate(t, lint, xsd, doc); code != lintValid {
					t.Errorf("%s should be a valid %s message:\n%s", doc, dialect, out)
				}
			}
			for _, doc := range files(t, filepath.Join("samples", "notification", "invalid", dialect), ".xml") {
				if code, _ := validate(t, lint, xsd, doc); code != lintInvalid {
					t.Errorf("%s should not be a valid %s message, but passed", doc, dialect)
				}
			}
		})
	}
}

// TestFS checks that FS embeds every schema under the paths the runtime uses.
func TestFS(t *testing.T) {
	for _, p := range allSchemaFiles(t) {
		name := filepath.ToSlash(p)
		disk, err := os.ReadFile(p)
		if err != nil {
			t.Fatal(err)
		}
		emb, err := fs.ReadFile(schema.FS, name)
		if err != nil {
			t.Errorf("FS lacks %s: %v", name, err)
			continue
		}
		if string(emb) != string(disk) {
			t.Errorf("FS copy of %s differs from the file", name)
		}
	}
	for _, name := range []string{"vws/workspace.xsd", "gt4/vws-faults.xsd", "wsrf12/vws-faults.xsd", "wsrf12/bf-2.xsd"} {
		if _, err := fs.Stat(schema.FS, name); err != nil {
			t.Errorf("FS lacks %s: %v", name, err)
		}
	}
}
