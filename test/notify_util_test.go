package test

import (
	"os"
	"os/exec"
	"strings"
	"sync"
	"testing"
	"time"
)

// Subscriber is a `vws wsrf subscribe` process listening for a workspace's
// notifications, as a grid user runs it.
type Subscriber struct {
	cmd  *exec.Cmd
	mu   sync.Mutex
	out  strings.Builder
	errb strings.Builder
	done chan struct{}
}

func (s *Subscriber) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.out.Write(p)
}

// Output is what the subscriber printed so far.
func (s *Subscriber) Output() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.out.String()
}

// StartSubscriber runs `vws wsrf subscribe args...` against the server at url and
// waits until it listens.
func StartSubscriber(t *testing.T, env []string, args ...string) *Subscriber {
	t.Helper()
	s := &Subscriber{done: make(chan struct{})}
	s.cmd = exec.Command(vws(t), append([]string{"wsrf", "subscribe"}, args...)...)
	s.cmd.Env = append(os.Environ(), env...)
	s.cmd.Stdout = s
	r, w, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	s.cmd.Stderr = w
	if err := s.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	w.Close()
	listening := make(chan struct{})
	go func() {
		buf := make([]byte, 4096)
		once := sync.Once{}
		for {
			n, err := r.Read(buf)
			s.mu.Lock()
			s.errb.Write(buf[:n])
			if strings.Contains(s.errb.String(), "listening on") {
				once.Do(func() { close(listening) })
			}
			s.mu.Unlock()
			if err != nil {
				return
			}
		}
	}()
	go func() { s.cmd.Wait(); close(s.done) }()
	t.Cleanup(func() { s.cmd.Process.Kill(); <-s.done })
	select {
	case <-listening:
	case <-s.done:
		t.Fatalf("vws wsrf subscribe %v ended at once: %s", args, s.stderr())
	case <-time.After(30 * time.Second):
		t.Fatalf("vws wsrf subscribe %v: not listening after 30 s: %s", args, s.stderr())
	}
	return s
}

func (s *Subscriber) stderr() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.errb.String()
}

// Wait waits for the subscriber to end by itself and returns its exit code.
func (s *Subscriber) Wait(t *testing.T, patience time.Duration) int {
	t.Helper()
	select {
	case <-s.done:
		return s.cmd.ProcessState.ExitCode()
	case <-time.After(patience):
		t.Fatalf("vws wsrf subscribe still runs after %s; it printed:\n%s\n%s", patience, s.Output(), s.stderr())
		return -1
	}
}

// Changes parses the subscriber's lines "TIME KEY TOPIC: OLD -> NEW" into, per
// topic, the chain of values (the first old value, then each new one), and checks
// that each message's old value is the previous one's new value: nothing lost,
// nothing out of order. ended is the reason of the workspace's end, if it came.
func (s *Subscriber) Changes(t *testing.T) (chains map[string][]string, ended string) {
	t.Helper()
	chains = map[string][]string{}
	for _, l := range strings.Split(strings.TrimSpace(s.Output()), "\n") {
		f := strings.SplitN(l, " ", 3)
		if len(f) < 3 {
			t.Fatalf("subscriber line %q", l)
		}
		if r, ok := strings.CutPrefix(f[2], "ended: "); ok {
			ended = r
			continue
		}
		topic, change, ok := strings.Cut(f[2], ": ")
		old, cur, ok2 := strings.Cut(change, " -> ")
		if !ok || !ok2 {
			t.Fatalf("subscriber line %q", l)
		}
		c := chains[topic]
		if len(c) == 0 {
			c = []string{old}
		} else if c[len(c)-1] != old {
			t.Fatalf("%s changed from %q, but the previous message left it %q: a message was lost or came out of order\n%s", topic, old, c[len(c)-1], s.Output())
		}
		chains[topic] = append(c, cur)
	}
	return chains, ended
}

// WantChain fails unless chain holds want in this order (other values may come
// between, where the manager passed through states too briefly to matter).
func WantChain(t *testing.T, what string, chain, want []string) {
	t.Helper()
	i := 0
	for _, v := range chain {
		if i < len(want) && v == want[i] {
			i++
		}
	}
	if i < len(want) {
		t.Fatalf("%s went %v; want %v in this order", what, chain, want)
	}
}
