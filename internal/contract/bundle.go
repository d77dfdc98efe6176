package contract

import (
	"io/fs"
	"strings"

	"github.com/vws-grid/vws/schema"
	"github.com/vws-grid/vws/wsdl"
)

// FS is the whole contract as one file tree: "wsdl/…" and "schema/…", with relative
// imports between them resolving as they do in the source tree.
var FS fs.FS = bundle{}

type bundle struct{}

func (bundle) Open(name string) (fs.File, error) {
	if !fs.ValidPath(name) {
		return nil, &fs.PathError{Op: "open", Path: name, Err: fs.ErrInvalid}
	}
	switch {
	case strings.HasPrefix(name, "wsdl/"):
		return wsdl.FS.Open(strings.TrimPrefix(name, "wsdl/"))
	case strings.HasPrefix(name, "schema/"):
		return schema.FS.Open(strings.TrimPrefix(name, "schema/"))
	}
	return nil, &fs.PathError{Op: "open", Path: name, Err: fs.ErrNotExist}
}
