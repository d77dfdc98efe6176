package client_test

import (
	"context"
	"crypto/x509"
	"io"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/beevik/etree"

	"github.com/vws-grid/vws/internal/client"
	"github.com/vws-grid/vws/internal/identity"
	"github.com/vws-grid/vws/internal/pki"
	"github.com/vws-grid/vws/internal/soap"
	"github.com/vws-grid/vws/internal/wsa"
	"github.com/vws-grid/vws/internal/wssec"
)

// TestSignedAnswerMustAnswerTheRequest: a client that signs its requests (vws --sign)
// takes as the service's answer only one signed by a certificate naming the service's
// host and relating to the request it sent: not one signed by another certificate of
// the site (a user's, another host's) — whoever sits on the path holding one could
// answer for the service — nor the service's own signed answer to another request.
func TestSignedAnswerMustAnswerTheRequest(t *testing.T) {
	ca, err := pki.NewCA(pki.CAOptions{})
	if err != nil {
		t.Fatal(err)
	}
	issue := func(user bool, name string) *pki.Credential {
		t.Helper()
		var c *pki.Credential
		if user {
			c, err = ca.IssueUser(pki.UserOptions{CN: name, KeyType: pki.KeyTypeECDSA})
		} else {
			c, err = ca.IssueHost(pki.HostOptions{Name: name, KeyType: pki.KeyTypeECDSA})
		}
		if err != nil {
			t.Fatal(err)
		}
		return c
	}
	alice, mallory, service, other := issue(true, "alice"), issue(true, "mallory"), issue(false, "127.0.0.1"), issue(false, "node9.example.org")
	dir := filepath.Join(t.TempDir(), "certificates")
	if _, err := pki.WriteCADir(dir, ca.Certificate, nil); err != nil {
		t.Fatal(err)
	}
	trust, err := pki.LoadTrust(dir)
	if err != nil {
		t.Fatal(err)
	}
	const rl = "http://docs.oasis-open.org/wsrf/rl-2"
	for _, tc := range []struct {
		name      string
		signer    *pki.Credential
		relatesTo string // "": the request's MessageID
		// echoed, if set, follows as a RelatesTo of the request's MessageID marked as a
		// reference parameter: what the service echoes of a ReplyTo whose reference
		// parameters hold a wsa:RelatesTo, so that whoever sent that request gets the
		// service's signed answer to it relating to a request of someone else.
		echoed  bool
		refused string
	}{
		{"the service's answer", service, "", false, ""},
		{"signed by a user of the site", mallory, "", false, `does not name the service's host "127.0.0.1"`},
		{"signed by another host", other, "", false, `does not name the service's host "127.0.0.1"`},
		{"the service's answer to another request", service, "urn:uuid:some-other-message", false, "not to the request sent"},
		{"the service's answer to another request, this request's id echoed after", service, "urn:uuid:some-other-message", true, "not to the request sent"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				data, _ := io.ReadAll(r.Body)
				req, err := soap.Parse(data)
				if err != nil {
					t.Error(err)
					return
				}
				maps, _ := wsa.ReadMAPs(req.Headers)
				action := etree.NewElement("wsa:Action")
				action.CreateAttr("xmlns:wsa", wsa.NS200508)
				action.SetText(rl + "/ImmediateResourceTermination/DestroyResponse")
				rel := etree.NewElement("wsa:RelatesTo")
				rel.CreateAttr("xmlns:wsa", wsa.NS200508)
				rel.SetText(maps.MessageID)
				if tc.relatesTo != "" {
					rel.SetText(tc.relatesTo)
				}
				headers := []*etree.Element{action, rel}
				if tc.echoed {
					echo := etree.NewElement("wsa:RelatesTo")
					echo.CreateAttr("xmlns:wsa", wsa.NS200508)
					echo.CreateAttr("wsa:IsReferenceParameter", "true")
					echo.SetText(maps.MessageID)
					headers = append(headers, echo)
				}
				body := etree.NewElement("wsrl:DestroyResponse")
				body.CreateAttr("xmlns:wsrl", rl)
				doc := (&soap.Message{Headers: headers, Body: body}).Document()
				if err := (&wssec.Signer{Key: tc.signer.Key, Chain: tc.signer.FullChain()}).Sign(doc); err != nil {
					t.Error(err)
				}
				out, _ := doc.WriteToBytes()
				w.Header().Set("Content-Type", "text/xml; charset=utf-8")
				w.Write(out)
			}))
			defer srv.Close()
			c := client.New(nil)
			c.Signer = &wssec.Signer{Key: alice.Key, Chain: alice.FullChain()}
			c.Verifier = wssec.NewVerifier(func(chain []*x509.Certificate) (identity.Identity, error) {
				return trust.Verify(chain, time.Now())
			})
			d := etree.NewElement("wsrl:Destroy")
			d.CreateAttr("xmlns:wsrl", rl)
			epr := &wsa.EPR{Version: wsa.V200508, Address: srv.URL + "/wsrf/services/WorkspaceService"}
			resp, err := c.Call(context.Background(), epr, rl+"/ImmediateResourceTermination/DestroyRequest", d)
			switch {
			case tc.refused == "" && err != nil:
				t.Fatalf("the service's own answer refused: %v", err)
			case tc.refused != "" && err == nil:
				t.Fatalf("FORGED ANSWER ACCEPTED: %s, signed by %s", resp.FullTag(), pki.DN(tc.signer.Certificate))
			case tc.refused != "" && !strings.Contains(err.Error(), tc.refused):
				t.Fatalf("refused, but not saying %q: %v", tc.refused, err)
			}
		})
	}
}
