package test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/beevik/etree"

	"github.com/vws-grid/vws/internal/audit"
	"github.com/vws-grid/vws/internal/client"
	"github.com/vws-grid/vws/internal/dialect"
	"github.com/vws-grid/vws/internal/server"
	"github.com/vws-grid/vws/internal/tmpfstest"
	"github.com/vws-grid/vws/internal/vwsns"
	"github.com/vws-grid/vws/internal/wsa"
	"github.com/vws-grid/vws/internal/xsdtest"
	"github.com/vws-grid/vws/test/harness"
)

// importImage streams a file into the pool over HTTP, as `vws image import` does.
func importImage(t *testing.T, s *harness.Server, file, query string) string {
	t.Helper()
	f, err := os.Open(file)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	req, _ := http.NewRequest(http.MethodPut, s.URL+"/images?"+query, f)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != http.StatusCreated && resp.StatusCode != http.StatusOK {
		t.Fatalf("import: HTTP %d: %s", resp.StatusCode, body)
	}
	var out struct{ Digest string }
	if err := json.Unmarshal(body, &out); err != nil || out.Digest == "" {
		t.Fatalf("import answer %s: %v", body, err)
	}
	return out.Digest
}

// rawBase makes a small raw base image with recognisable content.
func rawBase(t *testing.T, size int, fill byte) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), "base.raw")
	if err := os.WriteFile(p, bytes.Repeat([]byte{fill}, size), 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}

func factoryEPR(s *harness.Server, d *dialect.Dialect) *wsa.EPR {
	return &wsa.EPR{Version: d.WSA, Address: s.ServiceURL(vwsns.FactoryService)}
}

// create calls Factory Create over SOAP with a description and returns the EPR;
// extra are further children of Create (XML, fac: declared).
func create(t *testing.T, s *harness.Server, d *dialect.Dialect, desc, name, lifetime string, extra ...string) (*wsa.EPR, error) {
	t.Helper()
	doc := etree.NewDocument()
	if err := doc.ReadFromString(desc); err != nil {
		t.Fatal(err)
	}
	body := etree.NewElement("fac:Create")
	body.CreateAttr("xmlns:fac", vwsns.Factory)
	body.AddChild(doc.Root())
	if name != "" {
		body.CreateElement("fac:Name").SetText(name)
	}
	if lifetime != "" {
		body.CreateElement("fac:RequestedLifetime").SetText(lifetime)
	}
	for _, x := range extra {
		el := etree.NewDocument()
		if err := el.ReadFromString(`<w xmlns:fac="` + vwsns.Factory + `">` + x + `</w>`); err != nil {
			t.Fatal(err)
		}
		for _, c := range el.Root().ChildElements() {
			body.AddChild(wsa.Detach(c))
		}
	}
	resp, err := client.New(nil).Invoke(context.Background(), factoryEPR(s, d), "Create", body)
	if err != nil {
		return nil, err
	}
	return wsa.ParseEPR(resp.SelectElement("WorkspaceReference"))
}

func vmDescription(image string, extra ...string) string {
	return `<vw:virtualWorkspace xmlns:vw="` + vwsns.Workspace + `" xmlns:hw="` + vwsns.Hardware + `" xmlns:sw="` + vwsns.Software + `">
  <vw:category>vm</vw:category>
  <hw:hardware><hw:RAM><hw:size>256</hw:size></hw:RAM><hw:CPU><hw:count>1</hw:count></hw:CPU></hw:hardware>
  <sw:software>` + image + `</sw:software>` + strings.Join(extra, "") + `
</vw:virtualWorkspace>`
}

func faultOf(t *testing.T, err error) *client.FaultError {
	t.Helper()
	var fe *client.FaultError
	if !errors.As(err, &fe) {
		t.Fatalf("want a SOAP fault, got %v", err)
	}
	return fe
}

func qemuImgChain(t *testing.T, file string) []string {
	t.Helper()
	if _, err := exec.LookPath("qemu-img"); err != nil {
		t.Skip("qemu-img not found (Debian: qemu-utils); test/setup.sh installs it")
	}
	out, err := exec.Command("qemu-img", "info", "--output=json", "--backing-chain", file).Output()
	if err != nil {
		t.Fatalf("qemu-img info %s: %v", file, err)
	}
	var chain []struct {
		Filename string `json:"filename"`
	}
	if err := json.Unmarshal(out, &chain); err != nil {
		t.Fatal(err)
	}
	var files []string
	for _, c := range chain {
		files = append(files, c.Filename)
	}
	if out, err := exec.Command("qemu-img", "check", file).CombinedOutput(); err != nil {
		t.Fatalf("qemu-img check %s: %v\n%s", file, err, out)
	}
	return files
}

func keyOf(epr *wsa.EPR) string {
	if k := epr.Reference(vwsns.Workspace, "WorkspaceKey"); k != nil {
		return strings.TrimSpace(k.Text())
	}
	return ""
}

func TestCreateCloneDestroyOverSOAP(t *testing.T) {
	s := harness.Start(t)
	digest := importImage(t, s, rawBase(t, 1<<20, 0xab), "name=tiny&os=linux/debian/12&kernel=6.1&arch=x86_64")
	for _, d := range dialect.Dialects {
		t.Run(d.Name, func(t *testing.T) {
			epr, err := create(t, s, d, vmDescription(`<sw:image><sw:name>tiny</sw:name></sw:image>`), "w-"+d.Name, "PT2H")
			if err != nil {
				t.Fatal(err)
			}
			if epr.Version != d.WSA {
				t.Fatalf("EPR in %v, asked in %v", epr.Version, d.WSA)
			}
			c := client.New(nil)
			got, err := c.GetMultipleResourceProperties(context.Background(), epr,
				[]wsa.QName{{Space: vwsns.Workspace, Local: "name"}, {Space: vwsns.Workspace, Local: "state"}, {Space: vwsns.Workspace, Local: "deployment"}})
			if err != nil {
				t.Fatal(err)
			}
			var vals []string
			for _, g := range got {
				vals = append(vals, g.Text())
			}
			if strings.Join(vals, ",") != "w-"+d.Name+",shutdown,in-repository" {
				t.Fatalf("properties %v", vals)
			}
			// The description's lifeCycle follows SetTerminationTime.
			want := time.Now().Add(3 * time.Hour).UTC().Truncate(time.Millisecond)
			if _, _, err := c.SetTerminationTime(context.Background(), epr, &want); err != nil {
				t.Fatal(err)
			}
			lc, err := c.GetResourceProperty(context.Background(), epr, wsa.QName{Space: vwsns.Workspace, Local: "lifeCycle"})
			if err != nil || len(lc) != 1 || lc[0].SelectElement("terminationTime") == nil ||
				lc[0].SelectElement("terminationTime").Text() != want.Format("2006-01-02T15:04:05.000Z") {
				t.Fatalf("lifeCycle after SetTerminationTime: %v %v", lc, err)
			}

			key := keyOf(epr)
			overlay := filepath.Join(s.DataDir, "workspaces", key, "disk-1.qcow2")
			base := filepath.Join(s.DataDir, "images", strings.Replace(digest, ":", "-", 1))
			if chain := qemuImgChain(t, overlay); len(chain) != 2 || chain[1] != base {
				t.Fatalf("overlay chain %v, want [overlay, %s]", chain, base)
			}

			// Clone: both end on fresh overlays above one shared frozen layer.
			body := etree.NewElement("vw:Clone")
			body.CreateAttr("xmlns:vw", vwsns.Workspace)
			body.CreateElement("vw:Name").SetText("w-" + d.Name + "-copy")
			resp, err := c.Invoke(context.Background(), epr, "Clone", body)
			if err != nil {
				t.Fatal(err)
			}
			cloneEPR, err := wsa.ParseEPR(resp.SelectElement("WorkspaceReference"))
			if err != nil {
				t.Fatal(err)
			}
			cloneKey := keyOf(cloneEPR)
			srcChain := qemuImgChain(t, filepath.Join(s.DataDir, "workspaces", key, "disk-2.qcow2"))
			cloneChain := qemuImgChain(t, filepath.Join(s.DataDir, "workspaces", cloneKey, "disk-1.qcow2"))
			if len(srcChain) != 3 || len(cloneChain) != 3 || srcChain[1] != cloneChain[1] || cloneChain[2] != base {
				t.Fatalf("chains: source %v clone %v", srcChain, cloneChain)
			}
			names, err := c.GetResourceProperty(context.Background(), cloneEPR, wsa.QName{Space: vwsns.Workspace, Local: "name"})
			if err != nil || len(names) != 1 || names[0].Text() != "w-"+d.Name+"-copy" {
				t.Fatalf("clone name: %v %v", names, err)
			}

			// Destroy both: files and the shared layer go.
			for _, e := range []*wsa.EPR{epr, cloneEPR} {
				if err := c.Destroy(context.Background(), e); err != nil {
					t.Fatal(err)
				}
			}
			for _, k := range []string{key, cloneKey} {
				if _, err := os.Stat(filepath.Join(s.DataDir, "workspaces", k)); !os.IsNotExist(err) {
					t.Errorf("workspace %s files remain", k)
				}
			}
			waitEmpty(t, filepath.Join(s.DataDir, "layers"))
		})
	}
}

func waitEmpty(t *testing.T, dir string) {
	t.Helper()
	for i := 0; i < 100; i++ {
		entries, _ := os.ReadDir(dir)
		if len(entries) == 0 {
			return
		}
		if i == 99 {
			t.Fatalf("%s still holds %d files", dir, len(entries))
		}
		sleepMs(20)
	}
}

func TestCreateBadInputChangesNothing(t *testing.T) {
	s := harness.Start(t)
	importImage(t, s, rawBase(t, 1<<20, 1), "name=deb-a&os=linux/debian/12&arch=x86_64")
	importImage(t, s, rawBase(t, 1<<20, 2), "name=deb-b&os=linux/debian/12&arch=x86_64")
	d := dialect.WSRF12
	if _, err := create(t, s, d, vmDescription(`<sw:image><sw:name>deb-a</sw:name></sw:image>`), "taken", ""); err != nil {
		t.Fatal(err)
	}
	cases := []struct {
		name, desc, wsName, lifetime string
		fault, says                  string
		extra                        []string
	}{
		{"schema-invalid RAM", strings.Replace(vmDescription(`<sw:image><sw:name>deb-a</sw:name></sw:image>`), "<hw:size>256</hw:size>", "<hw:size>-5</hw:size>", 1),
			"", "", "WorkspaceMetadataFault", "hw:size", nil},
		{"unknown element", vmDescription(`<sw:image><sw:name>deb-a</sw:name></sw:image>`, `<vw:color>red</vw:color>`),
			"", "", "WorkspaceMetadataFault", "color", nil},
		{"unknown image", vmDescription(`<sw:image><sw:name>nope</sw:name></sw:image>`), "", "", "WorkspaceMetadataFault", "nope", nil},
		{"ambiguous software", vmDescription(`<sw:os><sw:family>linux</sw:family><sw:distribution>debian</sw:distribution></sw:os>`),
			"", "", "WorkspaceMetadataFault", "deb-a", nil},
		{"duplicate name", vmDescription(`<sw:image><sw:name>deb-a</sw:name></sw:image>`), "taken", "", "WorkspaceMetadataFault", "already exists", nil},
		{"path-like name", vmDescription(`<sw:image><sw:name>deb-a</sw:name></sw:image>`), "../../etc", "", "WorkspaceMetadataFault", "name", nil},
		{"oversized name", vmDescription(`<sw:image><sw:name>deb-a</sw:name></sw:image>`), strings.Repeat("n", 300), "", "WorkspaceMetadataFault", "name", nil},
		{"negative lifetime", vmDescription(`<sw:image><sw:name>deb-a</sw:name></sw:image>`), "", "-PT1H", "WorkspaceMetadataFault", "positive", nil},
		{"malformed lifetime", vmDescription(`<sw:image><sw:name>deb-a</sw:name></sw:image>`), "", "P1X", "WorkspaceMetadataFault", "RequestedLifetime", nil},
		{"zero lifetime", vmDescription(`<sw:image><sw:name>deb-a</sw:name></sw:image>`), "", "PT0S", "WorkspaceMetadataFault", "positive", nil},
		// Which of two the caller meant would be a guess.
		{"two names", vmDescription(`<sw:image><sw:name>deb-a</sw:name></sw:image>`), "one", "", "WorkspaceMetadataFault", "more than once",
			[]string{`<fac:Name>two</fac:Name>`}},
		{"two descriptions", vmDescription(`<sw:image><sw:name>deb-a</sw:name></sw:image>`), "", "", "WorkspaceMetadataFault", "more than once",
			[]string{vmDescription(`<sw:image><sw:name>deb-b</sw:name></sw:image>`)}},
		{"a lifetime and a termination time", vmDescription(`<sw:image><sw:name>deb-a</sw:name></sw:image>`), "", "PT1H", "WorkspaceMetadataFault", "both",
			[]string{`<fac:RequestedTerminationTime>2099-01-01T00:00:00Z</fac:RequestedTerminationTime>`}},
		{"an element Create has not", vmDescription(`<sw:image><sw:name>deb-a</sw:name></sw:image>`), "", "", "WorkspaceMetadataFault", "not an element of Create",
			[]string{`<x:Name xmlns:x="urn:wrong">n</x:Name>`}},
	}
	before := listing(t, s)
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			_, err := create(t, s, d, c.desc, c.wsName, c.lifetime, c.extra...)
			fe := faultOf(t, err)
			if fe.Type != c.fault || !strings.Contains(strings.ToLower(fe.Description), strings.ToLower(c.says)) {
				t.Fatalf("got %s: %s; want %s mentioning %q", fe.Type, fe.Description, c.fault, c.says)
			}
			if after := listing(t, s); after != before {
				t.Fatalf("a refused create changed the repository:\n%s\n%s", before, after)
			}
		})
	}
}

// listing is every workspace and every file under the data directory but the database.
func listing(t *testing.T, s *harness.Server) string {
	t.Helper()
	var b strings.Builder
	for _, sub := range []string{"workspaces", "layers", "images"} {
		filepath.WalkDir(filepath.Join(s.DataDir, sub), func(p string, de os.DirEntry, err error) error {
			if err == nil {
				fmt.Fprintln(&b, strings.TrimPrefix(p, s.DataDir))
			}
			return nil
		})
	}
	fmt.Fprintln(&b, len(s.Srv.Repository.Workspaces.Keys()))
	return b.String()
}

func sleepMs(n int) { time.Sleep(time.Duration(n) * time.Millisecond) }

func wsCall(t *testing.T, epr *wsa.EPR, op string, children ...[2]string) (*etree.Element, error) {
	t.Helper()
	body := etree.NewElement("vw:" + op)
	body.CreateAttr("xmlns:vw", vwsns.Workspace)
	for _, c := range children {
		body.CreateElement("vw:" + c[0]).SetText(c[1])
	}
	return client.New(nil).Invoke(context.Background(), epr, op, body)
}

// TestCheckOutLocksAndStates drives the manager hand-over over SOAP: one host at a
// time, operations refused in the wrong state, the lock token required throughout.
func TestCheckOutLocksAndStates(t *testing.T) {
	s := harness.Start(t)
	importImage(t, s, rawBase(t, 1<<20, 7), "name=img&os=linux&arch=x86_64")
	epr, err := create(t, s, dialect.WSRF12, vmDescription(`<sw:image><sw:name>img</sw:name></sw:image>`), "held", "")
	if err != nil {
		t.Fatal(err)
	}
	m, err := wsCall(t, epr, "CheckOut", [2]string{"Host", "host-a.example.org"}, onBehalf)
	if err != nil {
		t.Fatal(err)
	}
	xsdtest.Validate(t, typesSchema(t, dialect.WSRF12, vwsns.WorkspaceService), m)
	manifest := m.SelectElement("Manifest")
	token := m.FindElement("Lock/Token").Text()
	var roles []string
	overlayDigest := ""
	for _, img := range manifest.SelectElements("Image") {
		roles = append(roles, img.SelectElement("Role").Text())
		if img.SelectElement("Role").Text() == "overlay" {
			overlayDigest = img.SelectElement("Digest").Text()
		}
	}
	if strings.Join(roles, ",") != "base,overlay" || m.SelectElement("virtualWorkspace") == nil || manifest.SelectElement("Signature") == nil {
		t.Fatalf("manifest: %v", roles)
	}
	c := client.New(nil)
	props := func() string {
		got, err := c.GetMultipleResourceProperties(context.Background(), epr, []wsa.QName{
			{Space: vwsns.Workspace, Local: "state"}, {Space: vwsns.Workspace, Local: "deployment"}, {Space: vwsns.Workspace, Local: "host"}})
		if err != nil {
			t.Fatal(err)
		}
		var v []string
		for _, g := range got {
			v = append(v, g.Text())
		}
		return strings.Join(v, ",")
	}
	if got := props(); got != "shutdown,staging,host-a.example.org" {
		t.Fatalf("after check-out: %s", got)
	}

	refusals := []struct {
		name  string
		call  func() error
		fault string
		says  string
	}{
		{"second host", func() error { _, err := wsCall(t, epr, "CheckOut", [2]string{"Host", "host-b"}, onBehalf); return err }, "WorkspaceLockedFault", "host-a"},
		{"clone while staged", func() error { _, err := wsCall(t, epr, "Clone"); return err }, "WorkspaceStateFault", "staging"},
		{"report without the token", func() error {
			_, err := wsCall(t, epr, "ReportState", [2]string{"LockToken", strings.Repeat("x", 32)}, [2]string{"Host", "host-a.example.org"},
				[2]string{"State", "running"}, [2]string{"ObservedAt", "2026-01-01T00:00:00Z"})
			return err
		}, "WorkspaceLockedFault", "lock token"},
		{"check-in of an overlay never uploaded", func() error {
			_, err := wsCall(t, epr, "CheckIn", [2]string{"LockToken", token}, [2]string{"OverlayDigest", "sha256:" + strings.Repeat("0", 64)})
			return err
		}, "ImageIntegrityFault", "upload"},
	}
	for _, r := range refusals {
		before := props()
		fe := faultOf(t, r.call())
		if fe.Type != r.fault || !strings.Contains(fe.Description, r.says) {
			t.Errorf("%s: %s: %s (want %s mentioning %q)", r.name, fe.Type, fe.Description, r.fault, r.says)
		}
		if after := props(); after != before {
			t.Errorf("%s changed the workspace: %s → %s", r.name, before, after)
		}
	}
	if _, err := wsCall(t, epr, "ReportState", [2]string{"LockToken", token}, [2]string{"Host", "host-a.example.org"},
		[2]string{"State", "running"}, [2]string{"Deployment", "deployed"}, [2]string{"ObservedAt", "2026-01-01T00:00:00Z"}); err != nil {
		t.Fatal(err)
	}
	if got := props(); got != "running,deployed,host-a.example.org" {
		t.Fatalf("after report: %s", got)
	}
	if _, err := wsCall(t, epr, "CheckIn", [2]string{"LockToken", token}, [2]string{"OverlayDigest", overlayDigest}, [2]string{"State", "shutdown"}); err != nil {
		t.Fatal(err)
	}
	if got := props(); got != "shutdown,in-repository" {
		t.Fatalf("after check-in: %s", got)
	}
	// Checked in, it can be checked out again, by another host.
	if _, err := wsCall(t, epr, "CheckOut", [2]string{"Host", "host-b"}, onBehalf); err != nil {
		t.Fatal(err)
	}
}

// TestAuditAndPolicy: a rule file decides who may create; every create, clone,
// destroy and denial lands in the audit trail with the caller.
func TestAuditAndPolicy(t *testing.T) {
	rules := filepath.Join(t.TempDir(), "policy")
	if err := os.WriteFile(rules, []byte("deny create anonymous\nallow * anonymous\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	s := harness.Start(t, func(c *server.Config) { c.PolicyFile = rules })
	importImage(t, s, rawBase(t, 1<<20, 3), "name=pol&os=linux&arch=x86_64")
	before := listing(t, s)
	_, err := create(t, s, dialect.GT4, vmDescription(`<sw:image><sw:name>pol</sw:name></sw:image>`), "nope", "")
	fe := faultOf(t, err)
	if fe.Type != "WorkspaceAuthorizationFault" || !strings.Contains(fe.Description, "<anonymous> may not create") || !strings.Contains(fe.Description, ":1") {
		t.Fatalf("%s: %s", fe.Type, fe.Description)
	}
	if after := listing(t, s); after != before {
		t.Fatal("a denied create changed the repository")
	}
	// The Factory's properties list the pool.
	pool, err := client.New(nil).GetResourceProperty(context.Background(), factoryEPR(s, dialect.WSRF12), wsa.QName{Space: vwsns.Factory, Local: "ImagePool"})
	if err != nil || len(pool) != 1 || pool[0].SelectElement("ImageCount").Text() != "1" || pool[0].FindElement("Image/Name").Text() != "pol" {
		t.Fatalf("ImagePool: %v %v", pool, err)
	}
	// Every decision is audited; the one denial names the rule that decided it.
	var denied []string
	for _, e := range auditEntries(t, s) {
		if strings.HasSuffix(e, " denied") {
			denied = append(denied, e)
		}
	}
	if len(denied) != 1 || denied[0] != "<anonymous> create Create WorkspaceFactoryService denied" {
		t.Fatalf("audit denials: %q", denied)
	}
	if n, err := audit.New(s.DB(), nil).Verify(context.Background()); err != nil || n == 0 {
		t.Fatalf("audit chain: %d records, %v", n, err)
	}
}

// onBehalf is the user a test's CheckOut acts for, as a manager's Deploy would send.
var onBehalf = [2]string{"OnBehalfOf", "/O=Grid/OU=vws/CN=tester"}

func auditEntries(t *testing.T, s *harness.Server) []string {
	t.Helper()
	list, err := audit.New(s.DB(), nil).List(context.Background(), 100)
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, e := range list {
		out = append(out, e.Caller+" "+e.Operation+" "+e.Resource+" "+e.Decision)
	}
	return out
}

func TestAuditRecordsLifecycle(t *testing.T) {
	s := harness.Start(t)
	importImage(t, s, rawBase(t, 1<<20, 4), "name=aud&os=linux&arch=x86_64")
	epr, err := create(t, s, dialect.WSRF12, vmDescription(`<sw:image><sw:name>aud</sw:name></sw:image>`), "aud-1", "")
	if err != nil {
		t.Fatal(err)
	}
	key := keyOf(epr)
	if _, err := wsCall(t, epr, "Clone", [2]string{"Name", "aud-2"}); err != nil {
		t.Fatal(err)
	}
	m, err := wsCall(t, epr, "CheckOut", [2]string{"Host", "h1"}, onBehalf)
	if err != nil {
		t.Fatal(err)
	}
	var overlay string
	for _, img := range m.FindElements("Manifest/Image") {
		if img.SelectElement("Role").Text() == "overlay" {
			overlay = img.SelectElement("Digest").Text()
		}
	}
	if _, err := wsCall(t, epr, "CheckIn", [2]string{"LockToken", m.FindElement("Lock/Token").Text()}, [2]string{"OverlayDigest", overlay}); err != nil {
		t.Fatal(err)
	}
	if err := client.New(nil).Destroy(context.Background(), epr); err != nil {
		t.Fatal(err)
	}
	var ops []string
	for _, e := range auditEntries(t, s) {
		// The outcomes; the authorization decisions before them end in allowed/denied.
		if (strings.Contains(e, key) || strings.Contains(e, " clone ")) && !strings.HasSuffix(e, " allowed") {
			ops = append(ops, strings.Fields(e)[1])
		}
	}
	if strings.Join(ops, ",") != "create,clone,check-out,check-in,destroy" {
		t.Fatalf("audit operations %v in %q", ops, auditEntries(t, s))
	}
}

// TestLifetimeClampedOrRefused: beyond the site maximum a lifetime is clamped and the
// response says so, or, where the site says refuse, faulted with nothing created.
func TestLifetimeClampedOrRefused(t *testing.T) {
	for _, refuse := range []bool{false, true} {
		s := harness.Start(t, func(c *server.Config) {
			c.Factory.MaximumLifetime = 48 * time.Hour
			c.Factory.RefuseLongLifetimes = refuse
		})
		importImage(t, s, rawBase(t, 1<<20, 5), "name=life&os=linux&arch=x86_64")
		doc := etree.NewDocument()
		if err := doc.ReadFromString(vmDescription(`<sw:image><sw:name>life</sw:name></sw:image>`)); err != nil {
			t.Fatal(err)
		}
		body := etree.NewElement("fac:Create")
		body.CreateAttr("xmlns:fac", vwsns.Factory)
		body.AddChild(doc.Root())
		body.CreateElement("fac:RequestedLifetime").SetText("P10D")
		resp, err := client.New(nil).Invoke(context.Background(), factoryEPR(s, dialect.GT4), "Create", body)
		if refuse {
			fe := faultOf(t, err)
			// Create declares no WS-RL fault: its request's metadata asks too much.
			if fe.Type != "WorkspaceMetadataFault" || !strings.Contains(fe.Description, "P10D exceeds the site maximum P2D") || strings.Contains(fe.Description, "change rejected") {
				t.Fatalf("refuse: %s: %s", fe.Type, fe.Description)
			}
			if n := len(s.Srv.Repository.Workspaces.Keys()); n != 0 {
				t.Fatalf("refused create left %d workspaces", n)
			}
			continue
		}
		if err != nil {
			t.Fatal(err)
		}
		if c := resp.SelectElement("LifetimeClamped"); c == nil || c.Text() != "true" {
			t.Fatal("clamped lifetime not reported")
		}
		term, err := time.Parse(time.RFC3339, resp.SelectElement("TerminationTime").Text())
		if err != nil || term.Sub(time.Now()) > 48*time.Hour || term.Sub(time.Now()) < 47*time.Hour {
			t.Fatalf("termination %v (%v), want about 48h ahead", term, err)
		}
	}
}

// TestSetResourcePropertiesKeepsTheDescriptionValid: the description parts an owner
// may change are checked as Create checked them, all or nothing, and the lifeCycle,
// which mirrors the termination time, is not among them.
func TestSetResourcePropertiesKeepsTheDescriptionValid(t *testing.T) {
	s := harness.Start(t)
	importImage(t, s, rawBase(t, 1<<20, 0xab), "name=tiny&os=linux/debian/12&kernel=6.1&arch=x86_64")
	epr, err := create(t, s, dialect.WSRF12, vmDescription(`<sw:image><sw:name>tiny</sw:name></sw:image>`), "set-valid", "PT2H")
	if err != nil {
		t.Fatal(err)
	}
	key := keyOf(epr)
	svcURL := s.ServiceURL(vwsns.WorkspaceService)
	hw := func(inner string) string {
		return `<rp:Update><hw:hardware xmlns:hw="` + vwsns.Hardware + `">` + inner + `</hw:hardware></rp:Update>`
	}
	for _, d := range dialect.Dialects {
		for _, c := range []struct {
			name, mods, fault, says string
		}{
			{"RAM that is no number", hw(`<hw:RAM><hw:size>abc</hw:size></hw:RAM><hw:CPU><hw:count>1</hw:count></hw:CPU>`), "WorkspaceMetadataFault", "size"},
			{"a negative CPU count", hw(`<hw:RAM><hw:size>256</hw:size></hw:RAM><hw:CPU><hw:count>-3</hw:count></hw:CPU>`), "WorkspaceMetadataFault", "count"},
			{"a valid capability with invalid hardware", `<rp:Update><cap:capability xmlns:cap="` + vwsns.Capability + `"/></rp:Update>` +
				hw(`<hw:RAM><hw:size>abc</hw:size></hw:RAM>`), "WorkspaceMetadataFault", "size"},
			{"a termination time of the description's own", `<rp:Update><vw:lifeCycle><vw:terminationTime>2099-01-01T00:00:00Z</vw:terminationTime></vw:lifeCycle></rp:Update>`,
				"UnableToModifyResourcePropertyFault", "SetTerminationTime"},
		} {
			before := snapshot(t, s, key)
			a := post(t, svcURL, request(d, svcURL, setRPAction(d), key, `<rp:SetResourceProperties>`+c.mods+`</rp:SetResourceProperties>`))
			typ, _, desc := a.fault(t)
			if typ != c.fault || !strings.Contains(desc, c.says) {
				t.Errorf("%s/%s: %s %q; want %s saying %q", d.Name, c.name, typ, desc, c.fault, c.says)
			}
			if after := snapshot(t, s, key); after != before {
				t.Errorf("%s/%s: a refused change changed the workspace", d.Name, c.name)
			}
		}
	}
	// A valid change is taken.
	d := dialect.WSRF12
	ok := post(t, svcURL, request(d, svcURL, setRPAction(d), key, `<rp:SetResourceProperties>`+
		hw(`<hw:RAM><hw:size>512</hw:size></hw:RAM><hw:CPU><hw:count>2</hw:count></hw:CPU>`)+`</rp:SetResourceProperties>`))
	if ok.status != 200 {
		t.Fatalf("a valid hardware change: HTTP %d %s", ok.status, ok.raw)
	}
	if after := snapshot(t, s, key); !strings.Contains(after, ">512<") {
		t.Fatalf("the valid change is not in the document: %s", after)
	}
}

// TestCreateFaultsSayEachPartOnce: a Create the Repository refuses (quota, taken
// name) reaches the client as the Repository's fault: its type, its description and
// advice each once (not "quota exceeded: quota exceeded: …", nor the fault type's
// general advice after the Repository's), and the typed detail the type requires.
func TestCreateFaultsSayEachPartOnce(t *testing.T) {
	pol := filepath.Join(t.TempDir(), "pol.conf")
	rules := "allow * anonymous\nallow host anonymous\ngroup anon anonymous\nquota group:anon workspaces=2 lifetime=7d\n"
	if err := os.WriteFile(pol, []byte(rules), 0o644); err != nil {
		t.Fatal(err)
	}
	s := harness.Start(t, func(c *server.Config) { c.PolicyFile = pol })
	importImage(t, s, rawBase(t, 1<<20, 1), "name=deb-a&os=linux/debian/12&arch=x86_64")
	d := dialect.WSRF12
	desc := vmDescription(`<sw:image><sw:name>deb-a</sw:name></sw:image>`)
	for _, c := range []struct {
		name, before                  string // before: a workspace made first
		wsName, lifetime, desc, fault string
		once                          []string // each exactly once
		never                         []string
		detail                        string // typed detail element the type requires
	}{
		// One workspace held: within the count quota, so the name is what is refused.
		{"duplicate name", "one", "one", "", desc, "WorkspaceMetadataFault",
			[]string{`a workspace named "one" already exists`, "choose another name, or destroy the existing workspace first"},
			[]string{"workspace metadata invalid", "correct the named element"}, "ElementPath"},
		{"unknown image", "", "", "", vmDescription(`<sw:image><sw:name>nope</sw:name></sw:image>`), "WorkspaceMetadataFault",
			[]string{`image "nope" is not in the pool`, "vws image import"},
			[]string{"check the EPR", "resource unknown", "correct the named element"}, "ElementPath"},
		{"quota lifetime", "", "long", "P8DT8H", desc, "WorkspaceQuotaExceededFault",
			[]string{"quota exceeded", "quota lifetime=7d of group:anon", "asks for a lifetime of 8d8h", "ask for a lifetime of at most 7d"},
			[]string{"destroy or shut down", "h0m0s"}, ""},
		{"quota workspaces", "two", "three", "", desc, "WorkspaceQuotaExceededFault",
			[]string{"quota exceeded", "quota workspaces=2 of group:anon", "2 held, this request needs 1 more", "or ask the site administrator for a larger quota"},
			[]string{"destroy or shut down workspaces you no longer need, or ask for a larger quota"}, ""},
	} {
		t.Run(c.name, func(t *testing.T) {
			if c.before != "" {
				if _, err := create(t, s, d, desc, c.before, ""); err != nil {
					t.Fatal(err)
				}
			}
			_, err := create(t, s, d, c.desc, c.wsName, c.lifetime)
			fe := faultOf(t, err)
			if fe.Type != c.fault {
				t.Fatalf("got %s: %s; want %s", fe.Type, fe.Description, c.fault)
			}
			for _, w := range c.once {
				if n := strings.Count(fe.Description, w); n != 1 {
					t.Errorf("%q says %q %d times, want once", fe.Description, w, n)
				}
			}
			for _, w := range c.never {
				if strings.Contains(fe.Description, w) {
					t.Errorf("%q says %q", fe.Description, w)
				}
			}
			if c.detail != "" {
				if el := fe.Fault.Detail[0].SelectElement(c.detail); el == nil || el.Text() == "" {
					t.Errorf("the %s has no %s", fe.Type, c.detail)
				}
			}
		})
	}
}

// TestCreateAndCloneOnAFullRepository: a Create (through the Factory) or a Clone on a
// server whose storage is full is refused before anything is made, since the audit
// trail cannot record the decision: the fault says, each once, that the storage is
// full, where, that nothing was done, and what to do. (With room for the trail but
// none for the workspace's files, the Repository's own WorkspaceCreationFault says the
// same: see repository's TestCreateAndCloneOnAFullStorage.)
func TestCreateAndCloneOnAFullRepository(t *testing.T) {
	dir := t.TempDir()
	tmpfstest.Mount(t, dir, "24m") // before the server, so it is unmounted after it closes
	// The trail in the full directory: SQLite, whatever the suite runs against.
	s := harness.Start(t, func(c *server.Config) { c.DataDir, c.Database = dir, "" })
	importImage(t, s, rawBase(t, 1<<20, 3), "name=img&os=linux&arch=x86_64")
	d := dialect.WSRF12
	desc := vmDescription(`<sw:image><sw:name>img</sw:name></sw:image>`)
	epr, err := create(t, s, d, desc, "src", "")
	if err != nil {
		t.Fatal(err)
	}
	filler, err := os.Create(filepath.Join(dir, "filler"))
	if err != nil {
		t.Fatal(err)
	}
	for buf := make([]byte, 64<<10); ; {
		if _, err := filler.Write(buf); err != nil {
			break
		}
	}
	filler.Close()

	_, err = create(t, s, d, desc, "new", "")
	check := func(what string, err error, again string) {
		t.Helper()
		fe := faultOf(t, err)
		if fe.Type != "ServiceFault" || fe.Fault.Code != "Server" {
			t.Fatalf("%s: %s (%s): %s", what, fe.Type, fe.Fault.Code, fe.Description)
		}
		for _, want := range []string{"the server's storage is full", dir, "nothing was done", "the site administrator must free space there, then " + again} {
			if n := strings.Count(fe.Description, want); n != 1 {
				t.Errorf("%s: %q says %q %d times, want once", what, fe.Description, want, n)
			}
		}
		if strings.Contains(fe.Description, "retry, and report") {
			t.Errorf("%s: %q", what, fe.Description)
		}
	}
	check("create", err, "retry")
	body := etree.NewElement("vw:Clone")
	body.CreateAttr("xmlns:vw", vwsns.Workspace)
	body.CreateElement("vw:Name").SetText("copy")
	_, err = client.New(nil).Invoke(context.Background(), epr, "Clone", body)
	check("clone", err, "retry")
	if keys := s.Srv.Repository.Workspaces.Keys(); len(keys) != 1 {
		t.Errorf("the repository holds %v, want only the source", keys)
	}
}
