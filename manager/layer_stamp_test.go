package manager

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/vws-grid/vws/internal/qcow2"
)

// TestAnUnstampedLayerIsNotTakenForDamaged: a cached layer is re-pointed at the
// cache's base before it is stamped, so its bytes differ from its digest by design. A
// manager that stops between the re-point and the stamp (or a cache whose stamps no
// longer match its files' inodes, e.g. DATA copied to a new disk) must not take the
// intact layer for a damaged one: no "no longer matches its digest" warning to the
// site admin, and no second transfer of it.
func TestAnUnstampedLayerIsNotTakenForDamaged(t *testing.T) {
	c := newLayerChain(t, nil)
	c.deploy(t, "ws-1")
	// The stamps are gone (a stop right after the re-point, before the stamp).
	os.Remove(c.m.cache.path(c.layer.Digest) + stampSuffix)
	os.Remove(c.m.cache.path(c.base.Digest) + stampSuffix)
	c.deploy(t, "ws-2")
	if strings.Contains(c.logged.String(), "no longer matches") {
		t.Errorf("an intact cached layer was reported damaged to the site admin:\n%s", c.logged.String())
	}
	if c.gets(c.layer.Digest) != 1 || c.gets(c.base.Digest) != 1 {
		t.Errorf("the layer was transferred %d times, the base %d times; want once each", c.gets(c.layer.Digest), c.gets(c.base.Digest))
	}
}

// TestADeployedWorkspacesLayerSurvivesAFailedDeploy: the same unstamped cached
// layer, while a deployed workspace's overlay stands on it, and the Repository
// unreachable for the next deploys: the intact layer is used as it is, and a damaged
// one is not removed before a checked copy replaces it, so the deployed workspace's
// backing chain stays whole.
func TestADeployedWorkspacesLayerSurvivesAFailedDeploy(t *testing.T) {
	var layerDigest string
	c := newLayerChain(t, func(d string, n int) bool { return d == layerDigest && n > 1 })
	layerDigest = c.layer.Digest
	m, base, layer := c.m, c.base, c.layer
	c.deploy(t, "ws-1")
	// ws-1 is deployed: its record lists the cache entries it stands on.
	if err := m.journal.put(&record{Key: "ws-1", Phase: phaseDeployed, State: stateShutdown, Shared: []string{base.Digest, layer.Digest}}); err != nil {
		t.Fatal(err)
	}
	// The stamps are gone (a stop right after the re-point, before the stamp).
	os.Remove(m.cache.path(layer.Digest) + stampSuffix)
	os.Remove(m.cache.path(base.Digest) + stampSuffix)
	if err := c.stage("ws-2"); err != nil {
		t.Errorf("deploy ws-2 with the repository down, every image intact in the cache: %v", err)
	}
	ws1 := filepath.Join(m.workspaceDir("ws-1"), "overlay.qcow2")
	info, err := qcow2.ReadInfo(ws1)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(info.BackingFile); err != nil {
		t.Fatalf("deployed workspace ws-1's overlay stands on %s, which a failed deploy of another workspace removed: %v", info.BackingFile, err)
	}
	// Damaged for real (a byte past the header flipped): the deploy that finds it
	// fails with the Repository down, and still removes nothing ws-1 stands on.
	cached := m.cache.path(layer.Digest)
	f, err := os.OpenFile(cached, os.O_RDWR, 0)
	if err != nil {
		t.Fatal(err)
	}
	fi, _ := f.Stat()
	if _, err := f.WriteAt([]byte{0xff}, fi.Size()-1); err != nil {
		t.Fatal(err)
	}
	f.Close()
	os.Remove(cached + stampSuffix)
	if err := c.stage("ws-3"); err == nil {
		t.Fatal("a damaged cached layer was staged with the repository down")
	}
	if _, err := os.Stat(info.BackingFile); err != nil {
		t.Fatalf("a failed deploy removed %s, which deployed workspace ws-1 stands on: %v", info.BackingFile, err)
	}
}
