// Command eprxml runs after gowsdl (see ../../generate.go). gowsdl maps an xs:any
// wildcard to a slice of strings, one per child element holding only that child's own
// text, so an endpoint reference decoded into a generated type loses its reference
// parameters. The EPR-valued types (spelled as a sequence of xs:any so that zeep and
// Axis 1.4 see an element list) get gowsdl's own AnyType instead: their inner XML,
// kept whole.
package main

import (
	"bytes"
	"fmt"
	"os"
	"regexp"
)

// eprTypes are the generated types that hold an endpoint reference's children.
var eprTypes = regexp.MustCompile("(?m)^(type (?:EPR|ManagerReference|EndpointReferenceContainerType) struct \\{\n(?:\t[^\n]*\n|\n)*?)\tItems \\[\\]string `xml:\",any\" json:\"items,omitempty\"`\n")

func main() {
	if len(os.Args) < 2 {
		fmt.Fprintln(os.Stderr, "usage: eprxml FILE.go...")
		os.Exit(2)
	}
	for _, name := range os.Args[1:] {
		if err := rewrite(name); err != nil {
			fmt.Fprintln(os.Stderr, "eprxml:", err)
			os.Exit(1)
		}
	}
}

func rewrite(name string) error {
	src, err := os.ReadFile(name)
	if err != nil {
		return err
	}
	out := eprTypes.ReplaceAll(src, []byte("${1}\tAnyType\n"))
	if bytes.Equal(out, src) {
		return fmt.Errorf("%s: no EPR-valued type with a wildcard slice found; has gowsdl's output changed?", name)
	}
	return os.WriteFile(name, out, 0o644)
}
