// Package xsdtest validates what the services send against the contract's schemas
// with xmllint, for tests: a WSDL's inline types, or a schema file.
package xsdtest

import (
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/beevik/etree"

	"github.com/vws-grid/vws/internal/wsa"
)

// TypesSchema extracts the inline xsd:schema of the WSDL at wsdlPath into a
// standalone file whose relative schemaLocations point at the files beside the WSDL,
// and returns its path.
func TypesSchema(t testing.TB, wsdlPath string) string {
	t.Helper()
	wsdlPath, err := filepath.Abs(wsdlPath)
	if err != nil {
		t.Fatal(err)
	}
	doc := etree.NewDocument()
	if err := doc.ReadFromFile(wsdlPath); err != nil {
		t.Fatal(err)
	}
	el := doc.Root().FindElement("types/schema")
	if el == nil {
		t.Fatalf("%s: no wsdl:types/xsd:schema", wsdlPath)
	}
	schema := wsa.Detach(el)
	var walk func(e *etree.Element)
	walk = func(e *etree.Element) {
		if a := e.SelectAttr("schemaLocation"); a != nil && !strings.Contains(a.Value, "://") {
			a.Value = filepath.Join(filepath.Dir(wsdlPath), a.Value)
		}
		for _, c := range e.ChildElements() {
			walk(c)
		}
	}
	walk(schema)
	out := filepath.Join(t.TempDir(), strings.TrimSuffix(filepath.Base(wsdlPath), ".wsdl")+".xsd")
	if err := etree.NewDocumentWithRoot(schema).WriteToFile(out); err != nil {
		t.Fatal(err)
	}
	return out
}

// Validate fails the test unless xmllint finds el, as a standalone document, valid
// against the schema file xsd. Without xmllint the test is skipped: nothing short of
// a validator checks the contract.
func Validate(t testing.TB, xsd string, el *etree.Element) {
	t.Helper()
	xl, err := exec.LookPath("xmllint")
	if err != nil {
		t.Skip("xmllint not found (Debian: libxml2-utils); test/setup.sh installs it")
	}
	docPath := filepath.Join(t.TempDir(), "doc.xml")
	if err := etree.NewDocumentWithRoot(wsa.Detach(el)).WriteToFile(docPath); err != nil {
		t.Fatal(err)
	}
	out, err := exec.Command(xl, "--noout", "--nonet", "--schema", xsd, docPath).CombinedOutput()
	var ee *exec.ExitError
	if errors.As(err, &ee) {
		data, _ := os.ReadFile(docPath)
		t.Fatalf("does not validate against %s:\n%s\n%s", filepath.Base(xsd), out, data)
	} else if err != nil {
		t.Fatal(err)
	}
}
