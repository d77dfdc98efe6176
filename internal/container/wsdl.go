package container

import (
	"errors"
	"fmt"
	"io/fs"
	"net/http"
	"path"
	"strings"
	"sync"

	"github.com/beevik/etree"

	"github.com/vws-grid/vws/internal/dialect"
)

// sharePath is where WSDL and schema files are served, so every import in a WSDL
// resolves over HTTP from the same server.
const sharePath = "/wsrf/share/"

// wsdlServer serves contract files with relative imports rewritten to absolute URLs on
// this server (the same file is reached under different host names).
type wsdlServer struct {
	fsys  fs.FS
	mu    sync.Mutex
	cache map[string][]byte // base URL + file → rewritten bytes
}

const maxCachedRewrites = 256

func newWSDLServer(fsys fs.FS) *wsdlServer {
	return &wsdlServer{fsys: fsys, cache: map[string][]byte{}}
}

func baseURL(r *http.Request) string {
	scheme := "http"
	if r.TLS != nil {
		scheme = "https"
	}
	return scheme + "://" + r.Host
}

// queryParam returns the query parameter name, its name matched without regard to
// case: Axis-based containers (GT4's among them) answer ?WSDL too, and tools ask so.
func queryParam(r *http.Request, name string) (string, bool) {
	for k, v := range r.URL.Query() {
		if strings.EqualFold(k, name) {
			if len(v) == 0 {
				return "", true
			}
			return v[0], true
		}
	}
	return "", false
}

// serveWSDL answers GET <service>?wsdl: the WSRF 1.2 dialect by default, GT4's with
// ?wsdl&dialect=gt4.
func (s *wsdlServer) serveWSDL(w http.ResponseWriter, r *http.Request, svc *Service) {
	d := dialect.WSRF12
	want, _ := queryParam(r, "dialect")
	switch strings.ToLower(want) {
	case "", "wsrf12":
	case "gt4":
		d = dialect.GT4
	default:
		http.Error(w, "dialect must be gt4 or wsrf12", http.StatusBadRequest)
		return
	}
	s.serveFile(w, r, svc.Contract(d).File, baseURL(r)+r.URL.Path)
}

func (s *wsdlServer) serveShare(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodGet && r.Method != http.MethodHead {
		http.Error(w, "use GET", http.StatusMethodNotAllowed)
		return
	}
	file := strings.TrimPrefix(r.URL.Path, sharePath)
	if !fs.ValidPath(file) || !(strings.HasSuffix(file, ".wsdl") || strings.HasSuffix(file, ".xsd")) {
		http.NotFound(w, r)
		return
	}
	s.serveFile(w, r, file, "")
}

func (s *wsdlServer) serveFile(w http.ResponseWriter, r *http.Request, file, serviceURL string) {
	if s.fsys == nil {
		http.NotFound(w, r)
		return
	}
	key := baseURL(r) + "|" + serviceURL + "|" + file
	s.mu.Lock()
	out, ok := s.cache[key]
	s.mu.Unlock()
	if !ok {
		var err error
		out, err = s.rewrite(file, baseURL(r), serviceURL)
		if err != nil {
			if errorsIsNotExist(err) {
				http.NotFound(w, r)
				return
			}
			http.Error(w, err.Error(), http.StatusInternalServerError)
			return
		}
		s.mu.Lock()
		if len(s.cache) >= maxCachedRewrites {
			clear(s.cache) // hostile Host headers must not grow memory without bound
		}
		s.cache[key] = out
		s.mu.Unlock()
	}
	w.Header().Set("Content-Type", "text/xml; charset=utf-8")
	_, _ = w.Write(out)
}

// rewrite makes every relative import absolute under base+sharePath and points the
// soap:address at serviceURL.
func (s *wsdlServer) rewrite(file, base, serviceURL string) ([]byte, error) {
	data, err := fs.ReadFile(s.fsys, file)
	if err != nil {
		return nil, err
	}
	doc := etree.NewDocument()
	if err := doc.ReadFromBytes(data); err != nil {
		return nil, fmt.Errorf("%s: %w", file, err)
	}
	dir := path.Dir(file)
	var walk func(e *etree.Element)
	walk = func(e *etree.Element) {
		for i := range e.Attr {
			a := &e.Attr[i]
			switch {
			case (a.Key == "schemaLocation" || a.Key == "location") && a.Space == "" && isRelative(a.Value):
				if e.Tag == "address" && serviceURL != "" {
					continue
				}
				a.Value = base + sharePath + path.Join(dir, a.Value)
			case a.Key == "location" && e.Tag == "address" && serviceURL != "":
				a.Value = serviceURL
			}
		}
		for _, c := range e.ChildElements() {
			walk(c)
		}
	}
	if root := doc.Root(); root != nil {
		walk(root)
	}
	return doc.WriteToBytes()
}

func isRelative(loc string) bool {
	return loc != "" && !strings.Contains(loc, "://") && !strings.HasPrefix(loc, "/")
}

func errorsIsNotExist(err error) bool { return errors.Is(err, fs.ErrNotExist) }
