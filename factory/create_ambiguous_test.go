package factory

import (
	"errors"
	"testing"
	"time"

	"github.com/vws-grid/vws/internal/errdefs"
)

// TestCreateAmbiguousImageNamesTheElement: a description that several pool images
// fit is a WorkspaceMetadataFault, and that fault carries the ElementPath of the
// description's element at fault, which vws-faults.xsd requires (at least one) and
// PROTOCOL.md promises; without it the fault detail is invalid against the schema
// the WSDL declares.
func TestCreateAmbiguousImageNamesTheElement(t *testing.T) {
	now := time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)
	reg := &recordingRegistry{images: poolOfTwo()} // debian-12 and centos-7, both linux
	_, err := runCreate(t, reg, now, `<vw:virtualWorkspace><vw:category>vm</vw:category>
		<sw:software><sw:os><sw:family>linux</sw:family></sw:os></sw:software></vw:virtualWorkspace>`)
	if !errors.Is(err, errdefs.ErrMetadata) {
		t.Fatalf("a description two images fit: %v, want a WorkspaceMetadataFault", err)
	}
	var me *errdefs.MetadataError
	if !errors.As(err, &me) || me.Path == "" {
		t.Errorf("the fault names no element of the description (no ElementPath): %v", err)
	}
}
