// Package libvirtproxy stands between a test's libvirt client and the host's libvirtd:
// a Unix socket that forwards to libvirtd's, which a test can close (libvirtd is
// unreachable) or freeze (libvirtd stopped answering, as when it is stopped with
// SIGSTOP or deadlocked) for its own client alone, without disturbing anyone else's.
package libvirtproxy

import (
	"net"
	"path/filepath"
	"sync"
	"testing"
)

// SystemSocket is libvirtd's socket for qemu:///system.
const SystemSocket = "/run/libvirt/libvirt-sock"

// Proxy forwards connections from Path to Target.
type Proxy struct {
	Path, Target string

	mu     sync.Mutex
	cond   *sync.Cond
	ln     net.Listener
	conns  map[net.Conn]bool
	frozen bool
}

// Start listens on a socket in t's temporary directory, forwarding to target, until
// the test ends.
func Start(t testing.TB, target string) *Proxy {
	t.Helper()
	p := &Proxy{Path: filepath.Join(t.TempDir(), "libvirt.sock"), Target: target}
	p.Listen(t)
	t.Cleanup(p.Close)
	return p
}

// URI is the qemu:///system URI that reaches libvirtd through the proxy.
func (p *Proxy) URI() string { return "qemu+unix:///system?socket=" + p.Path }

// Listen (again) accepts connections on Path.
func (p *Proxy) Listen(t testing.TB) {
	t.Helper()
	ln, err := net.Listen("unix", p.Path)
	if err != nil {
		t.Fatal(err)
	}
	p.mu.Lock()
	p.ln = ln
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
			up, err := net.Dial("unix", p.Target)
			if err != nil {
				c.Close()
				continue
			}
			p.mu.Lock()
			p.conns[c], p.conns[up] = true, true
			p.mu.Unlock()
			go p.pipe(up, c)
			go p.pipe(c, up)
		}
	}()
}

// pipe copies src to dst, holding what it read while the proxy is frozen.
func (p *Proxy) pipe(dst, src net.Conn) {
	defer func() {
		dst.Close()
		src.Close()
		p.mu.Lock()
		delete(p.conns, dst)
		delete(p.conns, src)
		p.mu.Unlock()
	}()
	buf := make([]byte, 64<<10)
	for {
		n, err := src.Read(buf)
		p.mu.Lock()
		for p.frozen {
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

// Close stops listening (removing the socket) and closes every forwarded connection:
// libvirtd is unreachable, as when it is down.
func (p *Proxy) Close() {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.ln != nil {
		p.ln.Close()
		p.ln = nil
	}
	p.frozen = false
	if p.cond != nil {
		p.cond.Broadcast()
	}
	for c := range p.conns {
		c.Close()
	}
}

// Freeze holds every byte in both directions, on open connections and new ones
// alike, until Thaw: libvirtd accepts connections but answers nothing.
func (p *Proxy) Freeze() {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.frozen = true
}

// Thaw delivers what was held and forwards again, as libvirtd does on SIGCONT.
func (p *Proxy) Thaw() {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.frozen = false
	p.cond.Broadcast()
}
