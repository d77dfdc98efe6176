package repository

import (
	"context"
	"crypto/sha256"
	"encoding/base64"
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"

	"github.com/vws-grid/vws/internal/errdefs"
	"github.com/vws-grid/vws/internal/fsutil"
	"github.com/vws-grid/vws/internal/qcow2"
	"github.com/vws-grid/vws/internal/transfer"
	"github.com/vws-grid/vws/internal/wsrf"
)

// Headers of the workspace file transfer.
const (
	// LockTokenHeader carries the token CheckOut returned; every request needs it.
	LockTokenHeader = "X-Vws-Lock-Token"
	// SHA256Header, on an upload, is the digest ("sha256:<hex>") the sent bytes must
	// have; when they do not, nothing is kept.
	SHA256Header = "X-Vws-Sha256"
)

// Upload bounds: an overlay holds at most every cluster of its disk plus metadata; a
// memory image at most the guest's RAM plus device state (video RAM, ROMs, the
// saved domain's XML): memorySlack beyond an eighth more than its RAM, and never
// more than MaxMemoryBytes.
const (
	overlaySlack   = 64 << 20
	memorySlack    = 256 << 20
	MaxMemoryBytes = 64 << 30
)

// memoryLimit is the largest memory image of a guest of ramMiB (0: not known).
func memoryLimit(ramMiB int64) int64 {
	if ramMiB <= 0 || ramMiB > MaxMemoryBytes>>20 {
		return MaxMemoryBytes
	}
	ram := ramMiB << 20
	return min(ram+ram/8+memorySlack, MaxMemoryBytes)
}

// UploadResult is the JSON body of a successful PUT: the digest and size of the file as
// the repository now holds it (for an overlay, after its backing reference was rewritten
// to the repository's chain), which CheckIn names.
type UploadResult struct {
	Digest string `json:"digest"`
	Size   int64  `json:"size"`
}

// FilesHandler serves a checked-out workspace's own files to the manager holding its
// lock. Mount it at /workspaces/:
//
//	GET|HEAD /workspaces/<key>/files/<digest>   a layer, the overlay or the memory image
//	                                            of the manifest, with Range, If-Range and
//	                                            ETag "<digest>"
//	PUT      /workspaces/<key>/overlay          the changed overlay (qcow2), 200 + JSON
//	PUT      /workspaces/<key>/memory           the saved RAM, 200 + JSON
//
// Every request carries X-Vws-Lock-Token; an upload may carry X-Vws-Sha256. Failures
// are one line of text: 400 bad input (nothing kept), 403 missing or wrong token, 404
// unknown workspace or digest, 405 wrong method, 409 not checked out, 413 too large,
// 500 our side.
func (r *Repository) FilesHandler() http.Handler {
	return http.HandlerFunc(r.serveFiles)
}

// httpError is a failure with the status it is answered with.
type httpError struct {
	status int
	msg    string
}

func (e *httpError) Error() string { return e.msg }

func httpErr(status int, format string, args ...any) error {
	return &httpError{status: status, msg: fmt.Sprintf(format, args...)}
}

func (r *Repository) serveFiles(w http.ResponseWriter, req *http.Request) {
	rest := strings.TrimPrefix(strings.TrimPrefix(req.URL.Path, "/workspaces"), "/")
	parts := strings.Split(rest, "/")
	key := parts[0]
	var err error
	op := "fetch-file" // as a refusal is audited
	switch {
	case len(parts) == 3 && parts[1] == "files" && parts[2] != "":
		if req.Method != http.MethodGet && req.Method != http.MethodHead {
			w.Header().Set("Allow", "GET, HEAD")
			err = httpErr(http.StatusMethodNotAllowed, "%s is not supported on /workspaces/<key>/files/<digest>: GET or HEAD it", req.Method)
			break
		}
		err = r.serveFile(w, req, key, parts[2])
	case len(parts) == 2 && (parts[1] == "overlay" || parts[1] == "memory"):
		if req.Method != http.MethodPut {
			w.Header().Set("Allow", "PUT")
			err = httpErr(http.StatusMethodNotAllowed, "%s is not supported on /workspaces/<key>/%s: PUT uploads it", req.Method, parts[1])
			break
		}
		op = "upload-" + parts[1]
		err = r.serveUpload(w, req, key, parts[1])
	default:
		err = httpErr(http.StatusNotFound, "not found: workspace file paths are /workspaces/<key>/files/<digest> (GET) and /workspaces/<key>/overlay or /memory (PUT)")
	}
	if err != nil {
		r.auditRefusal(req.Context(), op, key, err)
		r.failHTTP(w, req, key, err)
	}
}

func (r *Repository) failHTTP(w http.ResponseWriter, req *http.Request, key string, err error) {
	var he *httpError
	var tooBig *http.MaxBytesError
	status := http.StatusInternalServerError
	switch {
	case errors.As(err, &he):
		status = he.status
	case errors.As(err, &tooBig):
		status = http.StatusRequestEntityTooLarge
		err = fmt.Errorf("the upload is larger than the %d bytes this workspace's file may have; nothing was kept", tooBig.Limit)
	case errors.Is(err, errdefs.ErrResourceUnknown):
		status = http.StatusNotFound
	case errors.Is(err, errdefs.ErrBadRequest), errors.Is(err, errdefs.ErrImageIntegrity):
		status = http.StatusBadRequest
	}
	if status == http.StatusInternalServerError {
		r.log.Error("workspace file request failed", "method", req.Method, "path", req.URL.Path, "key", key, "err", err)
	}
	msg := err.Error()
	if advice := errdefs.Advice(err); advice != "" {
		msg += "; " + advice
	}
	http.Error(w, strings.ReplaceAll(msg, "\n", " "), status)
}

// checkLock checks, under the workspace's lock, that key is checked out and token
// holds it, and returns its disk record.
func (r *Repository) checkLock(ctx context.Context, s *wsrf.Snapshot, token string) (*diskChain, error) {
	chain, err := decodeChain(s.Private)
	if err != nil {
		return nil, err
	}
	if chain.Lock == "" {
		return nil, refuse(httpErr(http.StatusConflict, "workspace %s is not checked out (it is %s); its files are served to the manager holding it: CheckOut first", s.Key, text(s, PropDeployment)),
			tokenMismatch(s, chain))
	}
	if token == "" {
		return nil, refuse(httpErr(http.StatusForbidden, "no %s header: send the lock token CheckOut returned", LockTokenHeader), "no lock token")
	}
	if token != chain.Lock {
		return nil, refuse(httpErr(http.StatusForbidden, "the %s is not the lock of workspace %s (held by %s on %s): send the token CheckOut returned, or check the workspace out again after it is checked in",
			LockTokenHeader, s.Key, text(s, PropLockHolder), text(s, PropHost)), tokenMismatch(s, chain))
	}
	if err := heldByCaller(ctx, s); err != nil {
		var lr *lockRefusal
		if errors.As(err, &lr) { // answered 403, as a wrong token is
			lr.err = httpErr(http.StatusForbidden, "%v", lr.err)
		}
		return nil, err
	}
	return chain, nil
}

// view runs fn under workspace key's lock, answering an unknown key with 404.
func (r *Repository) view(ctx context.Context, key string, fn func(s *wsrf.Snapshot) error) error {
	if !idRE.MatchString(key) {
		return httpErr(http.StatusNotFound, "no workspace %q: a workspace key is 32 hex digits, as in the workspace's EPR", truncateKey(key))
	}
	err := r.Workspaces.View(ctx, key, fn)
	if errors.Is(err, errdefs.ErrResourceUnknown) {
		return httpErr(http.StatusNotFound, "no workspace %s in this repository (destroyed, or never created)", key)
	}
	return err
}

func truncateKey(s string) string {
	if len(s) > 40 {
		return s[:40] + "…"
	}
	return s
}

func (r *Repository) serveFile(w http.ResponseWriter, req *http.Request, key, digest string) error {
	if !digestRE.MatchString(digest) {
		return httpErr(http.StatusNotFound, "%q is not a digest: GET /workspaces/<key>/files/sha256:<64 hex> with a digest from the manifest", truncateKey(digest))
	}
	var f *os.File
	err := r.view(req.Context(), key, func(s *wsrf.Snapshot) error {
		chain, err := r.checkLock(req.Context(), s, req.Header.Get(LockTokenHeader))
		if err != nil {
			return err
		}
		var path string
		switch digest {
		case chain.OverlayDigest:
			path = filepath.Join(r.workspaceDir(key), chain.Overlay)
		case chain.MemoryDigest:
			path = filepath.Join(r.workspaceDir(key), chain.Memory)
		default:
			for _, l := range chain.Layers {
				if l.Digest == digest {
					path = r.layerPath(l.ID)
				}
			}
		}
		if path == "" {
			return httpErr(http.StatusNotFound, "workspace %s has no layer, overlay or memory image %s: fetch the digests its manifest lists (pool images are at /images/<digest>)", key, digest)
		}
		// Opened under the lock: a check-in that replaces the file leaves this
		// descriptor reading the file as it was.
		f, err = os.Open(path)
		return err
	})
	if err != nil {
		return err
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return err
	}
	sum, _ := hex.DecodeString(strings.TrimPrefix(digest, "sha256:"))
	h := w.Header()
	h.Set("ETag", `"`+digest+`"`)
	h.Set("Accept-Ranges", "bytes")
	h.Set("Content-Type", "application/octet-stream")
	h.Set("Repr-Digest", "sha-256=:"+base64.StdEncoding.EncodeToString(sum)+":")
	h.Set("Cache-Control", "no-store")
	transfer.ServeContent(w, req, fi.ModTime(), f, fi.Size())
	return nil
}

// serveUpload receives a changed overlay or a memory image for the check-out the
// token holds. The bytes stream to a temporary file in the workspace directory while
// they are hashed; a complete, checked file is synced and renamed to its pending name,
// which CheckIn adopts. Anything short of that removes the temporary file.
func (r *Repository) serveUpload(w http.ResponseWriter, req *http.Request, key, kind string) error {
	ctx := req.Context()
	token := req.Header.Get(LockTokenHeader)
	want := req.Header.Get(SHA256Header)
	if want != "" && !digestRE.MatchString(want) {
		return httpErr(http.StatusBadRequest, "%s %q is not a digest: send sha256:<64 lowercase hex> of the bytes, or leave the header out", SHA256Header, truncateKey(want))
	}
	var limit, vsize int64
	var topPath, topFormat string
	err := r.view(ctx, key, func(s *wsrf.Snapshot) error {
		chain, err := r.checkLock(ctx, s, token)
		if err != nil {
			return err
		}
		vsize = chain.VirtualSize
		if kind == "memory" {
			limit = memoryLimit(memoryMiB(s))
			return nil
		}
		limit = vsize + vsize/10 + overlaySlack
		topPath, topFormat, err = chain.top(r)
		return err
	})
	if err != nil {
		return err
	}
	if req.ContentLength > limit {
		return httpErr(http.StatusRequestEntityTooLarge, "a %s of %d bytes is larger than the %d bytes this workspace's %s may have; nothing was read", kind, req.ContentLength, limit, kind)
	}
	dir := r.workspaceDir(key)
	if req.ContentLength > 0 {
		// Refuse before reading what cannot fit, rather than after moving it all.
		if free, err := fsutil.FreeBytes(dir); err == nil && req.ContentLength > free {
			return storageFull(kind, fmt.Sprintf("a %s of %d bytes does not fit the %d bytes free; nothing was read", kind, req.ContentLength, free))
		}
	}
	tmp, err := os.CreateTemp(dir, uploadPrefix+kind+"-*.part")
	if err != nil {
		return fmt.Errorf("create the upload file: %w", err)
	}
	tmpName := tmp.Name()
	kept := false
	defer func() {
		tmp.Close()
		if !kept {
			os.Remove(tmpName)
		}
	}()
	if err := tmp.Chmod(0o640); err != nil {
		return err
	}
	h := sha256.New()
	n, _, err := transfer.CopyHashed(ctx, tmp, http.MaxBytesReader(w, req.Body, limit), h, transfer.Options{})
	if err != nil {
		var tooBig *http.MaxBytesError
		if errors.As(err, &tooBig) {
			return err
		}
		if errors.Is(err, syscall.ENOSPC) {
			r.log.Error("workspace upload: the repository's storage is full; nothing kept", "key", key, "kind", kind, "received", n, "dir", dir)
			return storageFull(kind, fmt.Sprintf("it filled up after %d bytes of the %s; nothing was kept", n, kind))
		}
		r.log.Warn("workspace upload interrupted; nothing kept", "key", key, "kind", kind, "received", n, "err", err)
		// Not 400: a manager takes that (and 413) for a refusal of the bytes, which
		// sent again would be refused again, and gives the hand-back up. A body cut
		// short says nothing of its bytes; 408 is retried.
		return httpErr(http.StatusRequestTimeout, "the upload ended after %d bytes: %v; nothing was kept, send it again", n, err)
	}
	received := "sha256:" + hex.EncodeToString(h.Sum(nil))
	if want != "" && want != received {
		return httpErr(http.StatusBadRequest, "the %d bytes received hash to %s, not %s (%s); nothing was kept, send the file again", n, received, want, SHA256Header)
	}
	digest, size := received, n
	if kind == "overlay" {
		if err := tmp.Close(); err != nil {
			return err
		}
		if err := checkUploadedOverlay(tmpName, vsize, topPath, topFormat); err != nil {
			return err
		}
		// The manager's copy is backed by its own cache; the repository's must stand on
		// the repository's chain (a clone freezes it into a shared layer).
		cmd := exec.CommandContext(context.WithoutCancel(ctx), "qemu-img", "rebase", "-u", "-f", "qcow2", "-F", topFormat, "-b", topPath, tmpName)
		if out, err := cmd.CombinedOutput(); err != nil {
			return fmt.Errorf("rewrite the uploaded overlay's backing reference (qemu-img rebase -u): %v: %s", err, strings.TrimSpace(string(out)))
		}
		if tmp, err = os.OpenFile(tmpName, os.O_RDWR, 0); err != nil {
			return err
		}
		if digest, size, err = fileDigest(tmpName); err != nil {
			return err
		}
	}
	if err := tmp.Sync(); err != nil {
		if errors.Is(err, syscall.ENOSPC) { // delayed allocation fails only here
			return storageFull(kind, "it filled up while the upload was written out; nothing was kept")
		}
		return fmt.Errorf("sync the upload: %w", err)
	}
	pending := pendingOverlayName(digest)
	if kind == "memory" {
		pending = pendingMemoryName(digest)
	}
	// Under the workspace's lock, so a check-in cannot slip in between the check and
	// the rename: once the lock is released, no upload of that check-out lands.
	err = r.view(context.WithoutCancel(ctx), key, func(s *wsrf.Snapshot) error {
		if _, err := r.checkLock(ctx, s, token); err != nil {
			return err
		}
		if err := os.Rename(tmpName, filepath.Join(dir, pending)); err != nil {
			return err
		}
		kept = true
		// Only the newest upload of a kind counts (a manager checks in with the digest
		// its last upload answered): older ones would hold the repository's disk until
		// check-in, however many a host sent.
		dropOlderUploads(dir, pending, r.log)
		return syncDir(dir)
	})
	if err != nil {
		return err
	}
	r.log.Info("workspace upload", "key", key, "kind", kind, "digest", digest, "size", size)
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(http.StatusOK)
	return json.NewEncoder(w).Encode(UploadResult{Digest: digest, Size: size})
}

// dropOlderUploads removes the pending uploads of the same kind as newest.
func dropOlderUploads(dir, newest string, log *slog.Logger) {
	kind := newest[:strings.LastIndexByte(newest, '-')+1] // "pending-overlay-" or "pending-memory-"
	ents, err := os.ReadDir(dir)
	if err != nil {
		log.Warn("list a workspace's uploads", "dir", dir, "err", err)
		return
	}
	for _, e := range ents {
		if name := e.Name(); name != newest && strings.HasPrefix(name, kind) && pendingRE.MatchString(name) {
			if err := os.Remove(filepath.Join(dir, name)); err != nil {
				log.Warn("remove a superseded upload", "file", filepath.Join(dir, name), "err", err)
			}
		}
	}
}

// storageFull is the answer to an upload the repository's storage has no room for:
// 507, and advice for whoever reads it (the manager retries the hand-back by itself).
func storageFull(kind, what string) error {
	return errdefs.WithAdvice(httpErr(http.StatusInsufficientStorage, "the repository's storage has no room for this workspace's %s: %s", kind, what),
		"the site administrator must free space in the repository's data directory; a manager handing the workspace back retries by itself")
}

// checkUploadedOverlay refuses what cannot be a workspace overlay: not qcow2, no
// backing file (a flattened image would let the chain below show through its
// unallocated clusters), another virtual size, encryption, an external data file
// (the guest's bytes in some host file), marked corrupt, or with no room in its first
// cluster for the backing file name it is re-pointed at (top, of topFormat).
func checkUploadedOverlay(path string, vsize int64, top, topFormat string) error {
	bad := func(format string, args ...any) error {
		return httpErr(http.StatusBadRequest, "the uploaded overlay "+format+"; nothing was kept", args...)
	}
	info, err := qcow2.ReadInfo(path)
	if errors.Is(err, qcow2.ErrNotQCOW2) {
		return bad("is not a qcow2 image: upload the workspace's overlay file as the VM left it")
	}
	if err != nil {
		return bad("has an unreadable qcow2 header (%v)", err)
	}
	if info.BackingFile == "" {
		return bad("has no backing file: upload the overlay on its backing chain, not a flattened image")
	}
	if info.VirtualSize != vsize {
		return bad("has a virtual size of %d bytes, not the workspace's %d", info.VirtualSize, vsize)
	}
	// Re-pointing it (qemu-img rebase) fails when the repository's backing file name
	// does not fit its first cluster: the upload's doing, not the repository's.
	room, err := qcow2.BackingRoom(path)
	if err != nil {
		return bad("has an unreadable qcow2 header (%v)", err)
	}
	if need := 8 + int64((len(topFormat)+7)&^7) + int64(len(top)); need > room {
		return bad("has no room in its first cluster (%d bytes) for the repository's backing file name: its header and header extensions leave %d bytes, the name and its format need %d; create the overlay with larger clusters (qemu-img's default, 64 KiB) or fewer header extensions",
			int64(1)<<info.ClusterBits, max(room, 0), need)
	}
	f, err := os.Open(path)
	if err != nil {
		return err
	}
	defer f.Close()
	head := make([]byte, 80)
	if _, err := io.ReadFull(f, head); err != nil {
		return bad("has a header cut short")
	}
	be := binary.BigEndian
	if be.Uint32(head[32:36]) != 0 {
		return bad("is encrypted")
	}
	if info.Version >= 3 && be.Uint64(head[72:80])&(1<<2) != 0 {
		return bad("keeps its data in an external file")
	}
	// QEMU sets the corrupt bit when it finds the metadata inconsistent; such an image
	// opens read-only only, so neither re-pointing it here nor a guest could use it.
	if info.Version >= 3 && be.Uint64(head[72:80])&(1<<1) != 0 {
		return bad("is marked corrupt by qemu (its metadata is inconsistent): repair it (qemu-img check -r all) and upload it again")
	}
	return nil
}
