package describe

import (
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/beevik/etree"

	"github.com/vws-grid/vws/internal/errdefs"
)

// FuzzValidate feeds arbitrary bytes to Validate. Besides not panicking (or crashing
// libxml2), every refusal must be a MetadataError (anything else means the service
// blames itself for a client's document), an accepted description must come with the
// Raw tree etree itself would read, and scan must agree with libxml2 on every element's
// line (which is what makes the paths right).
func FuzzValidate(f *testing.F) {
	err := filepath.WalkDir(samples, func(path string, d fs.DirEntry, err error) error {
		if err != nil || !strings.HasSuffix(path, ".xml") {
			return err
		}
		b, err := os.ReadFile(path)
		f.Add(b)
		return err
	})
	if err != nil {
		f.Fatal(err)
	}
	f.Add([]byte(doc(vm, hardware(ram("512", "4096", ""), disks(3)...))))
	f.Add([]byte(doc(vm, startup(file("/a", "<cap:encoding>base64</cap:encoding><cap:content>aGk=</cap:content>")+"<cap:argument>x</cap:argument>"))))
	f.Add([]byte(`<?xml version="1.0" encoding="UTF-8"?><!DOCTYPE x [<!ENTITY a "b">]><x>&a;</x>`))
	f.Add([]byte(`<vw:virtualWorkspace xmlns:vw="http://vws.dev/ns/2026/workspace"><vw:category vmm="xen">vm</vw:category><vw:EPR><a:b xmlns:a="urn:a"><![CDATA[<x>]]><!-- c --><?p i?></a:b></vw:EPR></vw:virtualWorkspace>`))
	v := validator(f)
	f.Fuzz(func(t *testing.T, data []byte) {
		start := time.Now()
		d, err := v.Validate(data)
		if el := time.Since(start); el > slow {
			t.Fatalf("Validate took %v", el)
		}
		if err != nil {
			var me *errdefs.MetadataError
			if !errors.As(err, &me) || !errors.Is(err, errdefs.ErrMetadata) {
				t.Fatalf("not a MetadataError: %v", err)
			}
			if me.Path == "" || me.Path[0] != '/' || me.Reason == "" {
				t.Fatalf("bad MetadataError %#v", me)
			}
		} else {
			if d == nil || d.Raw == nil {
				t.Fatal("accepted without a description")
			}
			pre, _ := precheck(data, DefaultLimits)
			ref := etree.NewDocument()
			if err := ref.ReadFromBytes(pre); err != nil {
				t.Fatalf("etree refuses an accepted description: %v", err)
			}
			if diff := sameTree(d.Raw, ref.Root()); diff != "" {
				t.Fatalf("Raw differs from etree's reading: %s", diff)
			}
		}
		checkLines(t, "input", data)
	})
}

// slow is how long one validation may take before the fuzzer reports the input: a
// document that is slow to validate is a way to deny service.
const slow = 2 * time.Second

// sameTree compares two etree trees token by token ("" if equal).
func sameTree(a, b *etree.Element) string {
	if a.Space != b.Space || a.Tag != b.Tag {
		return a.FullTag() + " vs " + b.FullTag()
	}
	if len(a.Attr) != len(b.Attr) {
		return a.FullTag() + ": attributes differ"
	}
	for i := range a.Attr {
		if a.Attr[i].Space != b.Attr[i].Space || a.Attr[i].Key != b.Attr[i].Key || a.Attr[i].Value != b.Attr[i].Value {
			return a.FullTag() + ": attribute " + a.Attr[i].FullKey()
		}
	}
	if len(a.Child) != len(b.Child) {
		return a.FullTag() + ": children differ"
	}
	for i := range a.Child {
		switch x := a.Child[i].(type) {
		case *etree.Element:
			y, ok := b.Child[i].(*etree.Element)
			if !ok {
				return a.FullTag() + ": child kinds differ"
			}
			if diff := sameTree(x, y); diff != "" {
				return diff
			}
		case *etree.CharData:
			y, ok := b.Child[i].(*etree.CharData)
			if !ok || x.Data != y.Data || x.IsWhitespace() != y.IsWhitespace() || x.IsCData() != y.IsCData() {
				return a.FullTag() + ": text differs"
			}
		case *etree.Comment:
			y, ok := b.Child[i].(*etree.Comment)
			if !ok || x.Data != y.Data {
				return a.FullTag() + ": comment differs"
			}
		case *etree.ProcInst:
			y, ok := b.Child[i].(*etree.ProcInst)
			if !ok || x.Target != y.Target || x.Inst != y.Inst {
				return a.FullTag() + ": processing instruction differs"
			}
		default:
			return a.FullTag() + ": unexpected token"
		}
	}
	return ""
}
