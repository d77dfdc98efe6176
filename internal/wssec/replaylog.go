package wssec

import (
	"bufio"
	"container/heap"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"time"
)

// ErrReplayNotRecorded is a message refused because the replay log could not record
// it: accepted, it could be accepted again after a restart.
var ErrReplayNotRecorded = errors.New("replay log write failed")

// replayLine is one accepted message in the replay log.
type replayLine struct {
	Until  int64    `json:"u"` // Unix nanoseconds
	Signer string   `json:"s"`
	Keys   [][]byte `json:"k"` // base64: a key may hold a digest's raw bytes
}

func (e expiry) line() replayLine {
	keys := make([][]byte, len(e.keys))
	for i, k := range e.keys {
		keys[i] = []byte(k)
	}
	return replayLine{Until: e.until.UnixNano(), Signer: e.signer, Keys: keys}
}

// replayLog is the file a ReplayCache appends each accepted message to, so that a
// restarted (or killed) server still refuses the replay of a message it accepted
// before, while its Timestamp is live. Appended with no sync: a killed process's
// writes survive in the page cache; only an OS crash can lose the last ones.
type replayLog struct {
	path  string
	f     *os.File
	lines int // lines in the file: compacted when mostly expired
}

// Persist has c survive a restart: it loads the messages path holds that are live at
// now, rewrites path with only those, and appends every message Check accepts from
// then on. A torn last line (a kill mid-write) is skipped.
func (c *ReplayCache) Persist(path string, now time.Time) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.seen == nil {
		c.seen, c.bySigner = map[string]struct{}{}, map[string]int{}
	}
	f, err := os.Open(path)
	switch {
	case errors.Is(err, os.ErrNotExist):
	case err != nil:
		return fmt.Errorf("replay log: %w", err)
	default:
		sc := bufio.NewScanner(f)
		sc.Buffer(make([]byte, 64<<10), 1<<20)
		for sc.Scan() {
			var l replayLine
			if json.Unmarshal(sc.Bytes(), &l) != nil {
				continue // torn by a kill mid-write
			}
			if until := time.Unix(0, l.Until); !until.Before(now) {
				keys := make([]string, len(l.Keys))
				for i, k := range l.Keys {
					keys[i] = string(k)
				}
				c.record(l.Signer, until, keys)
			}
		}
		err := sc.Err()
		f.Close()
		if err != nil {
			return fmt.Errorf("replay log %s: %w", path, err)
		}
	}
	c.log = &replayLog{path: path}
	return c.compactLocked()
}

// record holds a message in memory, limits aside (loading what was accepted).
func (c *ReplayCache) record(signer string, until time.Time, keys []string) {
	for _, key := range keys {
		c.seen[key] = struct{}{}
	}
	c.bySigner[signer]++
	heap.Push(&c.expires, expiry{until: until, keys: keys, signer: signer})
}

// append writes one accepted message to the log, compacting it when most of its
// lines have expired.
func (c *ReplayCache) appendLocked(e expiry) error {
	l := c.log
	if l == nil {
		return nil
	}
	// A log not reopened after compaction is retried: a message it cannot hold is
	// refused (see Check).
	if l.f == nil || l.lines > 2*len(c.expires)+1024 {
		if err := c.compactLocked(); err != nil {
			return err
		}
	}
	b, err := json.Marshal(e.line())
	if err != nil {
		return err
	}
	if _, err := l.f.Write(append(b, '\n')); err != nil {
		return fmt.Errorf("%w: %s: %w", ErrReplayNotRecorded, l.path, err)
	}
	l.lines++
	return nil
}

// openAppend opens the log to append to (a variable for tests).
var openAppend = func(path string) (*os.File, error) {
	return os.OpenFile(path, os.O_WRONLY|os.O_APPEND, 0o600)
}

// compactLocked rewrites the log with the live messages only, then appends to it.
func (c *ReplayCache) compactLocked() error {
	l := c.log
	tmp := l.path + ".tmp"
	f, err := os.OpenFile(tmp, os.O_CREATE|os.O_TRUNC|os.O_WRONLY, 0o600)
	if err != nil {
		return fmt.Errorf("%w: %w", ErrReplayNotRecorded, err)
	}
	w := bufio.NewWriter(f)
	enc := json.NewEncoder(w)
	for _, e := range c.expires {
		if err = enc.Encode(e.line()); err != nil {
			break
		}
	}
	if err == nil {
		err = w.Flush()
	}
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Rename(tmp, l.path)
	}
	if err != nil {
		os.Remove(tmp)
		return fmt.Errorf("%w: compact %s: %w", ErrReplayNotRecorded, l.path, err)
	}
	if l.f != nil {
		l.f.Close()
	}
	if l.f, err = openAppend(l.path); err != nil {
		l.f = nil // the next message retries
		return fmt.Errorf("%w: %s: %w", ErrReplayNotRecorded, l.path, err)
	}
	l.lines = len(c.expires)
	return nil
}

// Close stops the log: the cache holds what it accepts from then on in memory only.
func (c *ReplayCache) Close() error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.log == nil || c.log.f == nil {
		c.log = nil
		return nil
	}
	err := c.log.f.Close()
	c.log = nil
	return err
}
