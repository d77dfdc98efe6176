package manager

import "sync"

// keyedLocks serializes work per key: operations on one workspace, transfers of one
// image digest. The zero value is ready; a key's mutex lives as long as the map.
type keyedLocks struct {
	mu sync.Mutex
	m  map[string]*sync.Mutex
}

func (k *keyedLocks) mutex(key string) *sync.Mutex {
	k.mu.Lock()
	defer k.mu.Unlock()
	l := k.m[key]
	if l == nil {
		if k.m == nil {
			k.m = map[string]*sync.Mutex{}
		}
		l = &sync.Mutex{}
		k.m[key] = l
	}
	return l
}

// lock waits for key's lock and returns its release.
func (k *keyedLocks) lock(key string) func() {
	l := k.mutex(key)
	l.Lock()
	return l.Unlock
}

// tryLock takes key's lock only if it is free.
func (k *keyedLocks) tryLock(key string) (func(), bool) {
	l := k.mutex(key)
	if !l.TryLock() {
		return nil, false
	}
	return l.Unlock, true
}
