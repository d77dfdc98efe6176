// Package authz applies site policy to every request: it names the class of each
// operation, finds the workspace a request acts on and its owner, asks the policy,
// and appends the decision to the audit log. The container calls it before any
// handler runs, so an operation nobody mapped cannot slip through: it is admin-only.
package authz

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"strings"
	"sync"

	"github.com/vws-grid/vws/internal/audit"
	"github.com/vws-grid/vws/internal/container"
	"github.com/vws-grid/vws/internal/errdefs"
	"github.com/vws-grid/vws/internal/identity"
	"github.com/vws-grid/vws/internal/vwsns"
	"github.com/vws-grid/vws/policy"
)

// Policy is the current rules (reloaded on change by policy.Engine).
type Policy interface {
	Rules() *policy.Rules
}

// Auditor appends decisions to the tamper-evident log; an error is a decision it could
// not record.
type Auditor interface {
	RecordDecision(ctx context.Context, operation, resource string, allowed bool, rule, detail string) error
}

// Owners finds a workspace's owner, name and lock holder (the host it is checked
// out to, "" when none) by key.
type Owners interface {
	Owner(ctx context.Context, key string) (owner, name, holder string, err error)
}

// Authorizer decides and audits.
type Authorizer struct {
	Policy Policy
	Audit  Auditor
	// Owners is the Repository, where it runs in this process; nil elsewhere.
	Owners Owners
	// Subscriptions finds a subscription's subscriber (its owner) by key; nil where
	// no Repository runs.
	Subscriptions Owners
	// AuditStore is where the audit trail is kept (the data directory, or the
	// database), for the refusal of an operation it could not record
	// (audit.Unrecorded).
	AuditStore string
	// Log records the full error of a failure a plain HTTP answer names only by its
	// incident id; nil: slog.Default().
	Log *slog.Logger

	// readers caches MayStillRead's grants under the rules that made them, at most
	// maxRememberedReaders of them.
	readersMu    sync.Mutex
	readersRules *policy.Rules
	readers      map[string]bool
}

// maxRememberedReaders bounds Authorizer.readers: one entry per subscriber and
// workspace would otherwise grow for as long as the rules are not reloaded, as
// workspaces come and go. When full it is emptied, so grants are decided (and
// audited) afresh: a cost paid once per this many grants, and the hit path stays one
// map lookup.
const maxRememberedReaders = 4096

// FormerOwners knows the owner and name of recently destroyed workspaces.
type FormerOwners interface {
	FormerOwner(key string) (owner, name string, ok bool)
}

// MayStillRead says whether who may still read (inspect) workspace key, for the
// notifications a subscription of theirs is sent. Rules only change on a reload, so
// a grant is decided, and audited, once per subscriber and workspace under each
// version of the rules, not once per message. The end of a workspace that is gone is
// decided on its former owner (Owners as FormerOwners), when known: this process
// destroyed it lately; otherwise (it went while vws was down) it is announced.
func (a *Authorizer) MayStillRead(ctx context.Context, who identity.Identity, key string) error {
	if a.Owners == nil {
		return nil
	}
	owner, name, _, err := a.Owners.Owner(ctx, key)
	if errors.Is(err, errdefs.ErrResourceUnknown) {
		f, ok := a.Owners.(FormerOwners)
		if !ok {
			return nil
		}
		if owner, name, ok = f.FormerOwner(key); !ok {
			return nil
		}
		err = nil
	}
	if err != nil {
		return err
	}
	rules := a.Policy.Rules()
	memo := who.DN + "\x00" + strings.Join(who.Attributes, "\x00") + "\x00\x00" + key
	a.readersMu.Lock()
	if a.readersRules != rules {
		a.readersRules, a.readers = rules, map[string]bool{}
	}
	known := a.readers[memo]
	a.readersMu.Unlock()
	if known {
		return nil
	}
	res := policy.Resource{Service: vwsns.WorkspaceService, Action: "Notify", Key: key, Name: name, Owner: owner}
	if err := a.Check(identity.With(ctx, who), policy.Inspect, res); err != nil {
		return err
	}
	a.readersMu.Lock()
	if a.readersRules == rules {
		if len(a.readers) >= maxRememberedReaders {
			clear(a.readers)
		}
		a.readers[memo] = true
	}
	a.readersMu.Unlock()
	return nil
}

// classes maps service → operation → class. Operations missing here are admin-only.
var classes = map[string]map[string]policy.Operation{
	vwsns.FactoryService: {
		"Create": policy.Create,
	},
	vwsns.WorkspaceService: {
		"Destroy": policy.Manage, "SetTerminationTime": policy.Manage, "SetResourceProperties": policy.Manage,
		"Subscribe": policy.Inspect, "Clone": policy.Create,
		"CheckOut": policy.Host, "CheckIn": policy.Host, "ReportState": policy.Host, "Disown": policy.Host, "Place": policy.Manage,
	},
	vwsns.RepositoryService: {
		"ListImages": policy.Inspect, "ListWorkspaces": policy.Inspect, "RegisterWorkspace": policy.Host,
		"AnnounceHost": policy.Host,
	},
	vwsns.SubscriptionManagerService: {
		"Destroy": policy.Manage, "SetTerminationTime": policy.Manage, "Renew": policy.Manage, "Unsubscribe": policy.Manage,
		"PauseSubscription": policy.Manage, "ResumeSubscription": policy.Manage,
	},
	vwsns.ManagerService: {
		"Deploy": policy.Manage, "Start": policy.Manage, "Pause": policy.Manage, "Unpause": policy.Manage,
		"Shutdown": policy.Manage, "Undeploy": policy.Manage, "Console": policy.Inspect,
	},
}

// decidedByManager are the Manager's operations on a workspace deployed on its host:
// the Manager decides them in full (class and owner, from the signed manifest) and
// audits that, so the container does not record the class half of it again.
var decidedByManager = map[string]bool{
	"Start": true, "Pause": true, "Unpause": true, "Shutdown": true, "Undeploy": true, "Console": true,
}

// readOnly are the WS-ResourceProperties reads every service answers.
var readOnly = map[string]bool{
	"GetResourceProperty": true, "GetMultipleResourceProperties": true, "QueryResourceProperties": true,
	"GetResourcePropertyDocument": true,
}

// Class is the policy class of service's operation.
func Class(service, operation string) policy.Operation {
	if readOnly[operation] {
		return policy.Inspect
	}
	if c, ok := classes[service][operation]; ok {
		return c
	}
	return policy.Admin
}

// Authorize is the container's hook: the class check for every request, and the
// owner check for a request addressed to a workspace. A Clone needs create rights and
// the right to read its source.
func (a *Authorizer) Authorize(ctx context.Context, req *container.Request) error {
	svc, op := req.Service.Name, req.Operation.Name
	if svc == vwsns.ManagerService && decidedByManager[op] {
		return nil
	}
	res := policy.Resource{Service: svc, Action: op}
	class := Class(svc, op)
	key, keyed := req.ResourceKey()
	if keyed && class == policy.Host {
		// A host's rights do not depend on the owner, so nothing is looked up; the key
		// still goes into the decision, so the trail says which workspace it acted on.
		res.Key = key
	}
	if keyed && svc == vwsns.SubscriptionManagerService && a.Subscriptions != nil {
		// A subscription is its subscriber's, as a workspace is its owner's.
		owner, name, _, err := a.Subscriptions.Owner(ctx, key)
		if errors.Is(err, errdefs.ErrResourceUnknown) {
			return a.Check(ctx, class, res)
		}
		if err != nil {
			return err
		}
		res.Key, res.Name, res.Owner = key, name, owner
		return a.Check(ctx, class, res)
	}
	if keyed && svc == vwsns.WorkspaceService && class != policy.Host && a.Owners != nil {
		owner, name, holder, err := a.Owners.Owner(ctx, key)
		if errors.Is(err, errdefs.ErrResourceUnknown) {
			// Unknown keys get the same fault for everyone; the handler gives it.
			return a.Check(ctx, class, res)
		}
		if err != nil {
			return err
		}
		res.Key, res.Name, res.Owner = key, name, owner
		// The host a workspace is checked out to reads its properties (where the
		// Repository has it) as a host, not as its owner.
		if class == policy.Inspect && holder != "" && holder == identity.From(ctx).DN {
			return a.Check(ctx, policy.Host, policy.Resource{Service: svc, Action: op, Key: key, Name: name})
		}
		if class == policy.Create {
			if err := a.Check(ctx, policy.Inspect, res); err != nil {
				return err
			}
			return a.Check(ctx, policy.Create, policy.Resource{Service: svc, Action: op})
		}
	}
	if class == policy.Inspect && res.Owner == "" {
		// Service-level reads (the image list, the host's properties) serve the
		// site's hosts too: the Factory lists images as itself when it creates. A
		// caller who may inspect is audited as inspecting, not as a host (under a
		// rule such as "allow * *", every caller may be both).
		rs, who := a.Policy.Rules(), identity.From(ctx)
		if !rs.Decide(who, policy.Inspect, res).Allowed {
			if d := rs.Decide(who, policy.Host, res); d.Allowed {
				if err := a.Audit.RecordDecision(ctx, string(policy.Host)+" "+res.Action, res.Service, true, d.Rule, ""); err != nil {
					return audit.Unrecorded(err, a.AuditStore)
				}
				return nil
			}
		}
	}
	return a.Check(ctx, class, res)
}

// Check decides op on res for the caller in ctx and audits the decision.
func (a *Authorizer) Check(ctx context.Context, op policy.Operation, res policy.Resource) error {
	what := res.Key
	if what == "" {
		what = res.Service
	}
	if err := a.limited(ctx, op, res, what); err != nil {
		return err
	}
	d, err := a.Policy.Rules().Authorize(ctx, op, res)
	if rerr := a.Audit.RecordDecision(ctx, string(op)+" "+res.Action, what, d.Allowed, d.Rule, ""); rerr != nil && err == nil {
		return audit.Unrecorded(rerr, a.AuditStore)
	}
	return err
}

// limited refuses a limited proxy what changes things. Globus semantics: a limited
// proxy may read and move data but not start anything; creating, deploying and
// running workspaces, and administering the site, is starting something. A refusal
// is audited against what, as every other decision on the same request is.
func (a *Authorizer) limited(ctx context.Context, op policy.Operation, res policy.Resource, what string) error {
	caller := identity.From(ctx)
	// Not even a host's: registering, checking out, reporting and disowning
	// workspaces all change them.
	if !caller.Limited || op == policy.Inspect {
		return nil
	}
	_ = a.Audit.RecordDecision(ctx, string(op)+" "+res.Action, what, false, "limited proxy", "") // refused either way
	return errdefs.WithAdvice(fmt.Errorf("%w: %s presented a limited proxy, which may not %s", errdefs.ErrAuthorization, caller, op),
		"make a full proxy (vws pki proxy without --limited, or grid-proxy-init without -limited)")
}

// CheckAs decides op on res for caller (a manager acting for the user it names).
func (a *Authorizer) CheckAs(ctx context.Context, caller identity.Identity, op policy.Operation, res policy.Resource) error {
	return a.Check(identity.With(ctx, caller), op, res)
}

// HTTP guards a plain HTTP endpoint (image pool, workspace files): classesOf gives
// the classes that admit a request (by method; any one suffices), and a denial is
// answered 403 with the reason.
func (a *Authorizer) HTTP(service string, classesOf func(*http.Request) []policy.Operation, h http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		ctx := identity.With(r.Context(), identity.FromRequest(r))
		res := policy.Resource{Service: service, Action: r.Method}
		detail := requestQuery(r)
		var err error
		for _, op := range classesOf(r) {
			if err = a.limited(ctx, op, res, r.URL.Path); err != nil {
				continue
			}
			d, derr := a.Policy.Rules().Authorize(ctx, op, res)
			if err = derr; d.Allowed {
				if rerr := a.Audit.RecordDecision(ctx, string(op)+" "+r.Method, r.URL.Path, true, d.Rule, detail); rerr != nil {
					http.Error(w, a.unrecordedAnswer(r, rerr), http.StatusServiceUnavailable)
					return
				}
				break
			}
			_ = a.Audit.RecordDecision(ctx, string(op)+" "+r.Method, r.URL.Path, false, d.Rule, detail) // refused either way
		}
		if err != nil {
			msg := err.Error()
			if adv := errdefs.Advice(err); adv != "" {
				msg += "; " + adv
			}
			http.Error(w, fmt.Sprintf("forbidden: %s", msg), http.StatusForbidden)
			return
		}
		h.ServeHTTP(w, r.WithContext(ctx))
	})
}

// maxAuditedQuery bounds the query an HTTP decision's record carries: a caller
// chooses it, refused callers included, and a line of the trail should stay a line.
const maxAuditedQuery = 512

// requestQuery is what a request names beyond its path, for its decision's record:
// an image import is PUT /images?name=N&os=…, and the path alone does not say which
// image was imported.
func requestQuery(r *http.Request) string {
	q := r.URL.RawQuery
	if q == "" {
		return ""
	}
	if len(q) > maxAuditedQuery {
		q = q[:maxAuditedQuery] + "…"
	}
	return "query " + q
}

// MayInspect reports, without auditing, whether the caller in ctx may see res: for
// listings, which show each caller what is theirs (or shared with them).
func (a *Authorizer) MayInspect(ctx context.Context, res policy.Resource) bool {
	return a.Policy.Rules().Decide(identity.From(ctx), policy.Inspect, res).Allowed
}

// unrecordedAnswer is the body of the 503 for a decision the audit trail could not
// record (err): a full storage is told as such, for the administrator to free it;
// any other cause is the database's words, which stay in the log under an incident
// id the answer names, as a SOAP fault's would.
func (a *Authorizer) unrecordedAnswer(r *http.Request, err error) string {
	refusal := audit.Unrecorded(err, a.AuditStore)
	if errors.Is(refusal, errdefs.ErrStorageFull) {
		return refusal.Error() + "; " + errdefs.Advice(refusal)
	}
	incident := container.NewIncident()
	log := a.Log
	if log == nil {
		log = slog.Default()
	}
	log.Error("audit trail could not record an HTTP request's decision; refused", "incident", incident, "method", r.Method, "path", r.URL.Path, "err", err)
	return fmt.Sprintf("the service failed internally (incident %s): the audit trail could not record this decision, so nothing was done; %s; if it persists, give the site administrator the incident id %s",
		incident, errdefs.Advice(refusal), incident)
}
