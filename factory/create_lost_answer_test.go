package factory

import (
	"context"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/beevik/etree"

	"github.com/vws-grid/vws/internal/client"
	"github.com/vws-grid/vws/internal/container"
	"github.com/vws-grid/vws/internal/describe"
	"github.com/vws-grid/vws/internal/dialect"
	"github.com/vws-grid/vws/internal/errdefs"
	"github.com/vws-grid/vws/internal/vwsns"
	"github.com/vws-grid/vws/repository/imagepool"
)

// lateRepository is a Repository whose RegisterWorkspace commits the workspace, then
// answers too late: the Factory's call times out after the workspace exists.
type lateRepository struct {
	mu        sync.Mutex
	committed []string // the names of the workspaces it registered
}

func (l *lateRepository) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	raw, _ := io.ReadAll(r.Body)
	doc := etree.NewDocument()
	if err := doc.ReadFromBytes(raw); err == nil {
		if n := doc.FindElement("//RegisterWorkspace/Name"); n != nil {
			l.mu.Lock()
			l.committed = append(l.committed, strings.TrimSpace(n.Text()))
			l.mu.Unlock()
		}
	}
	<-r.Context().Done() // the answer would come now; the caller has hung up
}

// soapRegisterOnly lists a fixed pool and registers over SOAP.
type soapRegisterOnly struct {
	*SOAPRegistry
	images []imagepool.Image
}

func (s soapRegisterOnly) ListImages(context.Context) ([]imagepool.Image, error) {
	return s.images, nil
}

// TestCreateWhoseRegistrationAnswerIsLostSaysTheWorkspaceMayExist: when the
// Repository's answer to RegisterWorkspace is lost (the call times out after it
// committed), the workspace exists and counts against its owner's quota. The fault
// must not say the default "nothing was created; retry" (a retry makes a second
// workspace, or is refused for the taken name): it must say the workspace may have
// been created and how to find it — vws list, under the name it was registered with,
// which the Factory must therefore know also when Create asked for none.
func TestCreateWhoseRegistrationAnswerIsLostSaysTheWorkspaceMayExist(t *testing.T) {
	defer func(b time.Duration) { registerBackoff = b }(registerBackoff)
	registerBackoff = time.Millisecond // every repeat's answer is lost too
	repo := &lateRepository{}
	h := createOverSOAP(t, repo, 300*time.Millisecond)
	for _, c := range []struct{ what, name string }{{"named", `<fac:Name>mine</fac:Name>`}, {"unnamed", ``}} {
		_, err := h(context.Background(), createRequest(t, c.name))
		repo.mu.Lock()
		registered := repo.committed[len(repo.committed)-1]
		repo.mu.Unlock()
		if err == nil {
			t.Fatalf("%s: Create succeeded without the Repository's answer", c.what)
		}
		// Without advice of its own, the fault says WorkspaceCreationFault's default:
		// "nothing was created; retry".
		advice := errdefs.Advice(err)
		if !errors.Is(err, errdefs.ErrCreation) || registered == "" || !strings.Contains(advice, "may have been created") ||
			!strings.Contains(advice, "vws list") || !strings.Contains(advice, `"`+registered+`"`) {
			t.Errorf("%s: the Repository registered the workspace %q; the Factory answered %v, advice %q", c.what, registered, err, advice)
		}
	}
}

// createOverSOAP is the Create handler of a Factory that registers with the
// Repository repo over SOAP, each call bounded by timeout, on a pool of two images.
func createOverSOAP(t *testing.T, repo http.Handler, timeout time.Duration) container.Handler {
	t.Helper()
	srv := httptest.NewServer(repo)
	t.Cleanup(srv.Close)
	v, err := describe.NewValidator()
	if err != nil {
		t.Fatal(err)
	}
	cfg := Config{}
	cfg.Defaults()
	reg := soapRegisterOnly{SOAPRegistry: &SOAPRegistry{Client: client.New(&http.Client{Timeout: timeout}), URL: func() string { return srv.URL }}, images: poolOfTwo()}
	return create(cfg, &Deps{Validator: v, Registry: reg, Now: time.Now})
}

// createRequest is a WSRF 1.2 Create of a debian-12 VM, with extra (a fac:Name, say)
// after the description.
func createRequest(t *testing.T, extra string) *container.Request {
	t.Helper()
	doc := etree.NewDocument()
	if err := doc.ReadFromString(`<fac:Create xmlns:fac="` + vwsns.Factory + `" xmlns:vw="` + vwsns.Workspace + `" xmlns:sw="` + vwsns.Software + `">` +
		`<vw:virtualWorkspace><vw:category>vm</vw:category><sw:software><sw:image><sw:name>debian-12</sw:name></sw:image></sw:software></vw:virtualWorkspace>` +
		extra + `</fac:Create>`); err != nil {
		t.Fatal(err)
	}
	return &container.Request{Dialect: dialect.WSRF12, Payload: doc.Root()}
}
