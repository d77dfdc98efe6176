package wsrf

import (
	"container/heap"
	"sync"
	"time"
)

// scheduler calls fire(key) once a key's time has come. Superseded entries stay in the
// heap and are skipped when they surface (lazy deletion), so rescheduling is O(log n).
type scheduler struct {
	now      func() time.Time
	fire     func(key string)
	mu       sync.Mutex
	due      map[string]time.Time
	q        entryHeap
	wake     chan struct{}
	quit     chan struct{}
	done     chan struct{}
	active   bool
	stopOnce sync.Once
	firing   sync.WaitGroup // expiries under way
	slots    chan struct{}  // bounds them: thousands may fall due at a start
}

type entry struct {
	key string
	at  time.Time
}

type entryHeap []entry

func (h entryHeap) Len() int           { return len(h) }
func (h entryHeap) Less(i, j int) bool { return h[i].at.Before(h[j].at) }
func (h entryHeap) Swap(i, j int)      { h[i], h[j] = h[j], h[i] }
func (h *entryHeap) Push(x any)        { *h = append(*h, x.(entry)) }
func (h *entryHeap) Pop() any {
	old := *h
	e := old[len(old)-1]
	*h = old[:len(old)-1]
	return e
}

// expiriesAtOnce bounds the expiries under way: each destroys a resource (a database
// write, its files), and a server started after a long stop may find thousands due.
const expiriesAtOnce = 16

func newScheduler(now func() time.Time, fire func(string)) *scheduler {
	return &scheduler{now: now, fire: fire, due: map[string]time.Time{}, wake: make(chan struct{}, 1),
		quit: make(chan struct{}), done: make(chan struct{}), slots: make(chan struct{}, expiriesAtOnce)}
}

func (s *scheduler) schedule(key string, at time.Time) {
	at = at.Round(0) // the wall clock only: a monotonic reading would outlast a clock step or suspend
	s.mu.Lock()
	s.due[key] = at
	heap.Push(&s.q, entry{key, at})
	s.mu.Unlock()
	s.poke()
}

func (s *scheduler) cancel(key string) {
	s.mu.Lock()
	delete(s.due, key)
	s.mu.Unlock()
}

func (s *scheduler) poke() {
	select {
	case s.wake <- struct{}{}:
	default:
	}
}

func (s *scheduler) start() {
	s.active = true
	go s.run()
}

func (s *scheduler) stop() {
	if !s.active {
		return
	}
	s.stopOnce.Do(func() {
		close(s.quit)
		<-s.done
		s.firing.Wait()
	})
}

// clockCheck is the longest the scheduler sleeps with a termination pending.
const clockCheck = time.Second

func (s *scheduler) run() {
	defer close(s.done)
	timer := time.NewTimer(time.Hour)
	defer timer.Stop()
	for {
		var expired []string
		wait := time.Hour
		s.mu.Lock()
		now := s.now().Round(0)
		for s.q.Len() > 0 {
			e := s.q[0]
			if at, ok := s.due[e.key]; !ok || !at.Equal(e.at) {
				heap.Pop(&s.q) // superseded or cancelled
				continue
			}
			if e.at.After(now) {
				// Timers run on the monotonic clock, which stands still while the
				// host is suspended and ignores a clock step: a long sleep could end
				// well after the time it waited for. Look at the clock each second.
				wait = min(e.at.Sub(now), clockCheck)
				break
			}
			heap.Pop(&s.q)
			delete(s.due, e.key)
			expired = append(expired, e.key)
		}
		s.mu.Unlock()
		for _, k := range expired {
			// Each on its own: one busy resource (its lock held by a long operation)
			// must not hold back the others' expiry.
			s.firing.Add(1)
			s.slots <- struct{}{}
			go func() {
				defer s.firing.Done()
				defer func() { <-s.slots }()
				s.fire(k)
			}()
		}
		if len(expired) > 0 {
			continue // fire may have rescheduled
		}
		timer.Reset(wait)
		select {
		case <-s.quit:
			return
		case <-s.wake:
			timer.Stop() // Go ≥1.23 timers: no stale tick to drain after Stop
		case <-timer.C:
		}
	}
}
