package authz

import (
	"bytes"
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"regexp"
	"strings"
	"testing"

	"github.com/beevik/etree"

	"github.com/vws-grid/vws/internal/container"
	"github.com/vws-grid/vws/internal/contract"
	"github.com/vws-grid/vws/internal/errdefs"
	"github.com/vws-grid/vws/internal/identity"
	"github.com/vws-grid/vws/internal/pki"
	"github.com/vws-grid/vws/internal/soap"
	"github.com/vws-grid/vws/internal/vwsns"
	"github.com/vws-grid/vws/internal/wsa"
	"github.com/vws-grid/vws/policy"
)

type rules struct{ rs *policy.Rules }

func (r rules) Rules() *policy.Rules { return r.rs }

type decisions struct {
	got     []string
	details []string // each record's detail, in the same order
	fail    error    // what every record fails with (nil: recorded)
}

func (d *decisions) RecordDecision(ctx context.Context, op, res string, allowed bool, rule, detail string) error {
	if d.fail != nil {
		return d.fail
	}
	verdict := "denied"
	if allowed {
		verdict = "allowed"
	}
	d.got = append(d.got, identity.From(ctx).DN+" "+op+" "+res+" "+verdict)
	d.details = append(d.details, detail)
	return nil
}

type owners map[string][3]string // key → owner, name, holder

func (o owners) Owner(_ context.Context, key string) (string, string, string, error) {
	w, ok := o[key]
	if !ok {
		return "", "", "", errdefs.ErrResourceUnknown
	}
	return w[0], w[1], w[2], nil
}

// request addresses op of service to workspace key (none when key is "").
func request(service, op, key string) *container.Request {
	svc := &container.Service{Name: service, Key: wsa.QName{Space: vwsns.Workspace, Local: "WorkspaceKey"}}
	env := &soap.Envelope{}
	if key != "" {
		h := etree.NewElement("vw:WorkspaceKey")
		h.CreateAttr("xmlns:vw", vwsns.Workspace)
		h.SetText(key)
		env.Headers = []*etree.Element{h}
	}
	return &container.Request{Service: svc, Operation: &contract.Operation{Name: op}, Envelope: env}
}

const (
	alice = "/O=Grid/OU=vws/CN=alice"
	bob   = "/O=Grid/OU=vws/CN=bob"
	host  = "/O=Grid/OU=vws/CN=host/node1"
	admin = "/O=Grid/OU=vws/CN=admin"
)

func TestAuthorize(t *testing.T) {
	rs, err := policy.Parse(strings.NewReader(`allow host /O=Grid/OU=vws/CN=host/*
allow admin `+admin+`
deny admin *
allow * *
`), "rules")
	if err != nil {
		t.Fatal(err)
	}
	log := &decisions{}
	a := &Authorizer{Policy: rules{rs}, Audit: log, Owners: owners{"w1": {alice, "one", host}, "w2": {alice, "two", ""}}}
	for _, tc := range []struct {
		who, service, op, key string
		ok                    bool
	}{
		{alice, vwsns.WorkspaceService, "GetResourceProperty", "w1", true},
		{alice, vwsns.WorkspaceService, "Destroy", "w1", true},
		{bob, vwsns.WorkspaceService, "GetResourceProperty", "w1", false},
		{bob, vwsns.WorkspaceService, "Destroy", "w1", false},
		{bob, vwsns.WorkspaceService, "Clone", "w1", false},
		{admin, vwsns.WorkspaceService, "Destroy", "w1", true},
		// The host holding w1 reads it (where is it?); it does not hold w2.
		{host, vwsns.WorkspaceService, "GetMultipleResourceProperties", "w1", true},
		{host, vwsns.WorkspaceService, "GetMultipleResourceProperties", "w2", false},
		{host, vwsns.WorkspaceService, "Destroy", "w1", false},
		{host, vwsns.WorkspaceService, "CheckOut", "w2", true},
		// "allow * *" does not make bob a host: he may not register or check out.
		{bob, vwsns.WorkspaceService, "CheckOut", "w2", false},
		{bob, vwsns.RepositoryService, "RegisterWorkspace", "", false},
		{alice, vwsns.FactoryService, "Create", "", true},
		// An operation nobody mapped is admin-only.
		{alice, vwsns.RepositoryService, "SomethingNew", "", false},
		{admin, vwsns.RepositoryService, "SomethingNew", "", true},
		// A host reads service-level properties without an inspect rule of its own.
		{host, vwsns.RepositoryService, "ListImages", "", true},
		// An unknown key: the class decides, the handler answers ResourceUnknown.
		{bob, vwsns.WorkspaceService, "GetResourceProperty", "nope", true},
	} {
		ctx := identity.With(context.Background(), identity.Identity{DN: tc.who})
		err := a.Authorize(ctx, request(tc.service, tc.op, tc.key))
		if (err == nil) != tc.ok {
			t.Errorf("%s %s %s on %q: err = %v, want allowed=%v", tc.who, tc.service, tc.op, tc.key, err, tc.ok)
		}
		if err != nil && !errors.Is(err, errdefs.ErrAuthorization) {
			t.Errorf("%s %s: %v is not an authorization error", tc.who, tc.op, err)
		}
	}
	if len(log.got) < 16 {
		t.Fatalf("not every decision was audited: %q", log.got)
	}
}

// A site whose rules give hosts nothing but host: the Factory still lists the images
// it creates from, and a host still reads nothing of a workspace it does not hold.
func TestHostReadsServiceLevel(t *testing.T) {
	rs, err := policy.Parse(strings.NewReader("allow host /O=Grid/OU=vws/CN=host/*\nallow * "+alice+"\n"), "rules")
	if err != nil {
		t.Fatal(err)
	}
	a := &Authorizer{Policy: rules{rs}, Audit: &decisions{}, Owners: owners{"w2": {alice, "two", ""}}}
	ctx := identity.With(context.Background(), identity.Identity{DN: host})
	if err := a.Authorize(ctx, request(vwsns.RepositoryService, "ListImages", "")); err != nil {
		t.Errorf("a host may not list images: %v", err)
	}
	if err := a.Authorize(ctx, request(vwsns.WorkspaceService, "GetResourceProperty", "w2")); err == nil {
		t.Error("a host reads a workspace it does not hold")
	}
	if err := a.Authorize(ctx, request(vwsns.FactoryService, "Create", "")); err == nil {
		t.Error("a host may create workspaces")
	}
}

// A limited proxy reads but does not create, deploy or manage (as in Globus, where it
// cannot start jobs).
func TestLimitedProxy(t *testing.T) {
	rs, err := policy.Parse(strings.NewReader("allow * *\n"), "rules")
	if err != nil {
		t.Fatal(err)
	}
	log := &decisions{}
	a := &Authorizer{Policy: rules{rs}, Audit: log, Owners: owners{"w1": {alice, "one", ""}}}
	ctx := identity.With(context.Background(), identity.Identity{DN: alice, Proxy: true, Limited: true})
	if err := a.Authorize(ctx, request(vwsns.WorkspaceService, "GetResourceProperty", "w1")); err != nil {
		t.Errorf("a limited proxy may not read its own workspace: %v", err)
	}
	for _, op := range []struct{ service, op, key string }{
		{vwsns.FactoryService, "Create", ""}, {vwsns.WorkspaceService, "Destroy", "w1"}, {vwsns.ManagerService, "Deploy", ""},
	} {
		err := a.Authorize(ctx, request(op.service, op.op, op.key))
		if !errors.Is(err, errdefs.ErrAuthorization) || !strings.Contains(err.Error(), "limited proxy") {
			t.Errorf("a limited proxy's %s: %v", op.op, err)
		}
	}
	// Each refusal names what was refused: the workspace, or else the service.
	want := []string{
		alice + " inspect GetResourceProperty w1 allowed",
		alice + " create Create " + vwsns.FactoryService + " denied",
		alice + " manage Destroy w1 denied",
		alice + " manage Deploy " + vwsns.ManagerService + " denied",
	}
	if strings.Join(log.got, "\n") != strings.Join(want, "\n") {
		t.Errorf("audited\n%s\nwant\n%s", strings.Join(log.got, "\n"), strings.Join(want, "\n"))
	}
}

// A limited proxy refused on a plain HTTP endpoint (an image import, a workspace
// upload) is audited against the request's path, as the endpoint's other decisions are.
func TestLimitedProxyOverHTTPNamesThePath(t *testing.T) {
	ca, err := pki.NewCA(pki.CAOptions{KeyType: pki.KeyTypeECDSA})
	if err != nil {
		t.Fatal(err)
	}
	user, err := ca.IssueUser(pki.UserOptions{CN: "alice", KeyType: pki.KeyTypeECDSA})
	if err != nil {
		t.Fatal(err)
	}
	proxy, err := pki.IssueProxy(user, pki.ProxyOptions{Limited: true})
	if err != nil {
		t.Fatal(err)
	}
	log := &decisions{}
	a := &Authorizer{Policy: rules{policy.AllowAll}, Audit: log}
	served := false
	h := a.HTTP("images", func(*http.Request) []policy.Operation { return []policy.Operation{policy.Admin} },
		http.HandlerFunc(func(http.ResponseWriter, *http.Request) { served = true }))
	req := httptest.NewRequest(http.MethodPost, "/images", nil)
	req.TLS = &tls.ConnectionState{PeerCertificates: proxy.FullChain()}
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, req)
	if served || rec.Code != http.StatusForbidden || !strings.Contains(rec.Body.String(), "limited proxy") {
		t.Fatalf("a limited proxy's import: %d %s", rec.Code, rec.Body)
	}
	if want := alice + " admin POST /images denied"; len(log.got) != 1 || log.got[0] != want {
		t.Errorf("audited %q, want %q", log.got, want)
	}
}

// The Manager's operations on a deployed workspace are decided (and audited) by the
// Manager against the owner in the manifest, once: the container does not record a
// class-only half of the same decision.
func TestManagerDecidesItsOwn(t *testing.T) {
	rs, err := policy.Parse(strings.NewReader("allow * *\n"), "rules")
	if err != nil {
		t.Fatal(err)
	}
	log := &decisions{}
	a := &Authorizer{Policy: rules{rs}, Audit: log}
	ctx := identity.With(context.Background(), identity.Identity{DN: bob})
	for _, op := range []string{"Start", "Pause", "Unpause", "Shutdown", "Undeploy", "Console"} {
		if err := a.Authorize(ctx, request(vwsns.ManagerService, op, "")); err != nil || len(log.got) != 0 {
			t.Fatalf("%s: %v, audited %q", op, err, log.got)
		}
	}
	if err := a.Authorize(ctx, request(vwsns.ManagerService, "Deploy", "")); err != nil || len(log.got) != 1 {
		t.Fatalf("Deploy is decided here first: %v, audited %q", err, log.got)
	}
}

// TestServiceReadsAuditedAsInspect: a user listing workspaces is audited as
// inspecting, also under the built-in allow-all (where every caller may act as a
// host too); a host with no inspect rule is audited as a host.
func TestServiceReadsAuditedAsInspect(t *testing.T) {
	hostsOnly, err := policy.Parse(strings.NewReader("allow host /O=Grid/OU=vws/CN=host/*\nallow * "+alice+"\n"), "rules")
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		rs        *policy.Rules
		who, want string
	}{
		{policy.AllowAll, alice, "inspect"},
		{hostsOnly, alice, "inspect"},
		{hostsOnly, host, "host"},
	} {
		log := &decisions{}
		a := &Authorizer{Policy: rules{c.rs}, Audit: log, Owners: owners{}}
		ctx := identity.With(context.Background(), identity.Identity{DN: c.who})
		if err := a.Authorize(ctx, request(vwsns.RepositoryService, "ListWorkspaces", "")); err != nil {
			t.Fatalf("%s lists workspaces: %v", c.who, err)
		}
		if want := c.who + " " + c.want + " ListWorkspaces " + vwsns.RepositoryService + " allowed"; len(log.got) != 1 || log.got[0] != want {
			t.Errorf("audited %q, want %q", log.got, want)
		}
	}
}

// A host's decisions name the workspace it acts on, not only the service: the trail
// must say which workspace a host checked out, reported on or checked in.
func TestHostDecisionsNameTheWorkspace(t *testing.T) {
	rs, err := policy.Parse(strings.NewReader("allow host /O=Grid/OU=vws/CN=host/*\nallow * *\n"), "rules")
	if err != nil {
		t.Fatal(err)
	}
	log := &decisions{}
	a := &Authorizer{Policy: rules{rs}, Audit: log, Owners: owners{"w1": {alice, "one", host}}}
	var want []string
	for _, c := range []struct {
		who, op string
		ok      bool
	}{
		{host, "CheckOut", true}, {host, "ReportState", true}, {host, "CheckIn", true}, {bob, "ReportState", false},
	} {
		ctx := identity.With(context.Background(), identity.Identity{DN: c.who})
		if err := a.Authorize(ctx, request(vwsns.WorkspaceService, c.op, "w1")); (err == nil) != c.ok {
			t.Fatalf("%s %s: %v", c.who, c.op, err)
		}
		verdict := "allowed"
		if !c.ok {
			verdict = "denied"
		}
		want = append(want, c.who+" host "+c.op+" w1 "+verdict)
	}
	if strings.Join(log.got, "\n") != strings.Join(want, "\n") {
		t.Errorf("audited\n%s\nwant\n%s", strings.Join(log.got, "\n"), strings.Join(want, "\n"))
	}
}

// A subscription is its subscriber's: others may neither read nor end it, and
// Subscribe itself needs the right to read the workspace.
func TestSubscriptionsAreTheirSubscribers(t *testing.T) {
	rs, err := policy.Parse(strings.NewReader("allow admin "+admin+"\ndeny admin *\nallow * *\n"), "rules")
	if err != nil {
		t.Fatal(err)
	}
	log := &decisions{}
	a := &Authorizer{Policy: rules{rs}, Audit: log, Owners: owners{"w1": {alice, "one", ""}},
		Subscriptions: owners{"s1": {alice, "subscription to w1", ""}}}
	sub := func(op, key string) *container.Request {
		svc := &container.Service{Name: vwsns.SubscriptionManagerService, Key: vwsns.SubscriptionKey}
		h := etree.NewElement("vwn:SubscriptionKey")
		h.CreateAttr("xmlns:vwn", vwsns.Notification)
		h.SetText(key)
		return &container.Request{Service: svc, Operation: &contract.Operation{Name: op}, Envelope: &soap.Envelope{Headers: []*etree.Element{h}}}
	}
	for _, tc := range []struct {
		who string
		req *container.Request
		ok  bool
	}{
		{alice, request(vwsns.WorkspaceService, "Subscribe", "w1"), true},
		{bob, request(vwsns.WorkspaceService, "Subscribe", "w1"), false},
		{alice, sub("GetResourceProperty", "s1"), true},
		{alice, sub("Unsubscribe", "s1"), true},
		{alice, sub("PauseSubscription", "s1"), true},
		{bob, sub("GetResourceProperty", "s1"), false},
		{bob, sub("Destroy", "s1"), false},
		{bob, sub("Renew", "s1"), false},
		{bob, sub("ResumeSubscription", "s1"), false},
		{admin, sub("Destroy", "s1"), true},
		{bob, sub("Destroy", "nope"), true}, // unknown: the handler's ResourceUnknownFault, as for workspaces
	} {
		ctx := identity.With(context.Background(), identity.Identity{DN: tc.who})
		err := a.Authorize(ctx, tc.req)
		if (err == nil) != tc.ok {
			t.Errorf("%s %s %s: err = %v, want allowed=%v", tc.who, tc.req.Service.Name, tc.req.Operation.Name, err, tc.ok)
		}
	}
	if !strings.Contains(strings.Join(log.got, "\n"), bob+" manage Destroy") {
		t.Errorf("bob's refused Destroy of alice's subscription is not in the trail:\n%s", strings.Join(log.got, "\n"))
	}
}

// An operation whose decision the audit trail cannot take (its disk is full) does not
// go ahead unaudited: allowed ones are refused, saying why; denied ones stay denied.
func TestUnauditedOperationsAreRefused(t *testing.T) {
	rs, err := policy.Parse(strings.NewReader("deny admin *\nallow * *\n"), "rules")
	if err != nil {
		t.Fatal(err)
	}
	a := &Authorizer{Policy: rules{rs}, Audit: &decisions{fail: errors.New("database or disk is full")}, Owners: owners{"w1": {alice, "one", ""}},
		AuditStore: "/srv/vws"}
	ctx := identity.With(context.Background(), identity.Identity{DN: alice})
	err = a.Authorize(ctx, request(vwsns.WorkspaceService, "Destroy", "w1"))
	if err == nil || !strings.Contains(err.Error(), "storage is full (/srv/vws): the audit trail cannot record this decision, so nothing was done") ||
		!strings.Contains(errdefs.Advice(err), "free space there") {
		t.Fatalf("an allowed Destroy the trail could not record: %v (advice %q)", err, errdefs.Advice(err))
	}
	if errors.Is(err, errdefs.ErrAuthorization) {
		t.Errorf("the refusal reads as the caller's lack of rights: %v", err)
	}
	bob := identity.With(context.Background(), identity.Identity{DN: "/O=Grid/OU=vws/CN=bob"})
	if err := a.Authorize(bob, request(vwsns.WorkspaceService, "Destroy", "w1")); !errors.Is(err, errdefs.ErrAuthorization) {
		t.Errorf("a denied Destroy: %v, want the authorization refusal", err)
	}
	// Plain HTTP endpoints (the image pool): 503, not served.
	served := false
	h := a.HTTP("images", func(*http.Request) []policy.Operation { return []policy.Operation{policy.Inspect} },
		http.HandlerFunc(func(http.ResponseWriter, *http.Request) { served = true }))
	rec := httptest.NewRecorder()
	a.Policy = rules{policy.AllowAll}
	h.ServeHTTP(rec, httptest.NewRequest(http.MethodGet, "/images", nil))
	if served || rec.Code != http.StatusServiceUnavailable || !strings.Contains(rec.Body.String(), "audit trail cannot record") {
		t.Errorf("GET /images with the trail unwritable: served %v, HTTP %d %q", served, rec.Code, rec.Body.String())
	}
}

// A subscriber's read right is decided (and audited) once per workspace under each
// version of the rules; a reload that withdraws it refuses the next message; a
// workspace that is gone is no refusal. The VO attributes count as at Subscribe.
func TestMayStillRead(t *testing.T) {
	parse := func(text string) *policy.Rules {
		rs, err := policy.Parse(strings.NewReader(text), "rules")
		if err != nil {
			t.Fatal(err)
		}
		return rs
	}
	log := &decisions{}
	a := &Authorizer{Policy: rules{parse("allow inspect *\nshare inspect key:w1 vo:/atlas/*\n")}, Audit: log,
		Owners: owners{"w1": {alice, "one", ""}}}
	ctx := context.Background()
	reader := identity.Identity{DN: bob, Attributes: []string{"/atlas/Role=reader"}}
	for range 3 {
		if err := a.MayStillRead(ctx, reader, "w1"); err != nil {
			t.Fatalf("bob with the shared VO attribute: %v", err)
		}
	}
	if len(log.got) != 1 || log.got[0] != bob+" inspect Notify w1 allowed" {
		t.Errorf("decisions recorded: %q, want one", log.got)
	}
	if err := a.MayStillRead(ctx, identity.Identity{DN: bob}, "w1"); !errors.Is(err, errdefs.ErrAuthorization) {
		t.Errorf("bob without the attribute: %v", err)
	}

	a.Policy = rules{parse("allow inspect *\n")} // the share is withdrawn (a reload)
	if err := a.MayStillRead(ctx, reader, "w1"); !errors.Is(err, errdefs.ErrAuthorization) {
		t.Errorf("after the share was withdrawn: %v", err)
	}
	if err := a.MayStillRead(ctx, identity.Identity{DN: alice}, "w1"); err != nil {
		t.Errorf("the owner: %v", err)
	}
	if err := a.MayStillRead(ctx, reader, "gone"); err != nil {
		t.Errorf("a workspace gone while vws was down: %v", err)
	}
	// Destroyed lately: its end goes only to those who may read it.
	a.Owners = formerOwners{owners{}, map[string][2]string{"w1": {alice, "one"}}}
	if err := a.MayStillRead(ctx, reader, "w1"); !errors.Is(err, errdefs.ErrAuthorization) {
		t.Errorf("the end of a workspace destroyed after the share was withdrawn: %v", err)
	}
	if err := a.MayStillRead(ctx, identity.Identity{DN: alice}, "w1"); err != nil {
		t.Errorf("the end of her workspace, to its owner: %v", err)
	}
}

type formerOwners struct {
	owners
	former map[string][2]string
}

func (f formerOwners) FormerOwner(key string) (string, string, bool) {
	w, ok := f.former[key]
	return w[0], w[1], ok
}

// The remembered read grants are bounded: a long-running server sees workspaces come
// and go (and subscribers with ever new VO attributes) without a policy reload, and
// each pair must not be kept forever. Past the bound, grants are decided afresh.
func TestMayStillReadMemoIsBounded(t *testing.T) {
	rs, err := policy.Parse(strings.NewReader("allow inspect *\n"), "rules")
	if err != nil {
		t.Fatal(err)
	}
	own := owners{}
	a := &Authorizer{Policy: rules{rs}, Audit: &decisions{}, Owners: own}
	ctx := context.Background()
	for i := range 3 * maxRememberedReaders {
		key := fmt.Sprintf("w%d", i)
		own[key] = [3]string{alice, key, ""}
		if err := a.MayStillRead(ctx, identity.Identity{DN: alice}, key); err != nil {
			t.Fatal(err)
		}
		if n := len(a.readers); n > maxRememberedReaders {
			t.Fatalf("after %d workspaces, %d grants remembered: more than the bound %d", i+1, n, maxRememberedReaders)
		}
	}
	// The hit path still works: a grant just made is not decided again.
	log := &decisions{}
	a.Audit = log
	last := fmt.Sprintf("w%d", 3*maxRememberedReaders-1)
	if err := a.MayStillRead(ctx, identity.Identity{DN: alice}, last); err != nil || len(log.got) != 0 {
		t.Errorf("the latest grant again: %v, decisions %q, want none", err, log.got)
	}
}

// An image import is PUT /images?name=N&os=…: its decision, recorded before the import
// runs, names the image, which the path alone does not; so does a refusal.
func TestHTTPDecisionNamesTheImage(t *testing.T) {
	none, err := policy.Parse(strings.NewReader(""), "rules")
	if err != nil {
		t.Fatal(err)
	}
	for _, rs := range []*policy.Rules{policy.AllowAll, none} {
		log := &decisions{}
		a := &Authorizer{Policy: rules{rs}, Audit: log}
		recordedFirst := true
		h := a.HTTP("images", func(*http.Request) []policy.Operation { return []policy.Operation{policy.Admin} },
			http.HandlerFunc(func(http.ResponseWriter, *http.Request) { recordedFirst = len(log.got) == 1 }))
		h.ServeHTTP(httptest.NewRecorder(), httptest.NewRequest(http.MethodPut, "/images?name=debian-12&os=linux/debian/12", nil))
		if !recordedFirst {
			t.Error("the import ran before its decision was recorded")
		}
		if len(log.got) != 1 || !strings.Contains(log.details[0], "name=debian-12") {
			t.Errorf("records %q with details %q: they do not say which image", log.got, log.details)
		}
	}
}

// TestUnrecordedHTTPAnswerIsAnIncident: a plain HTTP request whose decision the audit
// trail could not record for another reason than a full storage is refused naming an
// incident id, not the database's words (paths, SQL), which the log keeps under it.
func TestUnrecordedHTTPAnswerIsAnIncident(t *testing.T) {
	var logged bytes.Buffer
	a := &Authorizer{Policy: rules{policy.AllowAll}, AuditStore: "/srv/vws",
		Audit: &decisions{fail: errors.New("insert audit record: open /srv/vws/vws.db-wal: SQL logic error: INSERT INTO audit")},
		Log:   slog.New(slog.NewTextHandler(&logged, nil))}
	h := a.HTTP("images", func(*http.Request) []policy.Operation { return []policy.Operation{policy.Inspect} },
		http.HandlerFunc(func(http.ResponseWriter, *http.Request) { t.Error("served without an audit record") }))
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, httptest.NewRequest(http.MethodGet, "/images", nil))
	body := rec.Body.String()
	if rec.Code != http.StatusServiceUnavailable {
		t.Fatalf("HTTP %d %q, want 503", rec.Code, body)
	}
	for _, leak := range []string{"/srv/vws", "SQL", "INSERT"} {
		if strings.Contains(body, leak) {
			t.Errorf("the answer tells the caller %q: %q", leak, body)
		}
	}
	m := regexp.MustCompile(`incident ([0-9a-f]{12})`).FindStringSubmatch(body)
	if m == nil || !strings.Contains(body, "nothing was done") {
		t.Fatalf("the answer %q names no incident, or does not say nothing was done", body)
	}
	if !strings.Contains(logged.String(), "incident="+m[1]) || !strings.Contains(logged.String(), "SQL logic error") {
		t.Errorf("the log does not hold the full error under incident %s:\n%s", m[1], logged.String())
	}
}
