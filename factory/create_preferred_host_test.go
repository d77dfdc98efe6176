package factory

import (
	"context"
	"errors"
	"io"
	"net/http"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/beevik/etree"

	"github.com/vws-grid/vws/internal/errdefs"
	"github.com/vws-grid/vws/internal/vwsns"
)

// hostsRepository answers every RegisterWorkspace, noting the PreferredHosts each
// sent.
type hostsRepository struct {
	mu   sync.Mutex
	sent [][]string
}

func (h *hostsRepository) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	raw, _ := io.ReadAll(r.Body)
	doc := etree.NewDocument()
	if err := doc.ReadFromBytes(raw); err != nil {
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}
	var hosts []string
	for _, e := range doc.FindElements("//RegisterWorkspace/PreferredHost") {
		if e.NamespaceURI() == vwsns.Repository {
			hosts = append(hosts, e.Text())
		}
	}
	h.mu.Lock()
	h.sent = append(h.sent, hosts)
	h.mu.Unlock()
	w.Header().Set("Content-Type", "text/xml; charset=utf-8")
	io.WriteString(w, `<soap:Envelope xmlns:soap="http://schemas.xmlsoap.org/soap/envelope/" xmlns:wsa="http://www.w3.org/2005/08/addressing"><soap:Body>`+
		`<r:RegisterWorkspaceResponse xmlns:r="`+vwsns.Repository+`"><r:WorkspaceReference><wsa:Address>http://repo.example/wsrf/services/WorkspaceService</wsa:Address></r:WorkspaceReference>`+
		`<r:Key>k1</r:Key></r:RegisterWorkspaceResponse></soap:Body></soap:Envelope>`)
}

// TestCreateHandsThePreferredHostsToTheRepository: fac:PreferredHost was accepted
// and dropped, so vws deploy placed the workspace by cache and free memory alone.
// The Factory now hands the names, in the order given, to the Repository
// (repo:PreferredHost), whose placement ranks those that fit first; a name that is
// no vw:HostName is refused, naming which, and nothing is registered.
func TestCreateHandsThePreferredHostsToTheRepository(t *testing.T) {
	repo := &hostsRepository{}
	h := createOverSOAP(t, repo, 5*time.Second)
	for _, c := range []struct {
		req  string
		want []string
	}{
		{`<fac:ResourceRequest><fac:PreferredHost>node9</fac:PreferredHost><fac:PreferredHost> node7.example.org </fac:PreferredHost><fac:VMMType>qemu</fac:VMMType></fac:ResourceRequest>`,
			[]string{"node9", "node7.example.org"}},
		{`<fac:ResourceRequest/>`, nil},
		{``, nil},
	} {
		if _, err := h(context.Background(), createRequest(t, c.req)); err != nil {
			t.Fatalf("Create with %q: %v", c.req, err)
		}
		repo.mu.Lock()
		got := repo.sent[len(repo.sent)-1]
		repo.mu.Unlock()
		if !slices.Equal(got, c.want) {
			t.Errorf("Create with %q registered PreferredHosts %q, want %q", c.req, got, c.want)
		}
	}

	now := time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)
	reg := &recordingRegistry{images: poolOfTwo()}
	_, err := runCreate(t, reg, now, `<vw:virtualWorkspace><vw:category>vm</vw:category><sw:software><sw:image><sw:name>debian-12</sw:name></sw:image></sw:software></vw:virtualWorkspace>`+
		`<fac:ResourceRequest><fac:PreferredHost>node7</fac:PreferredHost><fac:PreferredHost>../etc</fac:PreferredHost></fac:ResourceRequest>`)
	var me *errdefs.MetadataError
	if !errors.As(err, &me) || me.Path != "/fac:Create/fac:ResourceRequest/fac:PreferredHost[2]" || !strings.Contains(me.Reason, `"../etc" is not a host name`) ||
		errdefs.Advice(err) == "" || reg.got != nil {
		t.Errorf("Create preferring host ../etc: err %v, registered %v; want a WorkspaceMetadataFault at the second PreferredHost, with advice, nothing registered", err, reg.got != nil)
	}
}
