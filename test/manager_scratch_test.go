package test

import (
	"strings"
	"testing"
	"time"
)

// scratchDisk is an empty 64 MiB scratch disk at vdb, inserted into the ticker
// description; scratchJob replaces its startup program with one that reports the
// disk's size and first bytes, writes a marker there and flushes it.
const (
	scratchDisk = `<hw:disk><hw:target>vdb</hw:target><hw:bus>virtio</hw:bus><hw:size>64</hw:size></hw:disk>
  </hw:hardware>`
	scratchJob = `#!/bin/sh
echo "scratch sectors $(cat /sys/block/vdb/size)"
v=$(dd if=/dev/vdb bs=6 count=1 2>/dev/null)
echo "scratch before: [$v]"
printf marker | dd of=/dev/vdb conv=notrunc 2>/dev/null
sync
echo "scratch after: [$(dd if=/dev/vdb bs=6 count=1 2>/dev/null)]"
echo "scratch written"
`
)

// TestScratchDisk: a real guest sees the empty scratch disk its description names,
// of the described size; what it writes there is not kept, so Serialize is refused
// with the guest left running, and the next deployment finds the disk empty again.
func TestScratchDisk(t *testing.T) {
	t.Parallel()
	s := StartMgrServer(t, MgrServerOptions{HostName: "scratch-host"})
	ImportGuest(t, s)
	desc := TickerDescription(t, "  </hw:hardware>", scratchDisk,
		"#!/bin/sh\necho \"hello from the $1 job\"\ni=0\nwhile :; do echo \"tick $i\"; i=$((i+1)); sleep 1; done\n", scratchJob)
	w := CreateWorkspace(t, s, desc)

	written := func(c string) bool { return strings.Contains(c, "scratch written") }
	s.MustCLI(t, "deploy", w.EPRFile, "--state", "running")
	c := WaitConsole(t, s, w, 90*time.Second, "the scratch job's report", written)
	if !strings.Contains(c, "scratch sectors 131072") { // 64 MiB of 512-byte sectors
		t.Fatalf("the guest does not see a 64 MiB vdb:\n%s", c)
	}
	if !strings.Contains(c, "scratch before: []") || !strings.Contains(c, "scratch after: [marker]") {
		t.Fatalf("the first deployment's scratch disk is not empty, or did not take the marker:\n%s", c)
	}

	r := s.CLI(t, "shutdown", w.EPRFile, "--mode", "serialize")
	WantFault(t, r, "WorkspaceStateFault", "scratch disk", "nothing was changed")
	WantWSProps(t, w, "state", "running", "deployment", "deployed")
	if got := DomainState(w.Domain()); got != "running" {
		t.Fatalf("after the refused serialize the domain is %q", got)
	}

	s.MustCLI(t, "shutdown", w.EPRFile, "--mode", "normal")
	s.MustCLI(t, "undeploy", w.EPRFile)
	if s.HasWorkspaceDir(w.Key) {
		t.Fatalf("undeploy left the workspace's files (its scratch disk among them): %v", s.WorkspaceFiles(w.Key))
	}

	// The marker the first deployment flushed to its scratch disk is gone.
	s.MustCLI(t, "deploy", w.EPRFile, "--state", "running")
	c = WaitConsole(t, s, w, 90*time.Second, "the scratch job's report on the second deployment", written)
	if !strings.Contains(c, "scratch before: []") {
		t.Fatalf("the second deployment's scratch disk holds what the first wrote:\n%s", c)
	}
	s.MustCLI(t, "shutdown", w.EPRFile, "--mode", "trash")
	s.MustCLI(t, "undeploy", w.EPRFile)
}
