package main

import (
	"bytes"
	"strings"
	"testing"

	"github.com/beevik/etree"
)

// TestPrintHostSaysTheUnits: host status gives memory with its unit, as the
// properties count it (MiB), not as bare numbers.
func TestPrintHostSaysTheUnits(t *testing.T) {
	doc := etree.NewDocument()
	if err := doc.ReadFromString(`<q><WorkspaceManagerRP><VMMType>QEMU</VMMType><CPUs>2</CPUs><MemoryTotal>7940</MemoryTotal><MemoryFree>5120</MemoryFree>` +
		`<DeployedWorkspaces><Workspace><Key>k1</Key><State>running</State><Deployment>deployed</Deployment><MemoryMiB>256</MemoryMiB></Workspace></DeployedWorkspaces>` +
		`</WorkspaceManagerRP></q>`); err != nil {
		t.Fatal(err)
	}
	var out bytes.Buffer
	if err := printHost(&out, doc.Root()); err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"MemoryTotal:   7940 MiB", "MemoryFree:    5120 MiB", "MEMORY (MiB)", "DomainType:    -", "Architecture:  -"} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("host status lacks %q:\n%s", want, out.String())
		}
	}
}

// TestPrintHostListsPublishedBridges: host status tells the bridges guests may join
// apart from the libvirt networks, not as networks "not started".
func TestPrintHostListsPublishedBridges(t *testing.T) {
	doc := etree.NewDocument()
	if err := doc.ReadFromString(`<q><WorkspaceManagerRP><Networks libvirtNetworksUnknown="true">` +
		`<Network><Name>br-grid</Name><Active>true</Active><Kind>bridge</Kind></Network></Networks></WorkspaceManagerRP></q>`); err != nil {
		t.Fatal(err)
	}
	var out bytes.Buffer
	if err := printHost(&out, doc.Root()); err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"Networks (libvirt): could not be listed", "Bridges guests may join (vws serve --bridge):\n  br-grid"} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("host status lacks %q:\n%s", want, out.String())
		}
	}
	if strings.Contains(out.String(), "net-start br-grid") {
		t.Errorf("a bridge is listed as a libvirt network:\n%s", out.String())
	}
}
