// Package imagepool is the Repository's image pool: base images stored once per content
// digest (sha256) in a directory of blob files, with names and descriptive metadata (the
// software part of a workspace description: OS, kernel, architecture, libraries) in the
// embedded database's images and image_names tables.
//
// An import streams the bytes once, hashing them while they are written to a temporary
// file beside the blobs, and makes them visible in one database transaction after the
// blob is durably in place; the sweep Open runs removes whatever a crash left half done.
package imagepool

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/vws-grid/vws/internal/chunkhash"
	"github.com/vws-grid/vws/internal/errdefs"
	"github.com/vws-grid/vws/internal/store"
)

// Image is a named base image.
type Image struct {
	Name        string    `json:"name"`
	Digest      string    `json:"digest"`      // "sha256:<hex>"
	Format      string    `json:"format"`      // qcow2 | raw
	Size        int64     `json:"size"`        // bytes stored
	VirtualSize int64     `json:"virtualSize"` // bytes the guest sees
	OS          string    `json:"os,omitempty"`
	Kernel      string    `json:"kernel,omitempty"`
	Arch        string    `json:"arch,omitempty"`
	Libraries   []string  `json:"libraries,omitempty"`
	Created     time.Time `json:"created"` // when the name was given
}

// Meta names and describes an image (on import), or the software a workspace asks for
// (in Match).
//
//   - OS is family[/distribution[/version]], the parts of the description's sw:os:
//     family one of OSFamilies (stored lower-case), e.g. "linux/debian/12".
//   - Kernel is a version label, e.g. "6.1.0-18-amd64".
//   - Arch is one of Architectures (hw:Architecture), e.g. "x86_64".
//   - Libraries are "name" or "name=version", e.g. "glibc=2.36" (sw:library).
type Meta struct {
	Name, OS, Kernel, Arch string
	Libraries              []string
}

// InUseFunc names the workspaces that use the image with this digest (a few of
// them, enough to say which); none: the image is not in use.
type InUseFunc func(ctx context.Context, digest string) ([]string, error)

// Pool is the image pool.
type Pool struct {
	dir string
	db  *sql.DB
	log *slog.Logger

	// mu orders the steps that change which blobs exist: the commit of an import
	// (rename + rows) and a removal (rows + unlink) take it exclusively; Hold takes it
	// shared, so a blob cannot disappear while a caller builds an overlay on it.
	mu    sync.RWMutex
	inUse InUseFunc
	audit Auditor // nil: not recorded

	// Chunk lists (chunks.go): the piece length, the running computations by digest,
	// and the background work's lifetime (Open's ctx, or Close).
	chunkBytes int64
	chunkMu    sync.Mutex
	chunkJobs  map[string]*chunkJob
	closed     bool
	life       context.Context
	stop       context.CancelFunc
	jobs       sync.WaitGroup
	hashed     atomic.Int64 // blobs hashed for chunk lists, for tests
	// importMu guards imports (how many are streaming) and idle (nil when none is;
	// closed when the last one ends), which background hashing yields to.
	importMu sync.Mutex
	imports  int
	idle     chan struct{}
}

// Open opens the pool whose blobs live in dir (created if needed) and whose rows live in
// db (the store's database, migrated to at least version 7), then sweeps what an
// interrupted import or removal left behind. ctx also bounds the pool's background
// work (computing chunk lists after imports); Close ends it earlier.
func Open(ctx context.Context, dir string, db *sql.DB, log *slog.Logger) (*Pool, error) {
	if db == nil {
		return nil, errors.New("image pool: no database given")
	}
	if log == nil {
		log = slog.Default()
	}
	abs, err := filepath.Abs(dir)
	if err != nil {
		return nil, fmt.Errorf("image pool directory %s: %w", dir, err)
	}
	if err := os.MkdirAll(abs, 0o750); err != nil {
		return nil, fmt.Errorf("create image pool directory: %w", err)
	}
	var n int
	if err := db.QueryRowContext(ctx, `SELECT COUNT(*) FROM images`).Scan(&n); err != nil {
		return nil, fmt.Errorf("image pool: the database has no images table (open it with store.Open, which migrates it): %w", err)
	}
	p := &Pool{dir: abs, db: db, log: log, chunkBytes: chunkhash.DefaultChunkBytes, chunkJobs: map[string]*chunkJob{}}
	if err := p.sweep(ctx); err != nil {
		return nil, fmt.Errorf("image pool startup sweep: %w", err)
	}
	p.life, p.stop = context.WithCancel(ctx)
	return p, nil
}

// Auditor appends what the pool did to the audit trail, with the caller in ctx.
type Auditor interface {
	Record(ctx context.Context, operation, resource, decision, detail string)
}

// SetAudit sets where ServeHTTP records the imports and removals it did, with the
// image's name and digest: the decision recorded before one only has the request,
// and an import's digest is known only once it is read. Call it before serving.
func (p *Pool) SetAudit(a Auditor) {
	p.mu.Lock()
	p.audit = a
	p.mu.Unlock()
}

// SetInUse sets the check ServeHTTP's DELETE passes to Remove (the Repository's "does a
// workspace use this digest"). Until it is set, no image counts as in use. Call it
// before serving; f must not call back into the pool's Remove or Import.
func (p *Pool) SetInUse(f InUseFunc) {
	p.mu.Lock()
	p.inUse = f
	p.mu.Unlock()
}

// Dir is the directory holding the blobs.
func (p *Pool) Dir() string { return p.dir }

func (p *Pool) blobPath(digest string) string {
	return filepath.Join(p.dir, blobPrefix+strings.TrimPrefix(digest, digestPrefix))
}

// sweep removes temporary files of interrupted imports, blob files no images row
// references (an import that crashed between rename and commit, or a removal between
// commit and unlink), and images rows that have no name and no blob.
func (p *Pool) sweep(ctx context.Context) error {
	entries, err := os.ReadDir(p.dir)
	if err != nil {
		return err
	}
	rows, err := p.db.QueryContext(ctx, `SELECT i.digest, (SELECT COUNT(*) FROM image_names n WHERE n.digest = i.digest) FROM images i`)
	if err != nil {
		return err
	}
	names := map[string]int{} // digest → how many names point at it
	for rows.Next() {
		var d string
		var n int
		if err := rows.Scan(&d, &n); err != nil {
			rows.Close()
			return err
		}
		names[d] = n
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return err
	}
	blobs := map[string]bool{}
	removed := 0
	for _, e := range entries {
		name := e.Name()
		switch {
		case strings.HasPrefix(name, tempPrefix):
			if err := os.Remove(filepath.Join(p.dir, name)); err != nil && !errors.Is(err, fs.ErrNotExist) {
				return fmt.Errorf("remove leftover temporary file: %w", err)
			}
			p.log.Info("image pool sweep: removed the temporary file of an interrupted import", "file", name)
			removed++
		case strings.HasPrefix(name, blobPrefix) && hexRe.MatchString(strings.TrimPrefix(name, blobPrefix)) && e.Type().IsRegular():
			d := digestPrefix + strings.TrimPrefix(name, blobPrefix)
			if _, ok := names[d]; ok {
				blobs[d] = true
				continue
			}
			if err := os.Remove(filepath.Join(p.dir, name)); err != nil && !errors.Is(err, fs.ErrNotExist) {
				return fmt.Errorf("remove orphan blob: %w", err)
			}
			p.log.Info("image pool sweep: removed a blob no image record references", "digest", d)
			removed++
		}
	}
	for d, n := range names {
		if blobs[d] {
			continue
		}
		if n > 0 {
			p.log.Warn("image pool: an image's blob file is missing; remove its names and import it again",
				"digest", d, "names", n, "file", p.blobPath(d))
			continue
		}
		if _, err := p.db.ExecContext(ctx, `DELETE FROM images WHERE digest = $1 AND NOT EXISTS (SELECT 1 FROM image_names WHERE digest = $2)`, d, d); err != nil {
			return fmt.Errorf("remove record of missing blob %s: %w", d, err)
		}
		p.log.Info("image pool sweep: removed an unnamed image record whose blob is missing", "digest", d)
		removed++
	}
	if removed > 0 {
		if err := syncDir(p.dir); err != nil {
			return err
		}
	}
	return nil
}

const selectImage = `SELECT n.name, n.digest, i.format, i.size, i.virtual_size, n.os, n.kernel, n.arch, n.libraries, n.created
	FROM image_names n JOIN images i ON i.digest = n.digest`

type scanner interface{ Scan(...any) error }

func scanImage(s scanner) (Image, error) {
	var img Image
	var libs string
	var created int64
	if err := s.Scan(&img.Name, &img.Digest, &img.Format, &img.Size, &img.VirtualSize, &img.OS, &img.Kernel, &img.Arch, &libs, &created); err != nil {
		return Image{}, err
	}
	img.Libraries = strings.Fields(libs)
	img.Created = time.UnixMilli(created).UTC()
	return img, nil
}

// Get finds an image by name, or by digest ("sha256:<hex>" or the bare hex); for a
// digest that several names share, the first name in order is returned.
func (p *Pool) Get(ctx context.Context, nameOrDigest string) (Image, error) {
	var row *sql.Row
	if looksLikeDigest(nameOrDigest) {
		d, err := ParseDigest(nameOrDigest)
		if err != nil {
			return Image{}, err
		}
		row = p.db.QueryRowContext(ctx, selectImage+` WHERE n.digest = $1 ORDER BY n.name LIMIT 1`, d)
	} else {
		if err := ValidateName(nameOrDigest); err != nil {
			return Image{}, err
		}
		row = p.db.QueryRowContext(ctx, selectImage+` WHERE n.name = $1`, nameOrDigest)
	}
	img, err := scanImage(row)
	if errors.Is(err, sql.ErrNoRows) {
		return Image{}, fmt.Errorf("%w: no image %q in the pool; `vws image list` shows what there is, `vws image import` adds one",
			errdefs.ErrResourceUnknown, nameOrDigest)
	}
	if err != nil {
		return Image{}, fmt.Errorf("look up image %q: %w", nameOrDigest, err)
	}
	return img, nil
}

// List returns every named image, ordered by name.
func (p *Pool) List(ctx context.Context) ([]Image, error) {
	rows, err := p.db.QueryContext(ctx, selectImage+` ORDER BY n.name`)
	if err != nil {
		return nil, fmt.Errorf("list images: %w", err)
	}
	defer rows.Close()
	out := []Image{}
	for rows.Next() {
		img, err := scanImage(rows)
		if err != nil {
			return nil, fmt.Errorf("list images: %w", err)
		}
		out = append(out, img)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("list images: %w", err)
	}
	return out, nil
}

// AmbiguousError is Match's answer when several images fit; it wraps errdefs.ErrMetadata.
type AmbiguousError struct {
	Want       string   // the request, as "os=… arch=…"
	Candidates []string // the names that fit
}

func (e *AmbiguousError) Error() string {
	return fmt.Sprintf("%v: ambiguous: images %s all match %s; name the image, or ask for more (OS version, kernel, libraries) to single one out",
		errdefs.ErrMetadata, strings.Join(e.Candidates, ", "), e.Want)
}

func (e *AmbiguousError) Unwrap() error { return errdefs.ErrMetadata }

// Match picks the one image whose metadata fits every non-empty field of want:
//   - OS: each part given (family, distribution, version) equals the image's,
//     case-insensitively, so "linux" fits "linux/debian/12";
//   - Kernel: equal, or a prefix ending at a separator ("6.1" fits "6.1.0-18-amd64");
//   - Arch: equal;
//   - Libraries: every one present; "glibc" fits "glibc=2.36", "glibc=2" fits "glibc=2.36".
//
// When want.Name is set only that image is a candidate (and must still fit the rest).
// No fit: errdefs.ErrResourceUnknown, listing what the pool has. More than one content
// (names of one content fit as one): *AmbiguousError (errdefs.ErrMetadata) naming them.
func (p *Pool) Match(ctx context.Context, want Meta) (Image, error) {
	if _, err := normalizeMeta(want, false); err != nil {
		return Image{}, err // before reading the pool
	}
	all, err := p.List(ctx)
	if err != nil {
		return Image{}, err
	}
	return Select(all, want)
}

func fitsMeta(img Image, want Meta) bool {
	if want.OS != "" {
		have := strings.Split(img.OS, "/")
		for i, part := range strings.Split(want.OS, "/") {
			if i >= len(have) || !strings.EqualFold(have[i], part) {
				return false
			}
		}
	}
	if want.Kernel != "" && !versionFits(img.Kernel, want.Kernel) {
		return false
	}
	if want.Arch != "" && img.Arch != want.Arch {
		return false
	}
	for _, wl := range want.Libraries {
		wname, wver, _ := strings.Cut(wl, "=")
		if !slices.ContainsFunc(img.Libraries, func(hl string) bool {
			hname, hver, _ := strings.Cut(hl, "=")
			return strings.EqualFold(hname, wname) && (wver == "" || versionFits(hver, wver))
		}) {
			return false
		}
	}
	return true
}

// versionFits: have equals want, or starts with it and continues after a separator.
func versionFits(have, want string) bool {
	if have == want {
		return true
	}
	return strings.HasPrefix(have, want) && strings.ContainsRune(".-+~:_", rune(have[len(want)]))
}

func describeWant(m Meta) string {
	var parts []string
	if m.Name != "" {
		parts = append(parts, "name="+m.Name)
	}
	if m.OS != "" {
		parts = append(parts, "os="+m.OS)
	}
	if m.Kernel != "" {
		parts = append(parts, "kernel="+m.Kernel)
	}
	if m.Arch != "" {
		parts = append(parts, "arch="+m.Arch)
	}
	if len(m.Libraries) > 0 {
		parts = append(parts, "libraries="+strings.Join(m.Libraries, ","))
	}
	if len(parts) == 0 {
		return "any software"
	}
	return strings.Join(parts, " ")
}

func describeImage(img Image) string {
	var parts []string
	for _, kv := range [][2]string{{"os", img.OS}, {"kernel", img.Kernel}, {"arch", img.Arch}, {"libraries", strings.Join(img.Libraries, ",")}} {
		if kv[1] != "" {
			parts = append(parts, kv[0]+"="+kv[1])
		}
	}
	if len(parts) == 0 {
		return "no metadata"
	}
	return strings.Join(parts, " ")
}

// NameTakenError refuses a name another image has; it wraps errdefs.ErrBadRequest.
type NameTakenError struct {
	Name, Digest string
}

func (e *NameTakenError) Error() string {
	return fmt.Sprintf("%v: image name %q is already taken by %s; import under another name, or remove that image first (vws image remove %s)",
		errdefs.ErrBadRequest, e.Name, e.Digest, e.Name)
}

func (e *NameTakenError) Unwrap() error { return errdefs.ErrBadRequest }

// InUseError refuses to remove an image workspaces use; it wraps errdefs.ErrBadRequest.
type InUseError struct {
	Name, Digest string
	// Users names (some of) the workspaces that use it.
	Users []string
}

func (e *InUseError) Error() string {
	return fmt.Sprintf("%v: image %q (%s) is used by workspaces (%s); destroy them (or let them expire) before removing it",
		errdefs.ErrBadRequest, e.Name, e.Digest, strings.Join(e.Users, ", "))
}

func (e *InUseError) Unwrap() error { return errdefs.ErrBadRequest }

// Remove deletes the name; the blob and its images row go too when no other name
// points at the digest. When the name is the content's last, it refuses while inUse
// (nil: nothing is in use) reports that a workspace uses the digest; a name another
// name shares the content with goes whatever uses it, since the content stays.
// inUse runs while the pool's lock is held: it must not call the pool's Import,
// Remove or Hold.
func (p *Pool) Remove(ctx context.Context, name string, inUse InUseFunc) error {
	_, err := p.remove(ctx, name, inUse)
	return err
}

// remove is Remove, returning the digest the name had, for the audit record.
func (p *Pool) remove(ctx context.Context, name string, inUse InUseFunc) (string, error) {
	if looksLikeDigest(name) {
		return "", badRequest("remove takes an image name, not a digest (%s); `vws image list` shows the names", truncate(name, 80))
	}
	if err := ValidateName(name); err != nil {
		return "", err
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	var digest string
	err := p.db.QueryRowContext(ctx, `SELECT digest FROM image_names WHERE name = $1`, name).Scan(&digest)
	if errors.Is(err, sql.ErrNoRows) {
		return "", fmt.Errorf("%w: no image named %q; `vws image list` shows the pool", errdefs.ErrResourceUnknown, name)
	}
	if err != nil {
		return "", fmt.Errorf("look up image %q: %w", name, err)
	}
	var sharing int
	if err := p.db.QueryRowContext(ctx, `SELECT COUNT(*) FROM image_names WHERE digest = $1 AND name <> $2`, digest, name).Scan(&sharing); err != nil {
		return "", fmt.Errorf("look up image %q: %w", name, err)
	}
	if inUse != nil && sharing == 0 {
		users, err := inUse(ctx, digest)
		if err != nil {
			return "", fmt.Errorf("check whether workspaces use image %q: %w", name, err)
		}
		if len(users) > 0 {
			return "", &InUseError{Name: name, Digest: digest, Users: users}
		}
	}
	tx, err := p.db.BeginTx(ctx, nil)
	if err != nil {
		return "", fmt.Errorf("remove image %q: %w", name, err)
	}
	defer tx.Rollback()
	if _, err := tx.ExecContext(ctx, `DELETE FROM image_names WHERE name = $1`, name); err != nil {
		return "", fmt.Errorf("remove image %q: %w", name, err)
	}
	var others int
	if err := tx.QueryRowContext(ctx, `SELECT COUNT(*) FROM image_names WHERE digest = $1`, digest).Scan(&others); err != nil {
		return "", fmt.Errorf("remove image %q: %w", name, err)
	}
	if others == 0 {
		if _, err := tx.ExecContext(ctx, `DELETE FROM images WHERE digest = $1`, digest); err != nil {
			return "", fmt.Errorf("remove image %q: %w", name, err)
		}
	}
	if err := tx.Commit(); err != nil {
		return "", fmt.Errorf("remove image %q: %w", name, err)
	}
	// The rows are gone; a crash before the unlink leaves an orphan blob the next
	// startup sweep removes. Unlinked only once their removal is on disk: an OS crash
	// must not bring back a name whose blob is gone.
	if others == 0 {
		p.stopChunks(digest)
	}
	if others == 0 && store.Durable(ctx, p.db) == nil {
		if err := os.Remove(p.blobPath(digest)); err != nil && !errors.Is(err, fs.ErrNotExist) {
			p.log.Warn("image pool: could not delete the blob of a removed image; the next start removes it", "digest", digest, "err", err)
		}
	}
	return digest, nil
}

// Path is the absolute path of the blob with this digest ("sha256:<hex>" or bare hex);
// errdefs.ErrBadRequest for a malformed digest, errdefs.ErrResourceUnknown when the
// pool does not hold it.
func (p *Pool) Path(digest string) (string, error) {
	d, err := ParseDigest(digest)
	if err != nil {
		return "", err
	}
	var one int
	err = p.db.QueryRow(`SELECT 1 FROM images WHERE digest = $1`, d).Scan(&one)
	if errors.Is(err, sql.ErrNoRows) {
		return "", fmt.Errorf("%w: the image pool holds no image %s", errdefs.ErrResourceUnknown, d)
	}
	if err != nil {
		return "", fmt.Errorf("look up image %s: %w", d, err)
	}
	path := p.blobPath(d)
	if _, err := os.Stat(path); err != nil {
		return "", fmt.Errorf("%w: image %s is recorded but its file is unreadable (%v); remove and import it again", errdefs.ErrImageIntegrity, d, err)
	}
	return path, nil
}

// Hold runs fn with the image (by name or digest) and its blob path while no removal can
// run, so that fn can build on the blob (an overlay) and record that a workspace uses
// it before anyone can remove the image. fn must not call Import or Remove.
func (p *Pool) Hold(ctx context.Context, nameOrDigest string, fn func(img Image, path string) error) error {
	p.mu.RLock()
	defer p.mu.RUnlock()
	img, err := p.Get(ctx, nameOrDigest)
	if err != nil {
		return err
	}
	path, err := p.Path(img.Digest)
	if err != nil {
		return err
	}
	return fn(img, path)
}

func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	defer d.Close()
	if err := d.Sync(); err != nil {
		return fmt.Errorf("sync %s: %w", dir, err)
	}
	return nil
}

func isNoRows(err error) bool { return errors.Is(err, sql.ErrNoRows) }
