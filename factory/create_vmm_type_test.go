package factory

import (
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/vws-grid/vws/internal/describe"
	"github.com/vws-grid/vws/internal/errdefs"
	"github.com/vws-grid/vws/internal/hostfit"
	"github.com/vws-grid/vws/internal/wsa"
)

// TestCreateHonoursTheResourceRequestsVMMType: fac:ResourceRequest/fac:VMMType was
// accepted and dropped, so a workspace asking for kvm was placed on, and deployed by,
// a plain-QEMU (TCG) host. It is now the description's VMM requirement
// (vw:category/@vmm), which placement and Deploy check; a description naming
// another VMM is refused, naming both, and so is a VMMType that is none.
func TestCreateHonoursTheResourceRequestsVMMType(t *testing.T) {
	now := time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)
	body := func(category, vmm string) string {
		return `<vw:virtualWorkspace>` + category +
			`<hw:hardware><hw:RAM><hw:size>256</hw:size></hw:RAM><hw:CPU><hw:count>1</hw:count></hw:CPU></hw:hardware>` +
			`<sw:software><sw:image><sw:name>debian-12</sw:name></sw:image></sw:software></vw:virtualWorkspace>` +
			`<fac:ResourceRequest><fac:PreferredHost>node7</fac:PreferredHost><fac:VMMType>` + vmm + `</fac:VMMType></fac:ResourceRequest>`
	}
	v, err := describe.NewValidator()
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct{ category, vmm string }{
		{`<vw:category>vm</vw:category>`, "kvm"},
		{`<vw:category vmm="kvm">vm</vw:category>`, "kvm"},
	} {
		reg := &recordingRegistry{images: poolOfTwo()}
		if _, err := runCreate(t, reg, now, body(c.category, c.vmm)); err != nil || reg.got == nil {
			t.Fatalf("%s asking for VMMType %s: %v", c.category, c.vmm, err)
		}
		// What the Repository keeps is what placement and the manager read.
		kept, err := v.ValidateElement(wsa.Detach(reg.got.Description))
		if err != nil {
			t.Fatal(err)
		}
		if kept.VMM != "kvm" {
			t.Errorf("%s asking for VMMType kvm registered a description needing VMM %q", c.category, kept.VMM)
		}
		if _, err := hostfit.Check(kept, hostfit.Offer{DomainType: "qemu", Arch: "x86_64", CPUs: 4, FreeMiB: 4096}); err == nil {
			t.Errorf("%s asking for VMMType kvm fits a plain-QEMU host", c.category)
		}
		if _, err := hostfit.Check(kept, hostfit.Offer{DomainType: "kvm", Arch: "x86_64", CPUs: 4, FreeMiB: 4096}); err != nil {
			t.Errorf("%s asking for VMMType kvm does not fit a KVM host: %v", c.category, err)
		}
	}
	// A KVM host runs qemu guests too, as the README says.
	reg := &recordingRegistry{images: poolOfTwo()}
	if _, err := runCreate(t, reg, now, body(`<vw:category>vm</vw:category>`, "qemu")); err != nil || reg.got == nil {
		t.Fatalf("VMMType qemu: %v", err)
	}
	kept, err := v.ValidateElement(wsa.Detach(reg.got.Description))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := hostfit.Check(kept, hostfit.Offer{DomainType: "kvm", Arch: "x86_64", CPUs: 4, FreeMiB: 4096}); kept.VMM != "qemu" || err != nil {
		t.Errorf("VMMType qemu: the description needs %q; on a KVM host: %v", kept.VMM, err)
	}

	for _, c := range []struct{ category, vmm, path, says string }{
		{`<vw:category vmm="xen">vm</vw:category>`, "kvm", "/vw:virtualWorkspace/vw:category/@vmm", `the description needs VMM "xen", the ResourceRequest's VMMType asks for "kvm"`},
		{`<vw:category>vm</vw:category>`, "vmware", "/fac:Create/fac:ResourceRequest/fac:VMMType", `"vmware" is not a VMM type`},
	} {
		reg := &recordingRegistry{images: poolOfTwo()}
		_, err := runCreate(t, reg, now, body(c.category, c.vmm))
		var me *errdefs.MetadataError
		if !errors.As(err, &me) || me.Path != c.path || !strings.Contains(me.Reason, c.says) || errdefs.Advice(err) == "" || reg.got != nil {
			t.Errorf("%s with VMMType %s: err %v, registered %v; want a WorkspaceMetadataFault at %s saying %q, with advice, nothing registered",
				c.category, c.vmm, err, reg.got != nil, c.path, c.says)
		}
	}
}
