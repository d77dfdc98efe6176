package repository

import (
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/vws-grid/vws/internal/errdefs"
)

// TestNameOfTheSchemasLengthIsTaken: vw:WorkspaceNameType (fac:Create/fac:Name,
// Clone's name) allows 1 to 64 characters, so a schema-valid 64-character name must
// make a workspace; one of 65 is refused, nothing made.
func TestNameOfTheSchemasLengthIsTaken(t *testing.T) {
	f := newFixture(t)
	name := "a" + strings.Repeat("b", 63)
	if _, err := f.createFor(alice, name, 30*time.Minute, 0); err != nil {
		t.Fatalf("a %d-character name, which vw:WorkspaceNameType allows: %v", len(name), err)
	}
	long := name + "c"
	if _, err := f.createFor(alice, long, 30*time.Minute, 0); !errors.Is(err, errdefs.ErrMetadata) || !strings.Contains(errdefs.Advice(err), "1–64") {
		t.Fatalf("a %d-character name: %v (advice %q)", len(long), err, errdefs.Advice(err))
	}
}
