package container

import (
	"errors"
	"fmt"
	"go/ast"
	"go/parser"
	"go/token"
	"io/fs"
	"path"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/beevik/etree"

	"github.com/vws-grid/vws/internal/contract"
	"github.com/vws-grid/vws/internal/dialect"
	"github.com/vws-grid/vws/internal/errdefs"
	"github.com/vws-grid/vws/internal/soap"
	"github.com/vws-grid/vws/wsdl"
)

// TestSentinelOfRoundTrips: every fault type vws sends, passed on by another vws
// service, is classified as the same fault type again; ServiceFault, shared by several
// errors, stands for none.
func TestSentinelOfRoundTrips(t *testing.T) {
	for _, k := range faultKinds {
		got := SentinelOf(k.name)
		if k.name == fallbackKind.name {
			if got != nil {
				t.Errorf("SentinelOf(%s) = %v, want nil", k.name, got)
			}
			continue
		}
		if got == nil || classify(got).name != k.name {
			t.Errorf("SentinelOf(%s) = %v, classified as %s", k.name, got, classify(got).name)
		}
	}
	if !errors.Is(SentinelOf("WorkspaceQuotaExceededFault"), errdefs.ErrQuotaExceeded) {
		t.Errorf("a quota fault stands for %v", SentinelOf("WorkspaceQuotaExceededFault"))
	}
	if got := SentinelOf("NoSuchFault"); got != nil {
		t.Errorf("an unknown fault type stands for %v", got)
	}
}

// received is fault as another service's client sees it after the wire: its type and
// its description (client.FaultError's Type and Description).
func received(t *testing.T, f *soap.Fault) (*soap.Fault, string, string) {
	t.Helper()
	doc := etree.NewDocument()
	doc.SetRoot(f.Element())
	doc.Root().CreateAttr("xmlns:soapenv", soap.NS11)
	text, err := doc.WriteToString()
	if err != nil {
		t.Fatal(err)
	}
	back := etree.NewDocument()
	if err := back.ReadFromString(text); err != nil {
		t.Fatal(err)
	}
	g := soap.ParseFault(back.Root())
	d := g.Detail[0]
	return g, d.Tag, d.SelectElement("Description").Text()
}

func typedChildren(f *soap.Fault) []string {
	var out []string
	for _, c := range f.Detail[0].ChildElements() {
		if c.NamespaceURI() == FaultNS {
			out = append(out, c.Tag+"="+c.Text())
		}
	}
	return out
}

// TestPassOnKeepsTheFaultAsItWas: a fault another vws service answered, passed on,
// reaches the caller as the same fault type with the same description, its message
// and advice each once (not the sentinel twice, nor the fault type's advice after the
// other service's), and with the typed detail its type requires.
func TestPassOnKeepsTheFaultAsItWas(t *testing.T) {
	for _, err := range []error{
		errdefs.WithAdvice(fmt.Errorf("%w: quota workspaces=2 of dn:/CN=a (pol.conf:4): 2 held, this request needs 1 more", errdefs.ErrQuotaExceeded),
			"destroy, shut down or undeploy workspaces you no longer need, or ask the site administrator for a larger quota"),
		errdefs.WithAdvice(&errdefs.MetadataError{Path: "Name", Reason: `a workspace named "a" already exists`}, "choose another name"),
		fmt.Errorf("%w: image %q is not in the pool", errdefs.ErrResourceUnknown, "nope"), // default advice, itself with "; "
		fmt.Errorf("%w: overlay: no space left on device", errdefs.ErrCreation),
		fmt.Errorf("workspace k: %w", &errdefs.LockedError{Holder: "host-a"}),
		fmt.Errorf("%w: workspace k: %w", errdefs.ErrState, &errdefs.StateError{Current: "running", Requested: "running"}),
	} {
		orig, _ := buildFault(faultInput{err: err, dialect: dialect.WSRF12, now: time.Now()})
		fault, typ, desc := received(t, orig)
		sentinel := SentinelOf(typ)
		again, _ := buildFault(faultInput{err: PassOn(sentinel, desc, fault, ""), dialect: dialect.WSRF12, now: time.Now()})
		_, typ2, desc2 := received(t, again)
		if typ2 != typ || desc2 != desc {
			t.Errorf("%s %q passed on as %s %q", typ, desc, typ2, desc2)
		}
		if got, want := typedChildren(again), typedChildren(orig); !slices.Equal(got, want) {
			t.Errorf("%s: typed detail %v passed on as %v", typ, want, got)
		}

		// Said what was being done, the description keeps the sentinel first.
		withCtx, _ := buildFault(faultInput{err: PassOn(sentinel, desc, fault, "the repository refused to check the workspace out"), dialect: dialect.WSRF12, now: time.Now()})
		_, _, desc3 := received(t, withCtx)
		if want := sentinel.Error() + ": the repository refused to check the workspace out: " + strings.TrimPrefix(desc, sentinel.Error()+": "); desc3 != want {
			t.Errorf("with context: %q, want %q", desc3, want)
		}
	}
}

// TestAdviceNamesOnlyOperationsOfTheDialect: the default advice of every fault names
// only operations the dialect's WSDLs declare; GT 4.0's WS-RP draft has no
// GetResourcePropertyDocument, so its InvalidResourcePropertyQNameFault points to
// QueryResourceProperties instead.
func TestAdviceNamesOnlyOperationsOfTheDialect(t *testing.T) {
	files, err := fs.Glob(wsdl.FS, "*/*.wsdl")
	if err != nil || len(files) == 0 {
		t.Fatalf("no served WSDLs: %v", err)
	}
	declared := map[string]map[string]bool{} // dialect directory → operation names
	all := map[string]bool{}
	for _, f := range files {
		svc, err := contract.Load(contract.FS, "wsdl/"+f)
		if err != nil {
			t.Fatal(err)
		}
		dir := path.Base(path.Dir(f))
		if declared[dir] == nil {
			declared[dir] = map[string]bool{}
		}
		for _, op := range svc.Operations {
			declared[dir][op.Name] = true
			all[op.Name] = true
		}
	}
	for _, d := range dialect.Dialects {
		ops := declared[d.WSDLDir]
		if len(ops) == 0 {
			t.Fatalf("no operations declared in wsdl/%s", d.WSDLDir)
		}
		for _, k := range append(slices.Clone(faultKinds), fallbackKind) {
			err := k.sentinel
			if err == nil {
				err = errors.New("internal")
			}
			f, _ := buildFault(faultInput{err: err, dialect: d, now: time.Now()})
			for name := range all {
				if !ops[name] && regexp.MustCompile(`\b`+name+`\b`).MatchString(f.String) {
					t.Errorf("%s %s advises %s, which the dialect does not declare: %s", d.Name, k.name, name, f.String)
				}
			}
		}
	}
	for d, want := range map[*dialect.Dialect]string{dialect.WSRF12: "GetResourcePropertyDocument", dialect.GT4: "QueryResourceProperties with the XPath /*"} {
		f, _ := buildFault(faultInput{err: fmt.Errorf("%w: vw:nope", errdefs.ErrInvalidQName), dialect: d, now: time.Now()})
		if !strings.Contains(f.String, want) {
			t.Errorf("%s InvalidResourcePropertyQNameFault: %q, want advice naming %s", d.Name, f.String, want)
		}
	}
}

// TestEveryKindKeepsItsWords: every errdefs sentinel, and the container's own busy
// and timed-out refusals, names a fault kind, so an error of it keeps its words (they
// are written for the caller) in both dialects; only an error no kind names is told
// as an incident. A sentinel added to errdefs without an entry here fails the test.
func TestEveryKindKeepsItsWords(t *testing.T) {
	sentinels := map[string]error{
		"ErrBadRequest": errdefs.ErrBadRequest, "ErrResourceUnknown": errdefs.ErrResourceUnknown,
		"ErrInvalidQName": errdefs.ErrInvalidQName, "ErrInvalidQuery": errdefs.ErrInvalidQuery,
		"ErrUnknownQueryDialect": errdefs.ErrUnknownQueryDialect, "ErrInvalidModification": errdefs.ErrInvalidModification,
		"ErrUnableToModify": errdefs.ErrUnableToModify, "ErrUnableToSetTermTime": errdefs.ErrUnableToSetTermTime,
		"ErrTermTimeRejected": errdefs.ErrTermTimeRejected, "ErrActionNotSupported": errdefs.ErrActionNotSupported,
		"ErrMetadata": errdefs.ErrMetadata, "ErrAuthorization": errdefs.ErrAuthorization,
		"ErrQuotaExceeded": errdefs.ErrQuotaExceeded, "ErrState": errdefs.ErrState, "ErrLocked": errdefs.ErrLocked,
		"ErrSecurity": errdefs.ErrSecurity, "ErrSubscribe": errdefs.ErrSubscribe,
		"ErrTopicNotSupported": errdefs.ErrTopicNotSupported, "ErrInvalidTopic": errdefs.ErrInvalidTopic,
		"ErrTopicDialectUnknown": errdefs.ErrTopicDialectUnknown, "ErrInvalidFilter": errdefs.ErrInvalidFilter,
		"ErrUnacceptableInitialTermTime": errdefs.ErrUnacceptableInitialTermTime,
		"ErrUnacceptableTermTime":        errdefs.ErrUnacceptableTermTime, "ErrNotDestroyed": errdefs.ErrNotDestroyed,
		"ErrCreation": errdefs.ErrCreation, "ErrImageIntegrity": errdefs.ErrImageIntegrity,
		"ErrHypervisor": errdefs.ErrHypervisor, "ErrNotImplemented": errdefs.ErrNotImplemented,
		"ErrQueryTooCostly": errdefs.ErrQueryTooCostly, "ErrStorageFull": errdefs.ErrStorageFull,
		"ErrUnavailable": errdefs.ErrUnavailable, "ErrUnrecognizedPolicy": errdefs.ErrUnrecognizedPolicy,
		"ErrUnsupportedPolicy": errdefs.ErrUnsupportedPolicy,
	}
	file, err := parser.ParseFile(token.NewFileSet(), "../errdefs/errdefs.go", nil, 0)
	if err != nil {
		t.Fatal(err)
	}
	for name, obj := range file.Scope.Objects {
		if obj.Kind == ast.Var && strings.HasPrefix(name, "Err") {
			if _, ok := sentinels[name]; !ok {
				t.Errorf("errdefs.%s is not checked here: add it, and a fault kind for it", name)
			}
		}
	}
	const words = "workspace k: /srv/vws/data is 99% full"
	errs := map[string]error{
		"errBusy":    fmt.Errorf("%w (waited 5s for room to read a 9-byte request): %s", errBusy, words),
		"timedOut":   &timedOut{limit: time.Second, err: errors.New("handler: " + words)},
		"StateError": &errdefs.StateError{Current: "running", Requested: "paused", Err: errors.New(words)},
		"OfKind":     errdefs.OfKind(errors.New(words), errdefs.ErrStorageFull),
	}
	for name, s := range sentinels {
		errs[name] = fmt.Errorf("%w: %s", s, words)
	}
	for name, err := range errs {
		if k := classify(err); k.sentinel == nil {
			t.Errorf("%s (%v) names no fault kind", name, err)
		}
		for _, d := range dialect.Dialects {
			f, _ := buildFault(faultInput{err: err, dialect: d, now: time.Now()})
			want := words
			if name == "timedOut" {
				want = "did not finish within the server's limit of 1s"
			}
			if !strings.Contains(f.String, want) || strings.Contains(f.String, "incident") {
				t.Errorf("%s %s: %q, want its own words %q", d.Name, name, f.String, want)
			}
		}
	}

	// An error no kind names is an incident, in each dialect alike.
	for _, d := range dialect.Dialects {
		f, _ := buildFault(faultInput{err: errors.New(words), dialect: d, now: time.Now(), incident: "0123456789ab"})
		want := "the service failed internally (incident 0123456789ab); " + fallbackKind.advice +
			"; if it persists, give the site administrator the incident id 0123456789ab"
		if f.String != want || f.Code != soap.CodeServer {
			t.Errorf("%s: %s %q, want Server %q", d.Name, f.Code, f.String, want)
		}
	}
}
