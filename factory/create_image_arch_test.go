package factory

import (
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/vws-grid/vws/internal/errdefs"
	"github.com/vws-grid/vws/repository/imagepool"
)

// TestCreateRefusesAnImageOfAnotherArchitecture: a description asking for aarch64
// guests that names an x86_64 pool image describes a workspace that boots on no
// host: the manager defines an aarch64 guest and its firmware finds no bootable disk.
// It would count against its owner's quota all the same. Create refuses it, naming
// the architecture, as it refuses an image matched by other metadata; an image of
// the architecture asked for, or of none recorded, is made.
func TestCreateRefusesAnImageOfAnotherArchitecture(t *testing.T) {
	now := time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)
	body := func(arch, ref string) string {
		return `<vw:virtualWorkspace><vw:category>vm</vw:category>
			<hw:hardware><hw:RAM><hw:size>256</hw:size></hw:RAM><hw:CPU><hw:count>1</hw:count><hw:architecture>` + arch + `</hw:architecture></hw:CPU></hw:hardware>
			<sw:software><sw:image>` + ref + `</sw:image></sw:software></vw:virtualWorkspace>`
	}
	for _, ref := range []string{`<sw:name>debian-12</sw:name>`, `<sw:digest>` + poolOfTwo()[0].Digest + `</sw:digest>`} {
		reg := &recordingRegistry{images: poolOfTwo()} // debian-12 is x86_64
		_, err := runCreate(t, reg, now, body("aarch64", ref))
		var me *errdefs.MetadataError
		if !errors.As(err, &me) || me.Path != "/vw:virtualWorkspace/hw:hardware/hw:CPU/hw:architecture" || errdefs.Advice(err) == "" || reg.got != nil {
			t.Errorf("an aarch64 workspace of the x86_64 image %s: err %v, registered %v; want a WorkspaceMetadataFault at hw:architecture with advice, nothing registered", ref, err, reg.got != nil)
		}
	}
	// The kernel a guest loads directly is of an architecture too.
	withKernel := append(poolOfTwo(), imagepool.Image{Name: "vmlinuz-arm", Digest: "sha256:" + strings.Repeat("c", 64), Format: imagepool.FormatRaw, Arch: "aarch64"})
	reg := &recordingRegistry{images: withKernel}
	_, err := runCreate(t, reg, now, strings.Replace(body("x86_64", `<sw:name>debian-12</sw:name>`), "<sw:software>",
		`<sw:software><sw:kernel><sw:image><sw:name>vmlinuz-arm</sw:name></sw:image></sw:kernel>`, 1))
	var me *errdefs.MetadataError
	if !errors.As(err, &me) || !strings.Contains(me.Reason, "kernel image vmlinuz-arm is an aarch64 image") || reg.got != nil {
		t.Errorf("an x86_64 workspace loading an aarch64 kernel: err %v, registered %v; want a WorkspaceMetadataFault naming the kernel image, nothing registered", err, reg.got != nil)
	}
	unknown := poolOfTwo()
	unknown[0].Arch = ""
	for _, c := range []struct {
		what string
		reg  *recordingRegistry
		arch string
	}{{"same architecture", &recordingRegistry{images: poolOfTwo()}, "x86_64"}, {"image of no recorded architecture", &recordingRegistry{images: unknown}, "aarch64"}} {
		if _, err := runCreate(t, c.reg, now, body(c.arch, `<sw:name>debian-12</sw:name>`)); err != nil || c.reg.got == nil {
			t.Errorf("%s: %v", c.what, err)
		}
	}
}

// TestCreateRefusesACommandLineWithoutAKernel: a command line reaches only a kernel
// the hypervisor loads; without one the image's boot loader boots the guest, and the
// workspace's sw:cmdline would be dropped without a word. One with its kernel image is
// created.
func TestCreateRefusesACommandLineWithoutAKernel(t *testing.T) {
	now := time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)
	pool := append(poolOfTwo(), imagepool.Image{Name: "vmlinuz", Digest: "sha256:" + strings.Repeat("c", 64), Format: imagepool.FormatRaw, Arch: "x86_64"})
	body := func(kernel string) string {
		return `<vw:virtualWorkspace><vw:category>vm</vw:category><sw:software><sw:kernel>` + kernel +
			`<sw:cmdline>console=ttyS0 single</sw:cmdline></sw:kernel><sw:image><sw:name>debian-12</sw:name></sw:image></sw:software></vw:virtualWorkspace>`
	}
	reg := &recordingRegistry{images: pool}
	_, err := runCreate(t, reg, now, body(``))
	var me *errdefs.MetadataError
	if !errors.As(err, &me) || me.Path != "/vw:virtualWorkspace/sw:software/sw:kernel/sw:cmdline" || reg.got != nil {
		t.Errorf("a command line without a kernel image: err %v, registered %v; want a WorkspaceMetadataFault at sw:cmdline, nothing registered", err, reg.got != nil)
	}
	reg = &recordingRegistry{images: pool}
	if _, err := runCreate(t, reg, now, body(`<sw:image><sw:name>vmlinuz</sw:name></sw:image>`)); err != nil || reg.got == nil {
		t.Errorf("a command line with its kernel image: %v", err)
	}
}
