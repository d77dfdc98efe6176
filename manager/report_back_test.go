package manager

import (
	"net/http/httptest"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/vws-grid/vws/vmm"
)

// TestReportsGoOutWhenTheRepositoryAnswersAgain: a state report the Repository could
// not take (it was down) goes out as soon as an announcement finds it answering
// again, not at the reconciler's next round: until then its workspace's EPR says the
// old state (CI saw that take longer than the 3 s a client waits).
func TestReportsGoOutWhenTheRepositoryAnswersAgain(t *testing.T) {
	m, hv, rec := crashManager(t, "ws-unreported", stateRunning, false)
	m.hv = hostInfoHV{crashHV: hv, info: vmm.HostInfo{DomainType: "kvm", Arch: "x86_64", CPUs: 4, MemoryMiB: 4096, FreeMiB: 4000}}
	rec.Token = "tok"
	if err := m.journal.put(rec); err != nil {
		t.Fatal(err)
	}
	repo := &fakeRepo{deployment: "deployed", host: "h"}
	hs := httptest.NewServer(repo)
	defer hs.Close()
	m.repo = &repoClient{soap: clientFor(hs), http: hs.Client()}
	m.cfg.LocalRepository = func() string { return hs.URL }
	m.cfg.Self = func() string { return "http://h:8080/wsrf/services/WorkspaceManagerService" }
	m.cfg.AnnounceEvery = time.Minute
	m.metrics = newMetrics(prometheus.NewRegistry())
	m.reportq, m.stop = make(chan string, 4), make(chan struct{})
	defer close(m.stop)

	failing := map[string]bool{hs.URL + repositoryServicePath: true} // the last announcement failed
	if ok, _, _ := m.announce(failing, false); !ok {
		t.Fatalf("the announcement failed: the repository saw %v", repo.calls)
	}
	select {
	case key := <-m.reportq:
		if key != rec.Key {
			t.Fatalf("reported %s, want %s", key, rec.Key)
		}
	case <-time.After(2 * time.Second):
		t.Fatal("the Repository answers again, but the running state it never heard is not reported until the reconciler's next round")
	}
}
