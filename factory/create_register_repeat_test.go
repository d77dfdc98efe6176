package factory

import (
	"context"
	"io"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/beevik/etree"

	"github.com/vws-grid/vws/internal/vwsns"
)

// forgetfulRepository registers a workspace per RequestID and hangs up without
// answering the first registration it sees, as a Repository whose answer is lost
// on the way back (its connection reset after the commit).
type forgetfulRepository struct {
	mu       sync.Mutex
	requests []string          // the RequestID of each registration, in order
	made     map[string]string // RequestID -> key
}

func (f *forgetfulRepository) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	raw, _ := io.ReadAll(r.Body)
	doc := etree.NewDocument()
	if err := doc.ReadFromBytes(raw); err != nil {
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}
	id := ""
	if e := doc.FindElement("//RegisterWorkspace/RequestID"); e != nil {
		id = strings.TrimSpace(e.Text())
	}
	f.mu.Lock()
	f.requests = append(f.requests, id)
	first := len(f.requests) == 1
	key, ok := f.made[id]
	if !ok || id == "" {
		key = "k" + string(rune('0'+len(f.made)))
		f.made[id] = key
	}
	f.mu.Unlock()
	if first {
		conn, _, _ := w.(http.Hijacker).Hijack()
		conn.Close()
		return
	}
	w.Header().Set("Content-Type", "text/xml; charset=utf-8")
	io.WriteString(w, `<soap:Envelope xmlns:soap="http://schemas.xmlsoap.org/soap/envelope/" xmlns:wsa="http://www.w3.org/2005/08/addressing"><soap:Body>`+
		`<r:RegisterWorkspaceResponse xmlns:r="`+vwsns.Repository+`"><r:WorkspaceReference><wsa:Address>http://repo.example/wsrf/services/WorkspaceService</wsa:Address></r:WorkspaceReference>`+
		`<r:Key>`+key+`</r:Key></r:RegisterWorkspaceResponse></soap:Body></soap:Envelope>`)
}

// TestCreateRepeatsARegistrationWhoseAnswerWasLost: the Factory asks the Repository
// again, under the same RequestID, when the answer to RegisterWorkspace is lost, and
// answers Create with the workspace the first registration made: one workspace, and
// the user is told its key instead of "it may have been created".
func TestCreateRepeatsARegistrationWhoseAnswerWasLost(t *testing.T) {
	defer func(b time.Duration) { registerBackoff = b }(registerBackoff)
	registerBackoff = time.Millisecond
	repo := &forgetfulRepository{made: map[string]string{}}
	h := createOverSOAP(t, repo, 5*time.Second)
	out, err := h(context.Background(), createRequest(t, ""))
	if err != nil {
		t.Fatalf("Create after a lost registration answer: %v", err)
	}
	repo.mu.Lock()
	defer repo.mu.Unlock()
	if len(repo.requests) != 2 || repo.requests[0] == "" || repo.requests[1] != repo.requests[0] {
		t.Fatalf("registrations' RequestIDs %q: want the lost one asked again once, under the same RequestID", repo.requests)
	}
	if k := out.FindElement("//WorkspaceKey"); k == nil || k.Text() != repo.made[repo.requests[0]] {
		t.Errorf("Create answered key %v; the first registration made %s", k, repo.made[repo.requests[0]])
	}
}
