// Package policy decides who may do what to which workspace, how much they may hold,
// and which requests must be signed. Callers are identified by their certificate DN,
// the local account a grid-mapfile maps it to, VO attributes (from the certificate or
// mapped here) and groups defined in the rules file.
//
// # Rules file
//
// One directive per line; '#' starts a comment; a SUBJECT that ends a line may contain
// spaces ("CN=Jane Doe"). Parse errors name file:line and what was expected.
//
//	allow|deny OPERATION SUBJECT        class permission; the first line matching the
//	                                    operation and the caller decides, none = deny
//	group NAME SUBJECT                  adds SUBJECT to group NAME (repeatable; a group
//	                                    cannot contain group:, to keep membership acyclic)
//	attribute SUBJECT FQAN              gives callers matching SUBJECT the VO attribute
//	                                    FQAN, for sites whose certificates carry none
//	                                    (SUBJECT: a DN glob, account:, anonymous or *)
//	share inspect|manage SELECTOR SUBJECT
//	                                    lets SUBJECT inspect (or manage, which implies
//	                                    inspect) workspaces it does not own
//	quota SUBJECT LIMIT=VALUE...        bounds what callers hold (see below)
//	require-signature SERVICE OPERATION requests must carry a verified WS-Security
//	                                    signature (SERVICE/OPERATION may be *)
//
// OPERATION: create, inspect, manage, admin, host (Factories and Managers calling the
// Repository as themselves) or * (every operation but host: a host may register
// workspaces for any owner, so that role is granted only by a rule that names it).
//
// SUBJECT: a DN glob ("/O=Grid/OU=Example/*"; * matches any run of characters,
// '/' included), anonymous (callers without a certificate), * (any authenticated
// caller), group:NAME, vo:FQAN-GLOB (matches one of the caller's VO attributes) or
// account:NAME-GLOB (the caller's grid-mapfile account).
//
// SELECTOR: key:KEY (one workspace), name:GLOB (its name), owner:DN-GLOB (which may
// hold spaces: it runs to the field that starts the subject), or *.
//
// Quotas: LIMIT is workspaces=N (held), running=N (deployed and running),
// memory=SIZE (MiB, or with a MiB/GiB/TiB unit: memory=8GiB) or lifetime=DURATION
// (Go syntax plus days: 12h, 7d, 1d12h). A quota on a DN glob counts per DN (scope
// "dn:<caller DN>"): the first DN-glob quota line matching the caller applies, so a
// specific line before "quota * ..." overrides the default. A quota on group:NAME is
// shared by all members (scope "group:NAME"); every group quota of every group the
// caller is in applies as well.
//
// Decisions on a workspace (inspect or manage on a resource with an owner) need the
// class permission and then one of: the caller owns it (its DN is the owner; anonymous
// callers own nothing), a share rule covers it, or the caller is allowed admin.
//
// # Grid-mapfile
//
// Globus form: `"DN" account[,account...]`, '#' comments; the first account is the
// one a DN maps to. See LoadGridMap. Without a rules file, a grid-mapfile alone lets
// mapped callers create, inspect and manage their own workspaces (and act as hosts).
//
// # Reloading
//
// An Engine serves the current Rules and re-reads both files when they change; an
// edit that does not parse keeps the previous rules and is reported (Engine.LastError).
package policy

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"os"
	"strconv"
	"strings"

	"github.com/vws-grid/vws/internal/errdefs"
	"github.com/vws-grid/vws/internal/identity"
)

// Operation is a class of request that policy decides on.
type Operation string

// The operation classes.
const (
	Create  Operation = "create"  // create and clone workspaces
	Inspect Operation = "inspect" // read properties, list, query
	Manage  Operation = "manage"  // destroy, set lifetime, deploy, lifecycle
	Admin   Operation = "admin"   // image pool, site operations, every workspace
	Host    Operation = "host"    // service hosts (Factories, Managers) calling the Repository
)

// Resource is what an operation acts on. Owner is empty for service-level operations
// (create, list, image pool), which only the class permission decides.
type Resource struct {
	Service, Action string
	Key, Name       string
	Owner           string // owner DN of the workspace; "" = not a workspace
}

func (r Resource) String() string {
	var s string
	switch {
	case r.Service != "" && r.Action != "":
		s = r.Service + "/" + r.Action
	default:
		s = r.Service + r.Action
	}
	if r.Owner != "" || r.Key != "" {
		w := "workspace " + r.Key
		if r.Name != "" {
			w += " (" + r.Name + ")"
		}
		if r.Owner != "" {
			w += " owned by " + r.Owner
		}
		if s == "" {
			return w
		}
		return s + " on " + w
	}
	return s
}

// Decision is the outcome of one check, for the fault and the audit log.
type Decision struct {
	Allowed bool
	// Rule names what decided: "rules.conf:4", "rules.conf:4 + owner",
	// "rules.conf:4 + share rules.conf:9", "rules.conf:4 + admin rules.conf:2",
	// "rules.conf:4, but not the owner and no share rule", "rules.conf:4, but anonymous
	// callers never count as a workspace's owner, …", "no rule in rules.conf matched".
	Rule string
	// Reason is a sentence for the fault description.
	Reason string
}

type subjectKind int

const (
	subjDN subjectKind = iota
	subjAnonymous
	subjAny
	subjGroup
	subjVO
	subjAccount
)

type subject struct {
	kind    subjectKind
	pattern string // DN glob, group name, FQAN glob or account glob
}

func (s subject) String() string {
	switch s.kind {
	case subjAnonymous:
		return "anonymous"
	case subjAny:
		return "*"
	case subjGroup:
		return "group:" + s.pattern
	case subjVO:
		return "vo:" + s.pattern
	case subjAccount:
		return "account:" + s.pattern
	}
	return s.pattern
}

type rule struct {
	allow bool
	op    string // operation or "*"
	subj  subject
	line  int
}

type member struct {
	subj subject
	line int
}

type attrRule struct {
	subj subject
	fqan string
}

type shareRule struct {
	op      Operation // Inspect or Manage
	selKind string    // "key", "name", "owner" or "*"
	selPat  string
	subj    subject
	line    int
}

type quotaRule struct {
	subj   subject // subjDN/subjAny (per DN) or subjGroup (shared)
	limits Limits
	line   int
}

type sigRule struct{ service, operation string }

// Rules is a parsed rules file (plus, optionally, a grid-mapfile). It is immutable.
type Rules struct {
	source   string
	allowAll bool // the built-in policy: no ownership checks
	rules    []rule
	groups   map[string][]member
	attrs    []attrRule
	shares   []shareRule
	quotas   []quotaRule
	sigs     []sigRule
	gridmap  *GridMap
}

// summary describes rs for the log: where it came from and what it holds, so an
// operator sees which files are in force and that they hold what was meant.
func (rs *Rules) summary() []any {
	out := []any{"source", rs.source, "rules", len(rs.rules), "groups", len(rs.groups), "shares", len(rs.shares),
		"quotas", len(rs.quotas), "signature-rules", len(rs.sigs)}
	if rs.gridmap != nil {
		out = append(out, "grid-mapfile", rs.gridmap.source, "mapped-DNs", len(rs.gridmap.accounts))
	}
	return out
}

// AllowAll is the policy of a server started without a rules file: every caller may do
// everything, including to other callers' workspaces (the server warns at start).
var AllowAll = &Rules{source: "built-in allow-all", allowAll: true, rules: []rule{
	{allow: true, op: "*", subj: subject{kind: subjAny}},
	{allow: true, op: "*", subj: subject{kind: subjAnonymous}},
}}

// Authenticated is the policy of a server that authenticates its callers (mutual
// TLS) but was given no rules file: every authenticated caller may create, and
// inspect and manage its own workspaces; hosts are the certificates named the Globus
// way (".../CN=host/<name>"); nobody is admin, so the image pool needs a rules file
// naming who may change it. Anonymous callers may do nothing.
var Authenticated = builtIn(`allow host    */CN=host/*
allow create  *
allow inspect *
allow manage  *
`, "built-in policy for authenticated callers (no --policy)")

func builtIn(text, source string) *Rules {
	rs, err := Parse(strings.NewReader(text), source)
	if err != nil {
		panic(err) // a constant
	}
	return rs
}

// gridMapOnly is the policy of a server with a grid-mapfile and no rules file, as in
// Globus: mapped callers may create, inspect and manage their own workspaces; hosts
// are the certificates named the Globus way (".../CN=host/<name>"); admin, which would
// reach everyone's workspaces, needs a rules file.
func gridMapOnly(gm *GridMap) *Rules {
	mapped := subject{kind: subjAccount, pattern: "*"}
	rs := &Rules{source: "built-in grid-mapfile policy (" + gm.source + ")", gridmap: gm}
	for _, op := range []Operation{Create, Inspect, Manage} {
		rs.rules = append(rs.rules, rule{allow: true, op: string(op), subj: mapped})
	}
	hosts, err := parseSubject("*/CN=host/*")
	if err != nil {
		panic(err) // a constant
	}
	rs.rules = append(rs.rules, rule{allow: true, op: string(Host), subj: hosts})
	return rs
}

// Load reads a rules file.
func Load(file string) (*Rules, error) {
	f, err := os.Open(file)
	if err != nil {
		return nil, fmt.Errorf("policy: %w", err)
	}
	defer f.Close()
	return Parse(f, file)
}

// WithGridMap returns a copy of rs that maps callers' DNs to accounts with gm.
func (rs *Rules) WithGridMap(gm *GridMap) *Rules {
	c := *rs
	c.gridmap = gm
	return &c
}

// Source names the rules file (or the built-in policy) decisions cite.
func (rs *Rules) Source() string { return rs.source }

func validOp(s string) bool {
	switch Operation(s) {
	case Create, Inspect, Manage, Admin, Host, "*":
		return true
	}
	return false
}

const subjectForms = "a DN glob (/O=...), anonymous, *, group:NAME, vo:FQAN or account:NAME"

func parseSubject(s string) (subject, error) {
	switch {
	case s == "anonymous":
		return subject{kind: subjAnonymous}, nil
	case s == "*":
		return subject{kind: subjAny}, nil
	case strings.HasPrefix(s, "group:"):
		if s == "group:" || strings.ContainsAny(s, " \t") {
			return subject{}, fmt.Errorf("group:NAME needs a name without spaces, got %q", s)
		}
		return subject{kind: subjGroup, pattern: s[len("group:"):]}, nil
	case strings.HasPrefix(s, "vo:"):
		if s == "vo:" {
			return subject{}, fmt.Errorf("vo: needs an FQAN glob such as vo:/atlas/*")
		}
		return subject{kind: subjVO, pattern: s[len("vo:"):]}, nil
	case strings.HasPrefix(s, "account:"):
		if s == "account:" {
			return subject{}, fmt.Errorf("account: needs an account name")
		}
		return subject{kind: subjAccount, pattern: s[len("account:"):]}, nil
	case strings.HasPrefix(s, "/") || strings.HasPrefix(s, "*"):
		// A DN is matched with its email attribute spelled one way (identity.CanonicalDN).
		return subject{kind: subjDN, pattern: identity.CanonicalDN(s)}, nil
	}
	return subject{}, fmt.Errorf("subject %q: want %s", s, subjectForms)
}

// startsSubject reports whether a rule's field begins a subject (parseSubject).
func startsSubject(field string) bool {
	return field == "anonymous" || strings.HasPrefix(field, "/") || strings.HasPrefix(field, "*") ||
		strings.HasPrefix(field, "group:") || strings.HasPrefix(field, "vo:") || strings.HasPrefix(field, "account:")
}

// Parse reads rules from r; source names it in decisions and errors.
func Parse(r io.Reader, source string) (*Rules, error) {
	rs := &Rules{source: source, groups: map[string][]member{}}
	sc := bufio.NewScanner(r)
	for n := 1; sc.Scan(); n++ {
		line := sc.Text()
		if i := strings.IndexByte(line, '#'); i >= 0 {
			line = line[:i]
		}
		fields := strings.Fields(line)
		if len(fields) == 0 {
			continue
		}
		if err := rs.parseLine(fields, n); err != nil {
			return nil, fmt.Errorf("%s:%d: %w", source, n, err)
		}
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("read %s: %w", source, err)
	}
	if err := rs.checkReferences(); err != nil {
		return nil, err
	}
	return rs, nil
}

func (rs *Rules) parseLine(f []string, n int) error {
	// tail is the rest of the line from field i: DNs may contain spaces.
	tail := func(i int) string { return strings.Join(f[i:], " ") }
	switch f[0] {
	case "allow", "deny":
		if len(f) < 3 {
			return fmt.Errorf("want \"%s OPERATION SUBJECT\"", f[0])
		}
		if !validOp(f[1]) {
			return fmt.Errorf("unknown operation %q (create, inspect, manage, admin, host or *)", f[1])
		}
		s, err := parseSubject(tail(2))
		if err != nil {
			return err
		}
		rs.rules = append(rs.rules, rule{allow: f[0] == "allow", op: f[1], subj: s, line: n})
	case "group":
		if len(f) < 3 {
			return fmt.Errorf("want \"group NAME SUBJECT\"")
		}
		if strings.ContainsAny(f[1], ":*") {
			return fmt.Errorf("group name %q may not contain ':' or '*'", f[1])
		}
		s, err := parseSubject(tail(2))
		if err != nil {
			return err
		}
		if s.kind == subjGroup {
			return fmt.Errorf("group %s: a group cannot contain another group (%s); list its members", f[1], s)
		}
		rs.groups[f[1]] = append(rs.groups[f[1]], member{subj: s, line: n})
	case "attribute":
		// The FQAN is the last field, so the subject (a DN) may contain spaces.
		if len(f) < 3 {
			return fmt.Errorf("want \"attribute SUBJECT FQAN\"")
		}
		fqan := f[len(f)-1]
		if !strings.HasPrefix(fqan, "/") {
			return fmt.Errorf("attribute: FQAN %q should look like /vo[/group][/Role=role]", fqan)
		}
		s, err := parseSubject(strings.Join(f[1:len(f)-1], " "))
		if err != nil {
			return err
		}
		if s.kind == subjGroup || s.kind == subjVO {
			// Attributes feed group membership; deriving them from groups or other
			// attributes would make the two depend on each other.
			return fmt.Errorf("attribute: subject %s: want a DN glob, account:NAME, anonymous or *", s)
		}
		rs.attrs = append(rs.attrs, attrRule{subj: s, fqan: fqan})
	case "share":
		if len(f) < 4 {
			return fmt.Errorf("want \"share inspect|manage SELECTOR SUBJECT\"")
		}
		op := Operation(f[1])
		if op != Inspect && op != Manage {
			return fmt.Errorf("share %q: want inspect or manage", f[1])
		}
		sr := shareRule{op: op, line: n}
		subjAt := 3
		if strings.HasPrefix(f[2], "owner:") {
			// Grid DNs hold spaces (CN=Jane Doe): the owner's DN runs on to the field
			// that starts the subject, as a subject's own DN runs to the line's end.
			for subjAt < len(f)-1 && !startsSubject(f[subjAt]) {
				subjAt++
			}
			f = append(f[:2:2], append([]string{strings.Join(f[2:subjAt], " ")}, f[subjAt:]...)...)
			subjAt = 3
		}
		if f[2] == "*" {
			sr.selKind = "*"
		} else {
			k, v, ok := strings.Cut(f[2], ":")
			if !ok || v == "" || (k != "key" && k != "name" && k != "owner") {
				return fmt.Errorf("share selector %q: want key:KEY, name:GLOB, owner:DN-GLOB or *", f[2])
			}
			if k == "owner" {
				// An owner is a DN, matched as subjects are (identity.CanonicalDN).
				v = identity.CanonicalDN(v)
			}
			sr.selKind, sr.selPat = k, v
		}
		s, err := parseSubject(strings.Join(f[subjAt:], " "))
		if err != nil {
			return err
		}
		sr.subj = s
		rs.shares = append(rs.shares, sr)
	case "quota":
		return rs.parseQuota(f, n)
	case "require-signature":
		if len(f) != 3 {
			return fmt.Errorf("want \"require-signature SERVICE OPERATION\" (either may be *)")
		}
		if err := checkSignable(f[1], f[2]); err != nil {
			return fmt.Errorf("require-signature: %w", err)
		}
		rs.sigs = append(rs.sigs, sigRule{service: f[1], operation: f[2]})
	default:
		return fmt.Errorf("%q: want allow, deny, group, attribute, share, quota or require-signature", f[0])
	}
	return nil
}

func (rs *Rules) parseQuota(f []string, n int) error {
	// Limits are the trailing NAME=VALUE fields; the subject before them may have spaces.
	i := len(f)
	for i > 1 && isLimit(f[i-1]) {
		i--
	}
	if i < 2 || i == len(f) {
		return fmt.Errorf("want \"quota SUBJECT LIMIT=VALUE...\" with limits workspaces=N, running=N, memory=SIZE, lifetime=DURATION")
	}
	s, err := parseSubject(strings.Join(f[1:i], " "))
	if err != nil {
		return err
	}
	if s.kind != subjDN && s.kind != subjAny && s.kind != subjGroup {
		return fmt.Errorf("quota subject %s: want a DN glob (counted per DN) or group:NAME (counted together)", s)
	}
	q := quotaRule{subj: s, line: n}
	for _, kv := range f[i:] {
		k, v, _ := strings.Cut(kv, "=")
		var err error
		switch k {
		case "workspaces":
			q.limits.Workspaces, err = positiveInt(v)
		case "running":
			q.limits.Running, err = positiveInt(v)
		case "memory":
			q.limits.MemoryMiB, err = parseMiB(v)
		case "lifetime":
			q.limits.Lifetime, err = parseLifetime(v)
		default:
			return fmt.Errorf("quota limit %q: want workspaces, running, memory or lifetime", k)
		}
		if err != nil {
			return fmt.Errorf("quota %s: %w", kv, err)
		}
	}
	rs.quotas = append(rs.quotas, q)
	return nil
}

// isLimit tells a NAME=VALUE limit from the tail of a DN with spaces ("CN=Jane Doe/OU=x").
func isLimit(field string) bool {
	k, _, ok := strings.Cut(field, "=")
	if !ok || k == "" {
		return false
	}
	for _, r := range k {
		if r < 'a' || r > 'z' {
			return false
		}
	}
	return true
}

func positiveInt(v string) (int, error) {
	n, err := strconv.Atoi(v)
	if err != nil || n <= 0 {
		return 0, fmt.Errorf("want a positive integer, got %q", v)
	}
	return n, nil
}

// checkReferences refuses group: subjects naming groups that are never defined: a
// typo there would silently deny (or, in a deny rule, silently allow).
func (rs *Rules) checkReferences() error {
	check := func(s subject, line int) error {
		if s.kind == subjGroup {
			if _, ok := rs.groups[s.pattern]; !ok {
				return fmt.Errorf("%s:%d: group %q is not defined (add \"group %s SUBJECT\" lines)", rs.source, line, s.pattern, s.pattern)
			}
		}
		return nil
	}
	for _, r := range rs.rules {
		if err := check(r.subj, r.line); err != nil {
			return err
		}
	}
	for _, s := range rs.shares {
		if err := check(s.subj, s.line); err != nil {
			return err
		}
	}
	for _, q := range rs.quotas {
		if err := check(q.subj, q.line); err != nil {
			return err
		}
	}
	return nil
}

// caller is an identity with everything the rules derive from it.
type caller struct {
	id      identity.Identity
	account string
	attrs   []string
	groups  map[string]bool
}

func (rs *Rules) resolve(id identity.Identity) *caller {
	c := &caller{id: id, account: rs.Account(id), groups: map[string]bool{}}
	c.attrs = append(c.attrs, id.Attributes...)
	for _, a := range rs.attrs {
		if c.matchesBase(a.subj) {
			c.attrs = append(c.attrs, a.fqan)
		}
	}
	for name, members := range rs.groups {
		for _, m := range members {
			if c.matchesBase(m.subj) {
				c.groups[name] = true
				break
			}
		}
	}
	return c
}

// matchesBase matches every subject form but group:.
func (c *caller) matchesBase(s subject) bool {
	anon := c.id.IsAnonymous()
	switch s.kind {
	case subjAnonymous:
		return anon
	case subjAny:
		return !anon
	case subjDN:
		return !anon && glob(s.pattern, identity.CanonicalDN(c.id.DN))
	case subjAccount:
		return c.account != "" && glob(s.pattern, c.account)
	case subjVO:
		for _, a := range c.attrs {
			if glob(s.pattern, a) {
				return true
			}
		}
	}
	return false
}

func (c *caller) matches(s subject) bool {
	if s.kind == subjGroup {
		return c.groups[s.pattern]
	}
	return c.matchesBase(s)
}

func (rs *Rules) cite(line int) string { return fmt.Sprintf("%s:%d", rs.source, line) }

// classRule returns the first allow/deny rule matching op and c.
func (rs *Rules) classRule(c *caller, op Operation) (rule, bool) {
	for _, ru := range rs.rules {
		// "*" is every user operation but not host: acting as a host (registering
		// workspaces for any owner, checking them out) is a role a rule must name.
		if ((ru.op == "*" && (op != Host || rs.allowAll)) || ru.op == string(op)) && c.matches(ru.subj) {
			return ru, true
		}
	}
	return rule{}, false
}

func (rs *Rules) citeRule(ru rule) string {
	if rs.allowAll || ru.line == 0 {
		return rs.source
	}
	return rs.cite(ru.line)
}

// Decide checks whether caller may do op on res.
func (rs *Rules) Decide(id identity.Identity, op Operation, res Resource) Decision {
	c := rs.resolve(id)
	ru, ok := rs.classRule(c, op)
	if !ok {
		return Decision{Rule: "no rule in " + rs.source + " matched",
			Reason: fmt.Sprintf("%s may not %s: no rule in %s allows it", id, op, rs.source)}
	}
	at := rs.citeRule(ru)
	if !ru.allow {
		return Decision{Rule: at, Reason: fmt.Sprintf("%s may not %s: %s denies it", id, op, at)}
	}
	if res.Owner == "" || (op != Inspect && op != Manage) || rs.allowAll {
		return Decision{Allowed: true, Rule: at}
	}
	if !id.IsAnonymous() && id.DN == res.Owner {
		return Decision{Allowed: true, Rule: at + " + owner"}
	}
	for _, s := range rs.shares {
		if (s.op == op || s.op == Manage) && s.selects(res) && c.matches(s.subj) {
			return Decision{Allowed: true, Rule: at + " + share " + rs.cite(s.line)}
		}
	}
	if ar, ok := rs.classRule(c, Admin); ok && ar.allow {
		return Decision{Allowed: true, Rule: at + " + admin " + rs.citeRule(ar)}
	}
	if id.IsAnonymous() {
		// Also of a workspace an anonymous caller created ("owned by <anonymous>"):
		// anyone without a certificate would own it otherwise.
		return Decision{Rule: at + ", but anonymous callers never count as a workspace's owner, and no share rule names anonymous",
			Reason: fmt.Sprintf("%s may not %s %s: anonymous callers never count as a workspace's owner, and no share rule in %s names anonymous", id, op, res, rs.source)}
	}
	return Decision{Rule: at + ", but not the owner and no share rule",
		Reason: fmt.Sprintf("%s may not %s %s: it belongs to %s and no share rule in %s covers the caller", id, op, res, res.Owner, rs.source)}
}

func (s shareRule) selects(res Resource) bool {
	switch s.selKind {
	case "key":
		return res.Key == s.selPat
	case "name":
		return res.Name != "" && glob(s.selPat, res.Name)
	case "owner":
		return glob(s.selPat, identity.CanonicalDN(res.Owner))
	}
	return true
}

// Authorize decides for the caller in ctx. A denial's error wraps
// errdefs.ErrAuthorization and names caller, operation, resource and rule, with advice.
func (rs *Rules) Authorize(ctx context.Context, op Operation, res Resource) (Decision, error) {
	id := identity.From(ctx)
	d := rs.Decide(id, op, res)
	if d.Allowed {
		return d, nil
	}
	what := res.String()
	if what == "" {
		what = "(service-level)"
	}
	err := fmt.Errorf("%w: %s may not %s %s (%s)", errdefs.ErrAuthorization, id, op, what, d.Rule)
	advice := "ask the site administrator to add a rule that allows it"
	switch {
	case id.IsAnonymous() && strings.Contains(d.Rule, "never count as a workspace's owner"):
		advice = fmt.Sprintf("ask the site administrator for a share rule naming anonymous (share %s key:%s anonymous) or an admin rule for anonymous", op, res.Key)
		if res.Owner != id.String() {
			advice = "present the owner's grid certificate (or proxy), or " + advice
		}
	case id.IsAnonymous():
		advice = "present a grid certificate (or proxy); anonymous callers may not do this here"
	case strings.Contains(d.Rule, "not the owner"):
		advice = fmt.Sprintf("ask the owner or the site administrator for a share rule (share %s key:%s %s)", op, res.Key, id.DN)
	}
	return d, errdefs.WithAdvice(err, advice)
}

// RequiresSignature reports whether requests for service's operation must carry a
// verified WS-Security signature.
func (rs *Rules) RequiresSignature(service, operation string) bool {
	for _, s := range rs.sigs {
		if (s.service == "*" || s.service == service) && (s.operation == "*" || s.operation == operation) {
			return true
		}
	}
	return false
}

// Account returns the grid-mapfile account of caller, "" when it is unmapped.
func (rs *Rules) Account(id identity.Identity) string {
	if rs.gridmap == nil || id.IsAnonymous() {
		return ""
	}
	return rs.gridmap.Account(id.DN)
}

// Groups returns the groups caller belongs to (for diagnostics and tests).
func (rs *Rules) Groups(id identity.Identity) []string {
	var out []string
	for g := range rs.resolve(id).groups {
		out = append(out, g)
	}
	return out
}

// glob matches s against pattern, where * stands for any run of characters, '/'
// included (DNs are slash-separated, and "/O=Grid/*" means everyone under it).
func glob(pattern, s string) bool {
	parts := strings.Split(pattern, "*")
	if len(parts) == 1 {
		return pattern == s
	}
	if !strings.HasPrefix(s, parts[0]) {
		return false
	}
	s = s[len(parts[0]):]
	for _, p := range parts[1 : len(parts)-1] {
		i := strings.Index(s, p)
		if i < 0 {
			return false
		}
		s = s[i+len(p):]
	}
	return strings.HasSuffix(s, parts[len(parts)-1])
}
