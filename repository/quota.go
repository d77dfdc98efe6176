package repository

import (
	"context"
	"fmt"
	"github.com/vws-grid/vws/internal/audit"
	"strconv"
	"strings"
	"time"

	"github.com/vws-grid/vws/internal/errdefs"
	"github.com/vws-grid/vws/internal/identity"
	"github.com/vws-grid/vws/internal/vwsns"
	"github.com/vws-grid/vws/internal/wsrf"
	"github.com/vws-grid/vws/policy"
)

// Policy is the site's current rules: quotas and decisions for the users a host acts for.
type Policy interface {
	Rules() *policy.Rules
}

// Quotas are counted here, where workspaces are made and checked out: the ledger
// reserves atomically, so concurrent requests cannot together pass a limit. A
// workspace counts against the scopes that applied when it was created (kept in its
// chain, so a destroy gives back to the same counts); a deployment counts as running,
// with its memory, from check-out to check-in.

func (r *Repository) rules() *policy.Rules {
	if r.policy == nil {
		return policy.AllowAll
	}
	return r.policy.Rules()
}

// reserveWorkspace charges one workspace of lifetime to owner's quotas.
func (r *Repository) reserveWorkspace(owner identity.Identity, lifetime time.Duration) (scopes []string, release func(), err error) {
	quotas := r.rules().Quotas(owner)
	if err := policy.CheckLifetime(quotas, lifetime); err != nil {
		return nil, nil, err
	}
	release, err = r.ledger.Reserve(quotas, policy.Usage{Workspaces: 1})
	if err != nil {
		return nil, nil, err
	}
	return policy.Scopes(quotas), release, nil
}

// checkTermination keeps SetTerminationTime within the owner's lifetime quota, which
// Create and Clone checked only once: without it a workspace made within lifetime=2h
// could be extended for ever. The lifetime counts from the workspace's creation, as it
// did then. A change that does not extend the termination passes whatever the limit,
// so a workspace already over a lowered limit can still be shortened.
func (r *Repository) checkTermination(s *wsrf.Snapshot, t *time.Time) error {
	if !extends(s.Termination, t) {
		return nil
	}
	chain, err := decodeChain(s.Private)
	if err != nil {
		return fmt.Errorf("workspace %s: %w", s.Key, err)
	}
	quotas := r.rules().Quotas(ownerIdentity(text(s, PropOwner), chain.OwnerAttributes))
	limited := false
	for _, q := range quotas {
		limited = limited || q.Limits.Lifetime > 0
	}
	if !limited {
		return nil
	}
	if t == nil {
		return policy.CheckLifetime(quotas, 0) // no termination exceeds any lifetime limit
	}
	created, err := wsrf.ParseDateTime(text(s, PropCreationTime))
	if err != nil {
		return fmt.Errorf("%w: workspace %s has no readable creation time to measure its lifetime quota from: %w",
			errdefs.ErrUnableToSetTermTime, s.Key, err)
	}
	return policy.CheckLifetime(quotas, t.Sub(created))
}

// extends reports whether termination next is later than cur (nil: never, the latest).
func extends(cur, next *time.Time) bool {
	switch {
	case cur == nil:
		return false
	case next == nil:
		return true
	default:
		return next.After(*cur)
	}
}

// rebuildLedger counts the stored workspaces after a start. Range, not View: those
// whose time ran out while vws was down count too, since their destroy, soon, takes
// them off the ledger.
func (r *Repository) rebuildLedger(ctx context.Context) {
	r.Workspaces.Range(func(s *wsrf.Snapshot) bool {
		chain, err := decodeChain(s.Private)
		if err != nil {
			return true
		}
		r.ledger.Add(chain.QuotaScopes, policy.Usage{Workspaces: 1})
		if len(chain.RunScopes) > 0 {
			r.ledger.Add(chain.RunScopes, policy.Usage{Running: 1, MemoryMiB: chain.RunMemoryMiB})
		}
		return true
	})
}

// memoryMiB is the RAM a workspace asks for: its size, else its maximum, else its
// minimum (what a manager may grant at most).
func memoryMiB(s *wsrf.Snapshot) int64 {
	hw := s.Property(PropHardware)
	if hw == nil {
		return 0
	}
	for _, c := range hw.ChildElements() {
		if c.Tag != "RAM" || c.NamespaceURI() != vwsns.Hardware {
			continue
		}
		for _, name := range []string{"size", "maximum", "minimum"} {
			if v := c.SelectElement(name); v != nil {
				if n, err := strconv.ParseInt(strings.TrimSpace(v.Text()), 10, 64); err == nil {
					return n
				}
			}
		}
	}
	return 0
}

// DecisionAuditor appends authorization decisions to the audit log.
type DecisionAuditor interface {
	RecordDecision(ctx context.Context, operation, resource string, allowed bool, rule, detail string) error
}

// authorizeFor decides whether user, for whom a manager checks the workspace out, may
// manage it, and audits the decision.
func (r *Repository) authorizeFor(ctx context.Context, user identity.Identity, s *wsrf.Snapshot) error {
	res := policy.Resource{Service: vwsns.WorkspaceService, Action: "CheckOut", Key: s.Key, Name: text(s, PropName), Owner: text(s, PropOwner)}
	d, err := r.rules().Authorize(identity.With(ctx, user), policy.Manage, res)
	if r.decisions != nil {
		if rerr := r.decisions.RecordDecision(identity.With(ctx, user), "manage CheckOut", s.Key, d.Allowed, d.Rule, "for host "+identity.From(ctx).String()); rerr != nil && err == nil {
			return audit.Unrecorded(rerr, r.dir) // not checked out unaudited
		}
	}
	return err
}

// visible keeps the workspaces the caller in ctx may inspect: listing and querying
// the Repository show a user their own workspaces (and shared ones), not everyone's.
func (r *Repository) visible(ctx context.Context, all []Summary) []Summary {
	rules, caller := r.rules(), identity.From(ctx)
	out := all[:0:0]
	for _, s := range all {
		res := policy.Resource{Service: vwsns.WorkspaceService, Action: "list", Key: s.Key, Name: s.Name, Owner: s.Owner}
		if rules.Decide(caller, policy.Inspect, res).Allowed {
			out = append(out, s)
		}
	}
	return out
}

// ownerIdentity is the identity a workspace's owner property names; "<anonymous>"
// (a workspace made over plain HTTP) is the anonymous caller, whom quota rules name
// "anonymous".
func ownerIdentity(owner string, attributes []string) identity.Identity {
	if owner == identity.Anonymous.String() {
		owner = ""
	}
	return identity.Identity{DN: owner, Attributes: attributes}
}
