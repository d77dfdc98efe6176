package factory

import (
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/vws-grid/vws/internal/errdefs"
)

// TestCreateRefusesHardwareNoManagerDefines: the schema allows up to 512 CPUs, 4 TiB
// of RAM and seven architectures, but a manager defines at most 256 CPUs and 1 TiB
// for x86_64, i686 and aarch64 guests (hostfit), whatever its host: a workspace asking
// for more could never be deployed, yet would count against its owner's quota. Create
// refuses it, naming the element, and registers nothing.
func TestCreateRefusesHardwareNoManagerDefines(t *testing.T) {
	now := time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)
	for _, c := range []struct{ name, ram, cpu, path string }{
		{"512 CPUs", `<hw:size>256</hw:size>`, `<hw:count>512</hw:count>`, "/vw:virtualWorkspace/hw:hardware/hw:CPU/hw:count"},
		{"4 TiB of RAM", `<hw:size>4194304</hw:size>`, `<hw:count>1</hw:count>`, "/vw:virtualWorkspace/hw:hardware/hw:RAM"},
		{"at least 2 TiB of RAM", `<hw:size>4194304</hw:size><hw:minimum>2097152</hw:minimum>`, `<hw:count>1</hw:count>`, "/vw:virtualWorkspace/hw:hardware/hw:RAM"},
		{"an s390x guest", `<hw:size>256</hw:size>`, `<hw:count>1</hw:count><hw:architecture>s390x</hw:architecture>`, "/vw:virtualWorkspace/hw:hardware/hw:CPU/hw:architecture"},
	} {
		reg := &recordingRegistry{images: poolOfTwo()}
		_, err := runCreate(t, reg, now, `<vw:virtualWorkspace><vw:category>vm</vw:category>
			<hw:hardware><hw:RAM>`+c.ram+`</hw:RAM><hw:CPU>`+c.cpu+`</hw:CPU></hw:hardware>
			<sw:software><sw:image><sw:name>debian-12</sw:name></sw:image></sw:software></vw:virtualWorkspace>`)
		var me *errdefs.MetadataError
		if !errors.As(err, &me) || me.Path != c.path || errdefs.Advice(err) == "" {
			t.Errorf("%s: want a WorkspaceMetadataFault at %s with advice, got %v", c.name, c.path, err)
		}
		if reg.got != nil {
			t.Errorf("%s: registered a workspace no manager can deploy", c.name)
		}
	}
	// At the managers' limits, or above the size with a minimum within them, it is made.
	for _, hw := range []string{
		`<hw:RAM><hw:size>1048576</hw:size></hw:RAM><hw:CPU><hw:count>256</hw:count><hw:architecture>aarch64</hw:architecture></hw:CPU>`,
		`<hw:RAM><hw:size>4194304</hw:size><hw:minimum>1024</hw:minimum></hw:RAM><hw:CPU><hw:count>1</hw:count></hw:CPU>`,
	} {
		pool := poolOfTwo()
		pool[0].Arch = "aarch64" // the image an aarch64 guest boots
		reg := &recordingRegistry{images: pool}
		if _, err := runCreate(t, reg, now, `<vw:virtualWorkspace><vw:category>vm</vw:category><hw:hardware>`+hw+`</hw:hardware>
			<sw:software><sw:image><sw:name>debian-12</sw:name></sw:image></sw:software></vw:virtualWorkspace>`); err != nil || reg.got == nil {
			t.Errorf("%s: %v", strings.Join(strings.Fields(hw), ""), err)
		}
	}
}
