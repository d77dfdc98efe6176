package wsdl_test

import (
	"bytes"
	"encoding/xml"
	"go/format"
	"os"
	"path/filepath"
	"reflect"
	"regexp"
	"strings"
	"testing"

	"github.com/vws-grid/vws/wsdl/gen/factory"
	"github.com/vws-grid/vws/wsdl/gen/manager"
	"github.com/vws-grid/vws/wsdl/gen/workspace"
)

func readSample(t *testing.T, name string) []byte {
	t.Helper()
	data, err := os.ReadFile(filepath.Join("..", "schema", "samples", name))
	if err != nil {
		t.Fatal(err)
	}
	return data
}

// TestDescriptionRoundTrip decodes the sample descriptions into the generated type,
// encodes them again and decodes the result: nothing may be lost, and the re-encoded
// document must still be a valid description.
func TestDescriptionRoundTrip(t *testing.T) {
	for _, name := range []string{"minimal-vm.xml", "full-vm.xml", "dynamic-account.xml"} {
		t.Run(name, func(t *testing.T) {
			var first workspace.VirtualWorkspace
			if err := xml.Unmarshal(readSample(t, name), &first); err != nil {
				t.Fatal(err)
			}
			out, err := xml.MarshalIndent(&first, "", "  ")
			if err != nil {
				t.Fatal(err)
			}
			var second workspace.VirtualWorkspace
			if err := xml.Unmarshal(out, &second); err != nil {
				t.Fatalf("re-decoding %s: %v", out, err)
			}
			if !reflect.DeepEqual(first, second) {
				t.Errorf("round trip changed the description:\nfirst  %+v\nsecond %+v", first, second)
			}
		})
	}

	var vw workspace.VirtualWorkspace
	if err := xml.Unmarshal(readSample(t, "full-vm.xml"), &vw); err != nil {
		t.Fatal(err)
	}
	out, err := xml.Marshal(&vw)
	if err != nil {
		t.Fatal(err)
	}
	vw = workspace.VirtualWorkspace{}
	if err := xml.Unmarshal(out, &vw); err != nil {
		t.Fatal(err)
	}
	if vw.Category == nil || vw.Category.Value == nil || *vw.Category.Value != workspace.WorkspaceCategoryVm ||
		vw.Category.Vmm == nil || *vw.Category.Vmm != workspace.VMMKindKvm {
		t.Errorf("category = %+v, want vm with vmm=kvm", vw.Category)
	}
	if vw.State == nil || workspace.WorkspaceState(*vw.State) != workspace.WorkspaceStateShutdown {
		t.Errorf("state = %v, want shutdown", vw.State)
	}
	if hw := vw.Hardware; hw == nil || hw.RAM == nil || hw.RAM.Size == nil || *hw.RAM.Size != 1024 ||
		*hw.RAM.Minimum != 512 || *hw.RAM.Maximum != 2048 {
		t.Errorf("RAM = %+v, want 1024 MiB (512..2048)", vw.Hardware)
	} else if len(hw.Disk) != 3 || len(hw.Disk[1].Partition) != 2 || *hw.CPU.Count != 2 {
		t.Errorf("hardware = %+v, want 2 CPUs and 3 disks, the second with 2 partitions", hw)
	}
	if vw.Network == nil || len(vw.Network.Nic) != 2 || len(vw.Network.Nic[1].Ip.Nameserver) != 2 {
		t.Errorf("network = %+v, want 2 NICs", vw.Network)
	}
	if c := vw.Capability; c == nil || c.Startup == nil || len(c.Startup.Argument) != 2 || len(c.Startup.File) != 2 ||
		*c.Startup.File[1].Encoding != workspace.ContentEncodingBase64 {
		t.Errorf("capability = %+v, want the startup program with 2 arguments and 2 files", vw.Capability)
	}
	if vw.EPR == nil || !strings.Contains(vw.EPR.InnerXML, "6f1c2d3e-4b5a-4c7d-8e9f-0a1b2c3d4e5f") {
		t.Errorf("EPR = %+v, want the workspace key", vw.EPR)
	}
}

// TestGeneratedXMLIsValid encodes generated values and validates the result with the
// schemas: the generated types put every element in its schema namespace.
func TestGeneratedXMLIsValid(t *testing.T) {
	xl := xmllint(t)
	schemaDir := filepath.Join("..", "schema", "vws")

	// A description decoded from a sample. Its EPR is dropped: encoding/xml keeps an EPR's
	// content as raw inner XML, whose prefixes may be declared on ancestors it no longer
	// has (read EPRs with internal/wsa, not with these types).
	var vw workspace.VirtualWorkspace
	if err := xml.Unmarshal(readSample(t, "full-vm.xml"), &vw); err != nil {
		t.Fatal(err)
	}
	vw.EPR = nil

	// Messages built in Go. An EPR's content carries its own namespace declarations
	// (internal/eprxml keeps the EPR-valued types' inner XML whole).
	epr := workspace.AnyType{InnerXML: `<wsa:Address xmlns:wsa="http://www.w3.org/2005/08/addressing">` +
		`https://repo.example.org:8443/wsrf/services/WorkspaceService</wsa:Address>`}
	desc := factory.VirtualWorkspace{}
	if err := xml.Unmarshal(readSample(t, "minimal-vm.xml"), &desc); err != nil {
		t.Fatal(err)
	}
	lifetime := factory.Duration("PT6H")
	now, end := factory.Timestamp("2026-03-01T09:30:00Z"), factory.Timestamp("2026-03-01T15:30:00Z")
	mode := manager.ShutdownModeSerialize
	for name, v := range map[string]struct {
		xsd string
		val any
	}{
		"description": {"workspace.xsd", &vw},
		"Create":      {"factory.xsd", &factory.Create{VirtualWorkspace: &desc, RequestedLifetime: &lifetime}},
		"CreateResponse": {"factory.xsd", &factory.CreateResponse{
			WorkspaceReference: &factory.EndpointReferenceContainerType{AnyType: factory.AnyType(epr)},
			CurrentTime:        &now, TerminationTime: &end}},
		"Shutdown": {"manager.xsd", &manager.Shutdown{
			WorkspaceReference: &manager.EndpointReferenceContainerType{AnyType: manager.AnyType(epr)},
			Mode:               &mode}},
	} {
		out, err := xml.MarshalIndent(v.val, "", "  ")
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		doc := filepath.Join(t.TempDir(), name+".xml")
		if err := os.WriteFile(doc, out, 0o644); err != nil {
			t.Fatal(err)
		}
		if code, msg := lint(t, xl, filepath.Join(schemaDir, v.xsd), doc); code != 0 {
			t.Errorf("%s encoded by the generated types is not valid:\n%s\n%s", name, out, msg)
		}
	}
}

var generatedHeader = regexp.MustCompile(`(?m)^// Code generated .* DO NOT EDIT\.$`)

// TestGeneratedFiles checks the standard header and gofmt formatting of the generated
// code (freshness is checked by running go generate and diffing, as CI does).
func TestGeneratedFiles(t *testing.T) {
	paths, err := filepath.Glob(filepath.Join("gen", "*", "*.go"))
	if err != nil {
		t.Fatal(err)
	}
	if len(paths) != 4 {
		t.Fatalf("found %v, want the 4 generated packages", paths)
	}
	for _, p := range paths {
		src, err := os.ReadFile(p)
		if err != nil {
			t.Fatal(err)
		}
		firstComment := string(bytes.SplitN(src, []byte("\n"), 2)[0])
		if !generatedHeader.MatchString(firstComment) {
			t.Errorf("%s: first line %q is not a \"// Code generated ... DO NOT EDIT.\" header", p, firstComment)
		}
		formatted, err := format.Source(src)
		if err != nil {
			t.Fatalf("%s: %v", p, err)
		}
		if !bytes.Equal(formatted, src) {
			t.Errorf("%s is not gofmt-formatted", p)
		}
	}
}
