package repository

import (
	"bytes"
	"context"
	"crypto/sha256"
	"crypto/x509"
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
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/beevik/etree"

	"github.com/vws-grid/vws/internal/manifestsig"

	"github.com/vws-grid/vws/internal/errdefs"
	"github.com/vws-grid/vws/internal/store"
	"github.com/vws-grid/vws/internal/store/storetest"
	"github.com/vws-grid/vws/internal/vwsns"
	"github.com/vws-grid/vws/internal/wsa"
	"github.com/vws-grid/vws/internal/wsrf"
	"github.com/vws-grid/vws/repository/imagepool"
)

type fixture struct {
	t                    *testing.T
	dir                  string
	db                   *store.DB
	pool                 *imagepool.Pool
	r                    *Repository
	base, kernel, initrd string
	// signer, when set, is what open signs with instead of the key in <dir>/keys;
	// earlier and now become Config.EarlierSigner and Config.Now.
	signer  *manifestsig.Signer
	earlier func([]*x509.Certificate, time.Time) error
	now     func() time.Time
	// validator, when set, checks descriptions (Config.Validator), as Place needs.
	validator Validator
	// logs keeps what the repository logs (every open appends).
	logs lockedBuffer
	// store, when set, is what open keeps the workspaces in instead of db.
	store wsrf.Store
}

func needQemu(t *testing.T) {
	t.Helper()
	for _, tool := range []string{"qemu-img", "qemu-io"} {
		if _, err := exec.LookPath(tool); err != nil {
			t.Skipf("%s not found (Debian: qemu-utils); test/setup.sh installs it", tool)
		}
	}
}

func newFixture(t *testing.T) *fixture {
	t.Helper()
	return newFixtureAt(t, storetest.New(t, ""))
}

// newFixtureIn is a fixture whose data directory, database included, is dir (SQLite
// whatever the suite runs against: its tests are about that directory's disk).
func newFixtureIn(t *testing.T, dir string) *fixture {
	t.Helper()
	return newFixtureAt(t, storetest.Place{Dir: dir})
}

func newFixtureAt(t *testing.T, place storetest.Place) *fixture {
	t.Helper()
	ctx := context.Background()
	f := &fixture{t: t, dir: place.Dir}
	var err error
	if f.db, err = place.Open(ctx); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { f.db.Close() })
	quiet := slog.New(slog.NewTextHandler(io.Discard, nil))
	if f.pool, err = imagepool.Open(ctx, filepath.Join(f.dir, "images"), f.db.SQL(), quiet); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { f.pool.Close() }) // before the database closes
	f.open()
	imp := func(name string, content []byte) string {
		img, _, err := f.pool.Import(ctx, bytes.NewReader(content), imagepool.Meta{Name: name})
		if err != nil {
			t.Fatal(err)
		}
		return img.Digest
	}
	f.base = imp("base", bytes.Repeat([]byte{0x11}, 1<<20))
	f.kernel = imp("vmlinuz", bytes.Repeat([]byte("KERNEL"), 1000))
	f.initrd = imp("initrd", bytes.Repeat([]byte("INITRD"), 700))
	return f
}

func (f *fixture) open() {
	f.t.Helper()
	signer := f.signer
	if signer == nil {
		var err error
		if signer, err = manifestsig.LoadOrCreate(filepath.Join(f.dir, "keys"), "test repository"); err != nil {
			f.t.Fatal(err)
		}
	}
	var st wsrf.Store = f.db
	if f.store != nil {
		st = f.store
	}
	r, err := New(context.Background(), Config{Dir: f.dir, Store: st, DB: f.db.SQL(), StorageName: f.db.String(), Pool: f.pool, Signer: signer, EarlierSigner: f.earlier,
		Now: f.now, Logger: f.logger(), Validator: f.validator})
	if err != nil {
		f.t.Fatal(err)
	}
	f.r = r
	f.pool.SetInUse(r.InUse)
	f.t.Cleanup(r.Close)
}

// reopen starts the repository again on the same data, as after a restart.
func (f *fixture) reopen() {
	f.r.Close()
	f.open()
}

func description() *etree.Element {
	d := etree.NewDocument()
	if err := d.ReadFromString(`<vw:virtualWorkspace xmlns:vw="` + vwsns.Workspace + `"><vw:category>vm</vw:category></vw:virtualWorkspace>`); err != nil {
		panic(err)
	}
	return d.Root()
}

func (f *fixture) create(name, kernel, initrd string) string {
	f.t.Helper()
	c, err := f.r.Create(context.Background(), CreateSpec{Name: name, Owner: "o", Description: description(), BaseImage: f.base,
		KernelImage: kernel, InitrdImage: initrd, Termination: time.Now().Add(time.Hour)})
	if err != nil {
		f.t.Fatal(err)
	}
	return c.Key
}

func (f *fixture) chain(key string) *diskChain {
	f.t.Helper()
	var c *diskChain
	err := f.r.Workspaces.View(context.Background(), key, func(s *wsrf.Snapshot) (err error) {
		c, err = decodeChain(s.Private)
		return err
	})
	if err != nil {
		f.t.Fatal(err)
	}
	return c
}

func (f *fixture) prop(key string, q wsa.QName) string {
	f.t.Helper()
	var v string
	f.r.Workspaces.View(context.Background(), key, func(s *wsrf.Snapshot) error { v = text(s, q); return nil })
	return v
}

// imageDigest is workspace key's published vw:imageDigest of role ("" none); more than
// one of a role fails the test.
func (f *fixture) imageDigest(key, role string) string {
	f.t.Helper()
	var found []string
	f.r.Workspaces.View(context.Background(), key, func(s *wsrf.Snapshot) error {
		for _, p := range s.Props {
			if p.Tag == PropImageDigest.Local && p.NamespaceURI() == PropImageDigest.Space &&
				strings.TrimSpace(p.SelectElement("role").Text()) == role {
				found = append(found, strings.TrimSpace(p.SelectElement("digest").Text()))
			}
		}
		return nil
	})
	if len(found) > 1 {
		f.t.Fatalf("workspace %s publishes %d %s digests: %v", key, len(found), role, found)
	}
	if len(found) == 0 {
		return ""
	}
	return found[0]
}

// files lists a workspace directory.
func (f *fixture) files(key string) []string {
	f.t.Helper()
	entries, _ := os.ReadDir(f.r.workspaceDir(key))
	var out []string
	for _, e := range entries {
		out = append(out, e.Name())
	}
	sort.Strings(out)
	return out
}

type resp struct {
	code int
	body []byte
	hdr  http.Header
}

func (f *fixture) do(method, path, token string, body io.Reader, hdr ...string) resp {
	f.t.Helper()
	req := httptest.NewRequest(method, path, body)
	if token != "" {
		req.Header.Set(LockTokenHeader, token)
	}
	for i := 0; i+1 < len(hdr); i += 2 {
		req.Header.Set(hdr[i], hdr[i+1])
	}
	rec := httptest.NewRecorder()
	f.r.FilesHandler().ServeHTTP(rec, req)
	return resp{rec.Code, rec.Body.Bytes(), rec.Header()}
}

func (f *fixture) upload(key, kind, token string, content []byte, hdr ...string) (UploadResult, resp) {
	f.t.Helper()
	rs := f.do(http.MethodPut, "/workspaces/"+key+"/"+kind, token, bytes.NewReader(content), hdr...)
	var out UploadResult
	if rs.code == http.StatusOK {
		if err := json.Unmarshal(rs.body, &out); err != nil {
			f.t.Fatalf("upload answer %s: %v", rs.body, err)
		}
	}
	return out, rs
}

func sha(b []byte) string {
	s := sha256.Sum256(b)
	return "sha256:" + hex.EncodeToString(s[:])
}

func roles(m *Manifest) string {
	var r []string
	for _, i := range m.Images {
		r = append(r, i.Role)
	}
	return strings.Join(r, ",")
}

func image(m *Manifest, role string) ImageRef {
	for _, i := range m.Images {
		if i.Role == role {
			return i
		}
	}
	return ImageRef{}
}

// managerOverlay plays a manager: the overlay of manifest m as downloaded, rebased onto
// the manager's own copy of the chain below, written to, and returned as bytes.
func (f *fixture) managerOverlay(key, token string, m *Manifest, pattern string) []byte {
	f.t.Helper()
	ov := image(m, "overlay")
	rs := f.do(http.MethodGet, ov.Path, token, nil)
	if rs.code != http.StatusOK || sha(rs.body) != ov.Digest {
		f.t.Fatalf("GET overlay: %d", rs.code)
	}
	cache := f.t.TempDir()
	below, _, err := f.chain(key).top(f.r)
	if err != nil {
		f.t.Fatal(err)
	}
	data, _ := os.ReadFile(below)
	local := filepath.Join(cache, "below")
	os.WriteFile(local, data, 0o644)
	format := "raw"
	if len(f.chain(key).Layers) > 0 {
		format = "qcow2"
	}
	file := filepath.Join(cache, "overlay.qcow2")
	os.WriteFile(file, rs.body, 0o644)
	for _, args := range [][]string{
		{"qemu-img", "rebase", "-u", "-F", format, "-b", local, file},
		{"qemu-io", "-c", pattern, file},
	} {
		if out, err := exec.Command(args[0], args[1:]...).CombinedOutput(); err != nil {
			f.t.Fatalf("%v: %v\n%s", args, err, out)
		}
	}
	out, _ := os.ReadFile(file)
	return out
}

func TestChainRecordDecodesOldRecords(t *testing.T) {
	c, err := decodeChain([]byte(`{"version":1,"base":"sha256:` + strings.Repeat("a", 64) + `","baseFormat":"raw","virtualSize":512,"overlay":"disk-3.qcow2","lock":"x"}`))
	if err != nil {
		t.Fatal(err)
	}
	if c.Kernel != "" || c.Memory != "" || c.OverlayDigest != "" || c.Overlay != "disk-3.qcow2" || c.Lock != "x" {
		t.Fatalf("%+v", c)
	}
	if nextMemoryName("") != "memory-1.save" || nextMemoryName("memory-7.save") != "memory-8.save" {
		t.Fatal("memory names")
	}
}

func TestKernelInitrdRecordedListedAndInUse(t *testing.T) {
	f := newFixture(t)
	ctx := context.Background()
	key := f.create("kboot", "vmlinuz", f.initrd) // by name and by digest
	c := f.chain(key)
	if c.Kernel != f.kernel || c.Initrd != f.initrd {
		t.Fatalf("chain kernel %q initrd %q", c.Kernel, c.Initrd)
	}
	for _, name := range []string{"vmlinuz", "initrd", "base"} {
		var inUse *imagepool.InUseError
		if err := f.pool.Remove(ctx, name, f.r.InUse); !errors.As(err, &inUse) || !strings.Contains(err.Error(), "kboot "+key) {
			t.Fatalf("remove %s while a workspace boots from it: %v (want the workspace named)", name, err)
		}
	}
	m, err := f.r.CheckOut(ctx, key, "host-a", "", nil, &tester)
	if err != nil {
		t.Fatal(err)
	}
	if got := roles(m); got != "base,kernel,initrd,overlay" {
		t.Fatalf("manifest roles %s", got)
	}
	k := image(m, "kernel")
	if k.Digest != f.kernel || k.Format != "raw" || k.Size != 6000 || k.Path != "/images/"+f.kernel {
		t.Fatalf("kernel entry %+v", k)
	}
	if p := image(m, "overlay").Path; p != "/workspaces/"+key+"/files/"+image(m, "overlay").Digest {
		t.Fatalf("overlay path %s", p)
	}

	// An unknown kernel creates nothing.
	before := len(f.r.Workspaces.Keys())
	_, err = f.r.Create(ctx, CreateSpec{Name: "nok", Description: description(), BaseImage: f.base, KernelImage: "sha256:" + strings.Repeat("0", 64), Termination: time.Now().Add(time.Hour)})
	if !errors.Is(err, errdefs.ErrResourceUnknown) || len(f.r.Workspaces.Keys()) != before {
		t.Fatalf("unknown kernel: %v", err)
	}
	entries, _ := os.ReadDir(filepath.Join(f.dir, "workspaces"))
	if len(entries) != 1 {
		t.Fatalf("workspace dirs after a refused create: %d", len(entries))
	}
	// Destroyed, the kernel may go.
	if _, _, err := f.r.CheckIn(ctx, key, CheckInRequest{Token: m.Token, OverlayDigest: image(m, "overlay").Digest, OverlaySize: -1, MemorySize: -1}); err != nil {
		t.Fatal(err)
	}
	if err := f.r.Workspaces.Destroy(ctx, key); err != nil {
		t.Fatal(err)
	}
	if err := f.pool.Remove(ctx, "vmlinuz", f.r.InUse); err != nil {
		t.Fatal(err)
	}
}

func TestFilesServedOnlyToTheLockHolder(t *testing.T) {
	f := newFixture(t)
	ctx := context.Background()
	key := f.create("src", "", "")
	if _, err := f.r.Clone(ctx, key, "copy", "o", time.Now().Add(time.Hour)); err != nil {
		t.Fatal(err)
	}
	if rs := f.do(http.MethodGet, "/workspaces/"+key+"/files/"+f.base, "x", nil); rs.code != http.StatusConflict {
		t.Fatalf("before check-out: %d %s", rs.code, rs.body)
	}
	mgr := &wsa.EPR{Version: wsa.V200508, Address: "http://host-a:8080/wsrf/services/WorkspaceManagerService"}
	m, err := f.r.CheckOut(ctx, key, "host-a", "", mgr, &tester)
	if err != nil {
		t.Fatal(err)
	}
	if got := roles(m); got != "base,layer,overlay" {
		t.Fatalf("roles %s", got)
	}
	var ref *etree.Element
	f.r.Workspaces.View(ctx, key, func(s *wsrf.Snapshot) error {
		if p := s.Property(PropManagerRef); p != nil {
			ref = p.Copy()
		}
		return nil
	})
	if ref == nil {
		t.Fatal("no vw:managerReference after CheckOut with a ManagerReference")
	}
	if got, err := wsa.ParseEPR(ref); err != nil || got.Address != mgr.Address {
		t.Fatalf("managerReference %v %v", got, err)
	}
	lay := image(m, "layer")
	whole := f.do(http.MethodGet, lay.Path, m.Token, nil)
	if whole.code != http.StatusOK || sha(whole.body) != lay.Digest || int64(len(whole.body)) != lay.Size || whole.hdr.Get("ETag") != `"`+lay.Digest+`"` {
		t.Fatalf("GET layer: %d etag %s", whole.code, whole.hdr.Get("ETag"))
	}
	part := f.do(http.MethodGet, lay.Path, m.Token, nil, "Range", "bytes=100-199")
	if part.code != http.StatusPartialContent || !bytes.Equal(part.body, whole.body[100:200]) {
		t.Fatalf("range: %d %d bytes", part.code, len(part.body))
	}
	for _, c := range []struct {
		path, token string
		code        int
	}{
		{lay.Path, "", http.StatusForbidden},
		{lay.Path, strings.Repeat("f", 32), http.StatusForbidden},
		{"/workspaces/" + key + "/files/" + f.base, m.Token, http.StatusNotFound}, // pool images are at /images
		{"/workspaces/" + key + "/files/nonsense", m.Token, http.StatusNotFound},
		{"/workspaces/" + strings.Repeat("0", 32) + "/files/" + lay.Digest, m.Token, http.StatusNotFound},
		{"/workspaces/../etc/files/" + lay.Digest, m.Token, http.StatusNotFound},
	} {
		if rs := f.do(http.MethodGet, c.path, c.token, nil); rs.code != c.code || len(rs.body) == 0 {
			t.Errorf("GET %s token %q: %d %s, want %d", c.path, c.token, rs.code, rs.body, c.code)
		}
	}
	if rs := f.do(http.MethodPost, lay.Path, m.Token, nil); rs.code != http.StatusMethodNotAllowed {
		t.Errorf("POST: %d", rs.code)
	}
	if _, _, err := f.r.CheckIn(ctx, key, CheckInRequest{Token: m.Token, OverlayDigest: image(m, "overlay").Digest, OverlaySize: image(m, "overlay").Size, MemorySize: -1}); err != nil {
		t.Fatal(err)
	}
	if f.prop(key, PropManagerRef) != "" {
		t.Fatal("managerReference kept after check-in")
	}
	if rs := f.do(http.MethodGet, lay.Path, m.Token, nil); rs.code != http.StatusConflict || !strings.Contains(string(rs.body), "CheckOut") {
		t.Fatalf("after check-in: %d %s", rs.code, rs.body)
	}
}

func TestOverlayUploadRebasedAndAdopted(t *testing.T) {
	needQemu(t)
	f := newFixture(t)
	ctx := context.Background()
	key := f.create("up", "", "")
	created := f.chain(key).OverlayDigest
	if d, _, _ := fileDigest(filepath.Join(f.r.workspaceDir(key), "disk-1.qcow2")); created == "" || d != created {
		t.Fatalf("the new workspace's overlay digest is %q, its file's %q", created, d)
	}
	if got := f.imageDigest(key, "overlay"); got != created {
		t.Fatalf("a new workspace publishes overlay digest %q, want %q", got, created)
	}
	m, err := f.r.CheckOut(ctx, key, "host-a", "", nil, &tester)
	if err != nil {
		t.Fatal(err)
	}
	changed := f.managerOverlay(key, m.Token, m, "write -P 0xab 0 64k")

	// Refusals keep nothing.
	before := f.files(key)
	if _, rs := f.upload(key, "overlay", m.Token, changed, SHA256Header, sha([]byte("other"))); rs.code != http.StatusBadRequest {
		t.Fatalf("sha mismatch: %d %s", rs.code, rs.body)
	}
	if _, rs := f.upload(key, "overlay", m.Token, bytes.Repeat([]byte{1}, 4096)); rs.code != http.StatusBadRequest || !strings.Contains(string(rs.body), "qcow2") {
		t.Fatalf("raw as overlay: %d %s", rs.code, rs.body)
	}
	if _, rs := f.upload(key, "overlay", "", changed); rs.code != http.StatusForbidden {
		t.Fatalf("no token: %d", rs.code)
	}
	req := httptest.NewRequest(http.MethodPut, "/workspaces/"+key+"/overlay", strings.NewReader("x"))
	req.Header.Set(LockTokenHeader, m.Token)
	req.ContentLength = 1 << 30
	rec := httptest.NewRecorder()
	f.r.FilesHandler().ServeHTTP(rec, req)
	if rec.Code != http.StatusRequestEntityTooLarge {
		t.Fatalf("oversized: %d", rec.Code)
	}
	if rs := f.do(http.MethodPut, "/workspaces/"+key+"/overlay", m.Token, io.MultiReader(bytes.NewReader(changed[:1000]), errReader{})); rs.code != http.StatusRequestTimeout {
		t.Fatalf("interrupted: %d", rs.code)
	}
	if after := f.files(key); strings.Join(after, ",") != strings.Join(before, ",") {
		t.Fatalf("refused uploads left files: %v → %v", before, after)
	}

	res, rs := f.upload(key, "overlay", m.Token, changed, SHA256Header, sha(changed))
	if rs.code != http.StatusOK {
		t.Fatalf("upload: %d %s", rs.code, rs.body)
	}
	pending := filepath.Join(f.r.workspaceDir(key), pendingOverlayName(res.Digest))
	if d, n, _ := fileDigest(pending); d != res.Digest || n != res.Size {
		t.Fatalf("pending file %s %d, answer %+v", d, n, res)
	}
	// A check-in that crashed after linking the upload in, before its commit: the
	// restart removes the link and keeps the upload for the manager's retry.
	if err := os.Link(pending, filepath.Join(f.r.workspaceDir(key), "disk-2.qcow2")); err != nil {
		t.Fatal(err)
	}
	os.WriteFile(filepath.Join(f.r.workspaceDir(key), uploadPrefix+"overlay-1.part"), []byte("half"), 0o600)
	f.reopen()
	if got := strings.Join(f.files(key), ","); got != "disk-1.qcow2,"+pendingOverlayName(res.Digest) {
		t.Fatalf("files after a restart mid check-in: %s", got)
	}
	// Unknown digests are refused and change nothing.
	_, _, err = f.r.CheckIn(ctx, key, CheckInRequest{Token: m.Token, OverlayDigest: sha([]byte("never")), OverlaySize: -1, MemorySize: -1})
	if !errors.Is(err, errdefs.ErrImageIntegrity) || !strings.Contains(errdefs.Advice(err), "upload it first") {
		t.Fatalf("unknown overlay: %v", err)
	}
	if _, _, err := f.r.CheckIn(ctx, key, CheckInRequest{Token: m.Token, OverlayDigest: res.Digest, OverlaySize: res.Size + 1, MemorySize: -1}); !errors.Is(err, errdefs.ErrImageIntegrity) {
		t.Fatalf("wrong size: %v", err)
	}
	if _, _, err := f.r.CheckIn(ctx, key, CheckInRequest{Token: m.Token, OverlayDigest: res.Digest, OverlaySize: res.Size, MemorySize: -1}); err != nil {
		t.Fatal(err)
	}
	c := f.chain(key)
	if c.Overlay != "disk-2.qcow2" || c.OverlayDigest != res.Digest || c.Lock != "" {
		t.Fatalf("chain after check-in %+v", c)
	}
	if got := f.files(key); strings.Join(got, ",") != "disk-2.qcow2" {
		t.Fatalf("files after check-in %v", got)
	}
	if got := f.imageDigest(key, "overlay"); got != res.Digest {
		t.Fatalf("after the check-in the workspace publishes overlay digest %q, want %q", got, res.Digest)
	}
	overlay := filepath.Join(f.r.workspaceDir(key), c.Overlay)
	basePath, _ := f.pool.Path(f.base)
	out, err := exec.Command("qemu-img", "info", "--output=json", "--backing-chain", overlay).Output()
	if err != nil {
		t.Fatal(err)
	}
	var info []struct {
		Filename string `json:"filename"`
	}
	json.Unmarshal(out, &info)
	if len(info) != 2 || info[0].Filename != overlay || info[1].Filename != basePath {
		t.Fatalf("backing chain %s", out)
	}
	for _, check := range []string{"read -P 0xab 0 64k", "read -P 0x11 64k 64k"} {
		if out, err := exec.Command("qemu-io", "-r", "-c", check, overlay).CombinedOutput(); err != nil || strings.Contains(string(out), "Pattern verification failed") {
			t.Fatalf("%s: %v %s", check, err, out)
		}
	}
	// The next check-out hands out the adopted overlay.
	m2, err := f.r.CheckOut(ctx, key, "host-b", "", nil, &tester)
	if err != nil {
		t.Fatal(err)
	}
	if image(m2, "overlay").Digest != res.Digest {
		t.Fatalf("next manifest overlay %s, want %s", image(m2, "overlay").Digest, res.Digest)
	}
}

type errReader struct{}

func (errReader) Read([]byte) (int, error) { return 0, io.ErrUnexpectedEOF }

func TestMemoryImageCheckInAndClone(t *testing.T) {
	f := newFixture(t)
	ctx := context.Background()
	key := f.create("hot", "", "")
	m, err := f.r.CheckOut(ctx, key, "host-a", "", nil, &tester)
	if err != nil {
		t.Fatal(err)
	}
	ov := image(m, "overlay")
	ram := bytes.Repeat([]byte("RAM!"), 300000)
	res, rs := f.upload(key, "memory", m.Token, ram, SHA256Header, sha(ram))
	if rs.code != http.StatusOK || res.Digest != sha(ram) || res.Size != int64(len(ram)) {
		t.Fatalf("memory upload: %d %s", rs.code, rs.body)
	}
	for _, bad := range []CheckInRequest{
		{Token: m.Token, OverlayDigest: ov.Digest, MemoryDigest: res.Digest, State: "shutdown"},
		{Token: m.Token, OverlayDigest: ov.Digest, State: "paused"},
	} {
		bad.OverlaySize, bad.MemorySize = -1, -1
		if _, _, err := f.r.CheckIn(ctx, key, bad); !errors.Is(err, errdefs.ErrBadRequest) {
			t.Fatalf("%+v: %v", bad, err)
		}
	}
	if _, _, err := f.r.CheckIn(ctx, key, CheckInRequest{Token: m.Token, OverlayDigest: ov.Digest, MemoryDigest: sha([]byte("x")), State: "paused", OverlaySize: -1, MemorySize: -1}); !errors.Is(err, errdefs.ErrImageIntegrity) {
		t.Fatalf("unknown memory: %v", err)
	}
	if _, _, err := f.r.CheckIn(ctx, key, CheckInRequest{Token: m.Token, OverlayDigest: ov.Digest, MemoryDigest: res.Digest, State: "paused", OverlaySize: -1, MemorySize: res.Size}); err != nil {
		t.Fatal(err)
	}
	if got := strings.Join(f.files(key), ","); got != "disk-1.qcow2,memory-1.save" {
		t.Fatalf("files %s", got)
	}
	if f.prop(key, PropState) != "paused" {
		t.Fatal("state")
	}

	// A restart keeps the memory image a chain names.
	os.WriteFile(filepath.Join(f.r.workspaceDir(key), "memory-9.save"), []byte("stray"), 0o600)
	os.WriteFile(filepath.Join(f.r.workspaceDir(key), pendingMemoryName(sha([]byte("p")))), []byte("p"), 0o600)
	f.reopen()
	if got := strings.Join(f.files(key), ","); got != "disk-1.qcow2,memory-1.save" {
		t.Fatalf("files after restart %s", got)
	}

	// A clone starts without it, shut down; the source keeps it.
	cl, err := f.r.Clone(ctx, key, "hot-copy", "o", time.Now().Add(time.Hour))
	if err != nil {
		t.Fatal(err)
	}
	if c := f.chain(cl.Key); c.Memory != "" || f.prop(cl.Key, PropState) != "shutdown" || strings.Join(f.files(cl.Key), ",") != "disk-1.qcow2" {
		t.Fatalf("clone chain %+v state %s files %v", c, f.prop(cl.Key, PropState), f.files(cl.Key))
	}

	m2, err := f.r.CheckOut(ctx, key, "host-b", "", nil, &tester)
	if err != nil {
		t.Fatal(err)
	}
	mem := image(m2, "memory")
	if roles(m2) != "base,layer,overlay,memory" || mem.Digest != res.Digest || mem.Format != "raw" || mem.Size != int64(len(ram)) {
		t.Fatalf("manifest %s %+v", roles(m2), mem)
	}
	if rs := f.do(http.MethodGet, mem.Path, m2.Token, nil); rs.code != http.StatusOK || !bytes.Equal(rs.body, ram) {
		t.Fatalf("GET memory: %d", rs.code)
	}
	// A pending upload survives a restart while the workspace is checked out.
	ram2 := []byte("more RAM")
	res2, _ := f.upload(key, "memory", m2.Token, ram2)
	f.reopen()
	if _, err := os.Stat(filepath.Join(f.r.workspaceDir(key), pendingMemoryName(res2.Digest))); err != nil {
		t.Fatalf("pending upload of a checked-out workspace swept: %v", err)
	}
	// Checked in without memory: dropped, and the pending upload with it.
	if _, _, err := f.r.CheckIn(ctx, key, CheckInRequest{Token: m2.Token, OverlayDigest: image(m2, "overlay").Digest, State: "shutdown", OverlaySize: -1, MemorySize: -1}); err != nil {
		t.Fatal(err)
	}
	if got := strings.Join(f.files(key), ","); got != "disk-2.qcow2" {
		t.Fatalf("files after check-in without memory %s", got)
	}
	if c := f.chain(key); c.Memory != "" || c.MemoryDigest != "" {
		t.Fatalf("chain %+v", c)
	}
	m3, err := f.r.CheckOut(ctx, key, "host-a", "", nil, &tester)
	if err != nil {
		t.Fatal(err)
	}
	if roles(m3) != "base,layer,overlay" {
		t.Fatalf("roles %s", roles(m3))
	}
}

// TestLateCheckOutCopyIsRefused: a manager that gave up on its CheckOut (no answer)
// asks again under the same RequestID and gets the same lock, checks the workspace
// back in, and a copy of the first request arriving after that locks nothing; nor
// does one the manager asked again for before it arrived.
func TestLateCheckOutCopyIsRefused(t *testing.T) {
	f := newFixture(t)
	ctx := context.Background()
	key := f.create("late", "", "")
	m, err := f.r.CheckOut(ctx, key, "host-a", "req-1", nil, &tester)
	if err != nil {
		t.Fatal(err)
	}
	again, err := f.r.CheckOut(ctx, key, "host-a", "req-1", nil, nil)
	if err != nil || again.Token != m.Token {
		t.Fatalf("asked again: %v (token %q, first %q)", err, again.Token, m.Token)
	}
	if _, _, err := f.r.CheckIn(ctx, key, CheckInRequest{Token: m.Token, OverlayDigest: image(m, "overlay").Digest, OverlaySize: -1, MemorySize: -1}); err != nil {
		t.Fatal(err)
	}
	if _, err := f.r.CheckOut(ctx, key, "host-a", "req-1", nil, &tester); !errors.Is(err, errdefs.ErrState) || !strings.Contains(err.Error(), "late copy") {
		t.Fatalf("a late copy of the check-out: %v", err)
	}
	f.wantUntouched(key)
	// The manager asks again for a lock whose request has not arrived: nothing is
	// locked, the request is withdrawn, and when it does arrive it is refused.
	if _, err := f.r.CheckOut(ctx, key, "host-a", "req-2", nil, nil); !errors.Is(err, errdefs.ErrState) || !strings.Contains(err.Error(), "withdrawn") {
		t.Fatalf("asked again for a check-out that never arrived: %v", err)
	}
	f.wantUntouched(key)
	if _, err := f.r.CheckOut(ctx, key, "host-a", "req-2", nil, &tester); !errors.Is(err, errdefs.ErrState) || !strings.Contains(err.Error(), "late copy") {
		t.Fatalf("the withdrawn check-out arriving: %v", err)
	}
	f.wantUntouched(key)
	// A new check-out, under another name, is a check-out like any.
	if _, err := f.r.CheckOut(ctx, key, "host-a", "req-3", nil, &tester); err != nil {
		t.Fatalf("a new check-out after the late copies: %v", err)
	}
}

// TestWithdrawalMeetingAnotherHostsLockHolds: a manager that gave up on its CheckOut
// asks again while another host holds the workspace; told it is locked there, it drops
// its deploy. Its first request, arriving once that host has checked the workspace
// in, must not lock it for nobody.
func TestWithdrawalMeetingAnotherHostsLockHolds(t *testing.T) {
	f := newFixture(t)
	ctx := context.Background()
	key := f.create("contested", "", "")
	mb, err := f.r.CheckOut(ctx, key, "host-b", "req-b", nil, &tester)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := f.r.CheckOut(ctx, key, "host-a", "req-a", nil, nil); !errors.Is(err, errdefs.ErrLocked) {
		t.Fatalf("host-a asking again while host-b holds the workspace: %v", err)
	}
	if _, _, err := f.r.CheckIn(ctx, key, CheckInRequest{Token: mb.Token, OverlayDigest: image(mb, "overlay").Digest, OverlaySize: -1, MemorySize: -1}); err != nil {
		t.Fatal(err)
	}
	if _, err := f.r.CheckOut(ctx, key, "host-a", "req-a", nil, &tester); !errors.Is(err, errdefs.ErrState) || !strings.Contains(err.Error(), "late copy") {
		t.Fatalf("host-a's withdrawn check-out arriving after host-b checked in: %v", err)
	}
	f.wantUntouched(key)
}
