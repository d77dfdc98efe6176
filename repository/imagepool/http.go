package imagepool

import (
	"context"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"os"
	"strings"
	"syscall"

	"github.com/vws-grid/vws/internal/errdefs"
	"github.com/vws-grid/vws/internal/fsutil"
	"github.com/vws-grid/vws/internal/identity"
	"github.com/vws-grid/vws/internal/transfer"
)

// ImportResult is the body of a PUT /images answer.
type ImportResult struct {
	Image
	// Stored is true when the content was new; false when the pool already held it
	// and the name now points at the existing blob.
	Stored       bool `json:"stored"`
	Deduplicated bool `json:"deduplicated"`
}

// ImageList is the body of a GET /images answer.
type ImageList struct {
	Images []Image `json:"images"`
}

// ServeHTTP serves the pool under /images (mount it at both "/images" and "/images/"):
//
//	GET|HEAD /images/<digest>   the blob (sha256:<hex> or <hex>), with Range, If-Range,
//	                            ETag "sha256:<hex>", Repr-Digest
//	GET      /images            the named images, JSON {"images":[…]}
//	PUT      /images?name=N&os=O&kernel=K&arch=A&lib=L&lib=…   streamed import, 201 + JSON
//	DELETE   /images/<name>     remove the name (and the blob if no other name has it)
//
// Failures are one line of text: 400 bad input, 404 unknown image, 409 name taken or
// image in use, 405 wrong method, 500 our side.
func (p *Pool) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	ctx := r.Context()
	if identity.From(ctx).IsAnonymous() {
		ctx = identity.With(ctx, identity.FromRequest(r))
	}
	rest, ok := strings.CutPrefix(r.URL.Path, "/images")
	if !ok || (rest != "" && rest[0] != '/') {
		http.Error(w, "not found: image pool paths are /images and /images/<digest>", http.StatusNotFound)
		return
	}
	ref := strings.TrimPrefix(rest, "/")
	if ref == "" {
		switch r.Method {
		case http.MethodGet, http.MethodHead:
			p.serveList(ctx, w, r)
		case http.MethodPut:
			p.serveImport(ctx, w, r)
		default:
			w.Header().Set("Allow", "GET, HEAD, PUT")
			http.Error(w, r.Method+" is not supported on /images: GET lists the images, PUT imports one", http.StatusMethodNotAllowed)
		}
		return
	}
	switch r.Method {
	case http.MethodGet, http.MethodHead:
		p.serveBlob(ctx, w, r, ref)
	case http.MethodDelete:
		p.serveRemove(ctx, w, r, ref)
	default:
		w.Header().Set("Allow", "GET, HEAD, DELETE")
		http.Error(w, r.Method+" is not supported on /images/<ref>: GET or HEAD a digest, DELETE a name", http.StatusMethodNotAllowed)
	}
}

func (p *Pool) serveBlob(ctx context.Context, w http.ResponseWriter, r *http.Request, ref string) {
	d, err := ParseDigest(ref)
	if err != nil {
		if ValidateName(ref) == nil {
			if img, gerr := p.Get(ctx, ref); gerr == nil {
				err = fmt.Errorf("%w: GET /images/ takes a digest, not a name: image %q is /images/%s", errdefs.ErrBadRequest, ref, img.Digest)
			}
		}
		p.fail(ctx, w, err)
		return
	}
	var created int64
	err = p.db.QueryRowContext(ctx, `SELECT created FROM images WHERE digest = $1`, d).Scan(&created)
	if err != nil {
		if isNoRows(err) {
			err = fmt.Errorf("%w: no image with digest %s in this pool", errdefs.ErrResourceUnknown, d)
		}
		p.fail(ctx, w, err)
		return
	}
	f, err := os.Open(p.blobPath(d))
	if err != nil {
		p.fail(ctx, w, fmt.Errorf("%w: image %s is recorded but its file cannot be opened (%v); an administrator should remove and re-import it", errdefs.ErrImageIntegrity, d, err))
		return
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		p.fail(ctx, w, err)
		return
	}
	sum, _ := hex.DecodeString(strings.TrimPrefix(d, digestPrefix))
	h := w.Header()
	h.Set("ETag", `"`+d+`"`)
	h.Set("Accept-Ranges", "bytes")
	h.Set("Content-Type", "application/octet-stream")
	h.Set("Repr-Digest", "sha-256=:"+base64.StdEncoding.EncodeToString(sum)+":")
	transfer.ServeContent(w, r, fi.ModTime(), f, fi.Size())
}

func (p *Pool) serveList(ctx context.Context, w http.ResponseWriter, r *http.Request) {
	if len(r.URL.Query()) > 0 {
		p.fail(ctx, w, badRequest("GET /images takes no parameters (PUT /images?name=… imports)"))
		return
	}
	imgs, err := p.List(ctx)
	if err != nil {
		p.fail(ctx, w, err)
		return
	}
	writeJSON(w, http.StatusOK, ImageList{Images: imgs})
}

func (p *Pool) serveImport(ctx context.Context, w http.ResponseWriter, r *http.Request) {
	m, err := metaFromQuery(r)
	if err != nil {
		p.fail(ctx, w, err)
		return
	}
	if r.ContentLength > 0 {
		// Refuse before reading what cannot fit, rather than after moving it all.
		if free, err := fsutil.FreeBytes(p.dir); err == nil && r.ContentLength > free {
			p.fail(ctx, w, &storageFullError{fmt.Sprintf("an image of %d bytes does not fit the %d bytes free; nothing was read", r.ContentLength, free)})
			return
		}
	}
	img, stored, err := p.Import(ctx, r.Body, m)
	if errors.Is(err, syscall.ENOSPC) {
		err = &storageFullError{"it filled up during the import; nothing was kept"}
	}
	if err != nil {
		// Said once in the log whatever the cause (a refusal, a client gone mid-way),
		// so an operator sees the import that did not happen.
		p.log.Warn("image import not done; nothing was kept", "name", m.Name, "err", err, "caller", identity.From(ctx).String())
		p.fail(ctx, w, err)
		return
	}
	p.log.Info("image imported", "name", img.Name, "digest", img.Digest, "format", img.Format,
		"size", img.Size, "stored", stored, "caller", identity.From(ctx).String())
	how := "stored"
	if !stored {
		how = "deduplicated (the pool held its content already)"
	}
	p.record(ctx, "image-import", img.Name, fmt.Sprintf("digest=%s format=%s size=%d %s", img.Digest, img.Format, img.Size, how))
	w.Header().Set("Location", "/images/"+img.Digest)
	writeJSON(w, http.StatusCreated, ImportResult{Image: img, Stored: stored, Deduplicated: !stored})
}

func metaFromQuery(r *http.Request) (Meta, error) {
	q := r.URL.Query()
	var m Meta
	for k, vs := range q {
		if k != "lib" && len(vs) > 1 {
			return m, badRequest("parameter %q is given %d times; give it once", k, len(vs))
		}
		switch k {
		case "name":
			m.Name = vs[0]
		case "os":
			m.OS = vs[0]
		case "kernel":
			m.Kernel = vs[0]
		case "arch":
			m.Arch = vs[0]
		case "lib":
			m.Libraries = vs
		default:
			return m, badRequest("unknown parameter %q: PUT /images takes name, os, kernel, arch and lib (repeated)", truncate(k, 40))
		}
	}
	if m.Name == "" {
		return m, badRequest("PUT /images needs ?name=NAME (1 to %d characters from A-Z a-z 0-9 . _ -)", MaxNameLen)
	}
	return m, nil
}

func (p *Pool) serveRemove(ctx context.Context, w http.ResponseWriter, r *http.Request, name string) {
	p.mu.RLock()
	inUse := p.inUse
	p.mu.RUnlock()
	digest, err := p.remove(ctx, name, inUse)
	if err != nil {
		p.fail(ctx, w, err)
		return
	}
	p.log.Info("image removed", "name", name, "digest", digest, "caller", identity.From(ctx).String())
	p.record(ctx, "image-remove", name, "digest="+digest)
	w.WriteHeader(http.StatusNoContent)
}

// storageFullError is an import the pool's file system has no room for.
type storageFullError struct{ what string }

func (e *storageFullError) Error() string {
	return "the image pool's storage has no room for this image: " + e.what +
		"; free space in the repository's data directory (vws image remove NAME drops an image no workspace uses), then import again"
}

// fail answers err as one line of text with the status its sentinel stands for.
func (p *Pool) fail(ctx context.Context, w http.ResponseWriter, err error) {
	var taken *NameTakenError
	var inUse *InUseError
	status := http.StatusInternalServerError
	switch {
	case errors.As(err, &taken), errors.As(err, &inUse):
		status = http.StatusConflict
	case errors.As(err, new(*storageFullError)):
		status = http.StatusInsufficientStorage
		p.log.Error("image pool request failed", "err", err, "dir", p.dir, "caller", identity.From(ctx).String())
	case errors.Is(err, errdefs.ErrResourceUnknown):
		status = http.StatusNotFound
	case errors.Is(err, errdefs.ErrBadRequest), errors.Is(err, errdefs.ErrMetadata):
		status = http.StatusBadRequest
	}
	if status == http.StatusInternalServerError {
		p.log.Error("image pool request failed", "err", err, "caller", identity.From(ctx).String())
	}
	msg := strings.ReplaceAll(err.Error(), "\n", " ")
	http.Error(w, msg, status)
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	enc.Encode(v)
}

// record appends what was done to the audit trail, when the pool has one.
func (p *Pool) record(ctx context.Context, operation, name, detail string) {
	p.mu.RLock()
	a := p.audit
	p.mu.RUnlock()
	if a != nil {
		a.Record(ctx, operation, name, "done", detail)
	}
}
