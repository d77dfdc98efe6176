package repository

import (
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"path/filepath"
	"regexp"
	"slices"
	"strings"

	"github.com/vws-grid/vws/internal/fsutil"
	"github.com/vws-grid/vws/internal/store"
)

// diskChain is a workspace's private record of its image files: the pool base, the
// frozen layers a clone left below it (bottom first), and its own active overlay. It
// is committed in the same database row as the workspace's properties.
type diskChain struct {
	Version     int     `json:"version"`
	Base        string  `json:"base"` // pool digest
	BaseFormat  string  `json:"baseFormat"`
	VirtualSize int64   `json:"virtualSize"`
	Layers      []layer `json:"layers,omitempty"`
	Overlay     string  `json:"overlay"` // file name in the workspace directory
	// Lock is the token of the manager that checked the workspace out, if any.
	Lock string `json:"lock,omitempty"`

	// Fields added after version 1; records written before them decode with the zero
	// values, which mean "none".

	// Kernel and Initrd are the pool digests of a direct-kernel-boot workspace.
	Kernel string `json:"kernel,omitempty"`
	Initrd string `json:"initrd,omitempty"`
	// OverlayDigest and OverlaySize describe Overlay as last hashed (CheckOut, or the
	// upload CheckIn adopted); "" when not known (a fresh overlay from Clone or the
	// sweep). Valid while Lock is set: the repository's overlay is not written then.
	OverlayDigest string `json:"overlayDigest,omitempty"`
	OverlaySize   int64  `json:"overlaySize,omitempty"`
	// Memory is the saved RAM of a serialized (paused) workspace: a file name in the
	// workspace directory, its digest and size; "" when there is none.
	Memory       string `json:"memory,omitempty"`
	MemoryDigest string `json:"memoryDigest,omitempty"`
	MemorySize   int64  `json:"memorySize,omitempty"`
	// Seal is the signed vw:Manifest of the images above, made when they last changed;
	// "" for a record from before manifests were signed: the start-up sweep signs it
	// until the store is marked as fully sealed, after which "" is refused (sweep).
	Seal string `json:"seal,omitempty"`
	// OwnerAttributes are the creator's VO attributes; QuotaScopes the quota counts
	// the workspace is charged to (policy.Scopes); RunScopes and RunMemoryMiB what a
	// check-out charged, given back at check-in or destroy.
	OwnerAttributes []string `json:"ownerAttributes,omitempty"`
	QuotaScopes     []string `json:"quotaScopes,omitempty"`
	RunScopes       []string `json:"runScopes,omitempty"`
	RunMemoryMiB    int64    `json:"runMemoryMiB,omitempty"`
	// LockRequest is the RequestID of the CheckOut that took Lock ("" none given);
	// Ended those of the latest check-outs checked in or withdrawn, each with the
	// holder that sent it (at most maxEndedRequests per holder). A copy of such a
	// CheckOut arriving late (held in the network after its manager gave up on it and
	// undid the deploy) must not lock the workspace again for nobody. EndedRequests
	// are such names kept before they were kept per holder, ended for every holder.
	LockRequest   string         `json:"lockRequest,omitempty"`
	Ended         []endedRequest `json:"ended,omitempty"`
	EndedRequests []string       `json:"endedRequests,omitempty"`
	// CreateRequest is the RequestID of the RegisterWorkspace that created the
	// workspace ("" none given): the Factory sends it again when the answer was lost,
	// and is answered with this workspace instead of a second one.
	CreateRequest string `json:"createRequest,omitempty"`
	// ReportedAt is the vw:ObservedAt (Unix ms) of the latest report applied under
	// the lock ReportedLock: a report observed before it arrives late (held up while
	// the manager gave up waiting and sent a newer one) and is not applied.
	ReportedAt   int64  `json:"reportedAt,omitempty"`
	ReportedLock string `json:"reportedLock,omitempty"`
	// PreferredHosts are the hosts the workspace's creator asked Place to prefer
	// (fac:PreferredHost), in that order; a clone keeps them with its description.
	PreferredHosts []string `json:"preferredHosts,omitempty"`
}

// maxEndedRequests bounds the check-out names a workspace remembers as ended per
// holder: a copy delayed past that many later check-outs of its holder is not
// expected. maxEnded bounds them over all holders.
const (
	maxEndedRequests = 8
	maxEnded         = 8 * maxEndedRequests
)

// endedRequest is a check-out name its holder (a host identity's DN, or a host
// name without TLS) ended.
type endedRequest struct {
	By string `json:"by"`
	ID string `json:"id"`
}

// ended says whether holder by ended its check-out id.
func (c *diskChain) ended(by, id string) bool {
	return slices.Contains(c.EndedRequests, id) || slices.Contains(c.Ended, endedRequest{By: by, ID: id})
}

// endRequest remembers holder by's check-out id ("": none) as ended. Any host may
// withdraw a name on any workspace, so a holder's names make room for its own
// only: another host's withdrawals cannot push them out (its late copy would lock
// the workspace again), unless more than maxEnded/maxEndedRequests holders ended
// names since.
func (c *diskChain) endRequest(by, id string) {
	if id == "" || c.ended(by, id) {
		return
	}
	c.Ended = append(c.Ended, endedRequest{By: by, ID: id})
	own := 0
	for _, e := range c.Ended {
		if e.By == by {
			own++
		}
	}
	if own > maxEndedRequests {
		i := slices.IndexFunc(c.Ended, func(e endedRequest) bool { return e.By == by })
		c.Ended = slices.Delete(c.Ended, i, i+1)
	}
	if n := len(c.Ended); n > maxEnded {
		c.Ended = slices.Clone(c.Ended[n-maxEnded:])
	}
}

// layer is a frozen overlay shared by a workspace and its clones.
type layer struct {
	ID     string `json:"id"`
	Digest string `json:"digest"`
	Size   int64  `json:"size"`
}

const chainVersion = 1

func decodeChain(data []byte) (*diskChain, error) {
	var c diskChain
	if err := json.Unmarshal(data, &c); err != nil {
		return nil, fmt.Errorf("workspace disk record: %w", err)
	}
	if c.Version != chainVersion {
		return nil, fmt.Errorf("workspace disk record version %d is not %d", c.Version, chainVersion)
	}
	return &c, nil
}

func (c *diskChain) encode() []byte {
	data, err := json.Marshal(c)
	if err != nil {
		panic(err) // a plain struct of strings and ints always marshals
	}
	return data
}

// top is the file the next overlay must be backed by: the last layer, else the base.
func (c *diskChain) top(r *Repository) (path, format string, err error) {
	if n := len(c.Layers); n > 0 {
		return r.layerPath(c.Layers[n-1].ID), "qcow2", nil
	}
	p, err := r.pool.Path(c.Base)
	return p, c.BaseFormat, err
}

var idRE = regexp.MustCompile(`^[0-9a-f]{32}$`)

// newID returns 128 random bits in hex: workspace keys and layer names. Being pure
// hex they are safe as file names.
func newID() string {
	var b [16]byte
	if _, err := rand.Read(b[:]); err != nil {
		panic(err) // crypto/rand does not fail on Linux
	}
	return hex.EncodeToString(b[:])
}

func (r *Repository) workspaceDir(key string) string { return filepath.Join(r.dir, "workspaces", key) }
func (r *Repository) layerPath(id string) string     { return filepath.Join(r.dir, "layers", id+".qcow2") }

// overlayName is the active overlay's file name for a generation.
func overlayName(gen int) string { return fmt.Sprintf("disk-%d.qcow2", gen) }

func nextOverlayName(current string) string {
	var gen int
	fmt.Sscanf(current, "disk-%d.qcow2", &gen)
	return overlayName(gen + 1)
}

// memoryName is a saved-RAM file's name for a generation; like overlays, a new memory
// image never reuses the name of the one it replaces.
func memoryName(gen int) string { return fmt.Sprintf("memory-%d.save", gen) }

func nextMemoryName(current string) string {
	var gen int
	fmt.Sscanf(current, "memory-%d.save", &gen)
	return memoryName(gen + 1)
}

// Files an upload leaves in a workspace directory: the stream while it arrives
// (uploadPrefix…), then, once complete, synced and checked, a pending file named by its
// digest that CheckIn adopts.
const uploadPrefix = "upload-"

func pendingOverlayName(digest string) string {
	return "pending-overlay-" + strings.TrimPrefix(digest, "sha256:") + ".qcow2"
}

func pendingMemoryName(digest string) string {
	return "pending-memory-" + strings.TrimPrefix(digest, "sha256:") + ".save"
}

var pendingRE = regexp.MustCompile(`^pending-(overlay-[0-9a-f]{64}\.qcow2|memory-[0-9a-f]{64}\.save)$`)

// digestRE is a sha256 digest as the contract writes it.
var digestRE = regexp.MustCompile(`^sha256:[0-9a-f]{64}$`)

// fileDigest hashes a file: the manifest names every image by content.
var fileDigest = fsutil.FileDigest

// syncDir makes a directory entry (a new or renamed file) durable.
var syncDir = fsutil.SyncDir

// makeDurable makes the database's commits so far survive an OS crash (tests watch it).
var makeDurable = store.Durable
