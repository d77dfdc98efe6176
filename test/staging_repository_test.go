package test

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/beevik/etree"

	"github.com/vws-grid/vws/internal/client"
	"github.com/vws-grid/vws/internal/dialect"
	"github.com/vws-grid/vws/internal/server"
	"github.com/vws-grid/vws/internal/vwsns"
	"github.com/vws-grid/vws/internal/wsa"
	"github.com/vws-grid/vws/internal/xsdtest"
	"github.com/vws-grid/vws/repository"
	"github.com/vws-grid/vws/test/harness"
)

// startStaging runs a real server with the Repository's workspace file handler mounted
// at /workspaces/, where vws serve mounts it.
func startStaging(t *testing.T) *harness.Server {
	t.Helper()
	for _, tool := range []string{"qemu-img", "qemu-io"} {
		if _, err := exec.LookPath(tool); err != nil {
			t.Skipf("%s not found (Debian: qemu-utils); test/setup.sh installs it", tool)
		}
	}
	dir := t.TempDir()
	srv, err := server.New(context.Background(), server.Config{DataDir: dir, Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
	if err != nil {
		t.Fatal(err)
	}
	mux := http.NewServeMux()
	mux.Handle("/workspaces/", srv.Repository.FilesHandler())
	mux.Handle("/", srv.Handler())
	hs := httptest.NewServer(mux)
	srv.SetBaseURL(hs.URL)
	t.Cleanup(func() {
		hs.Close()
		srv.Close()
	})
	return &harness.Server{URL: hs.URL, DataDir: dir, Srv: srv}
}

type stagedImage struct {
	Role, Digest, Location string
	Size                   int64
}

type stagedManifest struct {
	Token  string
	Images []stagedImage
	el     *etree.Element
}

func (m stagedManifest) roles() string {
	var r []string
	for _, i := range m.Images {
		r = append(r, i.Role)
	}
	return strings.Join(r, ",")
}

func (m stagedManifest) image(role string) stagedImage {
	for _, i := range m.Images {
		if i.Role == role {
			return i
		}
	}
	return stagedImage{}
}

// checkOut calls CheckOut over SOAP, with the manager's EPR when mgr is set.
func stagingCheckOut(t *testing.T, epr *wsa.EPR, host string, mgr *wsa.EPR) stagedManifest {
	t.Helper()
	body := etree.NewElement("vw:CheckOut")
	body.CreateAttr("xmlns:vw", vwsns.Workspace)
	body.CreateElement("vw:Host").SetText(host)
	if mgr != nil {
		mgr.ChildElement(body, "vw:ManagerReference", "wsa")
	}
	body.CreateElement("vw:OnBehalfOf").SetText("/O=Grid/OU=vws/CN=tester")
	resp, err := client.New(nil).Invoke(context.Background(), epr, "CheckOut", body)
	if err != nil {
		t.Fatal(err)
	}
	m := stagedManifest{el: resp, Token: resp.FindElement("Lock/Token").Text()}
	base, _ := url.Parse(epr.Address)
	for _, img := range resp.FindElements("Manifest/Image") {
		si := stagedImage{Role: img.SelectElement("Role").Text(), Digest: img.SelectElement("Digest").Text()}
		si.Size, _ = strconv.ParseInt(img.SelectElement("SizeBytes").Text(), 10, 64)
		if l := img.SelectElement("Location"); l != nil {
			loc, _ := url.Parse(l.Text())
			si.Location = base.ResolveReference(loc).String()
		}
		m.Images = append(m.Images, si)
	}
	return m
}

func stagingHTTP(t *testing.T, method, u, token string, body io.Reader, hdr ...string) (int, []byte) {
	t.Helper()
	req, err := http.NewRequest(method, u, body)
	if err != nil {
		t.Fatal(err)
	}
	if token != "" {
		req.Header.Set(repository.LockTokenHeader, token)
	}
	for i := 0; i+1 < len(hdr); i += 2 {
		req.Header.Set(hdr[i], hdr[i+1])
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, b
}

func stagingSHA(b []byte) string {
	s := sha256.Sum256(b)
	return "sha256:" + hex.EncodeToString(s[:])
}

func stagingUpload(t *testing.T, s *harness.Server, key, kind, token string, data []byte, hdr ...string) (int, repository.UploadResult, string) {
	t.Helper()
	code, body := stagingHTTP(t, http.MethodPut, s.URL+"/workspaces/"+key+"/"+kind, token, bytes.NewReader(data), hdr...)
	var res repository.UploadResult
	if code == http.StatusOK {
		if err := json.Unmarshal(body, &res); err != nil {
			t.Fatalf("upload answer %s: %v", body, err)
		}
	}
	return code, res, string(body)
}

func stagingFiles(t *testing.T, s *harness.Server, key string) string {
	t.Helper()
	entries, _ := os.ReadDir(filepath.Join(s.DataDir, "workspaces", key))
	var out []string
	for _, e := range entries {
		out = append(out, e.Name())
	}
	sort.Strings(out)
	return strings.Join(out, ",")
}

func stagingRun(t *testing.T, args ...string) string {
	t.Helper()
	out, err := exec.Command(args[0], args[1:]...).CombinedOutput()
	if err != nil || strings.Contains(string(out), "Pattern verification failed") {
		t.Fatalf("%v: %v\n%s", args, err, out)
	}
	return string(out)
}

// TestStagingOverHTTP plays a VW Manager against a real server: check out a
// direct-kernel-boot workspace with a clone layer, fetch every image of the manifest
// from its Location, upload a changed overlay and a memory image, check in paused, check
// out again, and check in without memory.
func TestStagingOverHTTP(t *testing.T) {
	s := startStaging(t)
	ctx := context.Background()
	base := importImage(t, s, rawBase(t, 1<<20, 0x11), "name=base&os=linux&arch=x86_64")
	kernelFile := filepath.Join(t.TempDir(), "vmlinuz")
	os.WriteFile(kernelFile, bytes.Repeat([]byte("KERNEL"), 5000), 0o644)
	initrdFile := filepath.Join(t.TempDir(), "initrd.img")
	os.WriteFile(initrdFile, bytes.Repeat([]byte("INITRD"), 3000), 0o644)
	kernel := importImage(t, s, kernelFile, "name=vmlinuz")
	initrd := importImage(t, s, initrdFile, "name=initrd")
	boot := `<sw:kernel><sw:image><sw:name>vmlinuz</sw:name></sw:image><sw:initrd><sw:digest>` + initrd + `</sw:digest></sw:initrd></sw:kernel>` +
		`<sw:image><sw:name>base</sw:name></sw:image>`

	// An unknown kernel is faulted like an unknown base image, and creates nothing.
	_, err := create(t, s, dialect.WSRF12, vmDescription(`<sw:kernel><sw:image><sw:name>no-such-kernel</sw:name></sw:image></sw:kernel><sw:image><sw:name>base</sw:name></sw:image>`), "nok", "")
	if fe := faultOf(t, err); fe.Type != "WorkspaceMetadataFault" || !strings.Contains(fe.Description, "no-such-kernel") || !strings.Contains(fe.Description, "vws image import") {
		t.Fatalf("unknown kernel: %s: %s", fe.Type, fe.Description)
	}
	epr, err := create(t, s, dialect.WSRF12, vmDescription(boot), "kboot", "")
	if err != nil {
		t.Fatal(err)
	}
	key := keyOf(epr)
	// The pool refuses to remove an image a workspace boots from.
	if code, body := stagingHTTP(t, http.MethodDelete, s.URL+"/images/vmlinuz", "", nil); code != http.StatusConflict {
		t.Fatalf("DELETE a kernel in use: %d %s", code, body)
	}
	// A clone leaves a frozen layer under the workspace.
	cloneResp, err := wsCall(t, epr, "Clone", [2]string{"Name", "kboot-copy"})
	if err != nil {
		t.Fatal(err)
	}
	cloneEPR, _ := wsa.ParseEPR(cloneResp.SelectElement("WorkspaceReference"))

	mgr := &wsa.EPR{Version: wsa.V200508, Address: "http://host-a.example.org:8443/wsrf/services/WorkspaceManagerService"}
	m := stagingCheckOut(t, epr, "host-a.example.org", mgr)
	if _, err := exec.LookPath("xmllint"); err == nil {
		xsdtest.Validate(t, typesSchema(t, dialect.WSRF12, vwsns.WorkspaceService), m.el)
	}
	if got := m.roles(); got != "base,kernel,initrd,layer,overlay" {
		t.Fatalf("manifest roles %s", got)
	}
	if m.image("kernel").Digest != kernel || m.image("initrd").Digest != initrd || m.image("base").Digest != base {
		t.Fatalf("manifest %+v", m.Images)
	}
	refs, err := client.New(nil).GetResourceProperty(ctx, epr, wsa.QName{Space: vwsns.Workspace, Local: "managerReference"})
	if err != nil || len(refs) != 1 {
		t.Fatalf("managerReference: %v %v", refs, err)
	}
	if got, err := wsa.ParseEPR(refs[0]); err != nil || got.Address != mgr.Address {
		t.Fatalf("managerReference %v %v", got, err)
	}

	// Every image comes from its Location, whole and by range.
	cache := t.TempDir()
	local := map[string]string{}
	for _, img := range m.Images {
		if img.Location == "" {
			t.Fatalf("%s has no Location", img.Role)
		}
		u, _ := url.Parse(img.Location)
		want := "/images/" + img.Digest
		if img.Role == "layer" || img.Role == "overlay" {
			want = "/workspaces/" + key + "/files/" + img.Digest
		}
		if u.Path != want || !strings.HasPrefix(img.Location, s.URL) {
			t.Fatalf("%s Location %s, want %s%s", img.Role, img.Location, s.URL, want)
		}
		code, whole := stagingHTTP(t, http.MethodGet, img.Location, m.Token, nil)
		if code != http.StatusOK || stagingSHA(whole) != img.Digest || int64(len(whole)) != img.Size {
			t.Fatalf("GET %s: %d, %d bytes", img.Role, code, len(whole))
		}
		code, part := stagingHTTP(t, http.MethodGet, img.Location, m.Token, nil, "Range", "bytes=1000-4999")
		if code != http.StatusPartialContent || !bytes.Equal(part, whole[1000:5000]) {
			t.Fatalf("GET %s range: %d, %d bytes", img.Role, code, len(part))
		}
		local[img.Role] = filepath.Join(cache, img.Role)
		os.WriteFile(local[img.Role], whole, 0o644)
	}
	for _, tok := range []string{"", strings.Repeat("a", 32)} {
		if code, body := stagingHTTP(t, http.MethodGet, m.image("overlay").Location, tok, nil); code != http.StatusForbidden {
			t.Fatalf("GET overlay with token %q: %d %s", tok, code, body)
		}
	}

	// The manager runs the workspace on its own copies and changes the disk.
	stagingRun(t, "qemu-img", "rebase", "-u", "-F", "raw", "-b", local["base"], local["layer"])
	stagingRun(t, "qemu-img", "rebase", "-u", "-F", "qcow2", "-b", local["layer"], local["overlay"])
	stagingRun(t, "qemu-io", "-c", "write -P 0xab 0 64k", local["overlay"])
	changed, _ := os.ReadFile(local["overlay"])

	before := stagingFiles(t, s, key)
	if code, _, body := stagingUpload(t, s, key, "overlay", m.Token, changed, repository.SHA256Header, stagingSHA([]byte("something else"))); code != http.StatusBadRequest || !strings.Contains(body, "nothing was kept") {
		t.Fatalf("sha mismatch: %d %s", code, body)
	}
	if code, _, _ := stagingUpload(t, s, key, "overlay", strings.Repeat("b", 32), changed); code != http.StatusForbidden {
		t.Fatalf("upload with a wrong token: %d", code)
	}
	stagingInterruptedUpload(t, s, key, m.Token)
	if after := stagingFiles(t, s, key); after != before {
		t.Fatalf("refused or interrupted uploads left files: %s → %s", before, after)
	}
	code, ov, body := stagingUpload(t, s, key, "overlay", m.Token, changed, repository.SHA256Header, stagingSHA(changed))
	if code != http.StatusOK {
		t.Fatalf("overlay upload: %d %s", code, body)
	}
	ram := make([]byte, 3<<20)
	rand.Read(ram)
	code, mem, body := stagingUpload(t, s, key, "memory", m.Token, ram, repository.SHA256Header, stagingSHA(ram))
	if code != http.StatusOK || mem.Digest != stagingSHA(ram) || mem.Size != int64(len(ram)) {
		t.Fatalf("memory upload: %d %s", code, body)
	}

	if _, err := wsCall(t, epr, "CheckIn", [2]string{"LockToken", m.Token}, [2]string{"OverlayDigest", ov.Digest},
		[2]string{"OverlaySizeBytes", strconv.FormatInt(ov.Size, 10)}, [2]string{"MemoryDigest", mem.Digest},
		[2]string{"MemorySizeBytes", strconv.FormatInt(mem.Size, 10)}, [2]string{"State", "paused"}); err != nil {
		t.Fatal(err)
	}
	if code, body := stagingHTTP(t, http.MethodGet, m.image("layer").Location, m.Token, nil); code != http.StatusConflict {
		t.Fatalf("GET after check-in: %d %s", code, body)
	}
	if refs, err := client.New(nil).GetResourceProperty(ctx, epr, wsa.QName{Space: vwsns.Workspace, Local: "managerReference"}); err != nil || len(refs) != 0 {
		t.Fatalf("managerReference after check-in: %v %v", refs, err)
	}
	// The repository's overlay stands on the repository's chain and holds the write.
	if got := stagingFiles(t, s, key); got != "disk-3.qcow2,memory-1.save" {
		t.Fatalf("workspace files %s", got)
	}
	overlay := filepath.Join(s.DataDir, "workspaces", key, "disk-3.qcow2")
	chain := qemuImgChain(t, overlay)
	basePath := filepath.Join(s.DataDir, "images", strings.Replace(base, ":", "-", 1))
	if len(chain) != 3 || !strings.HasPrefix(chain[1], filepath.Join(s.DataDir, "layers")+"/") || chain[2] != basePath {
		t.Fatalf("backing chain %v", chain)
	}
	stagingRun(t, "qemu-io", "-r", "-c", "read -P 0xab 0 64k", "-c", "read -P 0x11 64k 64k", overlay)

	// Next check-out: the memory image is listed and served byte for byte.
	m2 := stagingCheckOut(t, epr, "host-b.example.org", nil)
	if got := m2.roles(); got != "base,kernel,initrd,layer,overlay,memory" {
		t.Fatalf("roles %s", got)
	}
	if m2.image("overlay").Digest != ov.Digest || m2.image("memory").Digest != mem.Digest {
		t.Fatalf("manifest %+v", m2.Images)
	}
	if code, got := stagingHTTP(t, http.MethodGet, m2.image("memory").Location, m2.Token, nil); code != http.StatusOK || !bytes.Equal(got, ram) {
		t.Fatalf("GET memory: %d, %d bytes", code, len(got))
	}
	// Checked in without memory (resumed and shut down elsewhere): the memory image goes.
	if _, err := wsCall(t, epr, "CheckIn", [2]string{"LockToken", m2.Token}, [2]string{"OverlayDigest", ov.Digest}, [2]string{"State", "shutdown"}); err != nil {
		t.Fatal(err)
	}
	if got := stagingFiles(t, s, key); got != "disk-3.qcow2" {
		t.Fatalf("files after check-in without memory: %s", got)
	}
	if got := stagingCheckOut(t, epr, "host-c", nil).roles(); got != "base,kernel,initrd,layer,overlay" {
		t.Fatalf("roles %s", got)
	}

	// Once no workspace boots from it, the kernel may be removed.
	if err := client.New(nil).Destroy(ctx, cloneEPR); err != nil {
		t.Fatal(err)
	}
	if code, body := stagingHTTP(t, http.MethodDelete, s.URL+"/images/vmlinuz", "", nil); code != http.StatusConflict {
		t.Fatalf("DELETE a kernel still in use by the source: %d %s", code, body)
	}
}

// interruptedUpload sends half an upload and closes the connection; the server must
// keep nothing.
func stagingInterruptedUpload(t *testing.T, s *harness.Server, key, token string) {
	t.Helper()
	u, _ := url.Parse(s.URL)
	conn, err := net.Dial("tcp", u.Host)
	if err != nil {
		t.Fatal(err)
	}
	fmt.Fprintf(conn, "PUT /workspaces/%s/memory HTTP/1.1\r\nHost: %s\r\n%s: %s\r\nContent-Length: %d\r\n\r\n", key, u.Host, repository.LockTokenHeader, token, 8<<20)
	conn.Write(bytes.Repeat([]byte{7}, 1<<20))
	// Wait until the server has the part file, then hang up.
	dir := filepath.Join(s.DataDir, "workspaces", key)
	deadline := time.Now().Add(5 * time.Second)
	for !strings.Contains(stagingFiles(t, s, key), "upload-") && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond)
	}
	conn.Close()
	for time.Now().Before(deadline) {
		if !strings.Contains(stagingFiles(t, s, key), "upload-") {
			return
		}
		time.Sleep(10 * time.Millisecond)
	}
	t.Fatalf("an interrupted upload left %s in %s", stagingFiles(t, s, key), dir)
}
