package factory

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/beevik/etree"

	"github.com/vws-grid/vws/internal/container"
	"github.com/vws-grid/vws/internal/describe"
	"github.com/vws-grid/vws/internal/dialect"
	"github.com/vws-grid/vws/internal/errdefs"
	"github.com/vws-grid/vws/internal/vwsns"
	"github.com/vws-grid/vws/internal/wsrf"
	"github.com/vws-grid/vws/repository/imagepool"
)

// recordingRegistry is a Registry that records the one registration it is given.
type recordingRegistry struct {
	images []imagepool.Image
	got    *Registration
}

func (r *recordingRegistry) ListImages(context.Context) ([]imagepool.Image, error) {
	return r.images, nil
}
func (r *recordingRegistry) Register(_ context.Context, reg Registration) (string, string, error) {
	r.got = &reg
	return "k1", "http://repo/wsrf/services/WorkspaceService", nil
}

func poolOfTwo() []imagepool.Image {
	d := func(c byte) string { return "sha256:" + strings.Repeat(string(c), 64) }
	return []imagepool.Image{
		{Name: "debian-12", Digest: d('a'), Format: "qcow2", Arch: "x86_64", OS: "linux/debian/12"},
		{Name: "centos-7", Digest: d('b'), Format: "qcow2", Arch: "x86_64", OS: "linux/centos/7"},
	}
}

// runCreate answers one Create whose body is the fac:Create children given.
func runCreate(t *testing.T, reg *recordingRegistry, now time.Time, children string) (*etree.Element, error) {
	t.Helper()
	v, err := describe.NewValidator()
	if err != nil {
		t.Fatal(err)
	}
	doc := etree.NewDocument()
	body := `<fac:Create xmlns:fac="` + vwsns.Factory + `" xmlns:vw="` + vwsns.Workspace + `" xmlns:hw="` + vwsns.Hardware +
		`" xmlns:sw="` + vwsns.Software + `">` + children + `</fac:Create>`
	if err := doc.ReadFromString(body); err != nil {
		t.Fatal(err)
	}
	cfg := Config{RefuseLongLifetimes: refuseLongLifetimes}
	cfg.Defaults()
	h := create(cfg, &Deps{Validator: v, Registry: reg, Now: func() time.Time { return now }})
	return h(context.Background(), &container.Request{Dialect: dialect.WSRF12, Payload: doc.Root()})
}

// TestCreateHonoursTheDescriptionsTerminationTime: a description's
// vw:lifeCycle/vw:terminationTime says when the workspace ends (workspace.xsd:
// "what was asked for and when it ends"): Create takes it, not the default lifetime,
// refuses one in the past, and refuses it beside another request of the lifetime.
func TestCreateHonoursTheDescriptionsTerminationTime(t *testing.T) {
	now := time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)
	want := now.Add(2 * time.Hour)
	reg := &recordingRegistry{images: poolOfTwo()}
	_, err := runCreate(t, reg, now, `<vw:virtualWorkspace><vw:category>vm</vw:category>
		<vw:lifeCycle><vw:terminationTime>`+wsrf.FormatTime(want)+`</vw:terminationTime></vw:lifeCycle>
		<sw:software><sw:image><sw:name>debian-12</sw:name></sw:image></sw:software></vw:virtualWorkspace>`)
	if err != nil {
		t.Fatal(err)
	}
	if !reg.got.Termination.Equal(want) {
		t.Errorf("description asks to end at %s; the workspace was registered to end at %s", want, reg.got.Termination)
	}

	reg = &recordingRegistry{images: poolOfTwo()}
	past := now.Add(-time.Hour)
	_, err = runCreate(t, reg, now, `<vw:virtualWorkspace><vw:category>vm</vw:category>
		<vw:lifeCycle><vw:terminationTime>`+wsrf.FormatTime(past)+`</vw:terminationTime></vw:lifeCycle>
		<sw:software><sw:image><sw:name>debian-12</sw:name></sw:image></sw:software></vw:virtualWorkspace>`)
	if err == nil {
		t.Errorf("a description whose terminationTime (%s) has passed was created, to end at %s", past, reg.got.Termination)
	}

	reg = &recordingRegistry{images: poolOfTwo()}
	_, err = runCreate(t, reg, now, `<vw:virtualWorkspace><vw:category>vm</vw:category>
		<vw:lifeCycle><vw:terminationTime>`+wsrf.FormatTime(want)+`</vw:terminationTime></vw:lifeCycle>
		<sw:software><sw:image><sw:name>debian-12</sw:name></sw:image></sw:software></vw:virtualWorkspace>
		<fac:RequestedLifetime>PT5H</fac:RequestedLifetime>`)
	if !errors.Is(err, errdefs.ErrMetadata) || !strings.Contains(err.Error(), "asked for twice") {
		t.Errorf("a termination time in the description and a RequestedLifetime: %v", err)
	}
}

// TestCreateRefusesAnImageReferenceThatDisagrees: sw:ImageReferenceType "by name, by
// content digest, or both (… when both are, they must agree)": a name and a digest of
// two images are refused, not resolved by the digest alone.
func TestCreateRefusesAnImageReferenceThatDisagrees(t *testing.T) {
	now := time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)
	reg := &recordingRegistry{images: poolOfTwo()}
	pool := poolOfTwo()
	_, err := runCreate(t, reg, now, `<vw:virtualWorkspace><vw:category>vm</vw:category>
		<sw:software><sw:image><sw:name>debian-12</sw:name><sw:digest>`+pool[1].Digest+`</sw:digest></sw:image></sw:software></vw:virtualWorkspace>`)
	if !errors.Is(err, errdefs.ErrMetadata) || !strings.Contains(err.Error(), "centos-7") {
		t.Errorf("image named debian-12 with centos-7's digest: %v", err)
	}
}

// TestCreateRefusesADiskLayoutNoManagerDeploys: a manager deploys one image-backed root
// disk and one empty CD-ROM drive (hostfit.Disks); a workspace described otherwise
// could never be deployed, so Create refuses it, naming the disk.
func TestCreateRefusesADiskLayoutNoManagerDeploys(t *testing.T) {
	now := time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)
	root := `<hw:disk><hw:target>vda</hw:target><hw:image><hw:name>debian-12</hw:name></hw:image><hw:boot>true</hw:boot></hw:disk>`
	for _, c := range []struct{ name, disks, says string }{
		{"a second image, not in the pool", root + `<hw:disk><hw:target>vdb</hw:target><hw:image><hw:name>no-such-image</hw:name></hw:image></hw:disk>`, "second image-backed disk"},
		{"a second image, in the pool", root + `<hw:disk><hw:target>vdb</hw:target><hw:image><hw:name>centos-7</hw:name></hw:image></hw:disk>`, "second image-backed disk"},
		{"partitions without images", root + `<hw:disk><hw:target>vdb</hw:target><hw:size>1024</hw:size><hw:partition><hw:number>1</hw:number></hw:partition></hw:disk>`, "partitions without images"},
		{"two empty CD-ROM drives", root + `<hw:disk><hw:target>sdc</hw:target><hw:device>cdrom</hw:device></hw:disk><hw:disk><hw:target>sdd</hw:target><hw:device>cdrom</hw:device></hw:disk>`, "second empty CD-ROM"},
		{"a CD-ROM with an image", root + `<hw:disk><hw:target>sdc</hw:target><hw:device>cdrom</hw:device><hw:image><hw:name>centos-7</hw:name></hw:image></hw:disk>`, "CD-ROM drive with an image"},
		// The root disk has its base image's size: a larger one asked for would be the image's.
		{"a size on the root disk", `<hw:disk><hw:target>vda</hw:target><hw:size>20480</hw:size><hw:image><hw:name>debian-12</hw:name></hw:image></hw:disk>`, "a size (20480 MiB) on the image-backed root disk"},
	} {
		reg := &recordingRegistry{images: poolOfTwo()}
		_, err := runCreate(t, reg, now, `<vw:virtualWorkspace><vw:category>vm</vw:category>
			<hw:hardware><hw:RAM><hw:size>256</hw:size></hw:RAM><hw:CPU><hw:count>1</hw:count></hw:CPU>`+c.disks+`</hw:hardware></vw:virtualWorkspace>`)
		var me *errdefs.MetadataError
		if !errors.As(err, &me) || !strings.Contains(me.Reason, c.says) || !strings.HasPrefix(me.Path, "/vw:virtualWorkspace/hw:hardware/hw:disk[") {
			t.Errorf("%s: %v", c.name, err)
		}
		if reg.got != nil {
			t.Errorf("%s: registered", c.name)
		}
	}
	// The layout a manager deploys is created: an empty scratch disk (created at each
	// deploy) too.
	reg := &recordingRegistry{images: poolOfTwo()}
	if _, err := runCreate(t, reg, now, `<vw:virtualWorkspace><vw:category>vm</vw:category>
		<hw:hardware><hw:RAM><hw:size>256</hw:size></hw:RAM><hw:CPU><hw:count>1</hw:count></hw:CPU>`+root+
		`<hw:disk><hw:target>vdb</hw:target><hw:size>1024</hw:size></hw:disk>`+
		`<hw:disk><hw:target>sdc</hw:target><hw:device>cdrom</hw:device></hw:disk></hw:hardware></vw:virtualWorkspace>`); err != nil || reg.got == nil || reg.got.BaseImage != poolOfTwo()[0].Digest {
		t.Fatalf("root disk, a scratch disk and an empty CD-ROM: %v", err)
	}
}

// TestCreateRefusesAddressingNoManagerApplies: a manager hands the guest only its host
// name; a static address would be a workspace on another address than asked, so
// Create refuses it (hostfit.Addressing), naming the element, before registering.
func TestCreateRefusesAddressingNoManagerApplies(t *testing.T) {
	now := time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)
	reg := &recordingRegistry{images: poolOfTwo()}
	_, err := runCreate(t, reg, now, `<vw:virtualWorkspace><vw:category>vm</vw:category>
		<net:network xmlns:net="`+vwsns.Network+`"><net:nic><net:name>eth0</net:name><net:association><net:name>default</net:name></net:association>
		<net:ip><net:method>static</net:method><net:address>10.20.0.17</net:address><net:prefixLength>24</net:prefixLength></net:ip></net:nic></net:network>
		<sw:software><sw:image><sw:name>debian-12</sw:name></sw:image></sw:software></vw:virtualWorkspace>`)
	var me *errdefs.MetadataError
	if !errors.As(err, &me) || me.Path != "/vw:virtualWorkspace/net:network/net:nic[1]/net:ip/net:method" || !strings.Contains(me.Reason, "static address") {
		t.Errorf("a static address: %v", err)
	}
	if reg.got != nil {
		t.Error("registered")
	}
}

// refuseLongLifetimes runs runCreate's Factory with RefuseLongLifetimes (vws serve --lifetime-policy refuse).
var refuseLongLifetimes bool
