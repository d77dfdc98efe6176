package manager

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"sort"
	"sync"

	"github.com/vws-grid/vws/internal/fsutil"
	"github.com/vws-grid/vws/vmm"
)

// journalVersion is the layout version of a journal record.
const journalVersion = 1

// Phases of a workspace on this host. A record exists from before the first change
// the Manager makes for a workspace until after the last one is undone.
const (
	phaseStaging   = "staging"   // checked out; files arriving; no domain yet
	phaseDeployed  = "deployed"  // domain defined
	phaseUnstaging = "unstaging" // changes going back to the Repository
)

// record is the Manager's durable view of one workspace on this host: written before
// each change, so a restart can finish or undo what a crash interrupted.
type record struct {
	Version int    `json:"version"`
	Key     string `json:"key"`
	Name    string `json:"name,omitempty"`
	// Owner is the workspace's owner as its signed manifest names it: later operations
	// are decided against it.
	Owner string `json:"owner,omitempty"`
	// Workspace is the workspace's EPR at the Repository (address and WS-Addressing
	// version; the key is Key).
	WorkspaceAddress string `json:"workspaceAddress"`
	WSAVersion       int    `json:"wsaVersion"`
	// CheckedOutAs is the host name the workspace was checked out under (vws serve
	// --host-name then): the Repository naming another host for it means it was
	// taken away, not that this host was renamed.
	CheckedOutAs string `json:"checkedOutAs,omitempty"`
	Token        string `json:"token"`
	// CheckOutID names this deployment's CheckOut to the Repository, journaled before
	// it is sent and sent again with a retry, so that a copy arriving after the deploy
	// was undone is refused rather than locking the workspace for nobody.
	CheckOutID string `json:"checkOutID,omitempty"`
	Phase      string `json:"phase"`
	// State is the workspace state as last observed: shutdown, running, paused, corrupted.
	State  string `json:"state"`
	Detail string `json:"detail,omitempty"`
	// Hot: the RAM is saved in MemoryFile, or in libvirt's managed-save image of the
	// domain when ManagedSave, and the domain is off (a serialized workspace).
	Hot         bool `json:"hot,omitempty"`
	ManagedSave bool `json:"managedSave,omitempty"`
	// Pending names a Shutdown under way (pendingShutdown, pendingTrash, pendingDrop,
	// pendingSerialize), written before its first step and cleared with its outcome: a
	// restarted manager finishes it, or tells its forced stop from someone else's,
	// instead of guessing; or a restore libvirtd fell silent under (pendingRestore).
	Pending string `json:"pending,omitempty"`
	// Checked-out content, returned unchanged when nothing changed (Trash, failed deploy).
	OverlayDigest string `json:"overlayDigest"`
	// Shared lists the digests of the host-cache images (base, kernel, initrd, layers)
	// the deployment uses: the cache does not evict them while it is here.
	Shared          []string `json:"shared,omitempty"`
	MemoryDigest    string   `json:"memoryDigest,omitempty"`
	StateAtCheckout string   `json:"stateAtCheckout"`
	Spec            vmm.Spec `json:"spec"`
	// Files in the workspace directory.
	Overlay    string `json:"overlay"`    // the checked-out overlay (read-only below Run)
	Run        string `json:"run"`        // this deployment's writable overlay
	MemoryFile string `json:"memoryFile"` // saved RAM
	// Reported is the state/phase last told to the Repository, kept in memory only
	// (after a restart every workspace is reported once more).
	Reported string `json:"-"`
	// Spent, when set, says why MemoryFile no longer holds the RAM of the disk as it is
	// now (imageSpent), read by the reconciler before each plan; kept in memory only.
	Spent string `json:"-"`
}

var keyRE = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$`)

// journal stores one JSON record per workspace, each replaced atomically. This process
// is the only writer, so it keeps the latest record of each key decoded in memory:
// every operation reads its workspace's record, and reading and decoding the file
// each time was a tenth of the CPU a SOAP Pause costs (on libvirt's test driver).
type journal struct {
	dir string
	// mu keeps all from removing the .tmp of a put in flight as if a crash had left
	// it: puts (of different keys) share it, all takes it alone.
	mu sync.RWMutex
	// latest holds, by key, the record last put (durably or not) or read; a record
	// changed by putVolatile is here only, never on disk.
	latestMu sync.Mutex
	latest   map[string]*record
	// unsaved names the keys whose latest record the disk refused after the
	// hypervisor had acted (putOrKeep): the reconciler writes them out once it can.
	unsaved map[string]bool
}

func (j *journal) path(key string) string { return filepath.Join(j.dir, key+".json") }

// put replaces the record durably: written, fsynced, renamed, directory fsynced.
func (j *journal) put(r *record) error {
	r.Version = journalVersion
	data, err := json.MarshalIndent(r, "", "  ")
	if err != nil {
		return fmt.Errorf("encode journal record %s: %w", r.Key, err)
	}
	j.mu.RLock()
	defer j.mu.RUnlock()
	if err := writeFileAtomic(j.path(r.Key), data); err != nil {
		j.latestMu.Lock()
		// The disk may hold either version. Holding the new one (renamed, the
		// directory's sync failed), it is read again. Holding the earlier one, the
		// latest record stands: it is that version with what putVolatile changed on
		// it (a Pause), which reading the disk would undo. A record the disk refused
		// before (putOrKeep) the disk never held, so it stands too.
		if on, rerr := os.ReadFile(j.path(r.Key)); !j.unsaved[r.Key] && (rerr != nil || bytes.Equal(on, data)) {
			delete(j.latest, r.Key)
		}
		j.latestMu.Unlock()
		return err
	}
	j.remember(r)
	j.latestMu.Lock()
	delete(j.unsaved, r.Key)
	j.latestMu.Unlock()
	return nil
}

// putOrKeep replaces the record durably if the disk takes it, else for this process
// only, until writeUnsaved succeeds: for an outcome the hypervisor has already
// brought about, which a full disk must not turn into a failure or have forgotten.
// It fails only for a key with no durable record at all.
func (j *journal) putOrKeep(r *record) (durable bool, err error) {
	perr := j.put(r)
	if perr == nil {
		return true, nil
	}
	if err := j.putVolatile(r); err != nil {
		return false, errors.Join(perr, err)
	}
	j.latestMu.Lock()
	if j.unsaved == nil {
		j.unsaved = map[string]bool{}
	}
	j.unsaved[r.Key] = true
	j.latestMu.Unlock()
	return false, perr
}

// kept says whether key's latest record is in memory only, refused by the disk.
func (j *journal) kept(key string) bool {
	j.latestMu.Lock()
	defer j.latestMu.Unlock()
	return j.unsaved[key]
}

// unsavedKeys lists the keys putOrKeep kept in memory only.
func (j *journal) unsavedKeys() []string {
	j.latestMu.Lock()
	defer j.latestMu.Unlock()
	keys := make([]string, 0, len(j.unsaved))
	for k := range j.unsaved {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}

// writeUnsaved writes out key's record kept in memory by putOrKeep; the caller holds
// the workspace's lock. It keeps the record in memory when the disk still refuses it.
func (j *journal) writeUnsaved(key string) (written bool, err error) {
	j.latestMu.Lock()
	r, ok := j.latest[key]
	if ok && j.unsaved[key] {
		r = r.clone()
	} else {
		ok = false
	}
	j.latestMu.Unlock()
	if !ok {
		return false, nil // written or removed meanwhile
	}
	return j.putOrKeep(r)
}

// putVolatile replaces the record for this process only: for facts the hypervisor
// keeps too (running or paused), which a restarted manager takes from libvirt. The
// disk keeps the last durable record. Callers hold the workspace's lock, as for put.
func (j *journal) putVolatile(r *record) error {
	r.Version = journalVersion
	j.latestMu.Lock()
	_, known := j.latest[r.Key]
	j.latestMu.Unlock()
	if !known {
		if _, err := os.Stat(j.path(r.Key)); err != nil {
			return fmt.Errorf("journal record %s: a volatile change needs a durable record first: %w", r.Key, err)
		}
	}
	j.remember(r)
	return nil
}

// remember keeps a copy of r as key's latest record. What was reported is not part of
// it: a record read back says nothing reported, as one read from disk would.
func (j *journal) remember(r *record) {
	c := r.clone()
	c.Reported = ""
	j.latestMu.Lock()
	defer j.latestMu.Unlock()
	if j.latest == nil {
		j.latest = map[string]*record{}
	}
	j.latest[r.Key] = c
}

func (j *journal) forget(key string) {
	j.latestMu.Lock()
	defer j.latestMu.Unlock()
	delete(j.latest, key)
	delete(j.unsaved, key)
}

// get returns a copy of key's latest record, which the caller may change.
func (j *journal) get(key string) (*record, error) {
	// Held across the read of a record not yet in memory, so that a remove (which
	// deletes the file before it forgets) cannot leave what was read behind it.
	j.latestMu.Lock()
	defer j.latestMu.Unlock()
	if r, ok := j.latest[key]; ok {
		return r.clone(), nil
	}
	data, err := os.ReadFile(j.path(key))
	if err != nil {
		return nil, err
	}
	r := new(record)
	if err := json.Unmarshal(data, r); err != nil {
		return nil, fmt.Errorf("journal record %s: %w", key, err)
	}
	if r.Version != journalVersion {
		return nil, fmt.Errorf("journal record %s has version %d; this manager reads %d", key, r.Version, journalVersion)
	}
	if j.latest == nil {
		j.latest = map[string]*record{}
	}
	j.latest[key] = r.clone()
	return r, nil
}

// clone copies r deeply enough that changing the copy never changes r: every slice
// the record holds, directly or in its Spec, is copied.
func (r *record) clone() *record {
	c := *r
	c.Shared = slices.Clone(r.Shared)
	c.Spec.Disks = slices.Clone(r.Spec.Disks)
	c.Spec.NICs = slices.Clone(r.Spec.NICs)
	return &c
}

func (j *journal) remove(key string) error {
	err := os.Remove(j.path(key))
	j.forget(key) // after the file: a get in between would read it back
	if errors.Is(err, os.ErrNotExist) {
		return nil
	}
	if err != nil {
		return err
	}
	return syncDir(j.dir)
}

// all returns every record, sorted by key; unreadable ones are returned as errors
// beside the rest.
func (j *journal) all() ([]*record, []error) {
	j.mu.Lock()
	defer j.mu.Unlock()
	ents, err := os.ReadDir(j.dir)
	if err != nil {
		return nil, []error{err}
	}
	var out []*record
	var errs []error
	for _, e := range ents {
		name := e.Name()
		if filepath.Ext(name) != ".json" {
			if filepath.Ext(name) == ".tmp" {
				os.Remove(filepath.Join(j.dir, name)) // an interrupted write
			}
			continue
		}
		r, err := j.get(name[:len(name)-len(".json")])
		if errors.Is(err, os.ErrNotExist) {
			continue // removed since the listing (an undeploy finished): gone, not unreadable
		}
		if err != nil {
			errs = append(errs, err)
			continue
		}
		out = append(out, r)
	}
	sort.Slice(out, func(a, b int) bool { return out[a].Key < out[b].Key })
	return out, errs
}

// writeFileAtomic is a variable, as syncDir is, for tests to fail it after the rename.
var writeFileAtomic = func(path string, data []byte) error {
	return fsutil.WriteFileAtomic(path, data, 0o600)
}

var syncDir = fsutil.SyncDir
