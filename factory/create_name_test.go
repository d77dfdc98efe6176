package factory

import (
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/vws-grid/vws/internal/errdefs"
)

// TestCreateRefusesANameTheSchemaRefuses: fac:Name is a vw:WorkspaceNameType (1 to 64
// characters, [A-Za-z0-9][A-Za-z0-9._-]*, whitespace kept). A Create with a name of
// another shape is refused with a WorkspaceMetadataFault at /fac:Create/fac:Name
// before anything is registered — not given a generated name when empty, not trimmed,
// not left for the Repository to refuse under another path.
func TestCreateRefusesANameTheSchemaRefuses(t *testing.T) {
	now := time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)
	const desc = `<vw:virtualWorkspace><vw:category>vm</vw:category>
		<sw:software><sw:image><sw:name>debian-12</sw:name></sw:image></sw:software></vw:virtualWorkspace>`
	for _, name := range []string{
		`<fac:Name></fac:Name>`, `<fac:Name/>`, `<fac:Name> x </fac:Name>`, `<fac:Name>x&#10;</fac:Name>`,
		`<fac:Name>a b</fac:Name>`, `<fac:Name>-a</fac:Name>`, `<fac:Name>é</fac:Name>`, `<fac:Name>a/b</fac:Name>`,
		`<fac:Name>` + strings.Repeat("a", 65) + `</fac:Name>`, `<fac:Name>a<fac:x/>b</fac:Name>`,
	} {
		reg := &recordingRegistry{images: poolOfTwo()}
		_, err := runCreate(t, reg, now, desc+name)
		var me *errdefs.MetadataError
		if !errors.As(err, &me) || me.Path != "/fac:Create/fac:Name" {
			t.Errorf("%s: want a WorkspaceMetadataFault at /fac:Create/fac:Name, got %v", name, err)
		}
		if reg.got != nil {
			t.Errorf("%s: registered a workspace named %q", name, reg.got.Name)
		}
	}
	for _, name := range []string{"a", "A.b_c-d", "a..b", "9" + strings.Repeat("z", 63)} {
		reg := &recordingRegistry{images: poolOfTwo()}
		if _, err := runCreate(t, reg, now, desc+`<fac:Name>`+name+`</fac:Name>`); err != nil || reg.got == nil || reg.got.Name != name {
			t.Errorf("name %q: err = %v, registration %+v", name, err, reg.got)
		}
	}
}
