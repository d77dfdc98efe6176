package describe

/*
#cgo pkg-config: libxml-2.0
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <libxml/parser.h>
#include <libxml/parserInternals.h>
#include <libxml/tree.h>
#include <libxml/xmlIO.h>
#include <libxml/xmlerror.h>

// The embedded schema tree, served to the schema compiler under the vws-schema: scheme.
// Written once, before the loader is installed, and never freed. Each load copies the
// file (xmlParserInputBufferCreateMem): libxml2 2.9.14 misreads larger files given as
// static memory (xmlParserInputBufferCreateStatic), which fails hardware.xsd.
typedef struct { char *url; char *data; int len; } vwsFile;
static vwsFile *vwsFiles = NULL;
static int vwsNFiles = 0;
static xmlExternalEntityLoader vwsPrevLoader = NULL;

// Counters for the tests: every call of the loader, and the calls it refused.
static long vwsLoaderCalls = 0;
static long vwsLoaderRefused = 0;

static void vwsSetFiles(vwsFile *files, int n) { vwsFiles = files; vwsNFiles = n; }

static int vwsHasPrefix(const char *s, const char *p) { return strncasecmp(s, p, strlen(p)) == 0; }

static xmlParserInputPtr vwsLoader(const char *URL, const char *ID, xmlParserCtxtPtr ctxt) {
	__atomic_fetch_add(&vwsLoaderCalls, 1, __ATOMIC_RELAXED);
	if (URL != NULL && vwsHasPrefix(URL, "vws-schema:")) {
		for (int i = 0; i < vwsNFiles; i++) {
			if (strcmp(URL, vwsFiles[i].url) != 0) continue;
			xmlParserInputBufferPtr buf = xmlParserInputBufferCreateMem(vwsFiles[i].data, vwsFiles[i].len, XML_CHAR_ENCODING_NONE);
			if (buf == NULL) return NULL;
			xmlParserInputPtr in = xmlNewIOInputStream(ctxt, buf, XML_CHAR_ENCODING_NONE);
			if (in == NULL) {
				xmlFreeParserInputBuffer(buf);
				return NULL;
			}
			// The document URL is the base the compiler resolves relative imports against.
			in->filename = (const char *) xmlStrdup((const xmlChar *) URL);
			return in;
		}
		__atomic_fetch_add(&vwsLoaderRefused, 1, __ATOMIC_RELAXED);
		return NULL;
	}
	// XML_PARSE_NONET for every parse in the process: the library parses with options 0
	// and offers no way to pass parser options.
	if (URL == NULL || vwsHasPrefix(URL, "http:") || vwsHasPrefix(URL, "https:") || vwsHasPrefix(URL, "ftp:")) {
		__atomic_fetch_add(&vwsLoaderRefused, 1, __ATOMIC_RELAXED);
		return NULL;
	}
	return vwsPrevLoader(URL, ID, ctxt);
}

static void vwsInstallLoader(void) {
	vwsPrevLoader = xmlGetExternalEntityLoader();
	xmlSetExternalEntityLoader(vwsLoader);
}

static long vwsCalls(void) { return __atomic_load_n(&vwsLoaderCalls, __ATOMIC_RELAXED); }
static long vwsRefused(void) { return __atomic_load_n(&vwsLoaderRefused, __ATOMIC_RELAXED); }

static void vwsNoError(void *ctx, const char *msg, ...) {}
static void vwsNoStructuredError(void *ctx, xmlErrorPtr err) {}

static void vwsWalk(xmlNodePtr n, int *out, int max, int *i) {
	for (; n != NULL; n = n->next) {
		if (n->type != XML_ELEMENT_NODE) continue;
		if (*i < max) out[*i] = (int) n->line;
		(*i)++;
		vwsWalk(n->children, out, max, i);
	}
}

// vwsElementLines parses buf the way go-xsd-validate does (xmlCtxtReadMemory, options
// 0, plus NONET) and stores the line libxml2 records for each element, in document
// order. It returns the number of elements, or -1 if libxml2 refuses the document.
static int vwsElementLines(const void *buf, int len, int *out, int max) {
	xmlSetGenericErrorFunc(NULL, vwsNoError);
	xmlSetStructuredErrorFunc(NULL, vwsNoStructuredError);
	xmlParserCtxtPtr ctxt = xmlNewParserCtxt();
	if (ctxt == NULL) return -1;
	xmlDocPtr doc = xmlCtxtReadMemory(ctxt, buf, len, NULL, NULL, XML_PARSE_NONET);
	xmlFreeParserCtxt(ctxt);
	xmlSetStructuredErrorFunc(NULL, NULL);
	if (doc == NULL) return -1;
	int i = 0;
	vwsWalk(xmlDocGetRootElement(doc), out, max, &i);
	xmlFreeDoc(doc);
	return i;
}
*/
import "C"

import (
	"errors"
	"fmt"
	"io/fs"
	"sync"
	"unsafe"

	xsdvalidate "github.com/terminalstatic/go-xsd-validate"

	"github.com/vws-grid/vws/schema"
)

// schemaScheme is the URL scheme under which the loader serves schema.FS. A scheme of
// our own, rather than a temporary directory, means nothing is written to disk and no
// file a document names can ever be mistaken for part of the schema.
const schemaScheme = "vws-schema:/"

// mainSchemaURL is the description schema; its imports resolve relative to it.
const mainSchemaURL = schemaScheme + "vws/workspace.xsd"

var (
	libxmlOnce sync.Once
	libxmlErr  error
)

// initLibxml initialises libxml2 through go-xsd-validate and installs the external
// entity loader, once per process. The loader is process-wide state of libxml2: it
// serves vws-schema: URLs from schema.FS, refuses http, https and ftp for every parse
// (libxml2 and the library would otherwise allow network access: the library parses
// with options 0, not XML_PARSE_NONET), and hands local paths to the previous loader so
// that other users of libxml2 in the process keep working.
//
// libxml2 is never cleaned up (xsdvalidate.Cleanup calls xmlCleanupParser, which is
// unsafe while any other goroutine may still use libxml2).
func initLibxml() error {
	libxmlOnce.Do(func() {
		if err := xsdvalidate.Init(); err != nil {
			var le xsdvalidate.Libxml2Error
			// Another package got there first: libxml2 is initialised, which is all we need.
			if !errors.As(err, &le) || le.Message != "Libxml2 already initialized" {
				libxmlErr = fmt.Errorf("describe: initialising libxml2: %w", err)
				return
			}
		}
		var files []C.vwsFile
		err := fs.WalkDir(schema.FS, ".", func(path string, d fs.DirEntry, err error) error {
			if err != nil || d.IsDir() {
				return err
			}
			b, err := fs.ReadFile(schema.FS, path)
			if err != nil {
				return err
			}
			files = append(files, C.vwsFile{
				url:  C.CString(schemaScheme + path),
				data: (*C.char)(C.CBytes(b)),
				len:  C.int(len(b)),
			})
			return nil
		})
		if err != nil {
			libxmlErr = fmt.Errorf("describe: reading the embedded schema: %w", err)
			return
		}
		table := (*C.vwsFile)(C.malloc(C.size_t(len(files)) * C.size_t(unsafe.Sizeof(C.vwsFile{}))))
		copy(unsafe.Slice(table, len(files)), files)
		C.vwsSetFiles(table, C.int(len(files)))
		C.vwsInstallLoader()
	})
	return libxmlErr
}

// loaderStats reports how often libxml2 asked the loader for an external resource and
// how often it was refused (for the tests: validating a document must ask for nothing).
func loaderStats() (calls, refused int64) {
	return int64(C.vwsCalls()), int64(C.vwsRefused())
}

// libxmlElementLines returns the line libxml2 records for each element of data, in
// document order, or nil if libxml2 does not parse it. The tests and the fuzz target
// use it to check that scan computes the same lines.
func libxmlElementLines(data []byte) []int {
	if len(data) == 0 {
		return nil
	}
	buf := C.CBytes(data)
	defer C.free(buf)
	n := C.vwsElementLines(buf, C.int(len(data)), nil, 0)
	if n < 0 {
		return nil
	}
	if n == 0 {
		return []int{}
	}
	out := make([]C.int, int(n))
	C.vwsElementLines(buf, C.int(len(data)), &out[0], n)
	lines := make([]int, len(out))
	for i, l := range out {
		lines[i] = int(l)
	}
	return lines
}
