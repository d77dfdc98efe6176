package soap

import (
	"github.com/beevik/etree"
)

// Message is an outgoing envelope: header blocks and one body element (or a Fault).
type Message struct {
	Headers []*etree.Element
	Body    *etree.Element
}

// Document renders m as a SOAP 1.1 envelope document with prefix "soapenv".
func (m *Message) Document() *etree.Document {
	doc := etree.NewDocument()
	doc.CreateProcInst("xml", `version="1.0" encoding="UTF-8"`)
	env := doc.CreateElement("soapenv:Envelope")
	env.CreateAttr("xmlns:soapenv", NS11)
	if len(m.Headers) > 0 {
		h := env.CreateElement("soapenv:Header")
		for _, b := range m.Headers {
			h.AddChild(b)
		}
	}
	body := env.CreateElement("soapenv:Body")
	if m.Body != nil {
		body.AddChild(m.Body)
	}
	return doc
}

// Bytes renders m as a serialized envelope.
func (m *Message) Bytes() ([]byte, error) {
	return m.Document().WriteToBytes()
}

// FaultCode is a SOAP 1.1 fault code local name.
type FaultCode string

// The SOAP 1.1 fault codes.
const (
	CodeClient          FaultCode = "Client"
	CodeServer          FaultCode = "Server"
	CodeMustUnderstand  FaultCode = "MustUnderstand"
	CodeVersionMismatch FaultCode = "VersionMismatch"
)

// Fault is a SOAP 1.1 Fault body.
type Fault struct {
	Code   FaultCode
	String string
	Actor  string
	// Detail holds the typed detail entries (a BaseFault subtype), if any.
	Detail []*etree.Element
}

// Element renders the fault as a soapenv:Fault element (the envelope declares soapenv).
func (f *Fault) Element() *etree.Element {
	el := etree.NewElement("soapenv:Fault")
	el.CreateElement("faultcode").SetText("soapenv:" + string(f.Code))
	el.CreateElement("faultstring").SetText(f.String)
	if f.Actor != "" {
		el.CreateElement("faultactor").SetText(f.Actor)
	}
	if len(f.Detail) > 0 {
		d := el.CreateElement("detail")
		for _, e := range f.Detail {
			d.AddChild(e)
		}
	}
	return el
}

// ParseFault reads a soapenv:Fault body element (client side).
func ParseFault(el *etree.Element) *Fault {
	f := &Fault{}
	for _, c := range el.ChildElements() {
		switch c.Tag {
		case "faultcode":
			code := c.Text()
			for i := len(code) - 1; i >= 0; i-- {
				if code[i] == ':' {
					code = code[i+1:]
					break
				}
			}
			f.Code = FaultCode(code)
		case "faultstring":
			f.String = c.Text()
		case "faultactor":
			f.Actor = c.Text()
		case "detail":
			f.Detail = c.ChildElements()
		}
	}
	return f
}

// IsFault reports whether a body payload is a SOAP 1.1 Fault.
func IsFault(el *etree.Element) bool {
	return el != nil && el.Tag == "Fault" && el.NamespaceURI() == NS11
}
