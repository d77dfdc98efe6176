package wsrf

import (
	"fmt"

	"github.com/beevik/etree"

	"github.com/vws-grid/vws/internal/errdefs"
	"github.com/vws-grid/vws/internal/wsa"
)

// ModKind is a SetResourceProperties component.
type ModKind int

// The three SetResourceProperties components.
const (
	Insert ModKind = iota + 1
	Update
	Delete
)

// Modification is one Insert, Update or Delete of a property.
type Modification struct {
	Kind     ModKind
	Property wsa.QName
	// Values are the new property elements (Insert, Update), standalone copies.
	Values []*etree.Element
}

// ParseModifications reads the children of a SetResourceProperties element.
func ParseModifications(rpNS string, payload *etree.Element) ([]Modification, error) {
	var mods []Modification
	for _, c := range payload.ChildElements() {
		if c.NamespaceURI() != rpNS {
			return nil, fmt.Errorf("%w: unexpected element {%s}%s; expected Insert, Update or Delete in %s",
				errdefs.ErrInvalidModification, c.NamespaceURI(), c.Tag, rpNS)
		}
		var m Modification
		switch c.Tag {
		case "Insert":
			m.Kind = Insert
		case "Update":
			m.Kind = Update
		case "Delete":
			m.Kind = Delete
			q, err := wsa.ResolveQName(c, c.SelectAttrValue("ResourceProperty", ""))
			if err != nil {
				return nil, fmt.Errorf("%w: Delete/@ResourceProperty: %v", errdefs.ErrInvalidModification, err)
			}
			m.Property = q
			mods = append(mods, m)
			continue
		default:
			return nil, fmt.Errorf("%w: unexpected element %s; expected Insert, Update or Delete", errdefs.ErrInvalidModification, c.Tag)
		}
		values := c.ChildElements()
		if len(values) == 0 {
			return nil, fmt.Errorf("%w: %s holds no property element", errdefs.ErrInvalidModification, c.Tag)
		}
		for _, v := range values {
			q := wsa.QName{Space: v.NamespaceURI(), Local: v.Tag}
			if m.Property.Local == "" {
				m.Property = q
			} else if q != m.Property {
				return nil, fmt.Errorf("%w: %s mixes %s and %s; send one property per %s",
					errdefs.ErrInvalidModification, c.Tag, m.Property, q, c.Tag)
			}
			m.Values = append(m.Values, wsa.Detach(v))
		}
		mods = append(mods, m)
	}
	if len(mods) == 0 {
		return nil, fmt.Errorf("%w: SetResourceProperties is empty", errdefs.ErrInvalidModification)
	}
	return mods, nil
}

// applyModifications returns props with mods applied in order: Insert appends after
// the property's last instance, Update replaces all instances, Delete removes them.
func applyModifications(props []*etree.Element, mods []Modification) []*etree.Element {
	is := func(p *etree.Element, q wsa.QName) bool { return p.Tag == q.Local && p.NamespaceURI() == q.Space }
	for _, m := range mods {
		switch m.Kind {
		case Insert:
			at := len(props)
			for i := len(props) - 1; i >= 0; i-- {
				if is(props[i], m.Property) {
					at = i + 1
					break
				}
			}
			next := append([]*etree.Element{}, props[:at]...)
			next = append(next, m.Values...)
			props = append(next, props[at:]...)
		case Update, Delete:
			var next []*etree.Element
			placed := false
			for _, p := range props {
				if is(p, m.Property) {
					if m.Kind == Update && !placed {
						next = append(next, m.Values...)
						placed = true
					}
					continue
				}
				next = append(next, p)
			}
			if m.Kind == Update && !placed {
				next = append(next, m.Values...)
			}
			props = next
		}
	}
	return props
}
