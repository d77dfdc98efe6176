package manager

import (
	"context"
	"testing"

	"github.com/vws-grid/vws/internal/dialect"
	"github.com/vws-grid/vws/internal/vwsns"
	"github.com/vws-grid/vws/vmm"
)

// TestMemoryFreePropertyIsWhatIsNotCommitted: mgr:MemoryFree is "host memory not
// committed to workspaces" (manager.xsd), the figure the host announces and a boot is
// admitted against — not the kernel's free memory, which a guest deployed running has
// not touched yet. Otherwise vws host status shows room that a Start is refused.
func TestMemoryFreePropertyIsWhatIsNotCommitted(t *testing.T) {
	m, hv, _ := crashManager(t, "ws-new", stateShutdown, false)
	host := vmm.HostInfo{MemoryMiB: 4096, FreeMiB: 3900}
	m.hv = hostInfoHV{crashHV: hv, info: host}
	if err := m.journal.put(&record{Key: "ws-running", Phase: phaseDeployed, State: stateRunning, Spec: vmm.Spec{MemoryMiB: 1024}}); err != nil {
		t.Fatal(err)
	}
	props, err := m.hostProperties(context.Background(), dialect.WSRF12)
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, p := range props {
		if p.Tag == "MemoryFree" && p.NamespaceURI() == vwsns.Manager {
			got = append(got, p.Text())
		}
	}
	// 4096 - 512 reserved - 1024 held by the running guest.
	if want := "2560"; len(got) != 1 || got[0] != want {
		t.Fatalf("mgr:MemoryFree %q with a 1024 MiB guest running on a 4096 MiB host (512 reserved), want %s as announced (%d)",
			got, want, m.uncommittedMiB(host, ""))
	}
}
