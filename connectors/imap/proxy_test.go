package imap

import (
	"bytes"
	"net"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// proxy is a TCP proxy between the connector and an IMAP server that
// tests use to break connections: cut them all, cut one in the middle of
// a FETCH, or silently stop forwarding (a dead link that never closes).
type proxy struct {
	ln       net.Listener
	target   string
	lines    atomic.Int64 // lines sent by clients (IMAP commands)
	mu       sync.Mutex
	conns    []net.Conn
	cutAfter int64 // close the next connection once the server sent this many bytes; 0: never
	frozen   bool
	// fromServer, when set before connections are made, sees every chunk
	// the server sends.
	fromServer func([]byte)
}

func startProxy(t testing.TB, target string) *proxy {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	p := &proxy{ln: ln, target: target}
	go p.accept()
	t.Cleanup(func() { ln.Close(); p.freeze(false); p.cutAll() })
	return p
}

func (p *proxy) Addr() string { return p.ln.Addr().String() }

func (p *proxy) accept() {
	for {
		c, err := p.ln.Accept()
		if err != nil {
			return
		}
		s, err := net.Dial("tcp", p.target)
		if err != nil {
			c.Close()
			continue
		}
		p.mu.Lock()
		p.conns = append(p.conns, c, s)
		limit, seen := p.cutAfter, p.fromServer
		p.mu.Unlock()
		go p.pipe(s, c, func(b []byte) { p.lines.Add(int64(bytes.Count(b, []byte("\n")))) }, 0)
		go p.pipe(c, s, seen, limit)
	}
}

// pipe copies from src to dst; with limit > 0 it closes both once limit
// bytes went through.
func (p *proxy) pipe(dst, src net.Conn, seen func([]byte), limit int64) {
	defer dst.Close()
	defer src.Close()
	buf := make([]byte, 16<<10)
	var n int64
	for {
		k, err := src.Read(buf)
		if k > 0 {
			for p.isFrozen() { // a dead link: nothing moves, nothing closes
				time.Sleep(5 * time.Millisecond)
			}
			if limit > 0 && n+int64(k) >= limit {
				dst.Write(buf[:limit-n])
				p.mu.Lock()
				p.cutAfter = 0 // only one connection is cut
				p.mu.Unlock()
				return
			}
			if seen != nil {
				seen(buf[:k])
			}
			if _, err := dst.Write(buf[:k]); err != nil {
				return
			}
			n += int64(k)
		}
		if err != nil {
			return
		}
	}
}

func (p *proxy) isFrozen() bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.frozen
}

// cutNextAfter makes the next connection break once the server has sent n bytes.
func (p *proxy) cutNextAfter(n int64) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.cutAfter = n
}

// freeze stops all forwarding without closing anything.
func (p *proxy) freeze(on bool) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.frozen = on
}

// cutAll closes every connection made so far.
func (p *proxy) cutAll() {
	p.mu.Lock()
	defer p.mu.Unlock()
	for _, c := range p.conns {
		c.Close()
	}
	p.conns = nil
}
