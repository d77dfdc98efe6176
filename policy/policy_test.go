package policy

import (
	"bytes"
	"context"
	"errors"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/vws-grid/vws/internal/errdefs"
	"github.com/vws-grid/vws/internal/identity"
)

func TestDecide(t *testing.T) {
	rs, err := Parse(strings.NewReader(`
# site rules
deny  *       /O=Grid/OU=Banned/*
allow create  /O=Grid/OU=Example/*
allow inspect *
allow inspect anonymous
`), "rules")
	if err != nil {
		t.Fatal(err)
	}
	alice := identity.Identity{DN: "/O=Grid/OU=Example/CN=Alice Smith"}
	bob := identity.Identity{DN: "/O=Grid/OU=Other/CN=Bob"}
	eve := identity.Identity{DN: "/O=Grid/OU=Banned/CN=Eve"}
	cases := []struct {
		who  identity.Identity
		op   Operation
		want bool
		rule string
	}{
		{alice, Create, true, "rules:4"},
		{alice, Inspect, true, "rules:5"},
		{alice, Manage, false, "no rule"},
		{bob, Create, false, "no rule"},
		{bob, Inspect, true, "rules:5"},
		{eve, Inspect, false, "rules:3"},
		{identity.Anonymous, Inspect, true, "rules:6"},
		{identity.Anonymous, Create, false, "no rule"},
	}
	for _, c := range cases {
		d := rs.Decide(c.who, c.op, Resource{})
		if d.Allowed != c.want || !strings.Contains(d.Rule, c.rule) {
			t.Errorf("%s %s: got %+v, want %v by %s", c.who, c.op, d, c.want, c.rule)
		}
	}
	_, err = rs.Authorize(identity.With(context.Background(), bob), Create, Resource{Service: "WorkspaceFactoryService", Action: "Create"})
	if !errors.Is(err, errdefs.ErrAuthorization) || !strings.Contains(err.Error(), "/O=Grid/OU=Other/CN=Bob") {
		t.Fatalf("Authorize: %v", err)
	}
}

func TestParseErrors(t *testing.T) {
	for _, in := range []string{"permit create *", "allow fly *", "allow create"} {
		if _, err := Parse(strings.NewReader(in), "f"); err == nil {
			t.Errorf("%q accepted", in)
		}
	}
}

func TestGlob(t *testing.T) {
	for _, c := range []struct {
		p, s string
		want bool
	}{
		{"*", "/O=Grid/CN=A", true}, {"/O=Grid/*", "/O=Grid/OU=X/CN=A", true}, {"/O=Grid/*/CN=A", "/O=Grid/OU=X/CN=A", true},
		{"/O=Grid/*", "/O=Other/CN=A", false}, {"/O=Grid/CN=A", "/O=Grid/CN=A", true}, {"/O=Grid/CN=A", "/O=Grid/CN=AB", false},
		{"*B", "/CN=AB", true}, {"*B", "/CN=BA", false},
	} {
		if got := glob(c.p, c.s); got != c.want {
			t.Errorf("glob(%q, %q) = %v", c.p, c.s, got)
		}
	}
}

const siteRules = `
# site rules for the cross-user tests
group atlas   /O=Grid/OU=Atlas/*
group atlas   vo:/atlas/*
group ops     account:opsuser
attribute     /O=Grid/OU=Physics/CN=Carol Jones /cms/Role=NULL
allow admin   group:ops
allow create  group:atlas
allow create  vo:/cms/*
allow host    /O=Grid/OU=Hosts/*
deny  *       anonymous
allow inspect *
allow manage  *
share inspect name:shared-* /O=Grid/OU=Other/CN=Bob
share manage  key:ws-42     group:atlas
share inspect owner:/O=Grid/OU=Atlas/* vo:/cms/*
require-signature WorkspaceManagerService *
require-signature * Destroy
`

func mustParse(t *testing.T, text string) *Rules {
	t.Helper()
	rs, err := Parse(strings.NewReader(text), "rules.conf")
	if err != nil {
		t.Fatal(err)
	}
	return rs
}

var (
	alice = identity.Identity{DN: "/O=Grid/OU=Atlas/CN=Alice"}
	bob   = identity.Identity{DN: "/O=Grid/OU=Other/CN=Bob"}
	carol = identity.Identity{DN: "/O=Grid/OU=Physics/CN=Carol Jones"}
	dave  = identity.Identity{DN: "/O=Grid/OU=Other/CN=Dave", Attributes: []string{"/atlas/Role=production"}}
	opsy  = identity.Identity{DN: "/O=Grid/OU=Ops/CN=Op"}
	host  = identity.Identity{DN: "/O=Grid/OU=Hosts/CN=host/node7.example.org"}
)

func TestDecideWorkspaces(t *testing.T) {
	gm, err := ParseGridMap(strings.NewReader(`"/O=Grid/OU=Ops/CN=Op" opsuser,other`), "grid-mapfile")
	if err != nil {
		t.Fatal(err)
	}
	rs := mustParse(t, siteRules).WithGridMap(gm)
	alices := Resource{Service: "WorkspaceService", Action: "Destroy", Key: "ws-1", Name: "mine", Owner: alice.DN}
	shared := Resource{Service: "WorkspaceService", Action: "GetResourceProperty", Key: "ws-2", Name: "shared-data", Owner: alice.DN}
	ws42 := Resource{Key: "ws-42", Name: "x", Owner: bob.DN}
	service := Resource{Service: "WorkspaceRepositoryService", Action: "ListWorkspaces"}
	cases := []struct {
		name    string
		who     identity.Identity
		op      Operation
		res     Resource
		allowed bool
		rule    string
	}{
		{"owner manages", alice, Manage, alices, true, "rules.conf:13 + owner"},
		{"other may not manage", bob, Manage, alices, false, "rules.conf:13, but not the owner and no share rule"},
		{"other may not inspect", bob, Inspect, alices, false, "rules.conf:12, but not the owner and no share rule"},
		{"name share lets bob inspect", bob, Inspect, shared, true, "rules.conf:12 + share rules.conf:14"},
		{"inspect share is not manage", bob, Manage, shared, false, "not the owner"},
		{"manage share to a group", alice, Manage, ws42, true, "rules.conf:13 + share rules.conf:15"},
		{"manage share implies inspect", dave, Inspect, ws42, true, "rules.conf:12 + share rules.conf:15"},
		{"owner-glob share via mapped attribute", carol, Inspect, alices, true, "rules.conf:12 + share rules.conf:16"},
		{"owner-glob share is inspect only", carol, Manage, alices, false, "rules.conf:13, but not the owner"},
		{"admin via grid-mapfile account group", opsy, Manage, alices, true, "rules.conf:13 + admin rules.conf:7"},
		{"service-level needs only the class", bob, Inspect, service, true, "rules.conf:12"},
		{"anonymous denied", identity.Anonymous, Inspect, service, false, "rules.conf:11"},
		{"anonymous owns nothing", identity.Anonymous, Inspect, Resource{Key: "k", Owner: "<anonymous>"}, false, "rules.conf:11"},
		{"create via DN group", alice, Create, service, true, "rules.conf:8"},
		{"create via VO group", dave, Create, service, true, "rules.conf:8"},
		{"no create for bob", bob, Create, service, false, "no rule in rules.conf matched"},
		{"create via attribute line", carol, Create, service, true, "rules.conf:9"},
		{"host", host, Host, service, true, "rules.conf:10"},
		{"no host for users", bob, Host, service, false, "no rule"},
	}
	for _, c := range cases {
		d := rs.Decide(c.who, c.op, c.res)
		if d.Allowed != c.allowed || !strings.Contains(d.Rule, c.rule) {
			t.Errorf("%s: %s %s: got %+v, want allowed=%v by %q", c.name, c.who, c.op, d, c.allowed, c.rule)
		}
		if !d.Allowed && d.Reason == "" {
			t.Errorf("%s: a denial without a reason", c.name)
		}
	}

	_, err = rs.Authorize(identity.With(context.Background(), bob), Manage, alices)
	if !errors.Is(err, errdefs.ErrAuthorization) {
		t.Fatalf("Authorize: %v", err)
	}
	for _, want := range []string{bob.DN, "manage", "ws-1", alice.DN, "not the owner"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("Authorize error %q does not name %q", err, want)
		}
	}
	if adv := errdefs.Advice(err); !strings.Contains(adv, "share manage key:ws-1") {
		t.Errorf("advice %q", adv)
	}

	if !rs.RequiresSignature("WorkspaceManagerService", "Deploy") || !rs.RequiresSignature("WorkspaceService", "Destroy") ||
		rs.RequiresSignature("WorkspaceService", "GetResourceProperty") {
		t.Error("RequiresSignature")
	}
	if got := rs.Account(opsy); got != "opsuser" {
		t.Errorf("Account = %q", got)
	}
	if got := rs.Account(alice); got != "" {
		t.Errorf("unmapped Account = %q", got)
	}
}

func TestAllowAll(t *testing.T) {
	res := Resource{Key: "k", Owner: alice.DN}
	for _, op := range []Operation{Create, Inspect, Manage, Admin, Host} {
		for _, who := range []identity.Identity{bob, identity.Anonymous} {
			if d := AllowAll.Decide(who, op, res); !d.Allowed {
				t.Errorf("AllowAll %s %s: %+v", who, op, d)
			}
		}
	}
	if AllowAll.RequiresSignature("WorkspaceManagerService", "Deploy") || AllowAll.Quotas(bob) != nil {
		t.Error("AllowAll requires signatures or has quotas")
	}
}

func TestGridMapOnlyEngine(t *testing.T) {
	dir := t.TempDir()
	gmFile := filepath.Join(dir, "grid-mapfile")
	writeFile(t, gmFile, "# Globus\n\"/O=Grid/OU=Atlas/CN=Alice\" alice\n")
	e, err := NewEngine("", gmFile, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer e.Close()
	rs := e.Rules()
	if !rs.Decide(alice, Create, Resource{}).Allowed || rs.Decide(bob, Create, Resource{}).Allowed {
		t.Error("grid-mapfile alone should admit exactly the mapped DNs")
	}
	if rs.Decide(alice, Manage, Resource{Key: "k", Owner: bob.DN}).Allowed || rs.Decide(alice, Admin, Resource{}).Allowed {
		t.Error("grid-mapfile alone should keep workspaces owner-only and give no admin")
	}
	if !rs.Decide(alice, Manage, Resource{Key: "k", Owner: alice.DN}).Allowed {
		t.Error("grid-mapfile alone: the owner may manage")
	}
}

func TestGridMap(t *testing.T) {
	gm, err := ParseGridMap(strings.NewReader(`
# comment
"/O=Grid/OU=Example/CN=Jane Doe" jdoe,jd2   # trailing comment
"/O=Grid/CN=Quote \"Q\" Person" quoted
/O=Grid/CN=plain plain
"/O=Grid/OU=Example/CN=Jane Doe" second
`), "gm")
	if err != nil {
		t.Fatal(err)
	}
	for dn, want := range map[string]string{
		"/O=Grid/OU=Example/CN=Jane Doe": "jdoe",
		`/O=Grid/CN=Quote "Q" Person`:    "quoted",
		"/O=Grid/CN=plain":               "plain",
		"/O=Grid/CN=nobody":              "",
	} {
		if got := gm.Account(dn); got != want {
			t.Errorf("Account(%q) = %q, want %q", dn, got, want)
		}
	}
	for _, bad := range []string{`"/O=Grid/CN=A`, `"/O=Grid/CN=A"`, `"O=Grid" a`, `"/O=Grid/CN=A" ,b`} {
		if _, err := ParseGridMap(strings.NewReader(bad), "gm"); err == nil || !strings.Contains(err.Error(), "gm:1:") {
			t.Errorf("%q: %v", bad, err)
		}
	}
}

func TestParseDirectiveErrors(t *testing.T) {
	for in, want := range map[string]string{
		"allow create group:nobody":                  "group \"nobody\" is not defined",
		"allow create alice":                         "want a DN glob",
		"group g group:h":                            "cannot contain another group",
		"group g":                                    "want \"group NAME SUBJECT\"",
		"attribute /O=Grid/CN=A atlas":               "FQAN",
		"attribute group:g /atlas":                   "want a DN glob",
		"share delete * *":                           "want inspect or manage",
		"share inspect id:3 *":                       "want key:KEY",
		"share inspect *":                            "want \"share",
		"quota /O=Grid/* workspaces=0":               "positive integer",
		"quota /O=Grid/* disks=3":                    "want workspaces, running",
		"quota /O=Grid/*":                            "want \"quota SUBJECT",
		"quota vo:/atlas workspaces=1":               "want a DN glob",
		"quota /O=Grid/* memory=2GB":                 "size",
		"quota /O=Grid/* lifetime=forever":           "duration",
		"require-signature WorkspaceService":         "require-signature SERVICE OPERATION",
		"permit create *":                            "want allow, deny",
		"allow fly *":                                "unknown operation",
		"allow create vo:":                           "FQAN glob",
		"\n\n# x\nallow create /O=Grid/*\nallow x *": "rules.conf:5:",
	} {
		_, err := Parse(strings.NewReader(in), "rules.conf")
		if err == nil || !strings.Contains(err.Error(), want) || !strings.Contains(err.Error(), "rules.conf:") {
			t.Errorf("%q: error %v, want it to name rules.conf:LINE and %q", in, err, want)
		}
	}
}

func TestGroupsAndVO(t *testing.T) {
	rs := mustParse(t, `
group physics /O=Grid/OU=Physics/*
group physics vo:/cms/*
group everyone *
group guests anonymous
attribute account:jd /lhcb
allow inspect vo:/lhcb
`)
	gm, _ := ParseGridMap(strings.NewReader(`"/O=Grid/CN=J D" jd`), "gm")
	rs = rs.WithGridMap(gm)
	has := func(id identity.Identity, g string) bool { return slices.Contains(rs.Groups(id), g) }
	if !has(carol, "physics") || !has(identity.Identity{DN: "/O=X/CN=Y", Attributes: []string{"/cms/Role=x"}}, "physics") || has(bob, "physics") {
		t.Error("physics membership")
	}
	if !has(bob, "everyone") || has(identity.Anonymous, "everyone") || !has(identity.Anonymous, "guests") || has(bob, "guests") {
		t.Error("* / anonymous membership")
	}
	jd := identity.Identity{DN: "/O=Grid/CN=J D"}
	if !rs.Decide(jd, Inspect, Resource{}).Allowed || rs.Decide(bob, Inspect, Resource{}).Allowed {
		t.Error("attribute mapped from an account should satisfy vo:")
	}
}

func TestQuotas(t *testing.T) {
	rs := mustParse(t, `
group atlas /O=Grid/OU=Atlas/*
quota /O=Grid/OU=Atlas/CN=Alice workspaces=50 memory=8GiB
quota * workspaces=5 running=2 lifetime=7d
quota group:atlas running=3 memory=4096
quota /O=Grid/CN=Jane Doe lifetime=1d12h
`)
	got := rs.Quotas(alice)
	want := []Quota{
		{Scope: "dn:" + alice.DN, Limits: Limits{Workspaces: 50, MemoryMiB: 8192}, Rule: "rules.conf:3"},
		{Scope: "group:atlas", Limits: Limits{Running: 3, MemoryMiB: 4096}, Rule: "rules.conf:5"},
	}
	if !slices.Equal(got, want) {
		t.Errorf("Quotas(alice) = %+v, want %+v", got, want)
	}
	got = rs.Quotas(bob)
	if len(got) != 1 || got[0].Scope != "dn:"+bob.DN || got[0].Limits != (Limits{Workspaces: 5, Running: 2, Lifetime: 7 * 24 * time.Hour}) {
		t.Errorf("Quotas(bob) = %+v", got)
	}
	if q := rs.Quotas(identity.Anonymous); len(q) != 0 {
		t.Errorf("anonymous quotas %+v", q)
	}
	jane := rs.Quotas(identity.Identity{DN: "/O=Grid/CN=Jane Doe"})
	if len(jane) != 1 || jane[0].Rule != "rules.conf:4" {
		t.Errorf("first DN-glob quota line wins: %+v", jane) // "*" on line 4 comes first
	}
	if s := Scopes(append(got, got...)); len(s) != 1 {
		t.Errorf("Scopes %v", s)
	}

	if err := CheckLifetime(rs.Quotas(bob), 7*24*time.Hour); err != nil {
		t.Errorf("7d within lifetime=7d: %v", err)
	}
	// Durations read as the rules file writes them, the request rounded to the second
	// (a lifetime measured from a termination time carries the request's transit).
	err := CheckLifetime(rs.Quotas(bob), 200*time.Hour-1500*time.Microsecond)
	if !errors.Is(err, errdefs.ErrQuotaExceeded) || !strings.Contains(err.Error(), "lifetime=7d of dn:"+bob.DN+" (rules.conf:4): this request asks for a lifetime of 8d8h") ||
		errdefs.Advice(err) != "ask for a lifetime of at most 7d and extend it later if needed" {
		t.Errorf("CheckLifetime: %v; %s", err, errdefs.Advice(err))
	}
	// Rounded, a request just over the limit would read as within it.
	if err := CheckLifetime(rs.Quotas(bob), 7*24*time.Hour+time.Millisecond); !strings.Contains(err.Error(), "a lifetime of 7d1s") {
		t.Errorf("CheckLifetime just over: %v", err)
	}
	if err := CheckLifetime(rs.Quotas(bob), 0); !errors.Is(err, errdefs.ErrQuotaExceeded) {
		t.Errorf("no termination within a lifetime limit: %v", err)
	}
	if err := CheckLifetime(rs.Quotas(alice), 0); err != nil {
		t.Errorf("no lifetime limit: %v", err)
	}
}

func TestLedgerConcurrent(t *testing.T) {
	l := NewLedger()
	q := []Quota{{Scope: "dn:/O=Grid/CN=A", Limits: Limits{Workspaces: 10}, Rule: "r:1"}}
	var wg sync.WaitGroup
	var mu sync.Mutex
	var releases []func()
	fails := 0
	for range 50 {
		wg.Go(func() {
			rel, err := l.Reserve(q, Usage{Workspaces: 1})
			mu.Lock()
			defer mu.Unlock()
			if err != nil {
				if !errors.Is(err, errdefs.ErrQuotaExceeded) {
					t.Errorf("Reserve: %v", err)
				}
				fails++
				return
			}
			releases = append(releases, rel)
		})
	}
	wg.Wait()
	if len(releases) != 10 || fails != 40 || l.Usage(q[0].Scope).Workspaces != 10 {
		t.Fatalf("%d successes, %d failures, usage %+v", len(releases), fails, l.Usage(q[0].Scope))
	}
	_, err := l.Reserve(q, Usage{Workspaces: 1})
	if err == nil || !strings.Contains(err.Error(), "quota workspaces=10 of dn:/O=Grid/CN=A (r:1): 10 held, this request needs 1 more") {
		t.Fatalf("11th reserve: %v", err)
	}
	releases[0]()
	releases[0]() // idempotent
	if u := l.Usage(q[0].Scope); u.Workspaces != 9 {
		t.Fatalf("after one release (twice): %+v", u)
	}
	if _, err := l.Reserve(q, Usage{Workspaces: 1}); err != nil {
		t.Fatalf("reserve after release: %v", err)
	}
	if _, err := l.Reserve(q, Usage{Workspaces: 1}); err == nil {
		t.Fatal("reserve beyond the limit after refilling")
	}
}

func TestLedgerGroupScope(t *testing.T) {
	rs := mustParse(t, `
group atlas /O=Grid/OU=Atlas/*
quota group:atlas running=2 memory=1GiB
`)
	a, b := alice, identity.Identity{DN: "/O=Grid/OU=Atlas/CN=Bert"}
	l := NewLedger()
	if _, err := l.Reserve(rs.Quotas(a), Usage{Running: 1, MemoryMiB: 512}); err != nil {
		t.Fatal(err)
	}
	relB, err := l.Reserve(rs.Quotas(b), Usage{Running: 1, MemoryMiB: 256})
	if err != nil {
		t.Fatal(err)
	}
	if u := l.Usage("group:atlas"); u != (Usage{Running: 2, MemoryMiB: 768}) {
		t.Fatalf("shared usage %+v", u)
	}
	_, err = l.Reserve(rs.Quotas(a), Usage{Running: 1})
	if !errors.Is(err, errdefs.ErrQuotaExceeded) || !strings.Contains(err.Error(), "running=2 of group:atlas (rules.conf:3): 2 running, this request needs 1 more") {
		t.Fatalf("group running limit: %v", err)
	}
	if errdefs.Advice(err) == "" {
		t.Error("no advice")
	}
	relB()
	_, err = l.Reserve(rs.Quotas(a), Usage{Running: 1, MemoryMiB: 600})
	if err == nil || !strings.Contains(err.Error(), "memory=1024MiB of group:atlas") {
		t.Fatalf("group memory limit: %v", err)
	}
	// Giving back never trips a limit: only what delta increases is checked.
	l.Add([]string{"group:atlas"}, Usage{Running: 5})
	if _, err := l.Reserve(rs.Quotas(a), Usage{MemoryMiB: 100}); err != nil {
		t.Fatalf("memory-only reservation over a running limit: %v", err)
	}
}

func TestParseSizesAndLifetimes(t *testing.T) {
	for in, want := range map[string]int64{"512": 512, "512MiB": 512, "2GiB": 2048, "1TiB": 1 << 20} {
		if got, err := parseMiB(in); err != nil || got != want {
			t.Errorf("parseMiB(%q) = %d, %v", in, got, err)
		}
	}
	for in, want := range map[string]time.Duration{"12h": 12 * time.Hour, "7d": 168 * time.Hour, "1d12h": 36 * time.Hour, "90m": 90 * time.Minute} {
		if got, err := parseLifetime(in); err != nil || got != want {
			t.Errorf("parseLifetime(%q) = %v, %v", in, got, err)
		}
	}
	for _, bad := range []string{"d", "0d", "-1h", "xd", "106753d", "106751d48h",
		// A negative part would shorten the rest, and a large negative day count wrap.
		"-1d48h", "1d-12h", "-9223372036854775807d1h"} {
		if got, err := parseLifetime(bad); err == nil {
			t.Errorf("parseLifetime(%q) accepted, as %v", bad, got)
		}
	}
	// Sizes and durations past int64 are refused, not wrapped into a wrong limit.
	for _, bad := range []string{"9007199254740992TiB", "9223372036854775807GiB"} {
		if got, err := parseMiB(bad); err == nil || !strings.Contains(err.Error(), "too large") {
			t.Errorf("parseMiB(%q) = %d, %v", bad, got, err)
		}
	}
	for d, want := range map[time.Duration]string{168 * time.Hour: "7d", 36 * time.Hour: "1d12h", 200 * time.Hour: "8d8h", 12 * time.Hour: "12h",
		90 * time.Minute: "1h30m", 45 * time.Second: "45s", 24*time.Hour + 5*time.Second: "1d5s", 1500 * time.Millisecond: "1.5s"} {
		if got := formatLifetime(d); got != want {
			t.Errorf("formatLifetime(%v) = %q, want %q", d, got, want)
		} else if back, err := parseLifetime(got); err != nil || back != d {
			t.Errorf("parseLifetime(formatLifetime(%v)) = %v, %v", d, back, err)
		}
	}
}

func writeFile(t *testing.T, path, text string) {
	t.Helper()
	if err := os.WriteFile(path, []byte(text), 0o644); err != nil {
		t.Fatal(err)
	}
}

func TestEngineReload(t *testing.T) {
	dir := t.TempDir()
	file := filepath.Join(dir, "rules.conf")
	writeFile(t, file, "allow inspect *\n")
	e, err := NewEngine(file, "", nil)
	if err != nil {
		t.Fatal(err)
	}
	defer e.Close()
	if e.Rules().Decide(bob, Create, Resource{}).Allowed {
		t.Fatal("create allowed before the edit")
	}
	writeFile(t, file, "allow inspect *\nallow create /O=Grid/OU=Other/*\n")
	waitFor(t, "the new rule", func() bool { return e.Rules().Decide(bob, Create, Resource{}).Allowed })
	if err := e.LastError(); err != nil {
		t.Fatalf("LastError after a good edit: %v", err)
	}

	writeFile(t, file, "allow inspect *\nallow create /O=Grid/OU=Other/*\nallow sometimes *\n")
	waitFor(t, "the reload error", func() bool { e.Rules(); return e.LastError() != nil })
	if err := e.LastError(); !strings.Contains(err.Error(), "rules.conf:3") || !strings.Contains(err.Error(), "sometimes") {
		t.Errorf("LastError %v should name the broken line", err)
	}
	if !e.Rules().Decide(bob, Create, Resource{}).Allowed {
		t.Error("a broken edit dropped the previous rules")
	}

	writeFile(t, file, "allow inspect *\n")
	waitFor(t, "the fixed file", func() bool { return !e.Rules().Decide(bob, Create, Resource{}).Allowed })
	if err := e.LastError(); err != nil {
		t.Errorf("LastError after the fix: %v", err)
	}
}

func TestEngineDefaultsAndErrors(t *testing.T) {
	e, err := NewEngine("", "", nil)
	if err != nil || e.Rules() != AllowAll {
		t.Fatalf("no files: %v %v", e, err)
	}
	dir := t.TempDir()
	bad := filepath.Join(dir, "rules.conf")
	writeFile(t, bad, "allow create\n")
	if _, err := NewEngine(bad, "", nil); err == nil || !strings.Contains(err.Error(), "rules.conf:1") {
		t.Errorf("broken file at start: %v", err)
	}
	if _, err := NewEngine(filepath.Join(dir, "missing"), "", nil); err == nil {
		t.Error("missing file at start accepted")
	}
}

// waitFor polls cond until it holds or a generous deadline passes.
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// TestEngineLogsWhatItLoaded: at start and on every reload the log names the files in
// force and what they hold, so an operator sees the policy took.
func TestEngineLogsWhatItLoaded(t *testing.T) {
	dir := t.TempDir()
	rules := filepath.Join(dir, "rules")
	if err := os.WriteFile(rules, []byte("allow admin /O=Grid/CN=admin\nallow * *\nquota * workspaces=3\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	var logged bytes.Buffer
	e, err := NewEngine(rules, "", slog.New(slog.NewTextHandler(&logged, nil)))
	if err != nil {
		t.Fatal(err)
	}
	defer e.Close()
	for _, want := range []string{`msg="policy loaded"`, "source=" + rules, "rules=2", "quotas=1"} {
		if !strings.Contains(logged.String(), want) {
			t.Errorf("the start-up log lacks %q:\n%s", want, logged.String())
		}
	}
}

// TestAnonymousOwnsNothingSaysSo: a site that lets anonymous callers inspect (as under
// --insecure) still refuses them a workspace, also one an anonymous caller created;
// the refusal says why, not "owned by <anonymous> … but not the owner", and what
// would grant access.
func TestAnonymousOwnsNothingSaysSo(t *testing.T) {
	rs, err := Parse(strings.NewReader("allow inspect anonymous\ndeny manage anonymous\n"), "pol.conf")
	if err != nil {
		t.Fatal(err)
	}
	anon := identity.With(context.Background(), identity.Anonymous)
	for _, c := range []struct {
		owner string
		says  []string
	}{
		{"<anonymous>", []string{"pol.conf:1", "anonymous callers never count as a workspace's owner", "share inspect key:k1 anonymous", "admin rule"}},
		{alice.DN, []string{"pol.conf:1", "anonymous callers never count as a workspace's owner", "owner's grid certificate", "share inspect key:k1 anonymous"}},
	} {
		_, err := rs.Authorize(anon, Inspect, Resource{Key: "k1", Name: "w", Owner: c.owner})
		if !errors.Is(err, errdefs.ErrAuthorization) {
			t.Fatalf("owned by %s: %v", c.owner, err)
		}
		text := err.Error() + "; " + errdefs.Advice(err)
		for _, want := range c.says {
			if !strings.Contains(text, want) {
				t.Errorf("owned by %s: %q does not say %q", c.owner, text, want)
			}
		}
		if strings.Contains(text, "not the owner") || strings.Contains(text, "may not do this here") {
			t.Errorf("owned by %s: %q", c.owner, text)
		}
	}
	// Denied by its class, the anonymous caller is told what it is now.
	_, err = rs.Authorize(anon, Manage, Resource{Key: "k1", Owner: "<anonymous>"})
	if adv := errdefs.Advice(err); !strings.Contains(adv, "anonymous callers may not do this here") {
		t.Errorf("manage: %v; %s", err, adv)
	}
}
