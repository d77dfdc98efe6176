package manager

import (
	"context"
	"crypto/x509"
	"errors"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/beevik/etree"

	"github.com/vws-grid/vws/internal/client"
	"github.com/vws-grid/vws/internal/errdefs"
	"github.com/vws-grid/vws/internal/manifestsig"
	"github.com/vws-grid/vws/internal/soap"
	"github.com/vws-grid/vws/internal/vwsns"
	"github.com/vws-grid/vws/internal/wsa"
)

const (
	mfKey     = "6f1c2d3e-4b5a-4c7d-8e9f-0a1b2c3d4e5f"
	mfOwner   = "/O=Grid/OU=example.org/CN=Jane Doe"
	mfToken   = "lock-5b2f9c1e8a7d4c3b"
	mfBase    = "sha256:3b1f0c2a9d8e7f6a5b4c3d2e1f0a9b8c7d6e5f4a3b2c1d0e9f8a7b6c5d4e3f2a"
	mfOverlay = "sha256:0000000000000000000000000000000000000000000000000000000000000001"
)

// testManifest is a manifest as repository/seal.go manifestElement makes it, unsigned.
func testManifest(key string) *etree.Element {
	me := etree.NewElement("r:Manifest")
	me.CreateAttr("xmlns:r", vwsns.Workspace)
	me.CreateElement("r:WorkspaceKey").SetText(key)
	me.CreateElement("r:name").SetText("analysis-01")
	me.CreateElement("r:owner").SetText(mfOwner)
	me.CreateElement("r:Created").SetText("2026-03-01T09:00:00Z")
	me.CreateElement("r:Issued").SetText("2026-03-01T09:00:01Z")
	for _, img := range []struct{ role, digest, size, backing, loc string }{
		{"base", mfBase, "268435456", "", "/images/" + mfBase},
		{"overlay", mfOverlay, "196608", mfBase, "/workspaces/" + key + "/files/" + mfOverlay},
	} {
		ie := me.CreateElement("r:Image")
		ie.CreateElement("r:Role").SetText(img.role)
		ie.CreateElement("r:Digest").SetText(img.digest)
		ie.CreateElement("r:SizeBytes").SetText(img.size)
		ie.CreateElement("r:Format").SetText("qcow2")
		if img.backing != "" {
			ie.CreateElement("r:BackingDigest").SetText(img.backing)
		}
		ie.CreateElement("r:Location").SetText(img.loc)
	}
	return me
}

func testSigner(t *testing.T) *manifestsig.Signer {
	t.Helper()
	s, err := manifestsig.LoadOrCreate(t.TempDir(), "repository.example.org")
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func signManifest(t *testing.T, s *manifestsig.Signer, key string) *etree.Element {
	t.Helper()
	signed, err := s.Sign(testManifest(key))
	if err != nil {
		t.Fatal(err)
	}
	return signed
}

// checkOutServer answers every request with a CheckOutResponse carrying manifest,
// laid out as repository/checkout.go checkOutHandler does.
func checkOutServer(t *testing.T, manifest *etree.Element) *httptest.Server {
	t.Helper()
	hs := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		out := etree.NewElement("r:CheckOutResponse")
		out.CreateAttr("xmlns:r", vwsns.Workspace)
		out.AddChild(manifest.Copy())
		lock := out.CreateElement("r:Lock")
		lock.CreateElement("r:Holder").SetText("/O=Grid/OU=hosts/CN=host/node7.example.org")
		lock.CreateElement("r:Token").SetText(mfToken)
		lock.CreateElement("r:Acquired").SetText("2026-03-01T09:31:00Z")
		vw := out.CreateElement("r:virtualWorkspace")
		vw.CreateElement("r:category").SetText("vm")
		vw.CreateElement("r:state").SetText("shutdown")
		data, err := (&soap.Message{Body: out}).Bytes()
		if err != nil {
			t.Error(err)
			return
		}
		w.Header().Set("Content-Type", "text/xml; charset=utf-8")
		w.Write(data)
	}))
	t.Cleanup(hs.Close)
	return hs
}

func checkOutEPR(hs *httptest.Server, key string) *wsa.EPR {
	return workspaceEPR(&record{Key: key, WorkspaceAddress: hs.URL + "/wsrf/services/WorkspaceService", WSAVersion: int(wsa.V200508)})
}

func trustOnly(cert *x509.Certificate) manifestsig.TrustFunc {
	return func(chain []*x509.Certificate) error {
		if !chain[0].Equal(cert) {
			return errors.New("not the repository's certificate")
		}
		return nil
	}
}

// TestCheckOutVerifiesManifest: a manifest signed by a trusted repository is taken,
// its Locations resolved against the repository's address, and its signer kept.
func TestCheckOutVerifiesManifest(t *testing.T) {
	s := testSigner(t)
	hs := checkOutServer(t, signManifest(t, s, mfKey))
	c := &repoClient{soap: client.New(hs.Client()), http: hs.Client(), trust: trustOnly(s.Certificate())}
	m, err := c.checkOut(context.Background(), checkOutEPR(hs, mfKey), "node7.example.org", "", nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	if m.Key != mfKey || m.Name != "analysis-01" || m.Owner != mfOwner || m.Token != mfToken || m.State != "shutdown" || m.Description == nil {
		t.Fatalf("manifest %+v", m)
	}
	if m.Signer != s.Certificate().Subject.String() || m.Signer == "" {
		t.Errorf("signer %q, want %q", m.Signer, s.Certificate().Subject)
	}
	base, overlay := m.image("base"), m.image("overlay")
	if base == nil || overlay == nil {
		t.Fatalf("images %+v", m.Images)
	}
	if base.Location != hs.URL+"/images/"+mfBase || base.Size != 268435456 || base.Digest != mfBase || base.Format != "qcow2" {
		t.Errorf("base %+v", base)
	}
	if overlay.Location != hs.URL+"/workspaces/"+mfKey+"/files/"+mfOverlay || overlay.Backing != mfBase || overlay.Size != 196608 {
		t.Errorf("overlay %+v", overlay)
	}
}

// TestCheckOutRefusesManifest: whatever is wrong with the manifest, check-out fails
// with ErrImageIntegrity, and (the lock having been taken) still returns the lock
// token so the caller can hand the workspace back.
func TestCheckOutRefusesManifest(t *testing.T) {
	s := testSigner(t)
	edit := func(path, value string) *etree.Element {
		el := signManifest(t, s, mfKey)
		e := el.FindElement(path)
		if e == nil {
			t.Fatalf("no %s in the manifest", path)
		}
		e.SetText(value)
		return el
	}
	other := testSigner(t) // a self-signed key of its own: not the repository's
	for _, tc := range []struct {
		name     string
		manifest *etree.Element
		trust    manifestsig.TrustFunc
		want     string
	}{
		{"edited digest", edit("./Image[Role='base']/Digest", strings.Replace(mfBase, "3b1f", "3b1e", 1)), nil, "signature"},
		{"edited owner", edit("./owner", "/O=Grid/OU=example.org/CN=Mallory"), nil, "signature"},
		{"edited size", edit("./Image[Role='overlay']/SizeBytes", "1"), nil, "signature"},
		{"unsigned", testManifest(mfKey), nil, "signature"},
		{"another workspace's manifest", signManifest(t, s, "0badc0de-0000-4000-8000-000000000000"), trustOnly(s.Certificate()), "0badc0de"},
		{"untrusted signer", signManifest(t, other, mfKey), trustOnly(s.Certificate()), "not trusted"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			hs := checkOutServer(t, tc.manifest)
			c := &repoClient{soap: client.New(hs.Client()), http: hs.Client(), trust: tc.trust}
			m, err := c.checkOut(context.Background(), checkOutEPR(hs, mfKey), "node7.example.org", "", nil, nil)
			if !errors.Is(err, errdefs.ErrImageIntegrity) {
				t.Fatalf("err %v, want ErrImageIntegrity", err)
			}
			if !strings.Contains(err.Error(), tc.want) {
				t.Errorf("err %q does not mention %q", err, tc.want)
			}
			if m == nil || m.Token != mfToken {
				t.Fatalf("manifest %+v: the lock token is needed to hand the workspace back", m)
			}
			if m.Signer != "" {
				t.Errorf("an unverified manifest names a signer: %q", m.Signer)
			}
		})
	}
}

// TestCheckOutRefusesASizeThatIsNoSize: a signed manifest whose image size is not a
// count of bytes is refused at check-out. A negative one would otherwise pass the
// free-space check for the images listed with it (deployNeed adds it), which are then
// staged onto a disk without room before the transfer of that image fails.
func TestCheckOutRefusesASizeThatIsNoSize(t *testing.T) {
	s := testSigner(t)
	for _, size := range []string{"-1099511627776", "-1", "lots", ""} {
		t.Run(size, func(t *testing.T) {
			me := testManifest(mfKey)
			me.FindElement("./Image[Role='overlay']/SizeBytes").SetText(size)
			signed, err := s.Sign(me)
			if err != nil {
				t.Fatal(err)
			}
			hs := checkOutServer(t, signed)
			c := &repoClient{soap: client.New(hs.Client()), http: hs.Client(), trust: trustOnly(s.Certificate())}
			m, err := c.checkOut(context.Background(), checkOutEPR(hs, mfKey), "node7.example.org", "", nil, nil)
			if !errors.Is(err, errdefs.ErrImageIntegrity) {
				need := int64(0)
				if m != nil {
					need = (&Manager{cache: &cache{dir: t.TempDir()}}).deployNeed(m).workspace
				}
				t.Fatalf("SizeBytes %q: err %v, want ErrImageIntegrity (the deploy would reserve %d bytes in the workspace directory)", size, err, need)
			}
			if m == nil || m.Token != mfToken {
				t.Fatalf("manifest %+v: the lock token is needed to hand the workspace back", m)
			}
		})
	}
}
