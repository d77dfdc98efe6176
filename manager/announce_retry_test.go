package manager

import (
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/vws-grid/vws/vmm"
)

// TestADownRepositoryDoesNotMultiplyAnnouncementsToTheOthers: with one of a host's
// Repositories down, the announcement is tried again within seconds — to that one.
// The Repositories that took it hear from the host once a period (or on a change),
// not every 5 s for as long as the other is down: each announcement costs them a
// scan of every workspace (Holds) and its audit, times every host of the site.
func TestADownRepositoryDoesNotMultiplyAnnouncementsToTheOthers(t *testing.T) {
	if testing.Short() && testing.Verbose() {
		t.Log("takes 11 s: it lets the announcer run past two 5-second retries")
	}
	m, hv, _ := crashManager(t, "ws-any", stateRunning, false)
	m.hv = hostInfoHV{crashHV: hv, info: vmm.HostInfo{DomainType: "kvm", Arch: "x86_64", CPUs: 4, MemoryMiB: 4096, FreeMiB: 4000}}
	var heard atomic.Int32
	up := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		data, _ := io.ReadAll(r.Body)
		if strings.Contains(string(data), "AnnounceHost") {
			heard.Add(1)
		}
		w.Header().Set("Content-Type", "text/xml; charset=utf-8")
		io.WriteString(w, `<soapenv:Envelope xmlns:soapenv="http://schemas.xmlsoap.org/soap/envelope/"><soapenv:Body>`+
			`<r:AnnounceHostResponse xmlns:r="http://vws.dev/ns/2026/repository"/></soapenv:Body></soapenv:Envelope>`)
	}))
	defer up.Close()
	down := httptest.NewServer(http.NotFoundHandler())
	downURL := down.URL
	down.Close() // refuses connections from now on
	for _, u := range []string{up.URL, downURL} {
		s, err := parseRepoScope(u)
		if err != nil {
			t.Fatal(err)
		}
		m.scopes = append(m.scopes, s)
	}
	m.repo = &repoClient{soap: clientFor(up), http: up.Client()}
	m.cfg.Self = func() string { return "http://h:8080/wsrf/services/WorkspaceManagerService" }
	m.cfg.AnnounceEvery = time.Minute
	m.metrics = newMetrics(prometheus.NewRegistry())
	m.announceKick, m.reportq, m.stop = make(chan struct{}, 1), make(chan string, 16), make(chan struct{})
	m.wg.Add(1)
	go m.announcer()
	time.Sleep(11 * time.Second) // the first announcement, and two retries' worth
	close(m.stop)
	m.wg.Wait()
	if n := heard.Load(); n != 1 {
		t.Fatalf("the Repository that answers heard %d announcements in 11 s of a 1-minute period (nothing changed on the host): "+
			"every retry meant for the one that is down goes to it too", n)
	}
}
