package soap

import (
	"encoding/binary"
	"errors"
	"fmt"
	"strings"
	"testing"
	"unicode/utf16"
)

const okEnv = `<?xml version="1.0" encoding="UTF-8"?><soapenv:Envelope xmlns:soapenv="http://schemas.xmlsoap.org/soap/envelope/"><soapenv:Header><h:A xmlns:h="urn:h" soapenv:mustUnderstand="1">x</h:A><h:B xmlns:h="urn:h" soapenv:mustUnderstand="0"/><h:C xmlns:h="urn:h" soapenv:actor="http://example.org/other" soapenv:mustUnderstand="1"/></soapenv:Header><soapenv:Body><p:Op xmlns:p="urn:p">v</p:Op></soapenv:Body></soapenv:Envelope>`

func TestParseWellFormed(t *testing.T) {
	env, err := Parse([]byte(okEnv))
	if err != nil {
		t.Fatal(err)
	}
	if len(env.Headers) != 3 {
		t.Fatalf("headers = %d, want 3", len(env.Headers))
	}
	if env.Payload == nil || env.Payload.Tag != "Op" || env.Payload.NamespaceURI() != "urn:p" {
		t.Fatalf("payload = %v", env.Payload)
	}
	want := []bool{true, false, false} // C targets another actor
	for i, h := range env.Headers {
		if got := MustUnderstand(h); got != want[i] {
			t.Errorf("MustUnderstand(%s) = %v, want %v", h.Tag, got, want[i])
		}
	}
}

func TestParseRefuses(t *testing.T) {
	cases := []struct {
		name string
		in   string
		want error
	}{
		{"doctype", `<!DOCTYPE x [<!ENTITY a "b">]><soapenv:Envelope xmlns:soapenv="http://schemas.xmlsoap.org/soap/envelope/"><soapenv:Body/></soapenv:Envelope>`, ErrDTD},
		{"entity inside", `<soapenv:Envelope xmlns:soapenv="http://schemas.xmlsoap.org/soap/envelope/"><soapenv:Body><!ENTITY x "y"></soapenv:Body></soapenv:Envelope>`, ErrDTD},
		{"undeclared entity", `<soapenv:Envelope xmlns:soapenv="http://schemas.xmlsoap.org/soap/envelope/"><soapenv:Body><a>&xxe;</a></soapenv:Body></soapenv:Envelope>`, ErrMalformed},
		{"not xml", `hello`, ErrMalformed},
		{"unclosed", `<soapenv:Envelope xmlns:soapenv="http://schemas.xmlsoap.org/soap/envelope/"><soapenv:Body>`, ErrMalformed},
		{"no body", `<soapenv:Envelope xmlns:soapenv="http://schemas.xmlsoap.org/soap/envelope/"><soapenv:Header/></soapenv:Envelope>`, ErrMalformed},
		{"two bodies", `<soapenv:Envelope xmlns:soapenv="http://schemas.xmlsoap.org/soap/envelope/"><soapenv:Body/><soapenv:Body/></soapenv:Envelope>`, ErrMalformed},
		{"not an envelope", `<a xmlns="http://schemas.xmlsoap.org/soap/envelope/"/>`, ErrMalformed},
		{"soap 1.2", `<e:Envelope xmlns:e="http://www.w3.org/2003/05/soap-envelope"><e:Body/></e:Envelope>`, ErrVersionMismatch},
		{"wrong namespace", `<e:Envelope xmlns:e="urn:nope"><e:Body/></e:Envelope>`, ErrVersionMismatch},
		{"latin1", `<?xml version="1.0" encoding="ISO-8859-1"?><soapenv:Envelope xmlns:soapenv="http://schemas.xmlsoap.org/soap/envelope/"><soapenv:Body/></soapenv:Envelope>`, ErrMalformed},
		{"too deep", `<soapenv:Envelope xmlns:soapenv="http://schemas.xmlsoap.org/soap/envelope/"><soapenv:Body>` + strings.Repeat("<a>", 100) + strings.Repeat("</a>", 100) + `</soapenv:Body></soapenv:Envelope>`, ErrMalformed},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			_, err := Parse([]byte(c.in))
			if !errors.Is(err, c.want) {
				t.Fatalf("err = %v, want %v", err, c.want)
			}
		})
	}
}

func TestCommentsAndCDATAAreNotDTDs(t *testing.T) {
	in := `<!-- <!DOCTYPE in a comment --><soapenv:Envelope xmlns:soapenv="http://schemas.xmlsoap.org/soap/envelope/"><soapenv:Body><a><![CDATA[<!ENTITY not one>]]></a></soapenv:Body></soapenv:Envelope>`
	env, err := Parse([]byte(in))
	if err != nil {
		t.Fatal(err)
	}
	if got := env.Payload.Text(); got != "<!ENTITY not one>" {
		t.Fatalf("CDATA text = %q", got)
	}
}

func TestFaultRoundTrip(t *testing.T) {
	f := &Fault{Code: CodeClient, String: "bad thing"}
	data, err := (&Message{Body: f.Element()}).Bytes()
	if err != nil {
		t.Fatal(err)
	}
	env, err := Parse(data)
	if err != nil {
		t.Fatal(err)
	}
	if !IsFault(env.Payload) {
		t.Fatal("not a fault")
	}
	got := ParseFault(env.Payload)
	if got.Code != CodeClient || got.String != "bad thing" {
		t.Fatalf("got %+v", got)
	}
}

// TestParseByteOrderMarksAndUTF16: an envelope with a UTF-8 byte-order mark, or in
// UTF-16 either way round (with a BOM, or declared and without one), reads as the
// same envelope; a DTD in UTF-16 is still refused.
func TestParseByteOrderMarksAndUTF16(t *testing.T) {
	const env = `<?xml version="1.0" encoding="%s"?><s:Envelope xmlns:s="http://schemas.xmlsoap.org/soap/envelope/"><s:Body><p xmlns="urn:x">grüße 𝄞</p></s:Body></s:Envelope>`
	utf16 := func(s string, order binary.AppendByteOrder, bom bool) []byte {
		var out []byte
		if bom {
			out = order.AppendUint16(out, 0xFEFF)
		}
		for _, u := range utf16.Encode([]rune(s)) {
			out = order.AppendUint16(out, u)
		}
		return out
	}
	for name, data := range map[string][]byte{
		"UTF-8 with a BOM":       append([]byte{0xEF, 0xBB, 0xBF}, fmt.Sprintf(env, "UTF-8")...),
		"UTF-16BE with a BOM":    utf16(fmt.Sprintf(env, "UTF-16"), binary.BigEndian, true),
		"UTF-16LE with a BOM":    utf16(fmt.Sprintf(env, "UTF-16"), binary.LittleEndian, true),
		"UTF-16LE without a BOM": utf16(fmt.Sprintf(env, "UTF-16LE"), binary.LittleEndian, false),
		"UTF-16BE without a BOM": utf16(fmt.Sprintf(env, "UTF-16BE"), binary.BigEndian, false),
	} {
		e, err := Parse(data)
		if err != nil {
			t.Errorf("%s: %v", name, err)
			continue
		}
		if got := e.Payload.Text(); got != "grüße 𝄞" {
			t.Errorf("%s: payload %q", name, got)
		}
	}
	dtd := utf16(`<?xml version="1.0" encoding="UTF-16"?><!DOCTYPE x [<!ENTITY a "b">]><s:Envelope xmlns:s="http://schemas.xmlsoap.org/soap/envelope/"><s:Body/></s:Envelope>`, binary.LittleEndian, true)
	if _, err := Parse(dtd); !errors.Is(err, ErrDTD) {
		t.Errorf("a DTD in UTF-16: %v", err)
	}
}
