package wssec

import (
	"container/heap"
	"errors"
	"fmt"
	"sync"
	"time"
)

// DefaultReplayMax is the ReplayCache capacity in messages when none is given: at
// ~200 bytes a message (its keys), about 200 MB at worst.
const DefaultReplayMax = 1_000_000

// ErrReplay is a message seen before; ErrReplayCacheFull a message refused because the
// cache cannot remember it.
var (
	ErrReplay          = errors.New("message seen before")
	ErrReplayCacheFull = errors.New("replay cache full")
)

// ReplayCache remembers accepted messages until their Timestamp expires (plus skew),
// after which the Verifier refuses them anyway. Memory is bounded: when Max entries
// are live, new messages are refused rather than old ones forgotten, since forgetting
// a live entry would let its replay through. One signer may hold a share of them
// only, so that nobody can fill the cache and so block everyone's signed messages.
// The zero value is ready to use.
type ReplayCache struct {
	// Max is the number of live messages; DefaultReplayMax when zero.
	Max int
	// PerSigner is the number of live messages one signer may hold; Max/16 when zero.
	PerSigner int

	mu       sync.Mutex
	seen     map[string]struct{}
	bySigner map[string]int
	expires  expiryHeap
	log      *replayLog // nil: held in memory only (Persist)
}

// NewReplayCache returns a cache of max entries (DefaultReplayMax when max <= 0).
func NewReplayCache(max int) *ReplayCache {
	return &ReplayCache{Max: max}
}

// Check records a message of signer, known by each of keys, until the time until,
// and fails with ErrReplay, recording nothing, if one of them is recorded already.
// A message counts once against Max and PerSigner, however many keys it has.
func (c *ReplayCache) Check(signer string, until, now time.Time, keys ...string) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.seen == nil {
		c.seen, c.bySigner = map[string]struct{}{}, map[string]int{}
	}
	// Entries expire in heap order, so the sweep costs O(log n) per expired entry.
	// An entry is kept through its until: the timestamp check accepts a message up
	// to and including that instant.
	for len(c.expires) > 0 && c.expires[0].until.Before(now) {
		e := heap.Pop(&c.expires).(expiry)
		for _, k := range e.keys {
			delete(c.seen, k)
		}
		if c.bySigner[e.signer]--; c.bySigner[e.signer] <= 0 {
			delete(c.bySigner, e.signer)
		}
	}
	for _, key := range keys {
		if _, dup := c.seen[key]; dup {
			return ErrReplay
		}
	}
	limit := c.Max
	if limit <= 0 {
		limit = DefaultReplayMax
	}
	if len(c.expires) >= limit {
		return fmt.Errorf("%w: %d messages are still live; refusing new ones rather than forgetting", ErrReplayCacheFull, len(c.expires))
	}
	perSigner := c.PerSigner
	if perSigner <= 0 {
		perSigner = max(limit/16, 1)
	}
	if n := c.bySigner[signer]; n >= perSigner {
		return fmt.Errorf("%w: %d messages of this signer are still live; refusing more from it", ErrReplayCacheFull, n)
	}
	// Logged first: a message the log cannot hold is refused, since after a restart
	// its replay would pass.
	if err := c.appendLocked(expiry{until: until, keys: keys, signer: signer}); err != nil {
		return err
	}
	c.record(signer, until, keys)
	return nil
}

// Seen says whether key is recorded.
func (c *ReplayCache) Seen(key string) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	_, ok := c.seen[key]
	return ok
}

// Len is the number of messages held.
func (c *ReplayCache) Len() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return len(c.expires)
}

type expiry struct {
	until  time.Time
	keys   []string
	signer string
}

type expiryHeap []expiry

func (h expiryHeap) Len() int           { return len(h) }
func (h expiryHeap) Less(i, j int) bool { return h[i].until.Before(h[j].until) }
func (h expiryHeap) Swap(i, j int)      { h[i], h[j] = h[j], h[i] }
func (h *expiryHeap) Push(x any)        { *h = append(*h, x.(expiry)) }
func (h *expiryHeap) Pop() any {
	old := *h
	e := old[len(old)-1]
	old[len(old)-1] = expiry{}
	*h = old[:len(old)-1]
	return e
}
