// Package faulttest checks the faults the container sends against the vws fault
// schemas (schema/<dialect>/vws-faults.xsd) with xmllint, for the tests of the
// services whose errors become those faults.
package faulttest

import (
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"testing"

	"github.com/beevik/etree"

	"github.com/vws-grid/vws/internal/container"
	"github.com/vws-grid/vws/internal/dialect"
	"github.com/vws-grid/vws/schema"
)

// lintInvalid is xmllint's exit code for a document the schema does not accept
// (libxml2's XMLLINT_ERR_VALID).
const lintInvalid = 3

// ValidDetail returns the fault detail the container sends for err in dialect d, and
// fails the test unless xmllint finds it valid against that dialect's
// vws-faults.xsd. Without xmllint the test is skipped: the schema is the contract,
// and nothing short of a validator checks it.
func ValidDetail(t testing.TB, err error, d *dialect.Dialect) *etree.Element {
	t.Helper()
	lint, lerr := exec.LookPath("xmllint")
	if lerr != nil {
		t.Skip("xmllint not found (Debian: apt-get install libxml2-utils); skipping the fault's schema validation")
	}
	// The embedded copy, whole (the dialect's schemas import ../xml/xml.xsd), so that
	// the test reads the schemas vws is built with wherever it runs from.
	dir := t.TempDir()
	if err := os.CopyFS(dir, schema.FS); err != nil {
		t.Fatal(err)
	}
	xsd := filepath.Join(dir, d.Name, "vws-faults.xsd")
	el := container.FaultDetail(err, d)
	doc := filepath.Join(dir, "fault.xml")
	if err := etree.NewDocumentWithRoot(el.Copy()).WriteToFile(doc); err != nil {
		t.Fatal(err)
	}
	out, runErr := exec.Command(lint, "--noout", "--nonet", "--schema", xsd, doc).CombinedOutput()
	var exit *exec.ExitError
	switch {
	case errors.As(runErr, &exit) && exit.ExitCode() == lintInvalid:
		text, _ := os.ReadFile(doc)
		t.Errorf("the %s for %q is not valid against %s/vws-faults.xsd:\n%s%s", el.Tag, err, d.Name, out, text)
	case runErr != nil:
		t.Fatalf("xmllint --schema %s: %v (not a validation result):\n%s", xsd, runErr, out)
	}
	return el
}

// States returns the CurrentState and RequestedState of a WorkspaceStateFault detail.
func States(detail *etree.Element) (current, requested string) {
	for _, c := range detail.ChildElements() {
		if c.NamespaceURI() != container.FaultNS {
			continue
		}
		switch c.Tag {
		case "CurrentState":
			current = c.Text()
		case "RequestedState":
			requested = c.Text()
		}
	}
	return current, requested
}
