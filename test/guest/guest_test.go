package guest

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

const userData = `#!/bin/sh
echo "hello from the job"
i=0; while :; do echo "tick $i"; i=$((i+1)); sleep 1; done
`

func virsh(t testing.TB, args ...string) (string, error) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	out, err := exec.CommandContext(ctx, "virsh", append([]string{"-c", "qemu:///system"}, args...)...).CombinedOutput()
	if err != nil {
		return string(out), fmt.Errorf("virsh %s: %v: %s", strings.Join(args, " "), err, strings.TrimSpace(string(out)))
	}
	return string(out), nil
}

func run(t testing.TB, name string, args ...string) {
	t.Helper()
	if out, err := exec.Command(name, args...).CombinedOutput(); err != nil {
		t.Fatalf("%s %s: %v\n%s", name, strings.Join(args, " "), err, out)
	}
}

func readLog(path string) string {
	b, _ := os.ReadFile(path)
	return string(b)
}

// waitFor polls cond every 50 ms until it holds or d passes.
func waitFor(d time.Duration, cond func() bool) bool {
	deadline := time.Now().Add(d)
	for {
		if cond() {
			return true
		}
		if time.Now().After(deadline) {
			return false
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func TestGuestBoots(t *testing.T) {
	img := Ensure(t)
	t.Logf("guest: kernel %s, %s", img.KernelVersion, img.Dir)
	dir := t.TempDir()

	// NoCloud configuration CD.
	ci := filepath.Join(dir, "cidata")
	if err := os.MkdirAll(ci, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(ci, "meta-data"), []byte("instance-id: test\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(ci, "user-data"), []byte(userData), 0o644); err != nil {
		t.Fatal(err)
	}
	iso := filepath.Join(dir, "ci.iso")
	run(t, "xorriso", "-as", "mkisofs", "-quiet", "-V", "cidata", "-J", "-r", "-o", iso, ci)

	// Throwaway overlay: the cached base disk is never written.
	overlay := filepath.Join(dir, "root.qcow2")
	run(t, "qemu-img", "create", "-q", "-f", "qcow2", "-F", "qcow2", "-b", img.Disk, overlay)

	var rnd [4]byte
	_, _ = rand.Read(rnd[:])
	name := "vws-guesttest-" + hex.EncodeToString(rnd[:])
	console := filepath.Join(dir, "console.log")
	domXML := fmt.Sprintf(`<domain type='qemu'>
  <name>%s</name>
  <memory unit='MiB'>128</memory>
  <vcpu>1</vcpu>
  <os>
    <type arch='x86_64' machine='pc'>hvm</type>
    <kernel>%s</kernel>
    <initrd>%s</initrd>
    <cmdline>console=ttyS0 panic=-1</cmdline>
  </os>
  <features><acpi/><apic/></features>
  <on_poweroff>destroy</on_poweroff>
  <on_reboot>destroy</on_reboot>
  <on_crash>destroy</on_crash>
  <devices>
    <disk type='file' device='disk'>
      <driver name='qemu' type='qcow2'/>
      <source file='%s'/>
      <target dev='vda' bus='virtio'/>
    </disk>
    <disk type='file' device='cdrom'>
      <driver name='qemu' type='raw'/>
      <source file='%s'/>
      <target dev='sda' bus='sata'/>
      <readonly/>
    </disk>
    <serial type='file'>
      <source path='%s'/>
      <target port='0'/>
    </serial>
    <console type='file'>
      <source path='%s'/>
      <target type='serial' port='0'/>
    </console>
    <memballoon model='none'/>
  </devices>
</domain>
`, name, img.Kernel, img.Initrd, overlay, iso, console, console)
	domFile := filepath.Join(dir, "domain.xml")
	if err := os.WriteFile(domFile, []byte(domXML), 0o644); err != nil {
		t.Fatal(err)
	}

	t.Cleanup(func() {
		// Always gone, even on failure; an error just means it already ended.
		_, _ = virsh(t, "destroy", name)
	})
	defer func() {
		if t.Failed() {
			t.Logf("console.log:\n%s", readLog(console))
		}
	}()

	start := time.Now()
	if _, err := virsh(t, "create", domFile); err != nil {
		t.Fatal(err)
	}
	var hello time.Duration
	if !waitFor(60*time.Second, func() bool {
		log := readLog(console)
		if hello == 0 && strings.Contains(log, "hello from the job") {
			hello = time.Since(start)
		}
		return hello != 0 && LastTick(log) >= 2
	}) {
		t.Fatalf("no 'hello from the job' and 'tick 2' on the console within 60 s")
	}
	t.Logf("boot to 'hello from the job': %v (domain type qemu/TCG)", hello.Round(time.Millisecond))
	log := readLog(console)
	for _, want := range []string{"vws-guest: booted", "vws-guest: cidata found"} {
		if !strings.Contains(log, want) {
			t.Errorf("console lacks %q", want)
		}
	}

	// Suspended: the ticks stop.
	t0 := time.Now()
	if _, err := virsh(t, "suspend", name); err != nil {
		t.Fatal(err)
	}
	t.Logf("suspend: %v", time.Since(t0).Round(time.Millisecond))
	paused := LastTick(readLog(console))
	time.Sleep(2 * time.Second)
	if n := LastTick(readLog(console)); n != paused {
		t.Fatalf("suspended guest kept ticking: tick %d -> %d", paused, n)
	}

	// Resumed: they go on.
	t0 = time.Now()
	if _, err := virsh(t, "resume", name); err != nil {
		t.Fatal(err)
	}
	t.Logf("resume: %v", time.Since(t0).Round(time.Millisecond))
	if !waitFor(10*time.Second, func() bool { return LastTick(readLog(console)) > paused }) {
		t.Fatalf("resumed guest does not tick past %d", paused)
	}

	// ACPI shutdown: the power button makes the guest power off, and the
	// transient domain is gone.
	t0 = time.Now()
	if _, err := virsh(t, "shutdown", "--mode", "acpi", name); err != nil {
		t.Fatal(err)
	}
	if !waitFor(20*time.Second, func() bool {
		_, err := virsh(t, "domstate", name)
		return err != nil
	}) {
		t.Fatalf("domain still there 20 s after an ACPI shutdown")
	}
	t.Logf("ACPI shutdown to domain gone: %v", time.Since(t0).Round(time.Millisecond))
	if log := readLog(console); !strings.Contains(log, "vws-guest: ACPI power button: powering off") {
		t.Errorf("console lacks the power-button message")
	}
}
