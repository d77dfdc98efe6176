// Package sockproxy stands between a test's client and a service: a socket that
// forwards to the service's (libvirtd's Unix socket, a vws server's TCP port), which
// the test can close (the service is unreachable) or freeze (the service stopped
// answering, as when it is stopped with SIGSTOP or deadlocked) for its own client
// alone, without disturbing anyone else's.
package sockproxy

import (
	"net"
	"path/filepath"
	"sync"
	"testing"
)

// LibvirtSocket is libvirtd's socket for qemu:///system.
const LibvirtSocket = "/run/libvirt/libvirt-sock"

// Proxy forwards connections from Path (a Unix socket, or a TCP address when
// Network is "tcp") to Target on the same network.
type Proxy struct {
	Network      string
	Path, Target string

	mu     sync.Mutex
	cond   *sync.Cond
	ln     net.Listener
	conns  map[net.Conn]bool
	frozen bool
	// held are connections whose bytes stay held after ThawNew, until ReleaseHeld;
	// delayed those that were, whose end a client's hang-up no longer brings (see
	// pipe).
	held, delayed map[net.Conn]bool
	clients       map[net.Conn]bool // the accepted side of each connection pair
}

// Start listens on a Unix socket in t's temporary directory, forwarding to the Unix
// socket target, until the test ends.
func Start(t testing.TB, target string) *Proxy {
	t.Helper()
	p := &Proxy{Network: "unix", Path: filepath.Join(t.TempDir(), "libvirt.sock"), Target: target}
	p.Listen(t)
	t.Cleanup(p.Close)
	return p
}

// StartTCP listens on a free loopback port, forwarding to the TCP address target
// (which SetTarget may give later), until the test ends; Path is the address it
// listens on.
func StartTCP(t testing.TB, target string) *Proxy {
	t.Helper()
	p := &Proxy{Network: "tcp", Path: "127.0.0.1:0", Target: target}
	p.Listen(t)
	t.Cleanup(p.Close)
	return p
}

// URI is the qemu:///system URI that reaches libvirtd through the proxy.
func (p *Proxy) URI() string { return "qemu+unix:///system?socket=" + p.Path }

// Listen (again) accepts connections on Path.
func (p *Proxy) Listen(t testing.TB) {
	t.Helper()
	ln, err := net.Listen(p.Network, p.Path)
	if err != nil {
		t.Fatal(err)
	}
	p.mu.Lock()
	p.ln = ln
	p.Path = ln.Addr().String() // the port chosen, to listen on again after Close
	if p.conns == nil {
		p.conns = map[net.Conn]bool{}
		p.cond = sync.NewCond(&p.mu)
	}
	p.mu.Unlock()
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			p.mu.Lock()
			target := p.Target
			p.mu.Unlock()
			up, err := net.Dial(p.Network, target)
			if err != nil {
				c.Close()
				continue
			}
			p.mu.Lock()
			p.conns[c], p.conns[up] = true, true
			if p.clients == nil {
				p.clients = map[net.Conn]bool{}
			}
			p.clients[c] = true
			p.mu.Unlock()
			go p.pipe(up, c)
			go p.pipe(c, up)
		}
	}()
}

// pipe copies src to dst, holding what it read while the proxy is frozen.
func (p *Proxy) pipe(dst, src net.Conn) {
	defer func() {
		p.mu.Lock()
		// A delayed request is delivered whole, as a buffering middlebox does: its
		// client having hung up meanwhile does not end the upstream connection, whose
		// answer (to nobody) ends it.
		keep := p.delayed[src] && p.clients[src]
		p.mu.Unlock()
		if keep {
			return
		}
		dst.Close()
		src.Close()
		p.mu.Lock()
		delete(p.conns, dst)
		delete(p.conns, src)
		delete(p.clients, dst)
		delete(p.clients, src)
		p.mu.Unlock()
	}()
	buf := make([]byte, 64<<10)
	for {
		n, err := src.Read(buf)
		p.mu.Lock()
		for p.frozen || p.held[src] {
			p.cond.Wait()
		}
		p.mu.Unlock()
		if n > 0 {
			if _, werr := dst.Write(buf[:n]); werr != nil {
				return
			}
		}
		if err != nil {
			return
		}
	}
}

// Conns is how many client connections the proxy forwards now.
func (p *Proxy) Conns() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return len(p.conns) / 2 // each one and its upstream twin
}

// SetTarget forwards connections made from now on to target.
func (p *Proxy) SetTarget(target string) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.Target = target
}

// Close stops listening (removing a Unix socket) and closes every forwarded
// connection: the service is unreachable, as when it is down.
func (p *Proxy) Close() {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.ln != nil {
		p.ln.Close()
		p.ln = nil
	}
	p.frozen, p.held = false, nil
	if p.cond != nil {
		p.cond.Broadcast()
	}
	for c := range p.conns {
		c.Close()
	}
}

// Freeze holds every byte in both directions, on open connections and new ones
// alike, until Thaw: the service accepts connections but answers nothing.
func (p *Proxy) Freeze() {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.frozen = true
}

// Thaw delivers what was held and forwards again, as a service does on SIGCONT.
func (p *Proxy) Thaw() {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.frozen = false
	p.cond.Broadcast()
}

// ThawNew forwards again on new connections while the open ones keep holding what
// they hold until ReleaseHeld: a request delayed in the network arriving after the
// ones its client sent next.
func (p *Proxy) ThawNew() {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.held, p.delayed = map[net.Conn]bool{}, map[net.Conn]bool{}
	for c := range p.conns {
		p.held[c], p.delayed[c] = true, true
	}
	p.frozen = false
	p.cond.Broadcast()
}

// ReleaseHeld delivers what the connections open at ThawNew held.
func (p *Proxy) ReleaseHeld() {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.held = nil
	p.cond.Broadcast()
}

// SilentSocket is a Unix socket that accepts connections and never answers: a
// service stopped with SIGSTOP, or deadlocked, as a client sees it.
type SilentSocket struct {
	Path string

	mu    sync.Mutex
	ln    net.Listener
	conns []net.Conn
}

// Silent listens on a silent Unix socket in t's temporary directory until the test
// ends.
func Silent(t testing.TB) *SilentSocket {
	t.Helper()
	s := &SilentSocket{Path: filepath.Join(t.TempDir(), "silent.sock")}
	ln, err := net.Listen("unix", s.Path)
	if err != nil {
		t.Fatal(err)
	}
	s.ln = ln
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			s.mu.Lock()
			s.conns = append(s.conns, c)
			s.mu.Unlock()
		}
	}()
	t.Cleanup(s.Close)
	return s
}

// URI is the qemu:///system URI of a libvirtd behind the socket.
func (s *SilentSocket) URI() string { return "qemu+unix:///system?socket=" + s.Path }

// Accepted is how many connections the socket took so far.
func (s *SilentSocket) Accepted() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.conns)
}

// Close stops listening and closes every connection taken: their clients see the
// service gone.
func (s *SilentSocket) Close() {
	s.ln.Close()
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, c := range s.conns {
		c.Close()
	}
}
