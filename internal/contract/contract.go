// Package contract reads the WSDL 1.1 service descriptions that define what vws
// services must answer: each operation's input element, and its input, output and
// fault actions. The WSDL is the source of truth; the container dispatches from it.
package contract

import (
	"fmt"
	"io/fs"
	"path"
	"strings"

	"github.com/beevik/etree"

	"github.com/vws-grid/vws/internal/wsa"
)

// Namespaces that may carry the wsa:Action attribute on WSDL input/output/fault.
var actionNamespaces = map[string]bool{
	wsa.NS200403: true, // GT4-era WSDLs
	"http://www.w3.org/2006/05/addressing/wsdl":     true, // wsaw
	"http://www.w3.org/2007/05/addressing/metadata": true, // wsam
	wsa.NS200508: true,
}

const nsWSDL = "http://schemas.xmlsoap.org/wsdl/"

// Operation is one WSDL operation.
type Operation struct {
	Name         string
	Input        wsa.QName // the body element of the request
	InputAction  string
	Output       wsa.QName
	OutputAction string
	Faults       map[string]string // fault name → action
}

// Service is the operations of one wsdl:service, read from one file.
type Service struct {
	Name            string
	TargetNamespace string
	File            string // path within the FS
	Operations      []*Operation
	byAction        map[string]*Operation
	byInput         map[wsa.QName]*Operation
}

// ByAction finds the operation whose input action is action.
func (s *Service) ByAction(action string) *Operation { return s.byAction[action] }

// ByInput finds the operation whose request body element is q.
func (s *Service) ByInput(q wsa.QName) *Operation { return s.byInput[q] }

// Load reads the WSDL at file (a path inside fsys), following wsdl:import of other
// WSDL files, and returns its one wsdl:service.
func Load(fsys fs.FS, file string) (*Service, error) {
	defs := &definitions{messages: map[wsa.QName]wsa.QName{}, portTypes: map[wsa.QName]*etree.Element{},
		bindings: map[wsa.QName]*etree.Element{}, tns: map[*etree.Element]string{}}
	root, err := defs.read(fsys, file, map[string]bool{})
	if err != nil {
		return nil, err
	}
	var svcEl *etree.Element
	for _, c := range root.ChildElements() {
		if c.Tag == "service" && c.NamespaceURI() == nsWSDL {
			if svcEl != nil {
				return nil, fmt.Errorf("%s: more than one wsdl:service", file)
			}
			svcEl = c
		}
	}
	if svcEl == nil {
		return nil, fmt.Errorf("%s: no wsdl:service", file)
	}
	svc := &Service{Name: svcEl.SelectAttrValue("name", ""), TargetNamespace: root.SelectAttrValue("targetNamespace", ""),
		File: file, byAction: map[string]*Operation{}, byInput: map[wsa.QName]*Operation{}}
	seenPortType := map[wsa.QName]bool{}
	for _, port := range svcEl.ChildElements() {
		if port.Tag != "port" {
			continue
		}
		bq, err := wsa.ResolveQName(port, port.SelectAttrValue("binding", ""))
		if err != nil {
			return nil, fmt.Errorf("%s: port %q: %w", file, port.SelectAttrValue("name", ""), err)
		}
		binding := defs.bindings[bq]
		if binding == nil {
			return nil, fmt.Errorf("%s: binding %s not found", file, bq)
		}
		pq, err := wsa.ResolveQName(binding, binding.SelectAttrValue("type", ""))
		if err != nil {
			return nil, fmt.Errorf("%s: binding %s: %w", file, bq, err)
		}
		if seenPortType[pq] {
			continue
		}
		seenPortType[pq] = true
		pt := defs.portTypes[pq]
		if pt == nil {
			return nil, fmt.Errorf("%s: portType %s not found", file, pq)
		}
		if err := defs.addOperations(svc, pt, pq); err != nil {
			return nil, fmt.Errorf("%s: %w", file, err)
		}
	}
	if len(svc.Operations) == 0 {
		return nil, fmt.Errorf("%s: service %s has no operations", file, svc.Name)
	}
	return svc, nil
}

type definitions struct {
	messages  map[wsa.QName]wsa.QName // message → element of its (single) part
	portTypes map[wsa.QName]*etree.Element
	bindings  map[wsa.QName]*etree.Element
	tns       map[*etree.Element]string
}

func (d *definitions) read(fsys fs.FS, file string, seen map[string]bool) (*etree.Element, error) {
	if seen[file] {
		return nil, nil
	}
	seen[file] = true
	data, err := fs.ReadFile(fsys, file)
	if err != nil {
		return nil, fmt.Errorf("read WSDL: %w", err)
	}
	doc := etree.NewDocument()
	if err := doc.ReadFromBytes(data); err != nil {
		return nil, fmt.Errorf("%s: %w", file, err)
	}
	root := doc.Root()
	if root == nil || root.Tag != "definitions" || root.NamespaceURI() != nsWSDL {
		return nil, fmt.Errorf("%s: not a WSDL 1.1 document", file)
	}
	tns := root.SelectAttrValue("targetNamespace", "")
	for _, c := range root.ChildElements() {
		if c.NamespaceURI() != nsWSDL {
			continue
		}
		name := wsa.QName{Space: tns, Local: c.SelectAttrValue("name", "")}
		switch c.Tag {
		case "import":
			loc := c.SelectAttrValue("location", "")
			if strings.HasSuffix(loc, ".wsdl") && !strings.Contains(loc, "://") {
				if _, err := d.read(fsys, path.Join(path.Dir(file), loc), seen); err != nil {
					return nil, err
				}
			}
		case "message":
			parts := c.SelectElements("part")
			if len(parts) != 1 {
				// document/literal wrapped: one part per message; others never carry requests.
				continue
			}
			el, err := wsa.ResolveQName(parts[0], parts[0].SelectAttrValue("element", ""))
			if err != nil {
				return nil, fmt.Errorf("%s: message %s: %w", file, name.Local, err)
			}
			d.messages[name] = el
		case "portType":
			d.portTypes[name] = c
			d.tns[c] = tns
		case "binding":
			d.bindings[name] = c
		}
	}
	return root, nil
}

func (d *definitions) addOperations(svc *Service, pt *etree.Element, pq wsa.QName) error {
	for _, opEl := range pt.SelectElements("operation") {
		op := &Operation{Name: opEl.SelectAttrValue("name", ""), Faults: map[string]string{}}
		for _, io := range opEl.ChildElements() {
			mq, err := wsa.ResolveQName(io, io.SelectAttrValue("message", ""))
			if err != nil {
				return fmt.Errorf("operation %s: %w", op.Name, err)
			}
			elem, ok := d.messages[mq]
			if !ok {
				return fmt.Errorf("operation %s: message %s not found or not single-part", op.Name, mq)
			}
			action := explicitAction(io)
			switch io.Tag {
			case "input":
				op.Input = elem
				op.InputAction = orDefault(action, pq, io, op.Name+"Request")
			case "output":
				op.Output = elem
				op.OutputAction = orDefault(action, pq, io, op.Name+"Response")
			case "fault":
				op.Faults[io.SelectAttrValue("name", "")] = orDefault(action, pq, io, op.Name+"_"+io.SelectAttrValue("name", ""))
			}
		}
		if op.Input.Local == "" {
			return fmt.Errorf("operation %s has no input", op.Name)
		}
		if prev := svc.byAction[op.InputAction]; prev != nil {
			return fmt.Errorf("operations %s and %s share input action %s", prev.Name, op.Name, op.InputAction)
		}
		if prev := svc.byInput[op.Input]; prev != nil {
			return fmt.Errorf("operations %s and %s share input element %s", prev.Name, op.Name, op.Input)
		}
		svc.byAction[op.InputAction] = op
		svc.byInput[op.Input] = op
		svc.Operations = append(svc.Operations, op)
	}
	return nil
}

func explicitAction(el *etree.Element) string {
	for _, a := range el.Attr {
		if a.Key == "Action" && actionNamespaces[a.NamespaceURI()] {
			return strings.TrimSpace(a.Value)
		}
	}
	return ""
}

// orDefault applies the WS-Addressing WSDL binding's default action pattern
// [target namespace][delimiter][port type name][delimiter][message name].
func orDefault(action string, pt wsa.QName, io *etree.Element, fallbackName string) string {
	if action != "" {
		return action
	}
	delim := "/"
	if strings.HasPrefix(pt.Space, "urn:") {
		delim = ":"
	}
	name := io.SelectAttrValue("name", fallbackName)
	return strings.TrimSuffix(pt.Space, delim) + delim + pt.Local + delim + name
}
