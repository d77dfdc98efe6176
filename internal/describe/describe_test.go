package describe

import (
	"bytes"
	"errors"
	"fmt"
	"io/fs"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/beevik/etree"

	"github.com/vws-grid/vws/internal/errdefs"
	"github.com/vws-grid/vws/internal/vwsns"
)

const samples = "../../schema/samples"

var (
	sharedOnce sync.Once
	shared     *Validator
	sharedErr  error
)

// validator returns one Validator for the whole test binary (compiling the schema is
// the expensive part, and sharing it is what production does).
func validator(t testing.TB) *Validator {
	t.Helper()
	sharedOnce.Do(func() { shared, sharedErr = NewValidator() })
	if sharedErr != nil {
		t.Fatal(sharedErr)
	}
	return shared
}

func readSample(t testing.TB, name string) []byte {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(samples, name))
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// metadata asserts that err is a refusal of the description and returns it.
func metadata(t *testing.T, err error) *errdefs.MetadataError {
	t.Helper()
	if err == nil {
		t.Fatal("the description was accepted")
	}
	var me *errdefs.MetadataError
	if !errors.As(err, &me) || !errors.Is(err, errdefs.ErrMetadata) {
		t.Fatalf("error %q (%T) does not wrap a MetadataError", err, err)
	}
	if strings.Contains(me.Reason, "{http") {
		t.Errorf("reason has namespace noise: %s", me.Reason)
	}
	return me
}

func intp(i int) *int { return &i }

func TestSamples(t *testing.T) {
	v := validator(t)
	want := map[string]*Description{
		"minimal-vm.xml": {
			Category: CategoryVM,
			Hardware: &Hardware{Memory: Memory{SizeMiB: 256}, CPU: CPU{Count: 1}},
			Software: &Software{Image: &Image{Name: "debian-12-base"}},
		},
		"dynamic-account.xml": {
			Category:          CategoryDynamicAccount,
			State:             "running",
			RequestedLifetime: 48 * time.Hour,
			Software: &Software{
				OS:        &OS{Family: "linux"},
				Libraries: []Library{{Name: "python3", Version: "3.11"}},
			},
			Startup: &Startup{
				Executable: "/usr/bin/python3",
				Args:       []string{"-m", "worker"},
				Output:     "console",
				OnExit:     "keep-running",
			},
		},
		"full-vm.xml": {
			Category:          CategoryVM,
			VMM:               "kvm",
			State:             "shutdown",
			RequestedLifetime: 12 * time.Hour,
			TerminationTime:   time.Date(2026, 3, 1, 21, 30, 0, 0, time.UTC),
			Hardware: &Hardware{
				Memory: Memory{SizeMiB: 1024, MinMiB: 512, MaxMiB: 2048},
				CPU:    CPU{Count: 2, Architecture: "x86_64", Model: "host-passthrough"},
				Disks: []Disk{
					{Target: "vda", Bus: "virtio", Boot: true, Image: &Image{
						Name:   "debian-12-base",
						Digest: "sha256:3b1f0c2a9d8e7f6a5b4c3d2e1f0a9b8c7d6e5f4a3b2c1d0e9f8a7b6c5d4e3f2a",
						Format: "qcow2",
					}},
					{Target: "vdb", Bus: "virtio", SizeMiB: 4096, Partitions: []Partition{
						{Number: 1, Label: "scratch", MountPoint: "/scratch", Filesystem: "ext4", SizeMiB: 3072},
						{Number: 2, Filesystem: "swap", SizeMiB: 1024},
					}},
					{Target: "sda", Bus: "sata", Device: "cdrom", ReadOnly: true},
				},
			},
			Network: &Network{NICs: []NIC{
				{Name: "eth0", MAC: "52:54:00:12:34:56", Model: "virtio", Network: "default", NetworkKind: "network",
					IP: &IPConfig{Method: "dhcp", Hostname: "ws-6f1c.grid.example.org"}},
				{Name: "eth1", Network: "br-private", NetworkKind: "bridge",
					IP: &IPConfig{Method: "static", Address: "10.20.0.17", PrefixLength: intp(24), Gateway: "10.20.0.1",
						Nameservers: []string{"10.20.0.2", "2001:db8::53"}}},
			}},
			Software: &Software{
				OS: &OS{Family: "linux", Distribution: "debian", Version: "12"},
				Kernel: &Kernel{
					Version: "6.1.0-18-amd64",
					Image:   &Image{Name: "vmlinuz-6.1.0-18-amd64"},
					Initrd:  &Image{Name: "initrd-busybox-1.35"},
					Cmdline: "console=ttyS0 root=/dev/vda1 ro",
				},
				Libraries: []Library{{Name: "glibc", Version: "2.36"}, {Name: "openmpi", Version: "4.1.4"}},
			},
			Startup: &Startup{
				Executable:       "/opt/job/run.sh",
				Args:             []string{"--input", "/scratch/input.dat"},
				Env:              []EnvVar{{"OMP_NUM_THREADS", "2"}, {"JOB_ID", "grid-42"}},
				WorkingDirectory: "/scratch",
				User:             "gridjob",
				Files: []File{
					{Path: "/opt/job/run.sh", Mode: 0o755, Content: []byte("#!/bin/sh\necho \"job $JOB_ID starting on $(hostname)\"\nexec /usr/bin/simulate \"$@\"\n")},
					{Path: "/scratch/input.dat", Mode: 0o644, Content: []byte("hello grid\n")},
				},
				Output: "console",
				OnExit: "poweroff",
			},
		},
	}
	files, err := filepath.Glob(filepath.Join(samples, "*.xml"))
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range files {
		name := filepath.Base(f)
		t.Run(name, func(t *testing.T) {
			w, ok := want[name]
			if !ok {
				t.Fatalf("%s has no expected values in this test; add them", name)
			}
			data := readSample(t, name)
			d, err := v.Validate(data)
			if err != nil {
				t.Fatal(err)
			}
			if d.Raw == nil || d.Raw.Tag != "virtualWorkspace" || d.Raw.NamespaceURI() != vwsns.Workspace {
				t.Fatalf("Raw = %v", d.Raw)
			}
			// Raw keeps the whole description, namespace declarations included.
			if d.Raw.FindElement("hw:hardware") == nil && w.Hardware != nil {
				t.Error("Raw has no hw:hardware")
			}
			// Raw is what etree's own reader makes of the document.
			ref := etree.NewDocument()
			if err := ref.ReadFromBytes(data); err != nil {
				t.Fatal(err)
			}
			if diff := sameTree(d.Raw, ref.Root()); diff != "" {
				t.Errorf("Raw differs from etree's reading: %s", diff)
			}
			d.Raw = nil
			if !reflect.DeepEqual(d, w) {
				t.Errorf("got  %+v\nwant %+v", d, w)
				compare(t, "", reflect.ValueOf(d).Elem(), reflect.ValueOf(w).Elem())
			}
		})
	}
	if len(files) != len(want) {
		t.Errorf("%d samples, %d expected", len(files), len(want))
	}
}

// compare logs the fields that differ, to make a failure of TestSamples readable.
func compare(t *testing.T, path string, got, want reflect.Value) {
	t.Helper()
	switch got.Kind() {
	case reflect.Pointer:
		if got.IsNil() || want.IsNil() {
			if got.IsNil() != want.IsNil() {
				t.Errorf("%s: got %v, want %v", path, got, want)
			}
			return
		}
		compare(t, path, got.Elem(), want.Elem())
	case reflect.Struct:
		if got.Type() == reflect.TypeOf(time.Time{}) {
			if !got.Interface().(time.Time).Equal(want.Interface().(time.Time)) {
				t.Errorf("%s: got %v, want %v", path, got, want)
			}
			return
		}
		for i := range got.NumField() {
			compare(t, path+"."+got.Type().Field(i).Name, got.Field(i), want.Field(i))
		}
	case reflect.Slice:
		if got.Len() != want.Len() {
			t.Errorf("%s: got %d elements, want %d", path, got.Len(), want.Len())
			return
		}
		for i := range got.Len() {
			compare(t, fmt.Sprintf("%s[%d]", path, i), got.Index(i), want.Index(i))
		}
	default:
		if !reflect.DeepEqual(got.Interface(), want.Interface()) {
			t.Errorf("%s: got %v, want %v", path, got, want)
		}
	}
}

func TestInvalidSamples(t *testing.T) {
	v := validator(t)
	want := map[string]string{
		"path-traversal.xml":   "/vw:virtualWorkspace/cap:capability/cap:startup/cap:file/cap:path",
		"ram-out-of-range.xml": "/vw:virtualWorkspace/hw:hardware/hw:RAM/hw:size",
		"ram-too-large.xml":    "/vw:virtualWorkspace/hw:hardware/hw:RAM/hw:size",
		"unknown-element.xml":  "/vw:virtualWorkspace/hw:hardware/hw:GPU",
		"wrong-category.xml":   "/vw:virtualWorkspace/vw:category",
		"wrong-state.xml":      "/vw:virtualWorkspace/vw:state",
		"zero-cpus.xml":        "/vw:virtualWorkspace/hw:hardware/hw:CPU/hw:count",
	}
	reasons := map[string][]string{
		"path-traversal.xml":   {"'/home/user/../../etc/cron.d/evil'", "cap:GuestPath", `without "." or ".." segments`},
		"ram-out-of-range.xml": {"[facet 'minInclusive']", "'8'", "('16')", "16 MiB to 4 TiB"},
		"ram-too-large.xml":    {"[facet 'maxInclusive']", "'8388608'", "('4194304')"},
		"unknown-element.xml":  {"not expected", "Expected is ( hw:disk )", "Remove the element"},
		"wrong-category.xml":   {"attribute 'vmm'", "'lxc'", "'container'", "{'dynamic account', 'vm'}", "Use one of the listed values"},
		"wrong-state.xml":      {"'stopped'", "{'shutdown', 'paused', 'running', 'corrupted'}"},
		"zero-cpus.xml":        {"'0'", "hw:CPUCount: from 1 to 512"},
	}
	files, err := filepath.Glob(filepath.Join(samples, "invalid", "*.xml"))
	if err != nil {
		t.Fatal(err)
	}
	if len(files) != len(want) {
		t.Errorf("%d invalid samples, %d expected paths: add the new ones here", len(files), len(want))
	}
	for _, f := range files {
		name := filepath.Base(f)
		t.Run(name, func(t *testing.T) {
			path, ok := want[name]
			if !ok {
				t.Fatalf("no expected path for %s", name)
			}
			_, err := v.Validate(readSample(t, filepath.Join("invalid", name)))
			me := metadata(t, err)
			if me.Path != path {
				t.Errorf("path %s, want %s", me.Path, path)
			}
			for _, s := range reasons[name] {
				if !strings.Contains(me.Reason, s) {
					t.Errorf("reason %q lacks %q", me.Reason, s)
				}
			}
			t.Log(err)
		})
	}
}

// TestCreateMessage validates the description inside a Create request the way the
// Factory gets it: an element of a parsed message, namespaces declared on an ancestor.
func TestCreateMessage(t *testing.T) {
	v := validator(t)
	doc := etree.NewDocument()
	if err := doc.ReadFromBytes(readSample(t, "messages/Create.xml")); err != nil {
		t.Fatal(err)
	}
	el := doc.Root().SelectElement("vw:virtualWorkspace")
	d, err := v.ValidateElement(el)
	if err != nil {
		t.Fatal(err)
	}
	if d.VMM != "qemu" || d.Hardware.Memory.SizeMiB != 128 || d.Software.Image.Digest != "sha256:3b1f0c2a9d8e7f6a5b4c3d2e1f0a9b8c7d6e5f4a3b2c1d0e9f8a7b6c5d4e3f2a" {
		t.Errorf("got %+v", d)
	}
	if d.Raw.SelectAttrValue("xmlns:hw", "") != vwsns.Hardware {
		t.Error("Raw lacks the inherited namespace declarations")
	}
	if el.SelectAttr("xmlns:hw") != nil {
		t.Error("ValidateElement changed its argument")
	}
	// Raw stands alone: a document of its own.
	b, err := etree.NewDocumentWithRoot(d.Raw.Copy()).WriteToBytes()
	if err != nil {
		t.Fatal(err)
	}
	if _, err := v.Validate(b); err != nil {
		t.Errorf("Raw does not validate again: %v", err)
	}
	if _, err := v.ValidateElement(nil); !errors.Is(err, errdefs.ErrMetadata) {
		t.Errorf("nil element: %v", err)
	}
}

const (
	head = `<vw:virtualWorkspace xmlns:vw="http://vws.dev/ns/2026/workspace" xmlns:hw="http://vws.dev/ns/2026/workspace/hardware" xmlns:net="http://vws.dev/ns/2026/workspace/network" xmlns:sw="http://vws.dev/ns/2026/workspace/software" xmlns:cap="http://vws.dev/ns/2026/workspace/capability">`
	tail = `</vw:virtualWorkspace>`
)

// doc builds a one-line description from its parts.
func doc(parts ...string) string { return head + strings.Join(parts, "") + tail }

func ram(size, min, max string) string {
	s := "<hw:RAM><hw:size>" + size + "</hw:size>"
	if min != "" {
		s += "<hw:minimum>" + min + "</hw:minimum>"
	}
	if max != "" {
		s += "<hw:maximum>" + max + "</hw:maximum>"
	}
	return s + "</hw:RAM>"
}

func hardware(ram string, disks ...string) string {
	return "<hw:hardware>" + ram + "<hw:CPU><hw:count>1</hw:count></hw:CPU>" + strings.Join(disks, "") + "</hw:hardware>"
}

func disk(target, inner string) string {
	return "<hw:disk><hw:target>" + target + "</hw:target>" + inner + "</hw:disk>"
}

func startup(inner string) string {
	return "<cap:capability><cap:startup><cap:executable>/bin/job</cap:executable>" + inner + "</cap:startup></cap:capability>"
}

func file(path, inner string) string {
	return "<cap:file><cap:path>" + path + "</cap:path>" + inner + "</cap:file>"
}

func nic(name string) string {
	return "<net:nic><net:name>" + name + "</net:name><net:association><net:name>default</net:name></net:association></net:nic>"
}

const vm = "<vw:category>vm</vw:category>"

func TestRefused(t *testing.T) {
	v := validator(t)
	okHW := hardware(ram("512", "", ""))
	deep := strings.Repeat("<vw:x>", 70) + strings.Repeat("</vw:x>", 70)
	tests := []struct {
		name   string
		doc    string
		path   string
		reason string // a substring of the reason
	}{
		// Before any parser.
		{"empty", "", "/", "empty"},
		{"blank", " \n\t", "/", "empty"},
		{"oversized", doc(vm, startup(file("/f", "<cap:content>"+strings.Repeat("x", 300<<10)+"</cap:content>"))), "/", "at most 262144"},
		{"doctype", `<?xml version="1.0"?><!DOCTYPE vw:virtualWorkspace [<!ENTITY x "y">]>` + doc(vm), "/", "DTD"},
		{"entity alone", `<!ENTITY x SYSTEM "file:///etc/passwd">` + doc(vm), "/", "DTD"},
		{"doctype after PI hiding a comment opener", `<?pi <!-- ?><!DOCTYPE x SYSTEM "http://127.0.0.1:1/x.dtd">` + doc(vm), "/", "DTD"},
		{"latin-1", `<?xml version="1.0" encoding="ISO-8859-1"?>` + doc(vm), "/", `encoding "ISO-8859-1"`},
		{"utf-16 bom", "\xff\xfe<\x00v\x00", "/", "UTF-16"},
		{"invalid utf-8", doc(vm, "<vw:state>\xc3\x28</vw:state>"), "/", "not valid UTF-8"},
		{"NUL", doc(vm) + "\x00", "/", "control character 0x00"},
		{"control character", doc(vm, "<vw:state>run\x01</vw:state>"), "/", "control character 0x01"},
		// The scan.
		{"too deep", doc(vm, "<vw:EPR>"+deep+"</vw:EPR>"), "/", "more than 64 deep"},
		{"malformed", head + vm, "/", "not well-formed"},
		{"mismatched tags", head + "<vw:category>vm</vw:state>" + tail, "/", "does not match"},
		{"undefined entity", doc("<vw:category>&foo;</vw:category>"), "/", "not well-formed"},
		{"unbound prefix", doc(vm, "<xx:hardware/>"), "/", `prefix "xx"`},
		{"two roots", doc(vm) + doc(vm), "/", "more than one root"},
		{"text after root", doc(vm) + "junk", "/", "text outside"},
		{"duplicate attribute", doc(`<vw:category vmm="kvm" vmm="xen">vm</vw:category>`), "/", "libxml2"},
		{"wrong root", `<vw:workspace xmlns:vw="http://vws.dev/ns/2026/workspace">` + vm + `</vw:workspace>`, "/vw:workspace", "root element is workspace"},
		{"wrong namespace", `<vw:virtualWorkspace xmlns:vw="http://vws.dev/ns/2025/workspace">` + vm + tail, "/Q{http://vws.dev/ns/2025/workspace}virtualWorkspace", `namespace "http://vws.dev/ns/2025/workspace"`},
		{"no namespace", `<virtualWorkspace><category>vm</category></virtualWorkspace>`, "/virtualWorkspace", `namespace ""`},
		{"Create instead", `<fac:Create xmlns:fac="http://vws.dev/ns/2026/factory"/>`, "/fac:Create", "root element is Create"},
		// libxml2.
		{"missing category", doc(okHW), "/vw:virtualWorkspace/hw:hardware", "Expected is ( vw:category )"},
		{"missing RAM size", doc(vm, hardware("<hw:RAM/>")), "/vw:virtualWorkspace/hw:hardware/hw:RAM", "Missing child element"},
		{"unknown attribute", doc(`<vw:category foo="1">vm</vw:category>`), "/vw:virtualWorkspace/vw:category", "attribute 'foo'"},
		{"text in element-only content", doc(vm, "<hw:hardware>lots"+ram("512", "", "")+"<hw:CPU><hw:count>1</hw:count></hw:CPU></hw:hardware>"), "/vw:virtualWorkspace/hw:hardware", "Remove the text"},
		{"NIC name path-like (schema)", doc(vm, "<net:network>"+nic("../e")+"</net:network>"), "/vw:virtualWorkspace/net:network/net:nic/net:name", "net:InterfaceName"},
		{"file name with .. (schema)", doc(vm, startup(file("/etc/../shadow", "<cap:content/>"))), "/vw:virtualWorkspace/cap:capability/cap:startup/cap:file/cap:path", "cap:GuestPath"},
		{"argument too long (schema)", doc(vm, startup("<cap:argument>"+strings.Repeat("a", 4097)+"</cap:argument>")), "/vw:virtualWorkspace/cap:capability/cap:startup/cap:argument", "[facet 'maxLength']"},
		{"wrong lifetime", doc(vm, "<vw:lifeCycle><vw:requestedLifetime>12 hours</vw:requestedLifetime></vw:lifeCycle>"), "/vw:virtualWorkspace/vw:lifeCycle/vw:requestedLifetime", "vw:Duration"},
		{"bad key in lax EPR", doc(vm, `<vw:EPR><vw:WorkspaceKey>../x</vw:WorkspaceKey></vw:EPR>`), "/vw:virtualWorkspace/vw:EPR/vw:WorkspaceKey", "[facet 'pattern']"},
		// One line, two elements of one name: the second is wrong and must be named.
		{"one-line document, second disk", doc(vm, hardware(ram("512", "", ""), disk("vda", "<hw:size>1</hw:size>"), disk("vdb", "<hw:size>0</hw:size>"))), "/vw:virtualWorkspace/hw:hardware/hw:disk[2]/hw:size", "minInclusive"},
		{"one-line document, second nameserver", doc(vm, `<net:network><net:nic><net:name>eth0</net:name><net:association><net:name>default</net:name></net:association><net:ip><net:method>static</net:method><net:nameserver>10.0.0.1</net:nameserver><net:nameserver>10.0.0.300</net:nameserver></net:ip></net:nic></net:network>`), "/vw:virtualWorkspace/net:network/net:nic/net:ip/net:nameserver[2]", "pattern"},
		// libxml2 2.9.14 does not collapse whitespace in values of types restricted from
		// xs:int and xs:long (XML Schema says it should); pinned so a change is noticed.
		{"whitespace around a number", doc(vm, hardware(ram(" 512\n", "", ""))), "/vw:virtualWorkspace/hw:hardware/hw:RAM/hw:size", "is not a valid value of the atomic type 'hw:MiB'"},
		// After libxml2.
		{"memory min > max", doc(vm, hardware(ram("1024", "4096", "2048"))), "/vw:virtualWorkspace/hw:hardware/hw:RAM/hw:minimum", "minimum <= size <= maximum"},
		{"memory max < size", doc(vm, hardware(ram("1024", "", "512"))), "/vw:virtualWorkspace/hw:hardware/hw:RAM/hw:maximum", "minimum <= size <= maximum"},
		{"vmm for a dynamic account", doc(`<vw:category vmm="kvm">dynamic account</vw:category>`), "/vw:virtualWorkspace/vw:category", "vmm"},
		{"17 disks", doc(vm, hardware(ram("512", "", ""), disks(17)...)), "/vw:virtualWorkspace/hw:hardware/hw:disk[17]", "at most 16 hw:disk"},
		{"9 nameservers", doc(vm, "<net:network><net:nic><net:name>eth0</net:name><net:association><net:name>d</net:name></net:association><net:ip><net:method>static</net:method>"+strings.Repeat("<net:nameserver>10.0.0.1</net:nameserver>", 9)+"</net:ip></net:nic></net:network>"), "/vw:virtualWorkspace/net:network/net:nic/net:ip/net:nameserver[9]", "at most 8"},
		{"257 arguments", doc(vm, startup(strings.Repeat("<cap:argument>a</cap:argument>", 257))), "/vw:virtualWorkspace/cap:capability/cap:startup/cap:argument[257]", "at most 256"},
		{"65 files", doc(vm, startup(files(65))), "/vw:virtualWorkspace/cap:capability/cap:startup/cap:file[65]", "at most 64"},
		{"duplicate disk target", doc(vm, hardware(ram("512", "", ""), disk("vda", "<hw:size>1</hw:size>"), disk("vda", "<hw:size>1</hw:size>"))), "/vw:virtualWorkspace/hw:hardware/hw:disk[2]/hw:target", "unique"},
		{"disk without content", doc(vm, hardware(ram("512", "", ""), disk("vda", "<hw:bus>virtio</hw:bus>"))), "/vw:virtualWorkspace/hw:hardware/hw:disk", "no image"},
		{"image without name or digest", doc(vm, hardware(ram("512", "", ""), disk("vda", "<hw:image><hw:format>raw</hw:format></hw:image>"))), "/vw:virtualWorkspace/hw:hardware/hw:disk/hw:image", "neither a name nor a digest"},
		{"software image without name or digest", doc(vm, "<sw:software><sw:image/></sw:software>"), "/vw:virtualWorkspace/sw:software/sw:image", "neither"},
		{"duplicate partition number", doc(vm, hardware(ram("512", "", ""), disk("vda", "<hw:partition><hw:number>1</hw:number><hw:size>1</hw:size></hw:partition><hw:partition><hw:number>01</hw:number></hw:partition>"))), "/vw:virtualWorkspace/hw:hardware/hw:disk/hw:partition[2]/hw:number", "unique"},
		{"image name with ..", doc(vm, "<sw:software><sw:image><sw:name>a..b</sw:name></sw:image></sw:software>"), "/vw:virtualWorkspace/sw:software/sw:image/sw:name", `".."`},
		{"duplicate NIC name", doc(vm, "<net:network>"+nic("eth0")+nic("eth0")+"</net:network>"), "/vw:virtualWorkspace/net:network/net:nic[2]/net:name", "unique"},
		// What the schema lets through and no hypervisor runs.
		{"multicast MAC", doc(vm, "<net:network><net:nic><net:name>eth0</net:name><net:mac>01:00:5E:00:00:01</net:mac><net:association><net:name>default</net:name></net:association></net:nic></net:network>"), "/vw:virtualWorkspace/net:network/net:nic/net:mac", "multicast"},
		{"MAC of libvirt's reserved 0xFE prefix", doc(vm, "<net:network><net:nic><net:name>eth0</net:name><net:mac>FE:54:00:00:00:01</net:mac><net:association><net:name>default</net:name></net:association></net:nic></net:network>"), "/vw:virtualWorkspace/net:network/net:nic/net:mac", "0xFE"},
		{"all-zero MAC", doc(vm, "<net:network><net:nic><net:name>eth0</net:name><net:mac>00:00:00:00:00:00</net:mac><net:association><net:name>default</net:name></net:association></net:nic></net:network>"), "/vw:virtualWorkspace/net:network/net:nic/net:mac", "all-zero"},
		{"duplicate MAC", doc(vm, "<net:network><net:nic><net:name>eth0</net:name><net:mac>52:54:00:00:00:01</net:mac><net:association><net:name>default</net:name></net:association></net:nic><net:nic><net:name>eth1</net:name><net:mac>52:54:00:00:00:01</net:mac><net:association><net:name>default</net:name></net:association></net:nic></net:network>"), "/vw:virtualWorkspace/net:network/net:nic[2]/net:mac", "earlier NIC"},
		{"IPv4 address with a prefix length above 32", doc(vm, "<net:network><net:nic><net:name>eth0</net:name><net:association><net:name>default</net:name></net:association><net:ip><net:method>static</net:method><net:address>10.20.0.17</net:address><net:prefixLength>64</net:prefixLength></net:ip></net:nic></net:network>"), "/vw:virtualWorkspace/net:network/net:nic/net:ip/net:prefixLength", "IPv4 address 10.20.0.17 has a prefix length of at most 32"},
		{"IPv6 address with a prefix length above 128", doc(vm, "<net:network><net:nic><net:name>eth0</net:name><net:association><net:name>default</net:name></net:association><net:ip><net:method>static</net:method><net:address>2001:db8::17</net:address><net:prefixLength>129</net:prefixLength></net:ip></net:nic></net:network>"), "/vw:virtualWorkspace/net:network/net:nic/net:ip/net:prefixLength", "129"},
		{"IPv6-like text that is no address", doc(vm, "<net:network><net:nic><net:name>eth0</net:name><net:association><net:name>default</net:name></net:association><net:ip><net:method>static</net:method><net:address>1:::2</net:address></net:ip></net:nic></net:network>"), "/vw:virtualWorkspace/net:network/net:nic/net:ip/net:address", "not an IPv4 or IPv6 address"},
		{"CD-ROM on a virtio target", doc(vm, hardware(ram("512", "", ""), disk("vda", "<hw:size>1</hw:size>"), disk("vdc", "<hw:device>cdrom</hw:device>"))), "/vw:virtualWorkspace/hw:hardware/hw:disk[2]/hw:target", "virtio target"},
		{"CD-ROM on the virtio bus", doc(vm, hardware(ram("512", "", ""), disk("vda", "<hw:size>1</hw:size>"), disk("sdc", "<hw:bus>virtio</hw:bus><hw:device>cdrom</hw:device>"))), "/vw:virtualWorkspace/hw:hardware/hw:disk[2]/hw:bus", "virtio bus"},
		{"duplicate file", doc(vm, startup(file("/a", "<cap:content/>")+file("/a", "<cap:content/>"))), "/vw:virtualWorkspace/cap:capability/cap:startup/cap:file[2]/cap:path", "once"},
		{"file path segment too long", doc(vm, startup(file("/"+strings.Repeat("a", 256), "<cap:content/>"))), "/vw:virtualWorkspace/cap:capability/cap:startup/cap:file/cap:path", "longer than 255"},
		{"duplicate environment variable", doc(vm, startup("<cap:environment><cap:name>A</cap:name><cap:value>1</cap:value></cap:environment><cap:environment><cap:name>A</cap:name><cap:value>2</cap:value></cap:environment>")), "/vw:virtualWorkspace/cap:capability/cap:startup/cap:environment[2]/cap:name", "once"},
		{"bad base64", doc(vm, startup(file("/a", "<cap:encoding>base64</cap:encoding><cap:content>not base64!</cap:content>"))), "/vw:virtualWorkspace/cap:capability/cap:startup/cap:file/cap:content", "base64"},
		{"zero lifetime", doc(vm, "<vw:lifeCycle><vw:requestedLifetime>PT0S</vw:requestedLifetime></vw:lifeCycle>"), "/vw:virtualWorkspace/vw:lifeCycle/vw:requestedLifetime", "positive duration"},
		{"termination time Go cannot represent", doc(vm, "<vw:lifeCycle><vw:terminationTime>10000-03-01T00:00:00Z</vw:terminationTime></vw:lifeCycle>"), "/vw:virtualWorkspace/vw:lifeCycle/vw:terminationTime", "10000-03-01"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := v.Validate([]byte(tt.doc))
			me := metadata(t, err)
			if me.Path != tt.path {
				t.Errorf("path %s, want %s (%v)", me.Path, tt.path, err)
			}
			if !strings.Contains(me.Reason, tt.reason) {
				t.Errorf("reason %q lacks %q", me.Reason, tt.reason)
			}
		})
	}
}

func disks(n int) []string {
	var out []string
	for i := range n {
		out = append(out, disk(fmt.Sprintf("vd%c", 'a'+i), "<hw:size>1</hw:size>"))
	}
	return out
}

func files(n int) string {
	var b strings.Builder
	for i := range n {
		b.WriteString(file(fmt.Sprintf("/f%d", i), "<cap:content/>"))
	}
	return b.String()
}

func TestAccepted(t *testing.T) {
	v := validator(t)
	tests := []struct {
		name  string
		doc   string
		check func(*Description) bool
	}{
		{"one line", doc(vm, hardware(ram("512", "256", "512"))), func(d *Description) bool { return d.Hardware.Memory == Memory{512, 256, 512} }},
		{"element alone, no declaration", doc(vm), func(d *Description) bool { return d.Category == CategoryVM && d.Hardware == nil }},
		{"BOM and declaration", "\xef\xbb\xbf<?xml version='1.0' encoding='utf-8'?>\n" + doc(vm), func(d *Description) bool { return d.Category == CategoryVM }},
		{"CRLF line ends", strings.ReplaceAll(string(readSampleT(t, "full-vm.xml")), "\n", "\r\n"), func(d *Description) bool {
			return string(d.Startup.Files[0].Content) == "#!/bin/sh\necho \"job $JOB_ID starting on $(hostname)\"\nexec /usr/bin/simulate \"$@\"\n"
		}},
		{"DOCTYPE text inside CDATA", doc(vm, startup(file("/index.html", "<cap:content><![CDATA[<!DOCTYPE html><html></html>]]></cap:content>"))), func(d *Description) bool {
			return string(d.Startup.Files[0].Content) == "<!DOCTYPE html><html></html>"
		}},
		{"comment splitting a number", doc(vm, hardware(ram("1<!-- -->024", "", ""))), func(d *Description) bool { return d.Hardware.Memory.SizeMiB == 1024 }},
		{"whitespace around booleans", doc(vm, hardware(ram("512", "", ""), disk("vda", "<hw:size>10</hw:size><hw:readOnly>\n false </hw:readOnly><hw:boot> 1 </hw:boot>"))), func(d *Description) bool {
			return d.Hardware.Disks[0].SizeMiB == 10 && d.Hardware.Disks[0].Boot && !d.Hardware.Disks[0].ReadOnly
		}},
		{"default namespace", `<virtualWorkspace xmlns="http://vws.dev/ns/2026/workspace"><category vmm="xen">vm</category></virtualWorkspace>`, func(d *Description) bool { return d.VMM == "xen" }},
		{"empty network", doc(vm, "<net:network/>"), func(d *Description) bool { return d.Network != nil && len(d.Network.NICs) == 0 }},
		{"base64 over lines", doc(vm, startup(file("/a", "<cap:mode>600</cap:mode><cap:encoding>base64</cap:encoding><cap:content>aGVs\n  bG8=</cap:content>"))), func(d *Description) bool {
			return string(d.Startup.Files[0].Content) == "hello" && d.Startup.Files[0].Mode == 0o600
		}},
		{"16 disks", doc(vm, hardware(ram("512", "", ""), disks(16)...)), func(d *Description) bool { return len(d.Hardware.Disks) == 16 }},
		{"IPv4 /32 and IPv6 /128", doc(vm, "<net:network><net:nic><net:name>eth0</net:name><net:association><net:name>default</net:name></net:association><net:ip><net:method>static</net:method><net:address>10.20.0.17</net:address><net:prefixLength>32</net:prefixLength></net:ip></net:nic><net:nic><net:name>eth1</net:name><net:association><net:name>default</net:name></net:association><net:ip><net:method>static</net:method><net:address>2001:db8::17</net:address><net:prefixLength>128</net:prefixLength></net:ip></net:nic></net:network>"), func(d *Description) bool {
			return *d.Network.NICs[0].IP.PrefixLength == 32 && *d.Network.NICs[1].IP.PrefixLength == 128
		}},
		{"empty CD-ROM drive", doc(vm, hardware(ram("512", "", ""), disk("hdc", "<hw:device>cdrom</hw:device>"))), func(d *Description) bool { return d.Hardware.Disks[0].Device == "cdrom" }},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			d, err := v.Validate([]byte(tt.doc))
			if err != nil {
				t.Fatal(err)
			}
			if !tt.check(d) {
				t.Errorf("unexpected description %+v", d)
			}
		})
	}
}

func readSampleT(t *testing.T, name string) []byte { return readSample(t, name) }

// TestNoExternalLoads checks that nothing a document names is fetched: not the schema
// an xsi:schemaLocation points to, not an XInclude, not a DTD (refused before parsing).
func TestNoExternalLoads(t *testing.T) {
	v := validator(t)
	var hits atomic.Int32
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { hits.Add(1) }))
	defer srv.Close()
	dir := t.TempDir()
	local := filepath.Join(dir, "x.xsd")
	if err := os.WriteFile(local, []byte(`<xs:schema xmlns:xs="http://www.w3.org/2001/XMLSchema"/>`), 0o600); err != nil {
		t.Fatal(err)
	}
	docs := []string{
		`<vw:virtualWorkspace xmlns:vw="http://vws.dev/ns/2026/workspace" xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance" xsi:schemaLocation="http://vws.dev/ns/2026/workspace ` + srv.URL + `/workspace.xsd"><vw:category>vm</vw:category></vw:virtualWorkspace>`,
		`<vw:virtualWorkspace xmlns:vw="http://vws.dev/ns/2026/workspace" xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance" xsi:noNamespaceSchemaLocation="file://` + local + `"><vw:category>vm</vw:category></vw:virtualWorkspace>`,
		`<vw:virtualWorkspace xmlns:vw="http://vws.dev/ns/2026/workspace" xmlns:xi="http://www.w3.org/2001/XInclude"><vw:category>vm</vw:category><vw:EPR><xi:include href="` + srv.URL + `/x.xml"/><xi:include href="file://` + local + `" parse="text"/></vw:EPR></vw:virtualWorkspace>`,
		`<!DOCTYPE vw:virtualWorkspace SYSTEM "` + srv.URL + `/x.dtd">` + doc(vm),
	}
	calls, _ := loaderStats()
	for i, d := range docs {
		_, err := v.Validate([]byte(d))
		t.Logf("document %d: %v", i, err)
	}
	if n := hits.Load(); n != 0 {
		t.Errorf("the server was asked %d times", n)
	}
	if after, _ := loaderStats(); after != calls {
		t.Errorf("libxml2 asked the external entity loader %d times", after-calls)
	}
}

// TestLines checks scan's central claim: the line it computes for every element is the
// line libxml2 records for it, in the bytes libxml2 is given.
func TestLines(t *testing.T) {
	var docs [][]byte
	err := filepath.WalkDir(samples, func(path string, d fs.DirEntry, err error) error {
		if err == nil && strings.HasSuffix(path, ".xml") {
			b, err := os.ReadFile(path)
			docs = append(docs, b)
			return err
		}
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	docs = append(docs,
		[]byte(doc(vm, hardware(ram("512", "", ""), disks(3)...))),
		[]byte("<vw:virtualWorkspace\n xmlns:vw='http://vws.dev/ns/2026/workspace'\n a='1\n2'><vw:category\n>vm</vw:category><!-- \n --><vw:x/><vw:y\n/><?pi \n?><vw:z><![CDATA[\n]]></vw:z></vw:virtualWorkspace>"),
		[]byte("\n\n<vw:virtualWorkspace xmlns:vw='http://vws.dev/ns/2026/workspace'>\r\n<vw:a>\r</vw:a><vw:b/>\r\r<vw:c/></vw:virtualWorkspace>"),
	)
	for i, d := range docs {
		checkLines(t, fmt.Sprint("document ", i), d)
	}
}

func checkLines(t testing.TB, name string, data []byte) {
	t.Helper()
	data, err := precheck(data, DefaultLimits)
	if err != nil {
		return
	}
	s, err := scan(data, DefaultLimits)
	if err != nil {
		return
	}
	lines := libxmlElementLines(s.lib)
	if lines == nil {
		return // libxml2 refuses it; Validate reports that at "/"
	}
	if len(lines) != len(s.nodes) {
		t.Fatalf("%s: libxml2 sees %d elements, scan %d", name, len(lines), len(s.nodes))
	}
	seen := map[int]bool{}
	for i, n := range s.nodes {
		if lines[i] >= 65535 {
			continue // libxml2's 16-bit line numbers saturate
		}
		if n.line != lines[i] {
			t.Fatalf("%s: element %d (%s) is on line %d for libxml2, %d for scan", name, i, n.path(), lines[i], n.line)
		}
		if seen[n.line] {
			t.Fatalf("%s: two elements on line %d", name, n.line)
		}
		seen[n.line] = true
	}
}

// TestHostileInputs pins the refusals that keep libxml2 from spending minutes on one
// document: a long value for net:IPAddress (whose pattern takes libxml2's regex engine
// quadratic time), however it is smuggled in, and an element with thousands of
// attributes. Each must be refused quickly, at the right element.
func TestHostileInputs(t *testing.T) {
	v := validator(t)
	colons := strings.Repeat(":", 200<<10) + "g"
	ip := func(inner string) string {
		return "<net:network><net:nic><net:name>e</net:name><net:association><net:name>d</net:name></net:association><net:ip><net:method>dhcp</net:method>" + inner + "</net:ip></net:nic></net:network>"
	}
	const xsi = ` xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance"`
	var attrs strings.Builder
	for i := range 20000 {
		fmt.Fprintf(&attrs, " a%d=''", i)
	}
	tests := []struct{ name, doc, path, reason string }{
		{"address", doc(vm, ip("<net:address>"+colons+"</net:address>")), "/vw:virtualWorkspace/net:network/net:nic/net:ip/net:address", "net:IPAddress allows at most 45"},
		{"nameserver", doc(vm, ip("<net:nameserver>"+colons+"</net:nameserver>")), "/vw:virtualWorkspace/net:network/net:nic/net:ip/net:nameserver", "at most 45"},
		{"inside the lax EPR", doc(vm, "<vw:EPR><x>"+ip("<net:gateway>"+colons+"</net:gateway>")+"</x></vw:EPR>"), "/vw:virtualWorkspace/vw:EPR/x/net:network/net:nic/net:ip/net:gateway", "at most 45"},
		{"xsi:type", doc(vm, "<vw:EPR"+xsi+`><y xsi:type="net:IPAddress">`+colons+"</y></vw:EPR>"), "/vw:virtualWorkspace/vw:EPR/y", "at most 45"},
		{"xsi:type of a complex type", doc(vm, "<vw:EPR"+xsi+`><y xsi:type="net:IPConfigType"><net:method>dhcp</net:method><net:address>`+colons+"</net:address></y></vw:EPR>"), "/vw:virtualWorkspace/vw:EPR/y/net:address", "at most 45"},
		{"xsi:type on the EPR itself", doc(vm, "<vw:EPR"+xsi+` xsi:type="net:IPAddress">`+colons+"</vw:EPR>"), "/vw:virtualWorkspace/vw:EPR", "at most 45"},
		{"20000 attributes", doc(vm, "<vw:EPR><x"+attrs.String()+"/></vw:EPR>"), "/", "at most 64"},
		{"11000 errors", doc(vm, "<vw:EPR>"+strings.Repeat("<vw:state>x</vw:state>", 11000)+"</vw:EPR>"), "/vw:virtualWorkspace/vw:EPR/vw:state[1]", "and 10996 more problems"},
		{"200 namespace declarations", doc(vm, "<vw:EPR>"+strings.Repeat("<x xmlns:p='urn:p'/>", 200)+"</vw:EPR>"), "/", "more than 128 namespaces"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			start := time.Now()
			_, err := v.Validate([]byte(tt.doc))
			// Unguarded, the first cases take libxml2 about an hour; 2 s leaves room for a
			// loaded machine and the race detector.
			if el := time.Since(start); el > 2*time.Second {
				t.Errorf("took %v", el)
			}
			me := metadata(t, err)
			if me.Path != tt.path || !strings.Contains(me.Reason, tt.reason) {
				t.Errorf("got %v; want path %s and %q", err, tt.path, tt.reason)
			}
		})
	}
	// A long value is not repeated in full in the reason.
	_, err := v.Validate([]byte(doc(vm, "<sw:software><sw:image><sw:name>"+strings.Repeat("a", 30000)+"!</sw:name></sw:image></sw:software>")))
	if me := metadata(t, err); len(me.Reason) > 1000 || !strings.Contains(me.Reason, "(30001 characters)") {
		t.Errorf("reason of %d bytes: %.300s", len(me.Reason), me.Reason)
	}
	// Within the limit, the address still goes to libxml2 and is judged by the pattern.
	_, err = v.Validate([]byte(doc(vm, ip("<net:address>"+strings.Repeat(":", 44)+"g</net:address>"))))
	if me := metadata(t, err); !strings.Contains(me.Reason, "[facet 'pattern']") {
		t.Errorf("got %v", err)
	}
}

func TestConcurrentValidate(t *testing.T) {
	v := validator(t)
	inputs := [][]byte{
		readSample(t, "full-vm.xml"),
		readSample(t, "invalid/zero-cpus.xml"),
		readSample(t, "dynamic-account.xml"),
		[]byte(doc(vm, hardware(ram("1024", "4096", "2048")))),
		readSample(t, "invalid/unknown-element.xml"),
	}
	want := make([]string, len(inputs))
	for i, in := range inputs {
		_, err := v.Validate(in)
		want[i] = fmt.Sprint(err)
	}
	var wg sync.WaitGroup
	for g := range 8 {
		wg.Go(func() {
			for i := range 200 {
				k := (g + i) % len(inputs)
				d, err := v.Validate(inputs[k])
				if got := fmt.Sprint(err); got != want[k] {
					t.Errorf("goroutine %d: input %d: %s, want %s", g, k, got, want[k])
					return
				}
				if err == nil && d.Raw == nil {
					t.Errorf("goroutine %d: no Raw", g)
					return
				}
			}
		})
	}
	wg.Wait()
}

func TestClose(t *testing.T) {
	v, err := NewValidator()
	if err != nil {
		t.Fatal(err)
	}
	data := readSample(t, "minimal-vm.xml")
	if _, err := v.Validate(data); err != nil {
		t.Fatal(err)
	}
	v.Close()
	v.Close()
	if _, err := v.Validate(data); !errors.Is(err, ErrClosed) {
		t.Errorf("after Close: %v", err)
	}
}

func TestLimits(t *testing.T) {
	v, err := NewValidatorWithLimits(Limits{MaxBytes: 1000, MaxDepth: 3})
	if err != nil {
		t.Fatal(err)
	}
	defer v.Close()
	_, err = v.Validate(readSample(t, "full-vm.xml"))
	if me := metadata(t, err); !strings.Contains(me.Reason, "at most 1000") {
		t.Error(err)
	}
	_, err = v.Validate([]byte(doc(vm, hardware(ram("512", "", "")))))
	if me := metadata(t, err); !strings.Contains(me.Reason, "more than 3 deep") {
		t.Error(err)
	}
}

// TestSchemaLimits pins the counts read from the schema's prose, and that every
// repeated element of the description has one.
func TestSchemaLimits(t *testing.T) {
	v := validator(t)
	want := map[string]int{
		"hw:HardwareType/hw:disk":         16,
		"hw:DiskType/hw:partition":        128,
		"net:NetworkType/net:nic":         16,
		"net:IPConfigType/net:nameserver": 8,
		"sw:SoftwareType/sw:library":      256,
		"cap:StartupType/cap:argument":    256,
		"cap:StartupType/cap:environment": 256,
		"cap:StartupType/cap:file":        64,
	}
	if got := v.model.limits(); !reflect.DeepEqual(got, want) {
		t.Errorf("limits %v, want %v", got, want)
	}
	if got := v.model.limits()["cap:StartupType/cap:argument"]; got != maxArguments {
		t.Errorf("capability.xsd says at most %d arguments, maxArguments is %d", got, maxArguments)
	}
}

func TestCheckWorkspaceName(t *testing.T) {
	for name, ok := range map[string]bool{
		"analysis-01": true, "a": true, strings.Repeat("a", 64): true, "A.b_c-d": true,
		"": false, strings.Repeat("a", 65): false, "../etc": false, "a/b": false, "a..b": true, // the type's pattern allows ".."
		"-a": false, ".a": false, "a\x00": false, "a\n": false, "é": false, "a b": false,
	} {
		err := CheckWorkspaceName(name)
		if (err == nil) != ok {
			t.Errorf("%q: %v", name, err)
		}
		var me *errdefs.MetadataError
		if err != nil && (!errors.As(err, &me) || me.Path != "/fac:Create/fac:Name") {
			t.Errorf("%q: %v", name, err)
		}
	}
}

// BenchmarkValidate validates the full sample. Besides wall time it reports the
// process's CPU time per validation (cpu-ns/op, from getrusage, GC included), which
// stays meaningful on a loaded machine where ns/op includes waiting for a CPU.
func BenchmarkValidate(b *testing.B) {
	v := validator(b)
	data := readSample(b, "full-vm.xml")
	b.SetBytes(int64(len(data)))
	b.ReportAllocs()
	start := cpuTime(b)
	for b.Loop() {
		if _, err := v.Validate(data); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(cpuTime(b)-start)/float64(b.N), "cpu-ns/op")
}

func cpuTime(b *testing.B) time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		b.Fatal(err)
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// BenchmarkStages splits BenchmarkValidate's cost: the pre-checks and the scan (which
// builds Raw), the guard and libxml2, the semantic checks and reading the Description;
// "etree" is a plain etree.ReadFromBytes of the same document, for scale.
func BenchmarkStages(b *testing.B) {
	v := validator(b)
	data := readSample(b, "full-vm.xml")
	scanned := func() *scanned {
		d, err := precheck(data, DefaultLimits)
		if err != nil {
			b.Fatal(err)
		}
		s, err := scan(d, DefaultLimits)
		if err != nil {
			b.Fatal(err)
		}
		return s
	}
	b.Run("scan", func(b *testing.B) {
		for b.Loop() {
			scanned()
		}
	})
	b.Run("libxml2", func(b *testing.B) {
		s := scanned()
		for b.Loop() {
			if err := v.guard(s); err != nil {
				b.Fatal(err)
			}
			if err := v.validateSchema(s); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("checks", func(b *testing.B) {
		s := scanned()
		if err := v.guard(s); err != nil {
			b.Fatal(err)
		}
		for b.Loop() {
			if err := v.checkSemantics(s); err != nil {
				b.Fatal(err)
			}
			if _, err := build(s.root); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("etree", func(b *testing.B) {
		for b.Loop() {
			if err := etree.NewDocument().ReadFromBytes(data); err != nil {
				b.Fatal(err)
			}
		}
	})
}

// BenchmarkValidateParallel is BenchmarkValidate from GOMAXPROCS goroutines at once.
func BenchmarkValidateParallel(b *testing.B) {
	v := validator(b)
	data := readSample(b, "full-vm.xml")
	b.SetBytes(int64(len(data)))
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			if _, err := v.Validate(data); err != nil {
				b.Error(err)
				return
			}
		}
	})
}

// BenchmarkValidateInvalid measures a refusal by libxml2 (the path is computed).
func BenchmarkValidateInvalid(b *testing.B) {
	v := validator(b)
	data := bytes.Replace(readSample(b, "full-vm.xml"), []byte("<hw:count>2<"), []byte("<hw:count>0<"), 1)
	for b.Loop() {
		if _, err := v.Validate(data); err == nil {
			b.Fatal("accepted")
		}
	}
}

// TestTerminationTimeAtTheEndOfADay: XML Schema's 24:00:00 is the next midnight.
func TestTerminationTimeAtTheEndOfADay(t *testing.T) {
	d, err := validator(t).Validate([]byte(doc(vm, "<vw:lifeCycle><vw:terminationTime>2026-03-01T24:00:00Z</vw:terminationTime></vw:lifeCycle>")))
	if err != nil || !d.TerminationTime.Equal(time.Date(2026, 3, 2, 0, 0, 0, 0, time.UTC)) {
		t.Fatalf("terminationTime 2026-03-01T24:00:00Z: %v, %v; want 2026-03-02T00:00:00Z", d, err)
	}
}
