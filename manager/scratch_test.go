package manager

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/beevik/etree"
	"libvirt.org/go/libvirt"
	"libvirt.org/go/libvirtxml"

	"github.com/vws-grid/vws/internal/describe"
	"github.com/vws-grid/vws/internal/errdefs"
	"github.com/vws-grid/vws/internal/qcow2"
	"github.com/vws-grid/vws/internal/soap"
	"github.com/vws-grid/vws/internal/vwsns"
	"github.com/vws-grid/vws/internal/wsa"
	"github.com/vws-grid/vws/vmm"
)

// scratchRepo is a Repository holding one workspace whose description has an empty
// scratch disk: it answers CheckOut with a signed manifest (a raw base, an overlay on
// it) and serves their bytes; the other calls are fakeRepo's.
type scratchRepo struct {
	*fakeRepo
	manifest, description *etree.Element
	files                 map[string][]byte // by URL path
}

func (s *scratchRepo) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if r.Method == http.MethodGet {
		b, ok := s.files[r.URL.Path]
		if !ok {
			http.NotFound(w, r)
			return
		}
		http.ServeContent(w, r, "", time.Time{}, bytes.NewReader(b))
		return
	}
	if r.Method == http.MethodPost {
		data, _ := io.ReadAll(r.Body)
		if env, err := soap.Parse(data); err == nil && env.Payload != nil && env.Payload.Tag == "CheckOut" {
			s.mu.Lock()
			s.calls = append(s.calls, "CheckOut")
			s.deployment, s.host = "deployed", "h"
			s.mu.Unlock()
			out := etree.NewElement("r:CheckOutResponse")
			out.CreateAttr("xmlns:r", vwsns.Workspace)
			out.AddChild(s.manifest.Copy())
			lock := out.CreateElement("r:Lock")
			lock.CreateElement("r:Token").SetText(mfToken)
			out.AddChild(s.description.Copy())
			answerSOAP(w, out)
			return
		}
		r.Body = io.NopCloser(bytes.NewReader(data))
	}
	s.fakeRepo.ServeHTTP(w, r)
}

// scratchSite is a manager on libvirt's test driver (no guest ever boots) serving
// scratchRepo's workspace key, whose disk vdb is an empty scratch disk of sizeMiB.
type scratchSite struct {
	m    *Manager
	repo *scratchRepo
	epr  *wsa.EPR
	dir  string // the manager's
	key  string
}

func newScratchSite(t *testing.T, key string, sizeMiB int) *scratchSite {
	t.Helper()
	return newNamedScratchSite(t, key, "scratchy", sizeMiB)
}

// newNamedScratchSite is newScratchSite with the workspace's name in the manifest.
func newNamedScratchSite(t *testing.T, key, name string, sizeMiB int) *scratchSite {
	t.Helper()
	if _, err := exec.LookPath("qemu-img"); err != nil {
		t.Skip("qemu-img not installed")
	}
	hv, err := vmm.Open(t.Context(), vmm.Config{URI: "test:///default", Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
	if err != nil {
		t.Skipf("libvirt's test driver: %v", err)
	}
	t.Cleanup(func() {
		hv.Stop(context.Background(), domainName(key))
		hv.Undefine(context.Background(), domainName(key))
		hv.Close()
	})
	base := make([]byte, 1<<20)
	ovPath := filepath.Join(t.TempDir(), "overlay.qcow2")
	if err := qcow2.CreateOverlay(ovPath, "/repository/base", "raw", 1<<20); err != nil {
		t.Fatal(err)
	}
	overlay, err := os.ReadFile(ovPath)
	if err != nil {
		t.Fatal(err)
	}
	digest := func(b []byte) string { s := sha256.Sum256(b); return "sha256:" + hex.EncodeToString(s[:]) }
	baseDigest, ovDigest := digest(base), digest(overlay)
	me := etree.NewElement("r:Manifest")
	me.CreateAttr("xmlns:r", vwsns.Workspace)
	me.CreateElement("r:WorkspaceKey").SetText(key)
	me.CreateElement("r:name").SetText(name)
	me.CreateElement("r:owner").SetText(mfOwner)
	files := map[string][]byte{}
	for _, img := range []struct {
		role, digest, format, backing, loc string
		bytes                              []byte
	}{
		{"base", baseDigest, "raw", "", "/images/" + baseDigest, base},
		{"overlay", ovDigest, "qcow2", baseDigest, "/workspaces/" + key + "/files/" + ovDigest, overlay},
	} {
		ie := me.CreateElement("r:Image")
		ie.CreateElement("r:Role").SetText(img.role)
		ie.CreateElement("r:Digest").SetText(img.digest)
		ie.CreateElement("r:SizeBytes").SetText(strconv.Itoa(len(img.bytes)))
		ie.CreateElement("r:Format").SetText(img.format)
		if img.backing != "" {
			ie.CreateElement("r:BackingDigest").SetText(img.backing)
		}
		ie.CreateElement("r:Location").SetText(img.loc)
		files[img.loc] = img.bytes
	}
	signed, err := testSigner(t).Sign(me)
	if err != nil {
		t.Fatal(err)
	}
	doc := etree.NewDocument()
	scratch := `<hw:disk><hw:target>vdb</hw:target><hw:bus>virtio</hw:bus><hw:size>` + strconv.Itoa(sizeMiB) + `</hw:size></hw:disk>`
	if err := doc.ReadFromString(vmXML{Disks: rootVDA + scratch}.String()); err != nil {
		t.Fatal(err)
	}
	repo := &scratchRepo{fakeRepo: &fakeRepo{deployment: "in-repository"}, manifest: signed, description: doc.Root(), files: files}
	hs := httptest.NewServer(repo)
	t.Cleanup(hs.Close)
	valid, err := describe.NewValidator()
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	m, err := New(Config{Dir: dir, Host: "h", Repositories: []string{hs.URL}, ReconcileEvery: time.Hour, AnnounceEvery: -1,
		MinFreeBytes: -1, MemoryReserveMiB: -1, GracePeriod: time.Second, Logger: slog.New(slog.NewTextHandler(io.Discard, nil))}, roomyHost{hv}, valid)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(m.Close)
	epr := workspaceEPR(&record{Key: key, WorkspaceAddress: hs.URL + "/wsrf/services/WorkspaceService", WSAVersion: int(wsa.V200508)})
	return &scratchSite{m: m, repo: repo, epr: epr, dir: dir, key: key}
}

func (s *scratchSite) scratch() string { return scratchPath(s.m.workspaceDir(s.key), "vdb") }

// qemuInfo is what qemu-img says of the image at path.
func qemuInfo(t *testing.T, path string) (virtualSize int64, backing string) {
	t.Helper()
	out, err := exec.Command("qemu-img", "info", "--output=json", "-f", "qcow2", path).CombinedOutput()
	if err != nil {
		t.Fatalf("qemu-img info %s: %v\n%s", path, err, out)
	}
	var info struct {
		VirtualSize int64  `json:"virtual-size"`
		Backing     string `json:"backing-filename"`
	}
	if err := json.Unmarshal(out, &info); err != nil {
		t.Fatal(err)
	}
	return info.VirtualSize, info.Backing
}

// qemuIO runs a qemu-io command on a qcow2 image, failing the test when it fails (a
// "read -P" whose pattern does not match, too).
func qemuIO(t *testing.T, path, cmd string) {
	t.Helper()
	out, err := exec.Command("qemu-io", "-f", "qcow2", "-c", cmd, path).CombinedOutput()
	if err != nil || strings.Contains(string(out), "Pattern verification failed") {
		t.Fatalf("qemu-io -c %q %s: %v\n%s", cmd, path, err, out)
	}
}

// dirState lists the files of dir with their sizes and modification times.
func dirState(t *testing.T, dir string) string {
	t.Helper()
	var b strings.Builder
	filepath.WalkDir(dir, func(p string, d os.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if fi, err := d.Info(); err == nil && !d.IsDir() {
			b.WriteString(p + " " + strconv.FormatInt(fi.Size(), 10) + " " + fi.ModTime().String() + "\n")
		}
		return nil
	})
	return b.String()
}

// TestScratchDiskLifecycle: a workspace whose description has an empty scratch disk
// deploys with the disk created empty (a qcow2 of the described size on no backing
// file, in the deployment's directory) and defined writable, unshared, at its target;
// a Serialize is refused before anything changes, the guest running on; Trash empties
// the disk; Undeploy uploads the overlay alone and removes the scratch disk with the
// deployment's other files.
func TestScratchDiskLifecycle(t *testing.T) {
	if runtime.GOOS != "linux" {
		t.Skip("linux only")
	}
	const key = "ws-scratch-life"
	s := newScratchSite(t, key, 64)
	ctx := context.Background()
	res, err := s.m.Deploy(ctx, s.epr, "")
	if err != nil {
		t.Fatalf("Deploy of a workspace with a scratch disk: %v", err)
	}
	if res.State != stateShutdown {
		t.Fatalf("deployed %+v", res)
	}
	if size, backing := qemuInfo(t, s.scratch()); size != 64<<20 || backing != "" {
		t.Fatalf("the scratch disk is %d bytes on %q; want %d on no backing file", size, backing, 64<<20)
	}
	conn, err := libvirt.NewConnect("test:///default")
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	dom, err := conn.LookupDomainByName(domainName(key))
	if err != nil {
		t.Fatal(err)
	}
	x, err := dom.GetXMLDesc(0)
	dom.Free()
	if err != nil {
		t.Fatal(err)
	}
	var def libvirtxml.Domain
	if err := def.Unmarshal(x); err != nil {
		t.Fatal(err)
	}
	found := false
	for _, d := range def.Devices.Disks {
		if d.Target == nil || d.Target.Dev != "vdb" {
			continue
		}
		found = true
		if d.Device != "disk" || d.Driver == nil || d.Driver.Type != "qcow2" || d.Source == nil || d.Source.File == nil ||
			d.Source.File.File != s.scratch() || d.Target.Bus != "virtio" || d.ReadOnly != nil || d.Shareable != nil {
			t.Errorf("the scratch disk is defined as %+v", d)
		}
	}
	if !found {
		t.Fatalf("the domain has no disk vdb:\n%s", x)
	}

	// Serialize: refused before anything changes; the guest runs on.
	if _, err := s.m.Start(ctx, s.epr); err != nil {
		t.Fatal(err)
	}
	before := dirState(t, s.dir)
	_, err = s.m.Shutdown(ctx, s.epr, ModeSerialize, 0)
	var se *errdefs.StateError
	if !errors.As(err, &se) || !errors.Is(err, errdefs.ErrState) || se.Current != stateRunning || se.Requested != stateSerialized ||
		!strings.Contains(err.Error(), "scratch disk (vdb)") || !strings.Contains(errdefs.Advice(err), "shut the workspace down normally") ||
		!strings.Contains(errdefs.Advice(err), "leave the scratch disk out") {
		t.Fatalf("Serialize of a workspace with a scratch disk: %v (advice %q); want a state fault saying why and what to do", err, errdefs.Advice(err))
	}
	if rec, _ := s.m.journal.get(key); rec.State != stateRunning || rec.Pending != "" || rec.Hot || rec.MemoryFile != "" {
		t.Errorf("after the refused Serialize the record says %q pending %q hot %v memory %q", rec.State, rec.Pending, rec.Hot, rec.MemoryFile)
	}
	if st, err := s.m.hv.State(ctx, domainName(key)); err != nil || st != vmm.StateRunning {
		t.Errorf("after the refused Serialize the domain is %v (%v)", st, err)
	}
	if after := dirState(t, s.dir); after != before {
		t.Errorf("the refused Serialize changed the manager's files:\nbefore:\n%s\nafter:\n%s", before, after)
	}

	// Trash discards what the guest wrote to its scratch disk too.
	qemuIO(t, s.scratch(), "write -P 0x5a 1m 64k")
	if _, err := s.m.Shutdown(ctx, s.epr, ModeTrash, 0); err != nil {
		t.Fatal(err)
	}
	qemuIO(t, s.scratch(), "read -P 0 1m 64k")
	if size, _ := qemuInfo(t, s.scratch()); size != 64<<20 {
		t.Errorf("after Trash the scratch disk is %d bytes", size)
	}

	// Undeploy: the overlay goes back, the scratch disk does not; it leaves with the
	// deployment's directory.
	if _, err := s.m.Undeploy(ctx, s.epr); err != nil {
		t.Fatal(err)
	}
	s.repo.mu.Lock()
	calls := append([]string(nil), s.repo.calls...)
	s.repo.mu.Unlock()
	var puts []string
	for _, c := range calls {
		if strings.HasPrefix(c, "PUT ") {
			puts = append(puts, c)
		}
	}
	if len(puts) != 1 || puts[0] != "PUT /workspaces/"+key+"/overlay" {
		t.Errorf("the undeploy uploaded %v; want the overlay alone", puts)
	}
	if _, err := os.Stat(s.m.workspaceDir(key)); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("the deployment's directory (and scratch disk) is still there: %v", err)
	}
}

// TestScratchDiskOfAKilledDeployIsRemoved: a manager killed during a Deploy after it
// created the scratch disk (here: as it defines the domain) leaves a staging record
// and the file; the manager restarted on its directory undoes the deploy, the scratch
// disk with it, and gives the lock back.
func TestScratchDiskOfAKilledDeployIsRemoved(t *testing.T) {
	const key = "ws-scratch-killed"
	s := newScratchSite(t, key, 32)
	hv := s.m.hv
	s.m.hv = &killAtDefine{Hypervisor: hv}
	done := make(chan struct{})
	go func() {
		defer close(done)
		s.m.Deploy(context.Background(), s.epr, "")
		t.Error("the Deploy went on past the kill")
	}()
	<-done
	if _, err := os.Stat(s.scratch()); err != nil {
		t.Fatalf("the killed deploy had not created the scratch disk: %v", err)
	}
	if rec, err := s.m.journal.get(key); err != nil || rec.Phase != phaseStaging {
		t.Fatalf("the killed deploy's record: %+v, %v", rec, err)
	}
	s.m.Close()
	// Restarted on the same directory: its first round undoes the deploy.
	m2, err := New(Config{Dir: s.dir, Host: "h", Repositories: []string{repositoryBase(s.epr.Address)}, ReconcileEvery: time.Hour, AnnounceEvery: -1,
		MinFreeBytes: -1, MemoryReserveMiB: -1, Logger: slog.New(slog.NewTextHandler(io.Discard, nil))}, hv, s.m.valid)
	if err != nil {
		t.Fatal(err)
	}
	defer m2.Close()
	deadline := time.Now().Add(10 * time.Second)
	for {
		// The undo removes the directory, checks in, then drops the record: wait for all.
		_, err := os.Stat(s.m.workspaceDir(key))
		_, recErr := m2.journal.get(key)
		if errors.Is(err, os.ErrNotExist) && s.repo.seen("CheckIn") && errors.Is(recErr, os.ErrNotExist) {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("10 s after the restart the workspace's directory is %v (check-in sent: %v, record: %v):\n%s", err, s.repo.seen("CheckIn"), recErr, dirState(t, s.dir))
		}
		time.Sleep(20 * time.Millisecond)
	}
	if left := dirState(t, s.dir); strings.Contains(left, "scratch") {
		t.Errorf("a scratch disk is left after the restart:\n%s", left)
	}
}

// roomyHost is libvirt's test driver saying it has 4 GiB free (it says a few MiB).
type roomyHost struct{ *vmm.Libvirt }

func (r roomyHost) Host(ctx context.Context) (vmm.HostInfo, error) {
	h, err := r.Libvirt.Host(ctx)
	h.FreeMiB = 4096
	return h, err
}

// killAtDefine is a hypervisor whose Define ends the calling goroutine as a kill -9
// would end the manager: no undo runs (deferred calls do, which leave files and
// journal as they are).
type killAtDefine struct{ Hypervisor }

func (k *killAtDefine) Define(context.Context, vmm.Spec) error {
	runtime.Goexit()
	return nil
}

// TestUndeployOfManagedSaveWithScratchDisk: RAM libvirt saved by itself (a host
// shutdown) may resume here on the scratch disk it wrote to, but not go to the
// Repository without it: the Undeploy is refused before anything changes, saying
// what to do.
func TestUndeployOfManagedSaveWithScratchDisk(t *testing.T) {
	const k = "ws-managed-scratch"
	m, hv, rec := crashManager(t, k, statePaused, true)
	hv.managedSave = true // RestoreManagedSave would take it
	rec.ManagedSave, rec.MemoryFile = true, ""
	rec.Spec.Disks = []vmm.Disk{{Path: scratchPath(m.workspaceDir(k), "vdb"), Format: "qcow2", Target: "vdb", Scratch: true, SizeMiB: 64}}
	if err := m.journal.put(rec); err != nil {
		t.Fatal(err)
	}
	_, err := m.Undeploy(context.Background(), workspaceEPR(rec))
	var se *errdefs.StateError
	if !errors.As(err, &se) || se.Requested != "in-repository" || !strings.Contains(err.Error(), "scratch disk") ||
		!strings.Contains(errdefs.Advice(err), "vws start") {
		t.Fatalf("Undeploy of RAM libvirt saved, with a scratch disk: %v (advice %q)", err, errdefs.Advice(err))
	}
	if !hv.managedSave {
		t.Error("the managed-save image was restored")
	}
	if r, _ := m.journal.get(k); r.Phase != phaseDeployed || !r.Hot || !r.ManagedSave || r.State != statePaused || r.Pending != "" {
		t.Errorf("after the refused Undeploy the record is %+v", r)
	}
}

// TestDeployHostnameFromAnyKey: a workspace whose name is no host name gets one made
// from its key, which the Repository chose (any length, '.' and '_' allowed): a short
// key or one with such characters deploys, with a valid host name.
func TestDeployHostnameFromAnyKey(t *testing.T) {
	if runtime.GOOS != "linux" {
		t.Skip("linux only")
	}
	for _, key := range []string{"ws1", "a_b.cdefghij"} {
		t.Run(key, func(t *testing.T) {
			s := newNamedScratchSite(t, key, "not a host name", 1)
			if _, err := s.m.Deploy(context.Background(), s.epr, ""); err != nil {
				t.Fatalf("Deploy of workspace %q named %q: %v", key, "not a host name", err)
			}
		})
	}
}
