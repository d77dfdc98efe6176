package placement

import (
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/vws-grid/vws/internal/describe"
	"github.com/vws-grid/vws/internal/hostfit"
)

func desc(memMiB, cpus int, arch string, nets ...string) *describe.Description {
	d := &describe.Description{Category: describe.CategoryVM, Hardware: &describe.Hardware{
		Memory: describe.Memory{SizeMiB: memMiB}, CPU: describe.CPU{Count: cpus, Architecture: arch}}}
	if len(nets) > 0 {
		d.Network = &describe.Network{}
		for i, n := range nets {
			d.Network.NICs = append(d.Network.NICs, describe.NIC{Name: "eth" + string(rune('0'+i)), Network: n})
		}
	}
	return d
}

func host(name string, free int64, deployed int, cached ...string) Host {
	h := Host{Name: name, Offer: hostfit.Offer{DomainType: "qemu", Arch: "x86_64", CPUs: 4, FreeMiB: free}, Deployed: deployed, Cached: map[string]bool{}}
	for _, c := range cached {
		h.Cached[c] = true
	}
	return h
}

func names[T interface{ name() string }](list []T) string {
	var out []string
	for _, x := range list {
		out = append(out, x.name())
	}
	return strings.Join(out, " ")
}

func (c Candidate) name() string  { return c.Name }
func (u Unsuitable) name() string { return u.Name }

// TestRank: the host that caches most of the workspace's bytes comes first, then the
// one with most free memory, then the one running fewest workspaces, and last one
// whose manager could not read its hypervisor; hosts that could not deploy it are set
// apart with the reason their manager would give.
func TestRank(t *testing.T) {
	images := []Image{{Digest: "sha256:base", Size: 4 << 30}, {Digest: "sha256:kernel", Size: 8 << 20}}
	kvmOnly := host("xen1", 8192, 0)
	kvmOnly.Offer.DomainType = "xen"
	broken := host("broken", 8192, 0)
	broken.Problem = "libvirtd is not running"
	arm := host("arm", 8192, 0)
	arm.Offer.Arch = "aarch64"
	hosts := []Host{
		host("empty-big", 16384, 0),
		host("kernel-only", 8192, 0, "sha256:kernel"),
		host("base-cached-busy", 2048, 5, "sha256:base"),
		host("base-cached-idle", 2048, 1, "sha256:base"),
		host("all-cached-small", 1024, 0, "sha256:base", "sha256:kernel"),
		host("too-small", 256, 0, "sha256:base", "sha256:kernel"),
		host("empty-big-busy", 16384, 3),
		broken, arm,
	}
	d := desc(512, 2, "x86_64")
	d.VMM = "qemu"
	cands, unfit := Rank(d, images, append(hosts, kvmOnly), false, nil)
	if got, want := names(cands), "all-cached-small base-cached-idle base-cached-busy kernel-only empty-big empty-big-busy broken"; got != want {
		t.Errorf("candidates: %s\nwant        %s", got, want)
	}
	if got, want := names(unfit), "too-small arm xen1"; got != want {
		t.Errorf("unsuitable: %s, want %s", got, want)
	}
	if c := cands[0]; c.CachedBytes != 4<<30+8<<20 || c.StagedBytes != 0 {
		t.Errorf("all cached: cached %d staged %d", c.CachedBytes, c.StagedBytes)
	}
	if c := cands[3]; c.CachedBytes != 8<<20 || c.StagedBytes != 4<<30 {
		t.Errorf("kernel only: cached %d staged %d", c.CachedBytes, c.StagedBytes)
	}
	for _, u := range unfit {
		want := map[string]string{"too-small": "needs at least 512 MiB; this host has 256 MiB free",
			"arm": "architecture x86_64; this host is aarch64", "xen1": `needs VMM "qemu"; this host offers xen`}[u.Name]
		if !strings.Contains(u.Reason, want) {
			t.Errorf("%s: reason %q, want it to say %q", u.Name, u.Reason, want)
		}
	}
}

// TestRankPreferred: the fitting hosts the workspace's creator preferred
// (fac:PreferredHost) come first, in the order given, before those caching more of its
// images; a preferred host that does not fit, whose hypervisor is unread or that did
// not announce itself is not preferred, and the reasons of the unsuitable stay as
// they are.
func TestRankPreferred(t *testing.T) {
	images := []Image{{Digest: "sha256:base", Size: 4 << 30}}
	broken := host("broken", 8192, 0)
	broken.Problem = "libvirtd is not running"
	hosts := []Host{
		host("cached", 16384, 0, "sha256:base"),
		host("node7", 1024, 4),
		host("node8", 2048, 0),
		host("small", 256, 0, "sha256:base"),
		broken,
	}
	cands, unfit := Rank(desc(512, 1, ""), images, hosts, false, []string{"gone", "small", "NODE8", "broken", "node7"})
	if got, want := names(cands), "node8 node7 cached broken"; got != want {
		t.Errorf("candidates: %s, want %s", got, want)
	}
	for _, c := range cands {
		if want := map[string]int{"node8": 3, "node7": 5}[c.Name]; c.Preferred != want {
			t.Errorf("%s: preferred %d, want %d", c.Name, c.Preferred, want)
		}
	}
	if names(unfit) != "small" || !strings.Contains(unfit[0].Reason, "this host has 256 MiB free") {
		t.Errorf("unsuitable: %+v", unfit)
	}
	if cands, _ := Rank(desc(512, 1, ""), images, hosts, false, nil); names(cands) != "cached node8 node7 broken" {
		t.Errorf("with no preference: %s", names(cands))
	}
}

// TestRankNetworks: a host without the network a NIC joins does not fit, nor, for a
// deploy that runs the guest, one that has it defined but not started.
func TestRankNetworks(t *testing.T) {
	withNet := func(name string, active bool) Host {
		h := host(name, 4096, 0)
		h.Offer.NetworksKnown = true
		h.Offer.Networks = []hostfit.Network{{Name: "default", Active: true}, {Name: "lab", Active: active}}
		return h
	}
	none := host("no-lab", 4096, 0)
	none.Offer.NetworksKnown, none.Offer.Networks = true, []hostfit.Network{{Name: "default", Active: true}}
	hosts := []Host{withNet("lab-up", true), withNet("lab-down", false), none}
	if cands, _ := Rank(desc(256, 1, "", "lab"), nil, hosts, false, nil); names(cands) != "lab-down lab-up" {
		t.Errorf("deployed shut down, candidates %q, want lab-down lab-up (a network is needed started only to run)", names(cands))
	}
	cands, unfit := Rank(desc(256, 1, "", "lab"), nil, hosts, true, nil)
	if got := names(cands); got != "lab-up" {
		t.Errorf("candidates %q, want lab-up", got)
	}
	reasons := map[string]string{}
	for _, u := range unfit {
		reasons[u.Name] = u.Reason
	}
	if !strings.Contains(reasons["lab-down"], `network "lab", which NIC eth0 joins, is defined there but not started`) {
		t.Errorf("lab-down: %q", reasons["lab-down"])
	}
	if !strings.Contains(reasons["no-lab"], `joins network "lab"; this host's networks are: default`) {
		t.Errorf("no-lab: %q", reasons["no-lab"])
	}
}

// TestDirectory: announcements expire, a later one replaces the earlier, and a name
// another identity holds is refused until its announcement expires.
func TestDirectory(t *testing.T) {
	d := NewDirectory()
	t0 := time.Date(2026, 12, 1, 0, 0, 0, 0, time.UTC)
	a := Host{Name: "node7", AnnouncedBy: "/CN=host/node7", Deployed: 1, LastSeen: t0, Expires: t0.Add(time.Minute)}
	if err := d.Announce(a, t0); err != nil {
		t.Fatal(err)
	}
	a.Deployed, a.Expires = 2, t0.Add(2*time.Minute)
	if err := d.Announce(a, t0.Add(30*time.Second)); err != nil {
		t.Fatal(err)
	}
	if live := d.Live(t0.Add(90 * time.Second)); len(live) != 1 || live[0].Deployed != 2 {
		t.Fatalf("live after renewal: %+v", live)
	}
	intruder := Host{Name: "node7", AnnouncedBy: "/CN=host/node8", Expires: t0.Add(time.Hour)}
	var taken *ErrNameTaken
	if err := d.Announce(intruder, t0.Add(time.Minute)); !errors.As(err, &taken) || taken.By != "/CN=host/node7" {
		t.Fatalf("another identity's announcement of node7: %v", err)
	}
	if live := d.Live(t0.Add(2 * time.Minute)); len(live) != 0 {
		t.Fatalf("expired announcement still live: %+v", live)
	}
	if err := d.Announce(intruder, t0.Add(2*time.Minute)); err != nil {
		t.Fatalf("name free again after expiry: %v", err)
	}
}

// BenchmarkRank ranks 1,000 hosts, each caching 200 images, for a workspace of three
// images: what one Place costs a large site's Repository.
func BenchmarkRank(b *testing.B) {
	var hosts []Host
	for i := range 1000 {
		var cached []string
		for j := range 200 {
			cached = append(cached, fmt.Sprintf("sha256:%d-%d", i%7, j))
		}
		h := host(fmt.Sprintf("node%04d", i), int64(1024+i%64*512), i%13, cached...)
		h.Offer.NetworksKnown, h.Offer.Networks = true, []hostfit.Network{{Name: "default", Active: true}}
		hosts = append(hosts, h)
	}
	images := []Image{{Digest: "sha256:3-1", Size: 4 << 30}, {Digest: "sha256:3-2", Size: 8 << 20}, {Digest: "sha256:x", Size: 5 << 20}}
	d := desc(2048, 2, "x86_64", "default")
	b.ReportAllocs()
	for b.Loop() {
		cands, _ := Rank(d, images, hosts, true, nil)
		if len(cands) == 0 {
			b.Fatal("no candidate")
		}
	}
}

// TestRankDraining: a draining host is passed over, however well it would fit,
// whether or not its hypervisor could be read.
func TestRankDraining(t *testing.T) {
	images := []Image{{Digest: "sha256:base", Size: 4 << 30}}
	drained := host("drained", 16384, 0, "sha256:base")
	drained.Draining = true
	drainedUnread := host("drained-unread", 0, 0)
	drainedUnread.Problem, drainedUnread.Draining = "libvirtd is not running", true
	cands, unfit := Rank(desc(1024, 1, ""), images, []Host{drained, host("other", 2048, 3), drainedUnread}, false, nil)
	if names(cands) != "other" || names(unfit) != "drained drained-unread" {
		t.Fatalf("candidates %q, unsuitable %q", names(cands), names(unfit))
	}
	if !strings.Contains(unfit[0].Reason, "draining for maintenance") {
		t.Fatalf("reason: %q", unfit[0].Reason)
	}
}

// TestRankScratchDisks: placement takes a workspace with an empty scratch disk, which
// managers create, and sets every host apart for one whose disk has partitions but no
// images, with the manager's reason.
func TestRankScratchDisks(t *testing.T) {
	root := describe.Disk{Target: "vda", Image: &describe.Image{Name: "base"}, Boot: true}
	scratch := desc(512, 1, "")
	scratch.Hardware.Disks = []describe.Disk{root, {Target: "vdb", SizeMiB: 4096}}
	if cands, unfit := Rank(scratch, nil, []Host{host("a", 8192, 0)}, false, nil); len(cands) != 1 || len(unfit) != 0 {
		t.Errorf("a scratch disk: candidates %s, unsuitable %+v", names(cands), unfit)
	}
	parts := desc(512, 1, "")
	parts.Hardware.Disks = []describe.Disk{root, {Target: "vdb", SizeMiB: 4096, Partitions: []describe.Partition{{Number: 1, SizeMiB: 4096}}}}
	if cands, unfit := Rank(parts, nil, []Host{host("a", 8192, 0)}, false, nil); len(cands) != 0 || len(unfit) != 1 || !strings.Contains(unfit[0].Reason, "partitions without images") {
		t.Errorf("partitions without images: candidates %s, unsuitable %+v", names(cands), unfit)
	}
}

// TestRankXenBus: a disk on the xen bus sets apart a QEMU/KVM host, whose manager
// would refuse to define it, with the disk element named; a xen host takes it.
func TestRankXenBus(t *testing.T) {
	d := desc(512, 1, "")
	d.Hardware.Disks = []describe.Disk{{Target: "xvda", Image: &describe.Image{Name: "base"}, Boot: true}}
	xen := host("xen1", 8192, 0)
	xen.Offer.DomainType = "xen"
	cands, unfit := Rank(d, nil, []Host{host("qemu1", 8192, 0), xen}, false, nil)
	if names(cands) != "xen1" || len(unfit) != 1 || unfit[0].Name != "qemu1" ||
		!strings.Contains(unfit[0].Reason, "hw:disk[1]/hw:target: xen (target xvda) is a bus only a xen domain has") {
		t.Errorf("candidates %s, unsuitable %+v; want xen1, and qemu1 set apart for its disk's bus", names(cands), unfit)
	}
}
