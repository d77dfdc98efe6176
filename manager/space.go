package manager

import (
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"syscall"

	"github.com/dustin/go-humanize"

	"github.com/vws-grid/vws/internal/errdefs"
	"github.com/vws-grid/vws/internal/fsutil"
)

// DefaultMinFreeBytes is the room a deploy or serialize leaves free on the manager's
// file system when Config.MinFreeBytes is 0: guest overlays grow after the deploy,
// and the journal must still be writable to record what happens next.
const DefaultMinFreeBytes = 1 << 30

// ownFilesSlack is what a deploy writes besides its images: the configuration CD
// (1 MiB), the deployment overlay run.qcow2 (a qcow2 header and tables, 256 KiB) and
// the start of the console log.
const ownFilesSlack = 2 << 20

// errNoRoom: a deploy or serialize was refused before it wrote anything, because its
// bytes would not fit with the floor left free. Of kind ErrStorageFull, so that its
// fault says where and how much.
var errNoRoom = errdefs.OfKind(errors.New("not enough free disk space"), errdefs.ErrStorageFull)

// spaceNeed is what an operation will write: into the host cache, and into the
// workspace's own directory. The two may lie on different file systems. images
// holds the cache part that is shared images, by digest: deploys in flight that
// stage the same image write it once (the second waits for the first's transfer),
// so a reservation counts each digest once.
type spaceNeed struct {
	cache, workspace int64
	images           map[string]int64
}

// roomLedger holds, by operation, the room checked-and-granted deploys and serializes
// under way here may still write: a check counts it as taken, so two deploys racing
// for the same free space are not both let through (the second would fail part-way
// on a full disk, having moved bytes for nothing). What a granted operation already
// wrote is counted twice until it ends (the file system's free count has it too):
// conservative, never a disk filled part-way.
type roomLedger struct {
	mu    sync.Mutex // held across a check and its grant, so checks do not race
	taken map[string]spaceNeed
}

// reserveRoom checks need as ensureRoom does, counting the room granted to operations
// under way as taken, and grants it to the operation id until release.
func (m *Manager) reserveRoom(id string, need spaceNeed, what, alternative string) (release func(), err error) {
	return m.reserveRoomAbove(id, need, m.minFree(), what, alternative)
}

// reserveRoomAbove is reserveRoom leaving floor bytes free rather than --min-free.
func (m *Manager) reserveRoomAbove(id string, need spaceNeed, floor int64, what, alternative string) (release func(), err error) {
	m.room.mu.Lock()
	defer m.room.mu.Unlock()
	var held spaceNeed
	promised := map[string]int64{}
	for _, n := range m.room.taken {
		held.cache += n.cache
		held.workspace += n.workspace
		for d, b := range n.images {
			promised[d] = max(promised[d], b)
		}
	}
	for _, b := range promised {
		held.cache += b
	}
	own := spaceNeed{cache: need.cache, workspace: need.workspace}
	for d, b := range need.images {
		if _, ok := promised[d]; !ok {
			own.cache += b
		}
	}
	if err := m.ensureRoomHeld(own, held, floor, what, alternative); err != nil {
		return nil, err
	}
	if m.room.taken == nil {
		m.room.taken = map[string]spaceNeed{}
	}
	m.room.taken[id] = need
	return func() {
		m.room.mu.Lock()
		defer m.room.mu.Unlock()
		delete(m.room.taken, id)
	}, nil
}

// minFree is the configured floor: 0 means the default, negative none.
func (m *Manager) minFree() int64 {
	switch {
	case m.cfg.MinFreeBytes < 0:
		return 0
	case m.cfg.MinFreeBytes == 0:
		return DefaultMinFreeBytes
	}
	return m.cfg.MinFreeBytes
}

// freeSpace is what an unprivileged writer may still use on dir's file system.
func (m *Manager) freeSpace(dir string) (int64, error) {
	if m.freeBytes != nil {
		return m.freeBytes(dir)
	}
	return fsutil.FreeBytes(dir)
}

func deviceOf(path string) (uint64, bool) {
	fi, err := os.Stat(path)
	if err != nil {
		return 0, false
	}
	st, ok := fi.Sys().(*syscall.Stat_t)
	if !ok {
		return 0, false
	}
	return uint64(st.Dev), true
}

// sameFileSystem reports whether a and b are known to lie on one file system.
func sameFileSystem(a, b string) bool {
	da, oka := deviceOf(a)
	db, okb := deviceOf(b)
	return oka && okb && da == db
}

func (m *Manager) workspacesRoot() string { return filepath.Join(m.cfg.Dir, "workspaces") }

// deployNeed is what staging man writes on this host: every shared image the cache
// does not already hold at its size (a changed one is dropped before it is staged
// again, so it costs nothing net) and the co-located pool cannot hard-link, less
// what a resumable partial transfer already holds; the overlay and saved RAM; and
// the deployment's own small files.
func (m *Manager) deployNeed(man *manifest) spaceNeed {
	need := spaceNeed{workspace: ownFilesSlack, images: map[string]int64{}}
	seen := map[string]bool{}
	for i := range man.Images {
		img := &man.Images[i]
		switch img.Role {
		case "base", "kernel", "initrd", "layer":
			if seen[img.Digest] {
				continue
			}
			seen[img.Digest] = true
			if cost := m.cacheCost(img); cost > 0 {
				need.images[img.Digest] = cost
			}
		default: // overlay, memory; stageFiles refuses any other role
			need.workspace += img.Size
		}
	}
	return need
}

// cacheCost is how many bytes staging img into the host cache writes.
func (m *Manager) cacheCost(img *manifestImage) int64 {
	if !digestRE.MatchString(img.Digest) {
		return img.Size // refused when staged; never a path outside the cache
	}
	path := m.cache.path(img.Digest)
	if fi, err := os.Stat(path); err == nil && fi.Size() == img.Size {
		return 0
	}
	if m.poolLinks(img.Digest) {
		return 0
	}
	cost := img.Size
	// An interrupted transfer resumes: only what it lacks is written. Its allocated
	// blocks, not its length, since a piece-wise transfer leaves holes.
	if fi, err := os.Stat(path + ".part"); err == nil {
		if st, ok := fi.Sys().(*syscall.Stat_t); ok {
			cost -= min(st.Blocks*512, img.Size)
		}
	}
	return cost
}

// poolLinks reports whether stageLocal will hard-link digest from the co-located
// pool (same file system as the cache): no bytes are written.
func (m *Manager) poolLinks(digest string) bool {
	if m.cfg.LocalImages == nil {
		return false
	}
	src, err := m.cfg.LocalImages.Path(digest)
	if err != nil {
		return false
	}
	return sameFileSystem(src, m.cache.dir)
}

// pinManifest keeps the manifest's shared images from eviction while the deploy
// checks for room and stages: what deployNeed counted as cached must stay so.
func (m *Manager) pinManifest(man *manifest) (release func()) {
	var digests []string
	for _, img := range man.Images {
		switch img.Role {
		case "base", "kernel", "initrd", "layer":
			m.cache.pin(img.Digest)
			digests = append(digests, img.Digest)
		}
	}
	return func() { m.cache.unpin(digests) }
}

// ensureRoom checks, before anything is written, that need fits on this host with
// the free-space floor left over, evicting cached images no workspace uses where
// that helps (only on the cache's file system). Otherwise it returns an errNoRoom
// saying what needs how much, what is free where, and the floor, with advice whose
// last resort is alternative. what names the operation's subject ("workspace K").
func (m *Manager) ensureRoom(need spaceNeed, what, alternative string) error {
	return m.ensureRoomHeld(spaceNeed{cache: need.cacheTotal(), workspace: need.workspace}, spaceNeed{}, m.minFree(), what, alternative)
}

// cacheTotal is what need writes into the host cache, its shared images included.
func (n spaceNeed) cacheTotal() int64 {
	total := n.cache
	for _, b := range n.images {
		total += b
	}
	return total
}

// ensureRoomHeld is ensureRoom with held taken by operations under way, leaving
// floor bytes free; need.images is already counted in need.cache.
func (m *Manager) ensureRoomHeld(need, held spaceNeed, floor int64, what, alternative string) error {
	type fsNeed struct {
		dir         string
		bytes, held int64 // this operation's, and those under way
		evict       bool
	}
	var groups []fsNeed
	if sameFileSystem(m.cache.dir, m.workspacesRoot()) {
		groups = []fsNeed{{m.cfg.Dir, need.cache + need.workspace, held.cache + held.workspace, true}}
	} else {
		groups = []fsNeed{{m.cache.dir, need.cache, held.cache, true}, {m.workspacesRoot(), need.workspace, held.workspace, false}}
	}
	for _, g := range groups {
		if g.bytes <= 0 {
			continue
		}
		free, err := m.freeSpace(g.dir)
		if err != nil {
			// Not knowing is no reason to refuse: a full disk still fails the write,
			// with advice (adviseOnFullDisk).
			m.log.Warn("cannot tell the free disk space; going on without the check", "dir", g.dir, "err", err)
			continue
		}
		// The check itself: free − held − need ≥ floor.
		fits := func(free int64) bool { return free-g.held-g.bytes >= floor }
		if fits(free) {
			continue
		}
		evictNote := ""
		if g.evict {
			fitsNow := func(int64) bool {
				f, err := m.freeSpace(g.dir)
				if err == nil {
					free = f
				}
				return err == nil && fits(f)
			}
			_, made, known := m.evictUnused("making room for "+what, fitsNow,
				slog.String("dir", g.dir), slog.Int64("need", g.bytes), slog.Int64("floor", floor))
			if made {
				m.log.Info("made room by evicting unused cached images", "for", what, "dir", g.dir, "need", g.bytes, "free", free, "floor", floor)
				continue
			}
			evictNote = ", with every cached image no workspace uses already evicted"
			if !known {
				evictNote = ", and no cached image could be evicted: a deployed workspace's record does not list the images it uses (deployed by an earlier vws)"
			}
		}
		short := g.bytes + g.held + floor - free
		m.log.Warn("refused: not enough free disk space", "for", what, "dir", g.dir, "need", g.bytes, "held", g.held, "free", free, "floor", floor, "short", short)
		heldNote := ""
		if g.held > 0 {
			heldNote = fmt.Sprintf(" (%s of it promised to deploys or serializes under way)", ibytes(g.held))
		}
		floorNote, lower := "", ""
		if floor > 0 {
			floorNote = fmt.Sprintf(", of which the manager keeps %s free (--min-free) for guest overlays to grow and for its journal", ibytes(floor))
			lower = "lower the manager's --min-free (vws serve), or "
		}
		err = fmt.Errorf("%w on host %s: %s needs %s, but %s has %s free%s%s: %s short%s; nothing was written",
			errNoRoom, m.cfg.Host, what, ibytes(g.bytes), g.dir, ibytes(free), heldNote, floorNote, ibytes(short), evictNote)
		advice := fmt.Sprintf("free at least %s in %s", ibytes(short), g.dir)
		switch {
		case alternative != "":
			advice += ", or " + lower + alternative
		case lower != "":
			advice += ", or " + strings.TrimSuffix(lower, ", or ")
		}
		return errdefs.WithAdvice(err, advice)
	}
	return nil
}

// adviseOnFullDisk adds what to do to an error that is a full disk after all (two
// deploys racing for the same free space, an overlay that grew, a file system
// without a usable free count), instead of a bare write error.
func (m *Manager) adviseOnFullDisk(err error, alternative string) error {
	if err == nil || errors.Is(err, errNoRoom) || !isNoSpace(err) {
		return err
	}
	// The cache or the workspaces may be file systems of their own: the fullest is
	// the one that filled up.
	dir, free, known := m.cfg.Dir, int64(0), false
	dirs := []string{m.cfg.Dir, m.workspacesRoot()}
	if m.cache != nil {
		dirs = append(dirs, m.cache.dir)
	}
	for _, d := range dirs {
		if f, ferr := m.freeSpace(d); ferr == nil && (!known || f < free) {
			dir, free, known = d, f, true
		}
	}
	if known {
		err = fmt.Errorf("%w (the disk filled up: %s has %s free now; the manager keeps %s free)", err, dir, ibytes(free), ibytes(m.minFree()))
	}
	// The caller is told the full disk (the administrator must free space), not an incident.
	err = errdefs.OfKind(err, errdefs.ErrStorageFull)
	if alternative == "" {
		return errdefs.WithAdvice(err, fmt.Sprintf("free space in %s and repeat", dir))
	}
	return errdefs.WithAdvice(err, fmt.Sprintf("free space in %s and repeat, or %s", dir, alternative))
}

// isNoSpace recognizes ENOSPC, wrapped or as text: libvirt and qemu-img report it in
// their messages only.
func isNoSpace(err error) bool {
	return errors.Is(err, syscall.ENOSPC) || strings.Contains(strings.ToLower(err.Error()), "no space left on device")
}

func ibytes(n int64) string {
	if n < 0 {
		return "-" + humanize.IBytes(uint64(-n))
	}
	return humanize.IBytes(uint64(n))
}
