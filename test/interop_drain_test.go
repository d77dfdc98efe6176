package test

import (
	"bytes"
	"context"
	"encoding/json"
	"os"
	"os/exec"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/vws-grid/vws/internal/dialect"
)

// TestInteropDrainZeep: python3-zeep drains and undrains a Manager's host through the
// live WSDL in both dialects (WS-RP SetResourceProperties of mgr:Draining, built from
// the WSDL's types), and gets the typed faults the WSDL declares for a read-only
// property and a value that is no boolean.
func TestInteropDrainZeep(t *testing.T) {
	if out, err := exec.Command(zeepPython, "-c", "import zeep").CombinedOutput(); err != nil {
		t.Skipf("needs python3-zeep for %s (apt-get install python3-zeep): %v\n%s", zeepPython, err, out)
	}
	t.Parallel()
	s := StartMgrServer(t, MgrServerOptions{HostName: "zeep-drain", Args: []string{"--announce-every", "0"}})
	for _, d := range dialect.Dialects {
		// One dialect after the other: both drain the same host.
		ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
		cmd := exec.CommandContext(ctx, zeepPython, "interop/zeep_drain.py", "--wsdl", managerWSDL(s, d), "--dialect", d.Name)
		cmd.Env = append(os.Environ(), "PYTHONDONTWRITEBYTECODE=1")
		var stdout, stderr bytes.Buffer
		cmd.Stdout, cmd.Stderr = &stdout, &stderr
		err := cmd.Run()
		cancel()
		if err != nil {
			t.Fatalf("zeep_drain.py (%s): %v\n%s%s", d.Name, err, stderr.String(), stdout.String())
		}
		var got struct {
			AfterDrain, AfterFaults, AfterUndrain []string
			ReadOnlyFault, NotBooleanFault        interopFault
		}
		if err := json.Unmarshal(stdout.Bytes(), &got); err != nil {
			t.Fatalf("%s: %v\n%s", d.Name, err, stdout.String())
		}
		t.Logf("%s: %s", d.Name, stdout.String())
		// zeep parses mgr:Draining with its schema type, xs:boolean: Python's True.
		if !slices.Equal(got.AfterDrain, []string{"True"}) || !slices.Equal(got.AfterFaults, []string{"True"}) || !slices.Equal(got.AfterUndrain, []string{"False"}) {
			t.Errorf("%s: mgr:Draining after the drain %v, after the refused updates %v, after the undrain %v", d.Name, got.AfterDrain, got.AfterFaults, got.AfterUndrain)
		}
		invalid := "InvalidModificationFault"
		if d == dialect.GT4 {
			invalid = "InvalidSetResourcePropertiesRequestContentFault"
		}
		for _, f := range []struct {
			got        interopFault
			typ, tells string
		}{
			{got.ReadOnlyFault, "UnableToModifyResourcePropertyFault", "read-only"},
			{got.NotBooleanFault, invalid, `"maybe" is not an xs:boolean`},
		} {
			if f.got.Type != f.typ || !strings.Contains(f.got.Description, f.tells) {
				t.Errorf("%s: fault %s %q, want %s telling %q", d.Name, f.got.Type, f.got.Description, f.typ, f.tells)
			}
		}
	}
}
