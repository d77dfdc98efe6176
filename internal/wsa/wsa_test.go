package wsa

import (
	"errors"
	"testing"

	"github.com/beevik/etree"
)

func headerBlocks(t *testing.T, v Version, inner string) []*etree.Element {
	t.Helper()
	doc := etree.NewDocument()
	if err := doc.ReadFromString(`<h xmlns:wsa="` + v.Namespace() + `">` + inner + `</h>`); err != nil {
		t.Fatal(err)
	}
	return doc.Root().ChildElements()
}

// TestReadMAPsInvalidHeaderIsAFaultThatKeepsTheMessageID: a repeated addressing header
// is a WS-Addressing fault naming that header, and the MessageID that follows it is
// still read, so the fault can relate to the request.
func TestReadMAPsInvalidHeaderIsAFaultThatKeepsTheMessageID(t *testing.T) {
	for _, c := range []struct {
		v                Version
		subcode, subsub  string
		header, inner    string
		wantFaultDetails bool
	}{
		{V200508, CodeInvalidAddressingHeader, CodeInvalidCardinality, "Action",
			`<wsa:Action>urn:a</wsa:Action><wsa:Action>urn:b</wsa:Action><wsa:MessageID>urn:uuid:m1</wsa:MessageID>`, true},
		{V200403, CodeInvalidMessageInformationHeader, "", "Action",
			`<wsa:Action>urn:a</wsa:Action><wsa:Action>urn:b</wsa:Action><wsa:MessageID>urn:uuid:m1</wsa:MessageID>`, false},
		{V200508, CodeInvalidAddressingHeader, CodeMissingAddressInEPR, "ReplyTo",
			`<wsa:ReplyTo/><wsa:MessageID>urn:uuid:m1</wsa:MessageID>`, true},
		{V200508, CodeInvalidAddressingHeader, CodeInvalidCardinality, "MessageID",
			`<wsa:MessageID>urn:uuid:m1</wsa:MessageID><wsa:MessageID>urn:uuid:m2</wsa:MessageID>`, true},
	} {
		m, err := ReadMAPs(headerBlocks(t, c.v, c.inner))
		var f *Fault
		if !errors.As(err, &f) {
			t.Fatalf("%v %s: err %v is not a *Fault", c.v, c.inner, err)
		}
		if f.Version != c.v || f.Subcode != c.subcode || f.Subsubcode != c.subsub || f.ProblemHeader != c.header {
			t.Errorf("%v %s: fault %+v", c.v, c.inner, f)
		}
		if m.MessageID != "urn:uuid:m1" {
			t.Errorf("%v %s: MessageID %q, want the first, urn:uuid:m1", c.v, c.inner, m.MessageID)
		}
		if d := f.DetailHeader(); (d != nil) != c.wantFaultDetails {
			t.Errorf("%v: wsa:FaultDetail %v", c.v, d)
		} else if d != nil {
			q := d.SelectElement("ProblemHeaderQName")
			if q == nil || q.Text() != "wsa:"+c.header || d.NamespaceURI() != NS200508 {
				t.Errorf("FaultDetail does not name wsa:%s", c.header)
			}
		}
	}
}

func TestActionNotSupportedDetail(t *testing.T) {
	f := ActionNotSupported(V200508, "urn:bogus", "no such action")
	if f.Code() != CodeActionNotSupported {
		t.Fatalf("code %s", f.Code())
	}
	d := f.DetailHeader()
	if d == nil || d.Tag != "FaultDetail" {
		t.Fatalf("no FaultDetail")
	}
	a := d.FindElement("ProblemAction/Action")
	if a == nil || a.Text() != "urn:bogus" {
		t.Fatalf("ProblemAction does not name the action")
	}
	if ActionNotSupported(V200403, "urn:bogus", "x").DetailHeader() != nil {
		t.Fatal("2004/03 has no wsa:FaultDetail")
	}
}
