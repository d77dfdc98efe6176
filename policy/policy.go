// Package policy decides who may do what. This release reads an allow/deny rule file;
// X.509 proxies, grid-mapfiles, VO attributes and quotas come with the security issue.
//
// Rule file: one rule per line, first match wins, '#' starts a comment:
//
//	allow create  /O=Grid/OU=Example/*     # DN glob: * matches any run of characters
//	deny  *       anonymous                # callers without a certificate
//	allow inspect *                        # everyone else may look
//
// Operations: create, inspect, manage, admin, or * for all. A caller no rule matches
// is denied.
package policy

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"os"
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
	Admin   Operation = "admin"   // image pool, site operations
)

type rule struct {
	allow   bool
	op      string // operation or "*"
	subject string // DN glob, "*" or "anonymous"
	line    int
}

// Rules is a parsed rule file.
type Rules struct {
	source string
	rules  []rule
}

// AllowAll is the policy of a server started without a rule file.
var AllowAll = &Rules{source: "built-in allow-all", rules: []rule{{allow: true, op: "*", subject: "*"}, {allow: true, op: "*", subject: "anonymous"}}}

// Load reads a rule file.
func Load(file string) (*Rules, error) {
	f, err := os.Open(file)
	if err != nil {
		return nil, fmt.Errorf("policy: %w", err)
	}
	defer f.Close()
	return Parse(f, file)
}

// Parse reads rules from r; source names it in decisions and errors.
func Parse(r io.Reader, source string) (*Rules, error) {
	rs := &Rules{source: source}
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
		if len(fields) < 3 {
			return nil, fmt.Errorf("%s:%d: want \"allow|deny OPERATION SUBJECT\"", source, n)
		}
		var ru rule
		switch fields[0] {
		case "allow":
			ru.allow = true
		case "deny":
		default:
			return nil, fmt.Errorf("%s:%d: %q: a rule starts with allow or deny", source, n, fields[0])
		}
		switch Operation(fields[1]) {
		case Create, Inspect, Manage, Admin, "*":
		default:
			return nil, fmt.Errorf("%s:%d: unknown operation %q (create, inspect, manage, admin or *)", source, n, fields[1])
		}
		ru.op = fields[1]
		// A DN may contain spaces ("CN=Jane Doe"): the subject is the rest of the line.
		ru.subject = strings.Join(fields[2:], " ")
		ru.line = n
		rs.rules = append(rs.rules, ru)
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("%s: %w", source, err)
	}
	return rs, nil
}

// Decision is the outcome of one check, for the audit log.
type Decision struct {
	Allowed bool
	Rule    string // "file:line" of the deciding rule, or "no rule matched"
}

// Decide checks whether caller may do op.
func (rs *Rules) Decide(caller identity.Identity, op Operation) Decision {
	for _, ru := range rs.rules {
		if ru.op != "*" && ru.op != string(op) {
			continue
		}
		if !matches(ru.subject, caller) {
			continue
		}
		return Decision{Allowed: ru.allow, Rule: fmt.Sprintf("%s:%d", rs.source, ru.line)}
	}
	return Decision{Allowed: false, Rule: "no rule in " + rs.source + " matched"}
}

func matches(subject string, caller identity.Identity) bool {
	if caller.IsAnonymous() {
		return subject == "anonymous"
	}
	if subject == "anonymous" {
		return false
	}
	return glob(subject, caller.DN)
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

// Authorize returns nil when the caller in ctx may do op, else an error wrapping
// errdefs.ErrAuthorization that names caller, operation and the deciding rule.
func (rs *Rules) Authorize(ctx context.Context, op Operation) (Decision, error) {
	caller := identity.From(ctx)
	d := rs.Decide(caller, op)
	if d.Allowed {
		return d, nil
	}
	return d, errdefs.WithAdvice(fmt.Errorf("%w: %s may not %s (%s)", errdefs.ErrAuthorization, caller, op, d.Rule),
		"ask the site administrator to add a rule that allows it")
}
