package policy

import (
	"fmt"
	"math"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/vws-grid/vws/internal/errdefs"
	"github.com/vws-grid/vws/internal/identity"
)

// Limits bound what a scope may hold; a zero field is no limit.
type Limits struct {
	Workspaces, Running int
	MemoryMiB           int64
	Lifetime            time.Duration
}

// Quota is one limit set that applies to a caller: Scope is what is counted
// ("dn:/O=Grid/CN=alice" or "group:atlas"), Rule the file:line it comes from.
type Quota struct {
	Scope  string
	Limits Limits
	Rule   string
}

// Usage is what a scope holds.
type Usage struct {
	Workspaces, Running int
	MemoryMiB           int64
}

func (u Usage) add(d Usage, sign int) Usage {
	return Usage{
		Workspaces: u.Workspaces + sign*d.Workspaces,
		Running:    u.Running + sign*d.Running,
		MemoryMiB:  u.MemoryMiB + int64(sign)*d.MemoryMiB,
	}
}

// Quotas returns the quotas that apply to caller: the first DN-glob quota line
// matching its DN (counted per DN), and every quota of every group it is in (counted
// per group). Anonymous callers match only group quotas of groups containing anonymous.
func (rs *Rules) Quotas(id identity.Identity) []Quota {
	if len(rs.quotas) == 0 {
		return nil
	}
	c := rs.resolve(id)
	var out []Quota
	dnDone := false
	for _, q := range rs.quotas {
		switch q.subj.kind {
		case subjGroup:
			if c.groups[q.subj.pattern] {
				out = append(out, Quota{Scope: "group:" + q.subj.pattern, Limits: q.limits, Rule: rs.cite(q.line)})
			}
		default:
			if !dnDone && c.matchesBase(q.subj) {
				dnDone = true
				out = append(out, Quota{Scope: "dn:" + id.DN, Limits: q.limits, Rule: rs.cite(q.line)})
			}
		}
	}
	return out
}

// Scopes lists the distinct scopes of quotas, in order: what a workspace's usage is
// counted against (and re-added to with Ledger.Add at start-up).
func Scopes(quotas []Quota) []string {
	var out []string
	seen := map[string]bool{}
	for _, q := range quotas {
		if !seen[q.Scope] {
			seen[q.Scope] = true
			out = append(out, q.Scope)
		}
	}
	return out
}

// CheckLifetime refuses a lifetime d beyond any quota's lifetime limit; d <= 0 (no
// termination) exceeds every such limit.
func CheckLifetime(quotas []Quota, d time.Duration) error {
	for _, q := range quotas {
		max := q.Limits.Lifetime
		if max == 0 || (d > 0 && d <= max) {
			continue
		}
		asked := "no termination time"
		if d > 0 {
			asked = "a lifetime of " + formatLifetime(roundRequest(d, max))
		}
		return errdefs.WithAdvice(fmt.Errorf("%w: quota lifetime=%s of %s (%s): this request asks for %s",
			errdefs.ErrQuotaExceeded, formatLifetime(max), q.Scope, q.Rule, asked),
			fmt.Sprintf("ask for a lifetime of at most %s and extend it later if needed", formatLifetime(max)))
	}
	return nil
}

// roundRequest rounds a requested lifetime d over max to the second: a lifetime the
// Repository measures from a termination time carries the milliseconds the request
// spent on the way (P8DT8H arrives as 199h59m59.998s). Rounding never makes d look
// within max.
func roundRequest(d, max time.Duration) time.Duration {
	r := d.Round(time.Second)
	if r <= max {
		r = d.Truncate(time.Second) + time.Second
	}
	if r <= max {
		return d
	}
	return r
}

// formatLifetime writes d as the rules file does (7d, 1d12h, 90m → 1h30m), so that
// a limit reads as it was written and can be copied back.
func formatLifetime(d time.Duration) string {
	if d <= 0 {
		return d.String()
	}
	var b strings.Builder
	const day = 24 * time.Hour
	if n := d / day; n > 0 {
		fmt.Fprintf(&b, "%dd", n)
		d -= n * day
	}
	if n := d / time.Hour; n > 0 {
		fmt.Fprintf(&b, "%dh", n)
		d -= n * time.Hour
	}
	if n := d / time.Minute; n > 0 {
		fmt.Fprintf(&b, "%dm", n)
		d -= n * time.Minute
	}
	if d > 0 {
		b.WriteString(d.String()) // 5s, or 1.5s and 500ms for a limit written so
	}
	return b.String()
}

// Ledger counts what each scope holds. It is in memory: the Repository rebuilds it
// at start-up from the stored workspaces with Add. Safe for concurrent use.
type Ledger struct {
	mu    sync.Mutex
	usage map[string]Usage
}

// NewLedger returns an empty ledger.
func NewLedger() *Ledger { return &Ledger{usage: map[string]Usage{}} }

// Reserve atomically checks that every quota's scope stays within its limits once
// delta is added, and adds it to every scope. Only limits delta increases are checked,
// so a scope already over a lowered limit can still give back. The returned release
// subtracts delta again and may be called more than once.
func (l *Ledger) Reserve(quotas []Quota, delta Usage) (release func(), err error) {
	scopes := Scopes(quotas)
	l.mu.Lock()
	defer l.mu.Unlock()
	for _, q := range quotas {
		if err := exceeds(q, l.usage[q.Scope], delta); err != nil {
			return nil, err
		}
	}
	for _, s := range scopes {
		l.usage[s] = l.usage[s].add(delta, 1)
	}
	var once sync.Once
	return func() {
		once.Do(func() {
			l.mu.Lock()
			defer l.mu.Unlock()
			for _, s := range scopes {
				l.usage[s] = l.usage[s].add(delta, -1)
			}
		})
	}, nil
}

func exceeds(q Quota, cur, delta Usage) error {
	lim := q.Limits
	var what string
	switch {
	case delta.Workspaces > 0 && lim.Workspaces > 0 && cur.Workspaces+delta.Workspaces > lim.Workspaces:
		what = fmt.Sprintf("workspaces=%d of %s (%s): %d held, this request needs %d more", lim.Workspaces, q.Scope, q.Rule, cur.Workspaces, delta.Workspaces)
	case delta.Running > 0 && lim.Running > 0 && cur.Running+delta.Running > lim.Running:
		what = fmt.Sprintf("running=%d of %s (%s): %d running, this request needs %d more", lim.Running, q.Scope, q.Rule, cur.Running, delta.Running)
	case delta.MemoryMiB > 0 && lim.MemoryMiB > 0 && cur.MemoryMiB+delta.MemoryMiB > lim.MemoryMiB:
		what = fmt.Sprintf("memory=%dMiB of %s (%s): %d MiB in use, this request needs %d MiB more", lim.MemoryMiB, q.Scope, q.Rule, cur.MemoryMiB, delta.MemoryMiB)
	default:
		return nil
	}
	return errdefs.WithAdvice(fmt.Errorf("%w: quota %s", errdefs.ErrQuotaExceeded, what),
		"destroy, shut down or undeploy workspaces you no longer need, or ask the site administrator for a larger quota")
}

// Add adds delta to scopes without checking limits: the start-up rebuild from stored
// workspaces, which exist whatever the rules say now.
func (l *Ledger) Add(scopes []string, delta Usage) {
	l.mu.Lock()
	defer l.mu.Unlock()
	for _, s := range scopes {
		l.usage[s] = l.usage[s].add(delta, 1)
	}
}

// Usage returns what scope holds.
func (l *Ledger) Usage(scope string) Usage {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.usage[scope]
}

// parseMiB reads a memory size: MiB as a bare integer, or with a MiB, GiB or TiB unit.
func parseMiB(v string) (int64, error) {
	mult := int64(1)
	num := v
	for _, u := range []struct {
		suffix string
		mult   int64
	}{{"MiB", 1}, {"GiB", 1024}, {"TiB", 1024 * 1024}} {
		if strings.HasSuffix(v, u.suffix) {
			num, mult = strings.TrimSuffix(v, u.suffix), u.mult
			break
		}
	}
	n, err := strconv.ParseInt(num, 10, 64)
	if err != nil || n <= 0 {
		return 0, fmt.Errorf("want a size in MiB (2048) or with a unit (2048MiB, 2GiB), got %q", v)
	}
	if n > math.MaxInt64/mult {
		return 0, fmt.Errorf("size %q is too large to count; leave the limit out for none", v)
	}
	return n * mult, nil
}

// parseLifetime reads a Go duration that may start with whole days ("7d", "1d12h").
func parseLifetime(v string) (time.Duration, error) {
	var d time.Duration
	rest := v
	if i := strings.IndexByte(v, 'd'); i > 0 {
		days, err := strconv.Atoi(v[:i])
		if err == nil && days < 0 {
			return 0, fmt.Errorf("want a positive duration, got %q", v)
		}
		if err == nil {
			if days > int(math.MaxInt64/int64(24*time.Hour)) {
				return 0, fmt.Errorf("duration %q is too long to count (at most about 292 years); leave the limit out for none", v)
			}
			d, rest = time.Duration(days)*24*time.Hour, v[i+1:]
		}
	}
	if rest != "" {
		r, err := time.ParseDuration(rest)
		if err != nil {
			return 0, fmt.Errorf("want a duration such as 12h, 7d or 1d12h, got %q", v)
		}
		if r < 0 {
			return 0, fmt.Errorf("want a positive duration, got %q", v)
		}
		if d > math.MaxInt64-r {
			return 0, fmt.Errorf("duration %q is too long to count (at most about 292 years); leave the limit out for none", v)
		}
		d += r
	}
	if d <= 0 {
		return 0, fmt.Errorf("want a positive duration, got %q", v)
	}
	return d, nil
}
