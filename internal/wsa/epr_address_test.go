package wsa

import (
	"errors"
	"strings"
	"testing"

	"github.com/beevik/etree"
)

// TestEPRWithTwoAddressesIsRefused: an endpoint reference has one wsa:Address. With
// two (in one version, or one in each) the last was taken, in its version, and the
// first silently dropped: an EPR file or a ConsumerReference that names two endpoints
// had its caller's requests, or the messages meant for it, sent to whichever came last.
func TestEPRWithTwoAddressesIsRefused(t *testing.T) {
	for name, in := range map[string]string{
		"one version": `<e xmlns:wsa="` + NS200508 + `"><wsa:Address>http://a.example.org/s</wsa:Address><wsa:Address>http://b.example.org/s</wsa:Address></e>`,
		"two versions": `<e xmlns:a="` + NS200403 + `" xmlns:b="` + NS200508 + `"><a:Address>http://a.example.org/s</a:Address>` +
			`<b:Address>http://b.example.org/s</b:Address></e>`,
	} {
		epr, err := ReadEPRDocument([]byte(in))
		if err == nil {
			t.Errorf("%s: taken, with address %s", name, epr.Address)
		} else if !strings.Contains(err.Error(), "more than one wsa:Address") {
			t.Errorf("%s: %v; want it to say there is more than one wsa:Address", name, err)
		}
	}
}

// TestReplyToWithTwoAddressesIsAnInvalidEPR: the addressing fault for such a ReplyTo
// is 1.0's InvalidEPR, not MissingAddressInEPR, which would tell the sender its EPR
// has no address.
func TestReplyToWithTwoAddressesIsAnInvalidEPR(t *testing.T) {
	doc := etree.NewDocument()
	if err := doc.ReadFromString(`<h xmlns:wsa="` + NS200508 + `"><wsa:MessageID>urn:uuid:1</wsa:MessageID><wsa:ReplyTo>` +
		`<wsa:Address>` + V200508.Anonymous() + `</wsa:Address><wsa:Address>http://b.example.org/s</wsa:Address></wsa:ReplyTo></h>`); err != nil {
		t.Fatal(err)
	}
	_, err := ReadMAPs(doc.Root().ChildElements())
	var f *Fault
	if !errors.As(err, &f) || f.Code() != CodeInvalidEPR || f.ProblemHeader != "ReplyTo" {
		t.Fatalf("got %#v; want an InvalidEPR fault about wsa:ReplyTo", err)
	}
}
