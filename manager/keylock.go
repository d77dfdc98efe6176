package manager

import (
	"context"
	"fmt"
	"sync"
	"time"
)

// keyedLocks serializes work per key: operations on one workspace, transfers of one
// image digest. The zero value is ready; a key's lock lives while someone holds or
// waits for it, so a long-running manager does not keep one for every workspace and
// image it ever handled.
type keyedLocks struct {
	mu sync.Mutex
	m  map[string]*keyLock
}

// keyLock is one key's lock: a token in a channel of one, so that a wait for it can
// end with the waiter's context (a sync.Mutex wait cannot).
type keyLock struct {
	token chan struct{}
	// what holds it and since when, for the error of a waiter that gives up; under
	// keyedLocks.mu.
	what  string
	since time.Time
	// refs counts those holding or waiting for it; under keyedLocks.mu.
	refs int
}

// entry returns key's lock, counting the caller in until it calls done.
func (k *keyedLocks) entry(key string) *keyLock {
	k.mu.Lock()
	defer k.mu.Unlock()
	l := k.m[key]
	if l == nil {
		if k.m == nil {
			k.m = map[string]*keyLock{}
		}
		l = &keyLock{token: make(chan struct{}, 1)}
		k.m[key] = l
	}
	l.refs++
	return l
}

// done counts the caller out of key's lock l, which goes once nobody holds or
// waits for it.
func (k *keyedLocks) done(key string, l *keyLock) {
	k.mu.Lock()
	defer k.mu.Unlock()
	if l.refs--; l.refs == 0 {
		delete(k.m, key)
	}
}

// held records what took l, and returns l's release.
func (k *keyedLocks) held(key string, l *keyLock, what string) func() {
	k.mu.Lock()
	l.what, l.since = what, time.Now()
	k.mu.Unlock()
	return func() {
		k.mu.Lock()
		l.what = ""
		k.mu.Unlock()
		<-l.token
		k.done(key, l)
	}
}

// lock waits for key's lock and returns its release.
func (k *keyedLocks) lock(key string) func() {
	l := k.entry(key)
	l.token <- struct{}{}
	return k.held(key, l, "")
}

// lockCtx waits for key's lock until ctx ends, and then returns an error wrapping
// ctx's that says what held the lock and for how long. what names the work taking
// it, for the errors of those who wait behind it.
func (k *keyedLocks) lockCtx(ctx context.Context, key, what string) (func(), error) {
	l := k.entry(key)
	select {
	case l.token <- struct{}{}:
		return k.held(key, l, what), nil
	default:
	}
	select {
	case l.token <- struct{}{}:
		return k.held(key, l, what), nil
	case <-ctx.Done():
	}
	k.mu.Lock()
	busy := &busyError{holder: l.what, err: ctx.Err()}
	if !l.since.IsZero() {
		busy.held = time.Since(l.since)
	}
	k.mu.Unlock()
	k.done(key, l)
	return nil, busy
}

// busyError is a wait for a key's lock that ended with the waiter's context.
type busyError struct {
	holder string        // the work holding the lock ("" unnamed)
	held   time.Duration // how long it had held it (0: not known)
	err    error         // the waiter's context's error
}

func (e *busyError) Error() string {
	holder := e.holder
	if holder == "" {
		holder = "another operation"
	}
	if e.held == 0 {
		return fmt.Sprintf("%s is under way: %v", holder, e.err)
	}
	return fmt.Sprintf("%s has been under way for %s: %v", holder, e.held.Round(100*time.Millisecond), e.err)
}

func (e *busyError) Unwrap() error { return e.err }

// tryLock takes key's lock only if it is free.
func (k *keyedLocks) tryLock(key string) (func(), bool) {
	l := k.entry(key)
	select {
	case l.token <- struct{}{}:
		return k.held(key, l, ""), true
	default:
		k.done(key, l)
		return nil, false
	}
}
