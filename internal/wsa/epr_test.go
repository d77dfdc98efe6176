package wsa

import (
	"strings"
	"testing"

	"github.com/beevik/etree"
)

func TestEPRRoundTripKeepsReferenceNamespaces(t *testing.T) {
	for _, v := range []Version{V200403, V200508} {
		in := `<root xmlns:k="urn:key" xmlns:q="urn:qvalue"><wsa:EndpointReference xmlns:wsa="` + v.Namespace() + `">
  <wsa:Address>http://h/wsrf/services/WorkspaceService</wsa:Address>
  <wsa:` + v.ReferenceContainer() + `><k:WorkspaceKey a="1">q:abc</k:WorkspaceKey></wsa:` + v.ReferenceContainer() + `>
</wsa:EndpointReference></root>`
		doc := etree.NewDocument()
		if err := doc.ReadFromString(in); err != nil {
			t.Fatal(err)
		}
		epr, err := ParseEPR(doc.Root().ChildElements()[0])
		if err != nil {
			t.Fatal(err)
		}
		if epr.Version != v || epr.Address != "http://h/wsrf/services/WorkspaceService" {
			t.Fatalf("%v: got %+v", v, epr)
		}
		data, err := epr.Document().WriteToBytes()
		if err != nil {
			t.Fatal(err)
		}
		back, err := ReadEPRDocument(data)
		if err != nil {
			t.Fatalf("%v: %v\n%s", v, err, data)
		}
		ref := back.Reference("urn:key", "WorkspaceKey")
		if ref == nil || ref.Text() != "q:abc" || ref.SelectAttrValue("a", "") != "1" {
			t.Fatalf("%v: reference lost: %s", v, data)
		}
		// The QName content's prefix must still resolve after the round trip.
		if ns, ok := LookupNamespace(ref, "q"); !ok || ns != "urn:qvalue" {
			t.Fatalf("%v: prefix q no longer resolves in %s", v, data)
		}
		hs := back.Headers()
		if len(hs) != 1 {
			t.Fatal("no header")
		}
		h, _ := etree.NewDocumentWithRoot(hs[0]).WriteToString()
		if isRP := strings.Contains(h, "IsReferenceParameter"); isRP != (v == V200508) {
			t.Fatalf("%v: IsReferenceParameter present=%v in %s", v, isRP, h)
		}
	}
}

func TestParseEPRErrors(t *testing.T) {
	for _, in := range []string{
		`<e/>`,
		`<e xmlns:wsa="http://www.w3.org/2005/08/addressing"><wsa:Address> </wsa:Address></e>`,
	} {
		if _, err := ReadEPRDocument([]byte(in)); err == nil {
			t.Errorf("%s: no error", in)
		}
	}
	if _, err := ReadEPRDocument([]byte(`<!DOCTYPE e><e/>`)); err == nil {
		t.Error("DTD accepted")
	}
}

func TestResolveQName(t *testing.T) {
	doc := etree.NewDocument()
	_ = doc.ReadFromString(`<a xmlns:p="urn:p" xmlns="urn:default"><b>p:x</b><c>y</c><d>z:q</d><e>p:</e></a>`)
	kids := doc.Root().ChildElements()
	if q, err := ResolveQName(kids[0], kids[0].Text()); err != nil || q != (QName{"urn:p", "x"}) {
		t.Errorf("p:x → %v %v", q, err)
	}
	if q, err := ResolveQName(kids[1], kids[1].Text()); err != nil || q != (QName{"urn:default", "y"}) {
		t.Errorf("y → %v %v", q, err)
	}
	if _, err := ResolveQName(kids[2], kids[2].Text()); err == nil {
		t.Error("undeclared prefix accepted")
	}
	if _, err := ResolveQName(kids[3], kids[3].Text()); err == nil {
		t.Error("empty local part accepted")
	}
}
