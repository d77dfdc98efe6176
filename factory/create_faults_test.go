package factory

import (
	"errors"
	"regexp"
	"testing"
	"time"

	"github.com/vws-grid/vws/internal/container"
	"github.com/vws-grid/vws/wsdl"
)

// createFaults are the fault names the Create operation of a dialect's WSDL declares.
func createFaults(t *testing.T, file string) []string {
	t.Helper()
	b, err := wsdl.FS.ReadFile(file)
	if err != nil {
		t.Fatal(err)
	}
	op := regexp.MustCompile(`(?s)<wsdl:portType.*?<wsdl:operation name="Create">(.*?)</wsdl:operation>`).FindSubmatch(b)
	if op == nil {
		t.Fatalf("%s: no Create operation in the portType", file)
	}
	var out []string
	for _, m := range regexp.MustCompile(`<wsdl:fault name="([A-Za-z]+)"`).FindAllSubmatch(op[1], -1) {
		out = append(out, string(m[1]))
	}
	return out
}

// declared reports which declared fault err is sent as (by its sentinel); "" when none.
func declared(err error, faults []string) string {
	for _, f := range faults {
		if s := container.SentinelOf(f); s != nil && errors.Is(err, s) {
			return f
		}
	}
	return ""
}

// TestCreateFaultsAreDeclared: PROTOCOL.md — the WSDL is the source of truth for
// operations; Create's WSDL (both dialects) declares WorkspaceCreationFault,
// WorkspaceAuthorizationFault, WorkspaceQuotaExceededFault, WorkspaceMetadataFault,
// ImageIntegrityFault and ServiceFault. A Create naming an image the pool lacks is
// answered ResourceUnknownFault (whose default advice is "check the EPR or key you
// sent"), and a lifetime beyond the maximum under --lifetime-policy refuse is
// TerminationTimeChangeRejectedFault: neither is a fault of Create.
func TestCreateFaultsAreDeclared(t *testing.T) {
	now := time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)
	for _, file := range []string{"wsrf12/WorkspaceFactoryService.wsdl", "gt4/WorkspaceFactoryService.wsdl"} {
		faults := createFaults(t, file)
		_, err := runCreate(t, &recordingRegistry{images: poolOfTwo()}, now, `<vw:virtualWorkspace><vw:category>vm</vw:category>
			<sw:software><sw:image><sw:name>no-such-image</sw:name></sw:image></sw:software></vw:virtualWorkspace>`)
		if err == nil {
			t.Fatal("precondition: an unknown image was accepted")
		}
		if declared(err, faults) == "" {
			t.Errorf("%s: Create naming an image not in the pool fails with %v, which is none of Create's declared faults %v", file, err, faults)
		}
		refuseLongLifetimes = true
		_, err = runCreate(t, &recordingRegistry{images: poolOfTwo()}, now, `<vw:virtualWorkspace><vw:category>vm</vw:category>
			<sw:software><sw:image><sw:name>debian-12</sw:name></sw:image></sw:software></vw:virtualWorkspace><fac:RequestedLifetime>P365D</fac:RequestedLifetime>`)
		refuseLongLifetimes = false
		if err == nil {
			t.Fatal("precondition: a year's lifetime was accepted under the refuse policy")
		}
		if declared(err, faults) == "" {
			t.Errorf("%s: Create asking beyond the maximum lifetime (refuse policy) fails with %v, which is none of Create's declared faults %v", file, err, faults)
		}
	}
}
