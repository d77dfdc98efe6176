package repository

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/beevik/etree"

	"github.com/vws-grid/vws/internal/errdefs"
	"github.com/vws-grid/vws/internal/identity"
	"github.com/vws-grid/vws/internal/vwsns"
	"github.com/vws-grid/vws/internal/wsrf"
	"github.com/vws-grid/vws/policy"
)

// fixedPolicy serves one parsed rules file, as a policy.Engine does between reloads.
type fixedPolicy struct{ rules *policy.Rules }

func (p fixedPolicy) Rules() *policy.Rules { return p.rules }

var (
	alice = identity.Identity{DN: "/O=Grid/CN=alice"}
	bob   = identity.Identity{DN: "/O=Grid/CN=bob"}
)

// quotaOpen starts the repository again on f's data under rules (every caller may do
// everything, so only the quotas in rules refuse), as a restart with that rules file.
func (f *fixture) quotaOpen(rules string) {
	f.t.Helper()
	f.openWithRules("allow * *\n" + rules)
}

// sizedDescription is description() with hw:RAM/hw:size ramMiB (0: no hardware).
func sizedDescription(ramMiB int) *etree.Element {
	d := description()
	if ramMiB > 0 {
		hw := d.CreateElement("hw:hardware")
		hw.CreateAttr("xmlns:hw", vwsns.Hardware)
		hw.CreateElement("hw:RAM").CreateElement("hw:size").SetText(fmt.Sprint(ramMiB))
	}
	return d
}

// createFor asks for a workspace of owner living lifetime from now with ramMiB of RAM.
func (f *fixture) createFor(owner identity.Identity, name string, lifetime time.Duration, ramMiB int) (string, error) {
	c, err := f.r.Create(context.Background(), CreateSpec{Name: name, Owner: owner.DN, OwnerAttributes: owner.Attributes,
		Description: sizedDescription(ramMiB), BaseImage: f.base, Termination: time.Now().Add(lifetime)})
	if err != nil {
		return "", err
	}
	return c.Key, nil
}

func (f *fixture) mustCreateFor(owner identity.Identity, name string, ramMiB int) string {
	f.t.Helper()
	key, err := f.createFor(owner, name, 30*time.Minute, ramMiB)
	if err != nil {
		f.t.Fatalf("create %s for %s: %v", name, owner.DN, err)
	}
	return key
}

func (f *fixture) checkIn(key string, m *Manifest) {
	f.t.Helper()
	if _, _, err := f.r.CheckIn(context.Background(), key, CheckInRequest{Token: m.Token, OverlayDigest: m.Images[len(m.Images)-1].Digest,
		OverlaySize: -1, MemorySize: -1}); err != nil {
		f.t.Fatalf("check in %s: %v", key, err)
	}
}

// wantQuota fails unless err is a quota refusal whose text names all of want.
func wantQuota(t *testing.T, what string, err error, want ...string) {
	t.Helper()
	if !errors.Is(err, errdefs.ErrQuotaExceeded) {
		t.Fatalf("%s: want ErrQuotaExceeded, got %v", what, err)
	}
	for _, w := range want {
		if !strings.Contains(err.Error(), w) {
			t.Errorf("%s: the refusal does not name %q: %v", what, w, err)
		}
	}
}

// wantUntouched fails unless workspace key is in the repository, unlocked and not
// charged as running: what a refused check-out must leave.
func (f *fixture) wantUntouched(key string) {
	f.t.Helper()
	if d := f.prop(key, PropDeployment); d != "in-repository" {
		f.t.Errorf("a refused check-out left deployment %q", d)
	}
	if h := f.prop(key, PropHost); h != "" {
		f.t.Errorf("a refused check-out left host %q", h)
	}
	if c := f.chain(key); c.Lock != "" || len(c.RunScopes) > 0 || c.RunMemoryMiB != 0 {
		f.t.Errorf("a refused check-out left lock %q, run scopes %v, %d MiB", c.Lock, c.RunScopes, c.RunMemoryMiB)
	}
}

// running=1 on a DN glob counts per DN: alice's second deployment waits for her first
// to be checked in, and bob's is not counted with hers.
func TestQuotaRunningCountsDeploymentsUntilCheckIn(t *testing.T) {
	ctx := context.Background()
	f := newFixture(t)
	f.quotaOpen("quota /O=Grid/CN=* running=1\n")
	a1, a2 := f.mustCreateFor(alice, "a1", 0), f.mustCreateFor(alice, "a2", 0)
	b1 := f.mustCreateFor(bob, "b1", 0)

	m1, err := f.r.CheckOut(ctx, a1, "node1", "", nil, &alice)
	if err != nil {
		t.Fatal(err)
	}
	_, err = f.r.CheckOut(ctx, a2, "node2", "", nil, &alice)
	wantQuota(t, "alice's second check-out", err, "running=1", "dn:"+alice.DN, "rules:2", "1 running")
	f.wantUntouched(a2)
	if u := f.r.ledger.Usage("dn:" + alice.DN); u.Running != 1 {
		t.Errorf("after the refusal alice has %d running, want 1", u.Running)
	}
	mb, err := f.r.CheckOut(ctx, b1, "node2", "", nil, &bob)
	if err != nil {
		t.Fatalf("bob's check-out counted against alice's quota: %v", err)
	}

	f.checkIn(a1, m1)
	m2, err := f.r.CheckOut(ctx, a2, "node2", "", nil, &alice)
	if err != nil {
		t.Fatalf("check-out after the first was checked in: %v", err)
	}
	if d := f.prop(a2, PropDeployment); d != "staging" {
		t.Errorf("deployment %q after the check-out", d)
	}
	f.checkIn(a2, m2)
	f.checkIn(b1, mb)
	if u := f.r.ledger.Usage("dn:" + alice.DN); u.Running != 0 || u.Workspaces != 2 {
		t.Errorf("after every check-in alice's usage is %+v, want 2 workspaces and none running", u)
	}
}

// Memory counts the RAM the description asks for while deployed.
func TestQuotaMemoryCountsDeployedRAM(t *testing.T) {
	ctx := context.Background()
	f := newFixture(t)
	f.quotaOpen("quota /O=Grid/CN=alice memory=300\n")
	k1, k2 := f.mustCreateFor(alice, "m1", 256), f.mustCreateFor(alice, "m2", 256)
	m1, err := f.r.CheckOut(ctx, k1, "node1", "", nil, &alice)
	if err != nil {
		t.Fatal(err)
	}
	if c := f.chain(k1); c.RunMemoryMiB != 256 {
		t.Errorf("the deployment is charged %d MiB, want 256", c.RunMemoryMiB)
	}
	_, err = f.r.CheckOut(ctx, k2, "node2", "", nil, &alice)
	wantQuota(t, "a second 256 MiB deployment under memory=300", err, "memory=300MiB", "256 MiB in use", "256 MiB more")
	f.wantUntouched(k2)
	f.checkIn(k1, m1)
	if _, err := f.r.CheckOut(ctx, k2, "node2", "", nil, &alice); err != nil {
		t.Fatalf("check-out after the memory was given back: %v", err)
	}
}

// A lifetime quota bounds the termination a create asks for; the refused create
// leaves no workspace and keeps its name free.
func TestQuotaLifetimeRefusesLongerCreate(t *testing.T) {
	f := newFixture(t)
	f.quotaOpen("quota /O=Grid/CN=alice lifetime=1h\n")
	_, err := f.createFor(alice, "long", 2*time.Hour, 0)
	wantQuota(t, "a 2h create under lifetime=1h", err, "lifetime=1h of ", "dn:"+alice.DN)
	if !strings.HasSuffix(err.Error(), "asks for a lifetime of 2h") { // not 1h59m59.99…s, as measured on arrival
		t.Errorf("the refusal does not round the request: %v", err)
	}
	if keys := f.r.Workspaces.Keys(); len(keys) != 0 {
		t.Errorf("the refused create left workspaces %v", keys)
	}
	if u := f.r.ledger.Usage("dn:" + alice.DN); u.Workspaces != 0 {
		t.Errorf("the refused create is counted: %+v", u)
	}
	if _, err := f.createFor(alice, "long", 50*time.Minute, 0); err != nil {
		t.Fatalf("a create within the lifetime, with the refused one's name: %v", err)
	}
}

// Destroying a workspace gives its count back; a clone counts like a create.
func TestQuotaDestroyGivesBack(t *testing.T) {
	f := newFixture(t)
	f.quotaOpen("quota /O=Grid/CN=alice workspaces=1\n")
	key := f.mustCreateFor(alice, "one", 0)
	_, err := f.createFor(alice, "two", 30*time.Minute, 0)
	wantQuota(t, "a second create under workspaces=1", err, "workspaces=1", "1 held")
	_, err = f.r.Clone(identity.With(context.Background(), alice), key, "copy", alice.DN, time.Now().Add(30*time.Minute))
	wantQuota(t, "a clone under workspaces=1", err, "workspaces=1")
	if err := f.r.Workspaces.Destroy(context.Background(), key); err != nil {
		t.Fatal(err)
	}
	if u := f.r.ledger.Usage("dn:" + alice.DN); u.Workspaces != 0 {
		t.Errorf("after the destroy alice holds %+v", u)
	}
	f.mustCreateFor(alice, "two", 0)
}

// The ledger is rebuilt from the stored workspaces at start-up: what was held and what
// was checked out before a restart still counts after it, and is given back as before.
func TestQuotaLedgerRebuiltAtRestart(t *testing.T) {
	ctx := context.Background()
	f := newFixture(t)
	const rules = "quota /O=Grid/CN=alice workspaces=2 running=1\n"
	f.quotaOpen(rules)
	k1, k2 := f.mustCreateFor(alice, "r1", 128), f.mustCreateFor(alice, "r2", 0)
	m1, err := f.r.CheckOut(ctx, k1, "node1", "", nil, &alice)
	if err != nil {
		t.Fatal(err)
	}

	f.quotaOpen(rules)
	if u := f.r.ledger.Usage("dn:" + alice.DN); u != (policy.Usage{Workspaces: 2, Running: 1, MemoryMiB: 128}) {
		t.Errorf("rebuilt usage %+v, want 2 workspaces, 1 running with 128 MiB", u)
	}
	_, err = f.createFor(alice, "r3", 30*time.Minute, 0)
	wantQuota(t, "a create after the restart", err, "workspaces=2", "2 held")
	_, err = f.r.CheckOut(ctx, k2, "node2", "", nil, &alice)
	wantQuota(t, "a check-out after the restart", err, "running=1", "1 running")
	f.wantUntouched(k2)

	// The check-out from before the restart is given back at its check-in.
	f.checkIn(k1, m1)
	if _, err := f.r.CheckOut(ctx, k2, "node2", "", nil, &alice); err != nil {
		t.Fatalf("check-out after the restored deployment was checked in: %v", err)
	}
}

// A group quota is one count shared by all its members.
func TestQuotaGroupSharedByMembers(t *testing.T) {
	f := newFixture(t)
	f.quotaOpen("group g /O=Grid/CN=*\nquota group:g workspaces=2\n")
	f.mustCreateFor(alice, "ga", 0)
	kb := f.mustCreateFor(bob, "gb", 0)
	_, err := f.createFor(alice, "ga2", 30*time.Minute, 0)
	wantQuota(t, "a third create in group g", err, "workspaces=2", "group:g", "2 held")
	if u := f.r.ledger.Usage("dn:" + alice.DN); u != (policy.Usage{}) {
		t.Errorf("a group-only quota counted per DN too: %+v", u)
	}
	if err := f.r.Workspaces.Destroy(context.Background(), kb); err != nil {
		t.Fatal(err)
	}
	f.mustCreateFor(alice, "ga2", 0)
}

// SetTerminationTime cannot take a workspace past its owner's lifetime quota, counted
// from its creation; it can always shorten one already past a lowered limit.
func TestQuotaLifetimeBoundsSetTerminationTime(t *testing.T) {
	ctx := context.Background()
	f := newFixture(t)
	f.quotaOpen("quota /O=Grid/CN=alice lifetime=1h\n")
	key := f.mustCreateFor(alice, "life", 0) // 30 minutes
	created := f.prop(key, PropCreationTime)

	within := time.Now().Add(50 * time.Minute)
	if _, err := f.r.Workspaces.SetTerminationTime(ctx, key, &within); err != nil {
		t.Fatalf("extending within the lifetime quota: %v", err)
	}
	beyond := time.Now().Add(2 * time.Hour)
	_, err := f.r.Workspaces.SetTerminationTime(ctx, key, &beyond)
	wantQuota(t, "extending to 2h", err, "lifetime=1h of ", "dn:"+alice.DN, "a lifetime of")
	_, err = f.r.Workspaces.SetTerminationTime(ctx, key, nil)
	wantQuota(t, "no termination", err, "lifetime=1h of ", "no termination time")
	var term *time.Time
	f.r.Workspaces.View(ctx, key, func(s *wsrf.Snapshot) error { term = s.Termination; return nil })
	if term == nil || !term.Equal(within) {
		t.Errorf("the refused changes left termination %v, want %v", term, within)
	}
	if got := f.prop(key, PropCreationTime); got != created {
		t.Errorf("creation time %q changed to %q", created, got)
	}

	// Bob has no quota: his workspace may live as long as he likes.
	kb := f.mustCreateFor(bob, "free", 0)
	if _, err := f.r.Workspaces.SetTerminationTime(ctx, kb, &beyond); err != nil {
		t.Fatalf("bob without a quota: %v", err)
	}

	// A workspace made for 3h before the quota was lowered to 1h can be shortened to
	// 2h, still over the limit, but not lengthened again.
	f.quotaOpen("")
	old, err := f.createFor(alice, "old", 3*time.Hour, 0)
	if err != nil {
		t.Fatal(err)
	}
	f.quotaOpen("quota /O=Grid/CN=alice lifetime=1h\n")
	if _, err := f.r.Workspaces.SetTerminationTime(ctx, old, &beyond); err != nil {
		t.Fatalf("shortening a workspace over a lowered limit: %v", err)
	}
	later := beyond.Add(30 * time.Minute)
	_, err = f.r.Workspaces.SetTerminationTime(ctx, old, &later)
	wantQuota(t, "lengthening a workspace over a lowered limit", err, "lifetime=1h of ")
}
