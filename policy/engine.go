package policy

import (
	"fmt"
	"log/slog"
	"os"
	"sync"
	"sync/atomic"
	"syscall"
	"time"
)

// checkInterval bounds how often Engine.Rules looks at the files: a stat per request
// would cost more than the decision itself.
const checkInterval = 500 * time.Millisecond

// Engine serves the current rules and re-reads the rules file and grid-mapfile when
// they change, so an administrator's edit takes effect without a restart. It polls the
// files' modification time and size (at most every 500 ms, from Rules) rather than
// using inotify: no goroutine or extra dependency, and it also notices files replaced
// by rename (editors, configuration management) or on network file systems.
type Engine struct {
	rulesFile, gridMapFile string
	log                    *slog.Logger

	cur       atomic.Pointer[Rules]
	nextCheck atomic.Int64 // unix nanoseconds
	closed    atomic.Bool

	mu      sync.Mutex // one reload at a time; guards the fields below
	stamps  [2]stamp
	lastErr error
	// fallback is what serves when neither file is given: AllowAll, or
	// Authenticated where callers are authenticated (UseDefault).
	fallback *Rules
}

// stamp tells one version of a policy file from another. Modification time and size
// alone miss an edit of the same length within the file system's time granularity
// (a second on ext3 and NFSv3; and a replacing file may carry an old mtime): the
// inode (a file replaced by rename is another one) and the change time (set by the
// kernel on every write, never by the writer) tell those apart.
type stamp struct {
	mod, change time.Time
	size        int64
	ino         uint64
	ok          bool
}

func stampOf(file string) (stamp, error) {
	if file == "" {
		return stamp{ok: true}, nil
	}
	fi, err := os.Stat(file)
	if err != nil {
		return stamp{}, err
	}
	st := stamp{mod: fi.ModTime(), size: fi.Size(), ok: true}
	if sys, ok := fi.Sys().(*syscall.Stat_t); ok {
		st.ino, st.change = sys.Ino, time.Unix(sys.Ctim.Unix())
	}
	return st, nil
}

// NewEngine loads rulesFile and gridMapFile (either may be ""; both "" serve AllowAll,
// a grid-mapfile alone lets mapped callers create, inspect and manage their own
// workspaces and act as hosts, but not admin).
// A file that does not load at start is an error.
func NewEngine(rulesFile, gridMapFile string, logger *slog.Logger) (*Engine, error) {
	if logger == nil {
		logger = slog.Default()
	}
	e := &Engine{rulesFile: rulesFile, gridMapFile: gridMapFile, log: logger, fallback: AllowAll}
	var err error
	if e.stamps[0], err = stampOf(rulesFile); err != nil {
		return nil, fmt.Errorf("policy rules file: %w", err)
	}
	if e.stamps[1], err = stampOf(gridMapFile); err != nil {
		return nil, fmt.Errorf("grid-mapfile: %w", err)
	}
	rs, err := e.load()
	if err != nil {
		return nil, err
	}
	e.cur.Store(rs)
	e.nextCheck.Store(time.Now().Add(checkInterval).UnixNano())
	if rulesFile != "" || gridMapFile != "" {
		e.log.Info("policy loaded", rs.summary()...)
	}
	return e, nil
}

func (e *Engine) load() (*Rules, error) {
	var gm *GridMap
	if e.gridMapFile != "" {
		var err error
		if gm, err = LoadGridMap(e.gridMapFile); err != nil {
			return nil, err
		}
	}
	switch {
	case e.rulesFile != "":
		rs, err := Load(e.rulesFile)
		if err != nil {
			return nil, err
		}
		if gm != nil {
			rs = rs.WithGridMap(gm)
		}
		return rs, nil
	case gm != nil:
		return gridMapOnly(gm), nil
	}
	return e.fallback, nil
}

// UseDefault makes rs what the engine serves when it has neither a rules file nor a
// grid-mapfile (instead of AllowAll).
func (e *Engine) UseDefault(rs *Rules) {
	e.mu.Lock()
	defer e.mu.Unlock()
	e.fallback = rs
	if e.rulesFile == "" && e.gridMapFile == "" {
		e.cur.Store(rs)
	}
}

// Rules returns the current rules, first re-reading the files if they changed since
// the last look (at most every 500 ms). Cheap enough to call on every request.
func (e *Engine) Rules() *Rules {
	if e.closed.Load() || time.Now().UnixNano() < e.nextCheck.Load() {
		return e.cur.Load()
	}
	// A request that finds another one reloading uses the rules it has.
	if !e.mu.TryLock() {
		return e.cur.Load()
	}
	defer e.mu.Unlock()
	e.nextCheck.Store(time.Now().Add(checkInterval).UnixNano())
	e.reloadLocked()
	return e.cur.Load()
}

func (e *Engine) reloadLocked() {
	if e.rulesFile == "" && e.gridMapFile == "" {
		return
	}
	var now [2]stamp
	var err error
	for i, f := range []string{e.rulesFile, e.gridMapFile} {
		if now[i], err = stampOf(f); err != nil {
			e.fail(fmt.Errorf("policy file vanished or unreadable, keeping the previous rules: %w", err))
			return
		}
	}
	if now == e.stamps {
		return
	}
	// Remember the stamps even when the new content is broken, so one bad edit is
	// reported once rather than every 500 ms; the next edit is looked at again.
	e.stamps = now
	rs, err := e.load()
	if err != nil {
		e.fail(fmt.Errorf("policy reload failed, keeping the previous rules: %w", err))
		return
	}
	e.cur.Store(rs)
	e.lastErr = nil
	e.log.Info("policy reloaded", rs.summary()...)
}

func (e *Engine) fail(err error) {
	if e.lastErr == nil || e.lastErr.Error() != err.Error() {
		e.log.Error("policy reload", "err", err)
	}
	e.lastErr = err
}

// LastError is why the last reload failed (the previous rules stay in force), nil
// when the files in use are the ones on disk.
func (e *Engine) LastError() error {
	e.mu.Lock()
	defer e.mu.Unlock()
	return e.lastErr
}

// Close stops looking at the files; Rules keeps serving the last rules.
func (e *Engine) Close() { e.closed.Store(true) }
