package xpathdoc

import (
	"slices"

	"github.com/beevik/etree"
)

// materialize turns the positions of a node-set into detached Nodes in
// document order, without duplicates.
func materialize(found []nav, b *budget) []Node {
	if len(found) == 0 {
		return nil
	}
	if len(found) > 1 {
		found = docOrder(found, b)
	}
	out := make([]Node, 0, len(found))
	for i := range found {
		n := &found[i]
		switch n.k {
		case kindDoc:
			out = append(out, Node{Kind: DocumentNode, Element: n.detach(n.root)})
		case kindElem:
			out = append(out, Node{Kind: ElementNode, Element: n.detach(n.e), NamespaceURI: n.NamespaceURL()})
		case kindAttr:
			uri := n.NamespaceURL()
			out = append(out, Node{Kind: AttributeNode, Attr: detachAttr(&n.e.Attr[n.a], uri), Text: n.e.Attr[n.a].Value, NamespaceURI: uri})
		case kindText:
			out = append(out, Node{Kind: TextNode, Text: n.Value()})
		case kindComment:
			out = append(out, Node{Kind: CommentNode, Text: n.Value()})
		}
	}
	return out
}

// docOrder sorts found into document order and drops duplicates. The
// library usually yields document order already; then this only checks.
func docOrder(found []nav, b *budget) []nav {
	type keyed struct {
		key []int
		n   nav
	}
	ks := make([]keyed, len(found))
	sorted := true
	for i := range found {
		ks[i] = keyed{found[i].orderKey(b), found[i]}
		if i > 0 && slices.Compare(ks[i-1].key, ks[i].key) >= 0 {
			sorted = false
		}
	}
	if sorted {
		return found
	}
	slices.SortStableFunc(ks, func(x, y keyed) int { return slices.Compare(x.key, y.key) })
	out := found[:0]
	for i := range ks {
		if i > 0 && slices.Equal(ks[i-1].key, ks[i].key) {
			continue
		}
		out = append(out, ks[i].n)
	}
	return out
}

// attrKeyBase puts attributes after their element and before its children
// in the order of orderKey.
const attrKeyBase = -1 << 30

// orderKey returns a key whose lexicographic order is document order: the
// path of child positions from the document node (children count from 1,
// attributes are negative).
func (n *nav) orderKey(b *budget) []int {
	var rev []int
	var e *etree.Element
	switch n.k {
	case kindDoc:
		return []int{}
	case kindAttr:
		rev = append(rev, attrKeyBase+n.a)
		e = n.e
	case kindElem:
		e = n.e
	default:
		rev = append(rev, n.i+1)
		e = n.p
	}
	for e != n.root {
		b.tick(1)
		p, i := n.parentOf(e)
		rev = append(rev, i+1)
		e = p
	}
	rev = append(rev, 1) // root is the document's only child
	slices.Reverse(rev)
	return rev
}

// detach returns a deep copy of e (root or one of its descendants) that
// declares the namespaces it uses but inherits from its ancestors.
func (n *nav) detach(e *etree.Element) *etree.Element {
	var used []string // prefixes used in the subtree; "" = default namespace
	use := func(p string) {
		if p != "xml" && p != "xmlns" && !slices.Contains(used, p) {
			used = append(used, p)
		}
	}
	var walk func(*etree.Element)
	walk = func(x *etree.Element) {
		n.b.tick(1 + len(x.Attr))
		use(x.Space)
		for i := range x.Attr {
			if sp := x.Attr[i].Space; sp != "" {
				use(sp)
			}
		}
		for _, t := range x.Child {
			n.b.tick(1)
			if c, ok := t.(*etree.Element); ok {
				walk(c)
			}
		}
	}
	walk(e)
	c := e.Copy()
	slices.Sort(used)
	before := len(c.Attr)
	for _, p := range used {
		if declares(e, p) {
			continue
		}
		uri := n.resolve(e, p, true)
		switch {
		case uri == "":
			// Unbound, or the default namespace is none: nothing to declare.
		case p == "":
			c.CreateAttr("xmlns", uri)
		default:
			c.CreateAttr("xmlns:"+p, uri)
		}
	}
	if len(c.Attr) > before {
		// Put the added declarations first, as a writer would.
		slices.Reverse(c.Attr[:before])
		slices.Reverse(c.Attr[before:])
		slices.Reverse(c.Attr)
	}
	return c
}

// declares reports whether e itself declares prefix ("" = default namespace).
func declares(e *etree.Element, prefix string) bool {
	for _, a := range e.Attr {
		if (prefix == "" && a.Space == "" && a.Key == "xmlns") || (prefix != "" && a.Space == "xmlns" && a.Key == prefix) {
			return true
		}
	}
	return false
}

// detachAttr copies a onto a childless stand-in for its element that
// declares the attribute's namespace.
func detachAttr(a *etree.Attr, uri string) *etree.Attr {
	h := etree.NewElement("attribute-owner")
	if a.Space != "" && a.Space != "xml" && uri != "" {
		h.CreateAttr("xmlns:"+a.Space, uri)
	}
	return h.CreateAttr(a.FullKey(), a.Value)
}
