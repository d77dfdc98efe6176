package manager

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/vws-grid/vws/internal/chunkhash"
	"github.com/vws-grid/vws/internal/errdefs"
	"github.com/vws-grid/vws/internal/fsutil"
	"github.com/vws-grid/vws/internal/qcow2"
)

// cache holds base images, kernels, initrds and frozen layers by digest, shared by
// every workspace on this host: "image already here" skips the transfer.
type cache struct {
	dir string
	mu  sync.Mutex
	// inflight serializes fetches of one digest (two deploys of one base).
	inflight keyedLocks
	// pins counts the deploys in flight that staged each digest: never evicted.
	pins map[string]int
	// boot is the host's boot ID ("" unknown: every entry is synced before use), and
	// unsynced counts, per digest, the staged copies whose background fsync has not
	// finished (cachesync.go).
	boot     string
	unsynced map[string]int
}

func (c *cache) path(digest string) string {
	return filepath.Join(c.dir, strings.TrimPrefix(digest, "sha256:"))
}

// pin keeps digest from eviction until unpin (a deploy in flight uses it).
func (c *cache) pin(digest string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.pins == nil {
		c.pins = map[string]int{}
	}
	c.pins[digest]++
}

func (c *cache) unpin(digests []string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	for _, d := range digests {
		if c.pins[d]--; c.pins[d] <= 0 {
			delete(c.pins, d)
		}
	}
}

func (c *cache) pinned() map[string]bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	out := make(map[string]bool, len(c.pins))
	for d := range c.pins {
		out[d] = true
	}
	return out
}

// A cache entry is used without reading it again while it is the file that was
// checked, against what it was checked by: a stamp beside it (<hex>.verified) records
// its inode, size and modification time at the check, and checkedBy. A file written
// to since is checked again before use; one staged from the co-located pool shares
// the pool's inode, so an edit of the pool's copy is caught here too. An entry whose
// bytes may not be on disk yet says so, with the boot they are good for
// (unsyncedPrefix; cachesync.go).
const stampSuffix = ".verified"

// unsyncedPrefix, with the host's boot ID, ends the stamp of an entry not yet synced.
const unsyncedPrefix = "unsynced:"

func stampText(fi os.FileInfo, by, unsyncedBoot string) string {
	var ino uint64
	if st, ok := fi.Sys().(*syscall.Stat_t); ok {
		ino = uint64(st.Ino)
	}
	if unsyncedBoot != "" {
		return fmt.Sprintf("%d %d %d %s %s%s\n", ino, fi.Size(), fi.ModTime().UnixNano(), by, unsyncedPrefix, unsyncedBoot)
	}
	return fmt.Sprintf("%d %d %d %s\n", ino, fi.Size(), fi.ModTime().UnixNano(), by)
}

// parseStamp splits a stamp into what it was checked by and the boot it is unsynced
// under ("": on disk); ok is false for a malformed one.
func parseStamp(text string) (by, unsyncedBoot string, ok bool) {
	fields := strings.Fields(text)
	switch len(fields) {
	case 4:
		return fields[3], "", true
	case 5:
		boot, ok := strings.CutPrefix(fields[4], unsyncedPrefix)
		return fields[3], boot, ok && boot != ""
	}
	return "", "", false
}

// checkedWhole marks an entry checked against its whole digest: its bytes are the
// digest's, whoever asks.
const checkedWhole = "whole"

// checkedBy names what staging img checks it against: its whole digest, or the
// manifest's piece list (by the list's own hash). Pieces prove the bytes are what
// that list says, and only the Repository that sent the list vouches that it is the
// digest's. The cache is shared by every Repository this host serves, so an entry
// checked by one list is checked again before a manifest with another list, or
// none, uses it: one Repository cannot plant bytes under a digest another names.
func checkedBy(img *manifestImage) string {
	if img.Chunks.Empty() {
		return checkedWhole
	}
	sum := sha256.Sum256([]byte(strconv.FormatInt(img.Chunks.ChunkBytes, 10) + " " + img.Chunks.Text()))
	return "pieces:" + hex.EncodeToString(sum[:16])
}

// verified reports whether the entry for digest is size bytes, unchanged since it was
// stamped, and checked by what by names (or by its whole digest). stampedBy is what
// the stamp says it was checked by.
func (c *cache) verified(digest string, size int64, by string) (ok bool, stampedBy string) {
	fi, err := os.Stat(c.path(digest))
	if err != nil || fi.Size() != size {
		return false, ""
	}
	got, err := os.ReadFile(c.path(digest) + stampSuffix)
	if err != nil {
		return false, ""
	}
	stampedBy, unsyncedBoot, ok := parseStamp(string(got))
	if !ok || string(got) != stampText(fi, stampedBy, unsyncedBoot) {
		return false, ""
	}
	// Not on disk when stamped: the page cache holds the checked bytes for as long as
	// the host runs; after a restart they may have been lost with it.
	if unsyncedBoot != "" && unsyncedBoot != c.boot {
		return false, ""
	}
	return stampedBy == checkedWhole || stampedBy == by, stampedBy
}

// intact reports whether the entry for digest is still the file its stamp checked.
func (c *cache) intact(digest string) bool {
	fi, err := os.Stat(c.path(digest))
	if err != nil {
		return false
	}
	_, by := c.verified(digest, fi.Size(), "")
	return by != ""
}

// stamp records that the entry for digest was just checked, by what by names.
func (c *cache) stamp(digest, by string) error {
	path := c.path(digest)
	boot := c.unsyncedBoot(digest)
	if boot == "" {
		// A stamp without the marker says the bytes are on disk: make it true (a copy
		// renamed in unsynced by a manager killed before stamping it, checked again
		// now from the page cache; a layer's new header). Already on disk, it is cheap.
		if err := syncPath(path); err != nil {
			return err
		}
	}
	fi, err := os.Stat(path)
	if err != nil {
		return err
	}
	return fsutil.WriteFileAtomic(path+stampSuffix, []byte(stampText(fi, by, boot)), 0o644)
}

// used records that the entry for digest was just used (the stamp's time: least
// recently used entries are evicted first).
func (c *cache) used(digest string) {
	now := time.Now()
	os.Chtimes(c.path(digest)+stampSuffix, now, now)
}

// drop removes the entry for digest, its stamp and a layer's header as fetched.
func (c *cache) drop(digest string) {
	os.Remove(c.path(digest) + stampSuffix)
	os.Remove(c.path(digest) + originSuffix)
	os.Remove(c.path(digest))
}

// sweep removes what an interrupted staging from the co-located pool left.
func (c *cache) sweep() {
	ents, _ := os.ReadDir(c.dir)
	for _, e := range ents {
		if strings.HasSuffix(e.Name(), localSuffix) {
			os.Remove(filepath.Join(c.dir, e.Name()))
		}
	}
}

// partKeep is how long an interrupted transfer's .part file waits in the cache for a
// deploy to resume it: a retry within the day moves only what is missing, and one
// never retried does not hold its bytes (up to a whole image) for ever.
const partKeep = 24 * time.Hour

// dropStaleParts removes the .part files not written to for partKeep, except those of
// a transfer in flight (its digest's lock is held) or about to resume (a deploy pinned
// the digest and counted the .part's bytes as staged), and returns their names.
func (c *cache) dropStaleParts(now time.Time) []string {
	ents, _ := os.ReadDir(c.dir)
	var dropped []string
	for _, e := range ents {
		hexDigest, ok := strings.CutSuffix(e.Name(), ".part")
		if !ok {
			continue
		}
		fi, err := e.Info()
		if err != nil || now.Sub(fi.ModTime()) < partKeep {
			continue
		}
		digest := "sha256:" + hexDigest
		unlock, free := c.inflight.tryLock(digest)
		if !free {
			continue
		}
		if c.pinned()[digest] {
			unlock()
			continue
		}
		if os.Remove(filepath.Join(c.dir, e.Name())) == nil {
			dropped = append(dropped, e.Name())
		}
		unlock()
	}
	return dropped
}

// cachedImage is one entry of the host cache.
type cachedImage struct {
	Digest string
	Size   int64
}

// parts lists the interrupted transfers in the cache, each with the bytes it holds
// on disk (a piece-wise transfer leaves holes).
func (c *cache) parts() []cachedImage {
	ents, _ := os.ReadDir(c.dir)
	var out []cachedImage
	for _, e := range ents {
		hexDigest, ok := strings.CutSuffix(e.Name(), ".part")
		if !ok || len(hexDigest) != 64 {
			continue
		}
		if fi, err := e.Info(); err == nil {
			held := fi.Size()
			if st, ok := fi.Sys().(*syscall.Stat_t); ok {
				held = st.Blocks * 512
			}
			out = append(out, cachedImage{Digest: "sha256:" + hexDigest, Size: held})
		}
	}
	return out
}

func (c *cache) list() []cachedImage {
	ents, _ := os.ReadDir(c.dir)
	var out []cachedImage
	for _, e := range ents {
		if len(e.Name()) != 64 || strings.Contains(e.Name(), ".") {
			continue
		}
		if fi, err := e.Info(); err == nil {
			out = append(out, cachedImage{Digest: "sha256:" + e.Name(), Size: fi.Size()})
		}
	}
	return out
}

// stageShared brings a shared image (base, kernel, initrd, layer) into the cache,
// transferring it only when absent; it returns the cached path. A layer is re-pointed
// at the cache's copy of the image below it (backingFormat) before it is stamped.
func (m *Manager) stageShared(ctx context.Context, img *manifestImage, token, backingFormat string, progress progressFunc) (path string, hit bool, err error) {
	if !digestRE.MatchString(img.Digest) {
		return "", false, fmt.Errorf("%w: the manifest names %s image by %q, not a sha256 digest", errdefs.ErrImageIntegrity, img.Role, img.Digest)
	}
	path = m.cache.path(img.Digest)
	// Another deploy may be staging the same image: wait for it, but no longer than
	// this deploy's caller does.
	unlock, err := m.cache.inflight.lockCtx(ctx, img.Digest, "staging it for another deploy")
	if err != nil {
		return "", false, fmt.Errorf("the %s image %s: %w", img.Role, img.Digest, err)
	}
	defer unlock()
	if ok, by := m.cache.verified(img.Digest, img.Size, checkedBy(img)); ok {
		if img.Role == "layer" {
			if err := m.repointLayer(ctx, img, backingFormat, by); err != nil {
				return "", false, err
			}
		}
		m.metrics.cacheHits.Inc()
		m.cache.used(img.Digest)
		m.cache.pin(img.Digest)
		return path, true, nil
	}
	if fi, err := os.Stat(path); err == nil && fi.Size() != img.Size && ctx.Err() == nil && entryIsDigest(ctx, path, img, fi.Size()) {
		// The manifest is wrong about the image, not the entry: its bytes, which
		// workspaces deployed here may stand on, are not replaced by what it vouches for.
		return "", false, errdefs.WithAdvice(fmt.Errorf("%w: the manifest says the %s image %s has %d bytes; that image has %d",
			errdefs.ErrImageIntegrity, img.Role, img.Digest, img.Size, fi.Size()), integrityAdvice)
	}
	if fi, err := os.Stat(path); err == nil && fi.Size() == img.Size {
		// Present, but changed since it was checked (or never stamped, or checked by
		// another piece list): check again. A layer re-pointed already is checked
		// with its header as fetched.
		by := checkedBy(img)
		err := checkEntry(ctx, path, img)
		if err != nil && !img.Chunks.Empty() && ctx.Err() == nil && entryIsDigest(ctx, path, img, img.Size) {
			// The manifest's piece list is not of the image its digest names, which
			// the entry is: replaced by what the list vouches for, it would be another
			// image under the workspaces deployed on it, its stamp intact.
			m.log.Warn("a manifest's piece list does not match the image its digest names; using the cached image, which does", "digest", img.Digest, "err", err)
			err, by = nil, checkedWhole
		}
		if err == nil {
			if img.Role == "layer" {
				if err := m.repointLayer(ctx, img, backingFormat, by); err != nil {
					return "", false, err
				}
			}
			m.metrics.cacheHits.Inc()
			if err := m.cache.stamp(img.Digest, by); err != nil {
				return "", false, err
			}
			m.cache.pin(img.Digest)
			return path, true, nil
		}
		if ctx.Err() != nil {
			return "", false, ctx.Err()
		}
		m.log.Warn("a cached image no longer matches its digest; staging it again", "digest", img.Digest, "err", err)
		if m.usedByDeployed(img.Digest) {
			// Kept: the workspaces deployed on it keep their backing file until a
			// checked copy replaces it (the transfer renames over it), or if the
			// transfer fails. Unstamped, it is checked again before any other use.
			os.Remove(path + stampSuffix)
		} else {
			m.cache.drop(img.Digest) // nor listed as cached: placement would prefer this host for it
		}
	}
	if m.cfg.LocalImages != nil {
		t0 := time.Now()
		ok, err := m.stageLocal(ctx, img, path)
		if ok {
			m.metrics.staged(sourcePool, img.Size, t0)
			if progress != nil {
				progress(img.Size, img.Size)
			}
			return path, false, m.staged(ctx, img, backingFormat)
		}
		switch {
		case err == nil:
		case errors.Is(err, errdefs.ErrImageIntegrity):
			m.log.Warn("this host's image pool has a bad copy; fetching the image from the repository", "digest", img.Digest, "err", err)
		case ctx.Err() != nil:
			return "", false, ctx.Err()
		default: // a full disk, a read error: nothing says the pool's bytes are bad
			m.log.Warn("could not stage the image from this host's image pool; fetching it from the repository", "digest", img.Digest, "err", err)
		}
	}
	durable := !m.cache.canDeferSync()
	if !durable {
		// Counted before the file is in place: every stamp written for it from now on
		// says it is not on disk yet, until syncLater's fsync.
		m.cache.beginUnsynced(img.Digest)
	}
	if err := m.fetch(ctx, img, token, path, progress, durable); err != nil {
		if !durable {
			m.cache.endUnsynced(img.Digest)
		}
		if isNoSpace(err) {
			// Not kept to resume: it holds space the user must now free.
			os.Remove(path + ".part")
		}
		// A .part kept to resume counts against --cache-max like any entry: keep the
		// cache within it now, not at the next successful staging.
		m.evictCache()
		return "", false, err
	}
	err = m.staged(ctx, img, backingFormat)
	if !durable {
		m.syncLater(img.Digest) // after staged: a layer's re-pointed header is synced too
	}
	return path, false, err
}

// staged re-points a newly staged layer, stamps the cache entry, pins it for the
// deploy staging it, and keeps the cache within its budget.
func (m *Manager) staged(ctx context.Context, img *manifestImage, backingFormat string) error {
	if img.Role == "layer" {
		os.Remove(m.cache.path(img.Digest) + originSuffix) // of bytes this copy replaced
		if err := m.repointLayer(ctx, img, backingFormat, checkedBy(img)); err != nil {
			m.cache.drop(img.Digest)
			return err
		}
	}
	if err := m.cache.stamp(img.Digest, checkedBy(img)); err != nil {
		return err
	}
	m.cache.pin(img.Digest)
	m.evictCache()
	return nil
}

// repointLayer makes a cached layer stand on the cache's copy of the image below it,
// unless it already does. The cache keeps layers re-pointed so (the one change the
// manager makes to an entry, before stamping it): a deploy uses a cached layer as it
// is, instead of rewriting it under guests that read it, which would also leave it
// unlike its stamp and have every deploy check and transfer it again.
func (m *Manager) repointLayer(ctx context.Context, img *manifestImage, backingFormat, checked string) error {
	path, below := m.cache.path(img.Digest), m.cache.path(img.Backing)
	info, err := qcow2.ReadInfo(path)
	if err == nil && info.BackingFile == below && info.BackingFormat == backingFormat {
		return nil
	}
	// The entry is shared by every workspace and Repository on this host: a manifest
	// that puts it on another image than it stands on here, or makes an image that
	// stands alone a layer, would change the disk of every workspace deployed on it.
	if err == nil && info.BackingFile != below && filepath.Dir(info.BackingFile) == m.cache.dir {
		return errdefs.WithAdvice(fmt.Errorf("%w: the manifest puts the layer %s on %s, but this host's cached copy stands on %s",
			errdefs.ErrImageIntegrity, img.Digest, img.Backing, "sha256:"+filepath.Base(info.BackingFile)), integrityAdvice)
	}
	_, serr := os.Stat(path + originSuffix)
	if err == nil && info.BackingFile == "" && errors.Is(serr, os.ErrNotExist) {
		return errdefs.WithAdvice(fmt.Errorf("%w: the manifest names the image %s a layer on %s, but it stands on no image",
			errdefs.ErrImageIntegrity, img.Digest, img.Backing), integrityAdvice)
	}
	// The first re-pointing keeps the header as fetched (a later one, to another
	// backing format, must not take the re-pointed header for it).
	if errors.Is(serr, os.ErrNotExist) {
		if err := saveOrigin(path); err != nil {
			return fmt.Errorf("keep the header of layer %s: %w", img.Digest, err)
		}
	}
	if err := rebase(ctx, path, below, backingFormat); err != nil {
		return err
	}
	return m.cache.stamp(img.Digest, checked)
}

// fetch transfers an image from the Repository over HTTP, counted in the metrics;
// durable false leaves its fsync to the caller.
func (m *Manager) fetch(ctx context.Context, img *manifestImage, token, path string, progress progressFunc, durable bool) error {
	t0 := time.Now()
	if err := m.repo.fetchTo(ctx, img, token, path, progress, durable); err != nil {
		return err
	}
	m.metrics.staged(sourceRepository, img.Size, t0)
	return nil
}

// LocalImages finds pool images this process can read directly: the image pool of a
// Repository running in the same server.
type LocalImages interface {
	Path(digest string) (string, error)
}

// stageLocal stages an image from the co-located pool, when it holds it: a hard link
// into the cache where both are on one file system (no bytes move, no disk space is
// used twice), else a kernel-side copy; either is checked against the manifest like
// a transfer. ok is false when the pool lacks the image or its copy fails the check;
// err says why in the second case, and the caller then fetches over HTTP (checked
// again).
func (m *Manager) stageLocal(ctx context.Context, img *manifestImage, path string) (ok bool, err error) {
	src, err := m.cfg.LocalImages.Path(img.Digest)
	if err != nil {
		return false, nil
	}
	// Not .part: a resumed fetch writes into that name, which must never be the
	// pool's own file.
	tmp := path + localSuffix
	os.Remove(tmp)
	if err := os.Link(src, tmp); err != nil {
		if err := copyFile(src, tmp); err != nil {
			os.Remove(tmp)
			return false, fmt.Errorf("copy %s from this host's image pool: %w", img.Digest, err)
		}
	}
	if err := verifyImage(ctx, tmp, img); err != nil {
		os.Remove(tmp)
		return false, err
	}
	if err := os.Rename(tmp, path); err != nil {
		os.Remove(tmp)
		return false, err
	}
	return true, nil
}

// localSuffix names an image being staged from the co-located pool.
const localSuffix = ".local"

// copyFile copies src to a new dst (copy_file_range where the kernel can) and syncs it.
func copyFile(src, dst string) error {
	in, err := os.Open(src)
	if err != nil {
		return err
	}
	defer in.Close()
	out, err := os.OpenFile(dst, os.O_CREATE|os.O_EXCL|os.O_WRONLY, 0o644)
	if err != nil {
		return err
	}
	if _, err := io.Copy(out, in); err != nil {
		out.Close()
		return err
	}
	if err := out.Sync(); err != nil {
		out.Close()
		return err
	}
	return out.Close()
}

// verifyImage checks a staged file against the manifest: piece by piece on every
// core when the manifest lists the pieces, else its whole SHA-256.
func verifyImage(ctx context.Context, path string, img *manifestImage) error {
	if !img.Chunks.Empty() {
		if err := chunkhash.VerifyFile(ctx, path, img.Chunks); err != nil {
			if ctx.Err() != nil {
				return ctx.Err()
			}
			return fmt.Errorf("%w: the %s image %s: %w", errdefs.ErrImageIntegrity, img.Role, img.Digest, err)
		}
		return nil
	}
	got, size, err := fsutil.FileDigest(path)
	if err != nil {
		return err
	}
	if size != img.Size || got != img.Digest {
		return fmt.Errorf("%w: the %s image has %d bytes with digest %s; the manifest says %d bytes, %s",
			errdefs.ErrImageIntegrity, img.Role, size, got, img.Size, img.Digest)
	}
	return nil
}

// checkEntry checks a cache entry against the manifest as verifyImage does, a layer
// re-pointed already with its header as fetched.
func checkEntry(ctx context.Context, path string, img *manifestImage) error {
	err := verifyImage(ctx, path, img)
	if err != nil && img.Role == "layer" && ctx.Err() == nil {
		if _, serr := os.Stat(path + originSuffix); serr == nil {
			if rerr := verifyRepointed(ctx, path, img); rerr == nil {
				err = nil
			}
		}
	}
	return err
}

// entryIsDigest reports whether the cache entry at path, size bytes, is the image
// img's digest names, whatever img's piece list and size say: a piece list proves
// only that bytes are what it lists.
func entryIsDigest(ctx context.Context, path string, img *manifestImage, size int64) bool {
	return checkEntry(ctx, path, &manifestImage{Role: img.Role, Digest: img.Digest, Size: size}) == nil
}

// stageFiles brings every image of a manifest to this host: shared ones into the
// cache, the overlay (and saved RAM) into the workspace directory, and re-points each
// qcow2 at the local copy of what it is layered on.
func (m *Manager) stageFiles(ctx context.Context, man *manifest, rec *record, progress progressFunc) (files stagedFiles, err error) {
	dir := m.workspaceDir(rec.Key)
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return files, err
	}
	total := int64(0)
	for _, img := range man.Images {
		total += img.Size
	}
	var done int64
	prog := func(base int64) progressFunc {
		if progress == nil {
			return nil
		}
		return func(d, _ int64) { progress(base+d, total) }
	}
	local := map[string]string{} // digest → path, for backing references
	format := map[string]string{}
	for i := range man.Images {
		img := &man.Images[i]
		var path string
		switch img.Role {
		case "base", "kernel", "initrd", "layer":
			var bf string
			if img.Role == "layer" {
				// Listed bottom first: what a layer stands on is staged before it.
				if _, ok := local[img.Backing]; !ok {
					return files, fmt.Errorf("%w: the layer %s is layered on %s, which the manifest does not list below it", errdefs.ErrImageIntegrity, img.Digest, img.Backing)
				}
				bf = backingFormatOf(format[img.Backing])
			}
			if path, _, err = m.stageShared(ctx, img, man.Token, bf, prog(done)); err == nil {
				// Pinned by stageShared until the deploy ends; the journal keeps it after.
				rec.Shared = append(rec.Shared, img.Digest)
			}
		case "overlay":
			path = filepath.Join(dir, "overlay.qcow2")
			err = m.fetch(ctx, img, man.Token, path, prog(done), true)
		case "memory":
			path = filepath.Join(dir, "memory.save")
			err = m.fetch(ctx, img, man.Token, path, prog(done), true)
		default:
			err = fmt.Errorf("%w: the manifest has an image of unknown role %q", errdefs.ErrImageIntegrity, img.Role)
		}
		if err != nil {
			return files, err
		}
		if err := namesNoHostFile(path, img); err != nil {
			return files, err
		}
		done += img.Size
		local[img.Digest] = path
		format[img.Digest] = img.Format
		switch img.Role {
		case "kernel":
			files.Kernel = path
		case "initrd":
			files.Initrd = path
		case "memory":
			rec.MemoryFile = path
		}
	}
	if progress != nil {
		progress(total, total)
	}
	// Re-point the overlay at the local file below it (the cache re-pointed the layers).
	ov := man.image("overlay")
	below, ok := local[ov.Backing]
	if !ok {
		return files, fmt.Errorf("%w: the overlay %s is layered on %s, which the manifest does not list", errdefs.ErrImageIntegrity, ov.Digest, ov.Backing)
	}
	if err := rebase(ctx, local[ov.Digest], below, backingFormatOf(format[ov.Backing])); err != nil {
		return files, err
	}
	rec.Overlay = local[ov.Digest]
	info, err := qcow2.ReadInfo(rec.Overlay)
	if err != nil {
		return files, fmt.Errorf("%w: the workspace overlay is not a readable qcow2 image: %w", errdefs.ErrImageIntegrity, err)
	}
	// This deployment writes to its own overlay above the checked-out one, so Trash
	// discards exactly the changes made here.
	rec.Run = filepath.Join(dir, "run.qcow2")
	os.Remove(rec.Run)
	if err := qcow2.CreateOverlay(rec.Run, rec.Overlay, "qcow2", info.VirtualSize); err != nil {
		return files, fmt.Errorf("create the deployment overlay: %w", err)
	}
	files.Disk = rec.Run
	files.Dir = dir
	files.Console = filepath.Join(dir, "console.log")
	files.CIData = filepath.Join(dir, "cidata.iso")
	return files, nil
}

// namesNoHostFile refuses a disk image of the guest's chain whose qcow2 header names
// a file qemu would open with it, which the guest could then read (any file the
// hypervisor may, another workspace's disk here): an external data file, or a base's
// backing file. Layers and the overlay are re-pointed at this host's copies; the image
// pool refuses both at import, so only a Repository's altered copy has them.
func namesNoHostFile(path string, img *manifestImage) error {
	switch {
	case img.Role == "layer" || img.Role == "overlay":
	case img.Role == "base" && backingFormatOf(img.Format) == "qcow2":
	default: // opened as raw, or not a disk
		return nil
	}
	info, err := qcow2.ReadInfo(path)
	if err != nil {
		return fmt.Errorf("%w: the %s image %s is not a readable qcow2 image: %w", errdefs.ErrImageIntegrity, img.Role, img.Digest, err)
	}
	if info.ExternalData {
		return errdefs.WithAdvice(fmt.Errorf("%w: the %s image %s keeps its data in another file, which this host does not open for a guest",
			errdefs.ErrImageIntegrity, img.Role, img.Digest), integrityAdvice)
	}
	if img.Role == "base" && info.BackingFile != "" {
		return errdefs.WithAdvice(fmt.Errorf("%w: the base image %s stands on the file %q, which this host does not open for a guest",
			errdefs.ErrImageIntegrity, img.Digest, info.BackingFile), integrityAdvice)
	}
	return nil
}

// backingFormatOf is the format a qcow2 records for the image below it: the
// manifest's, raw when it names none.
func backingFormatOf(format string) string {
	if format == "" {
		return "raw"
	}
	return format
}

// rebase rewrites which file a qcow2 image is layered on, without touching data.
func rebase(ctx context.Context, image, backing, backingFormat string) error {
	out, err := exec.CommandContext(ctx, "qemu-img", "rebase", "-u", "-F", backingFormat, "-b", backing, image).CombinedOutput()
	if err != nil {
		return fmt.Errorf("re-point %s at %s: %w: %s", image, backing, err, strings.TrimSpace(string(out)))
	}
	return nil
}

// commitRun folds this deployment's changes into the checked-out overlay, which is
// then what goes back to the Repository.
func commitRun(ctx context.Context, run string) error {
	out, err := exec.CommandContext(ctx, "qemu-img", "commit", "-f", "qcow2", "-d", run).CombinedOutput()
	if err != nil {
		return fmt.Errorf("commit %s into its backing overlay: %w: %s", run, err, strings.TrimSpace(string(out)))
	}
	return nil
}

// resetRun discards this deployment's changes (Trash, and after an undeploy's
// commit). The new run disk is made aside and renamed over the old one: a kill
// leaves one or the other, never a run without its header, which qemu-img commit
// would refuse at every retry. The directory is synced so that after a power loss
// the discarded changes do not come back under a record that says they went.
func resetRun(rec *record) error {
	info, err := qcow2.ReadInfo(rec.Overlay)
	if err != nil {
		return err
	}
	fresh := rec.Run + ".new"
	if err := os.Remove(fresh); err != nil && !errors.Is(err, os.ErrNotExist) {
		return err
	}
	if err := qcow2.CreateOverlay(fresh, rec.Overlay, "qcow2", info.VirtualSize); err != nil {
		os.Remove(fresh)
		return err
	}
	if err := os.Rename(fresh, rec.Run); err != nil {
		os.Remove(fresh)
		return err
	}
	return fsutil.SyncDir(filepath.Dir(rec.Run))
}
