// Package redisserver starts a Redis server for tests.
//
// Start runs a real redis-server when the binary is on PATH: on a free
// loopback port, in a fresh t.TempDir(), with no RDB snapshots and an
// append-only file fsync'd every second, so that a server stopped and started
// again (Stop/Start, Restart, even Kill/Start) keeps its data. When
// redis-server is not installed it falls back to github.com/alicebob/miniredis
// (an in-process stand-in) and says so in the test log; Real reports which
// one runs, so tests that need a real process can skip (miniredis keeps its
// data over Stop/Start, but its blocking reads such as XREADGROUP BLOCK do
// not answer after a restart).
//
// The server is stopped when the test (or benchmark) that started it ends.
package redisserver

import (
	"bufio"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/alicebob/miniredis/v2"
)

// Binary is the name of the Redis server program looked up on PATH.
const Binary = "redis-server"

// startTimeout bounds how long Start waits for the server to answer PING.
const startTimeout = 15 * time.Second

// Server is a Redis server owned by one test. Its methods are safe for
// concurrent use; Start and Restart fail the test when the server does not
// come up, so call them from the test's goroutine.
type Server struct {
	tb   testing.TB
	bin  string // path of redis-server; empty for miniredis
	dir  string
	port int

	mu     sync.Mutex
	cmd    *exec.Cmd
	done   chan struct{} // closed when cmd has exited
	mini   *miniredis.Miniredis
	miniUp bool
}

// Start starts a server for tb and registers its shutdown with tb.Cleanup.
func Start(tb testing.TB) *Server {
	tb.Helper()
	s := &Server{tb: tb}
	bin, err := exec.LookPath(Binary)
	if err != nil {
		tb.Logf("redisserver: %s not on PATH, using miniredis (in-process stand-in)", Binary)
		s.mini = miniredis.NewMiniRedis()
		if err := s.mini.Start(); err != nil {
			tb.Fatalf("redisserver: start miniredis: %v", err)
		}
		s.miniUp = true
		s.port, _ = strconv.Atoi(s.mini.Port())
		tb.Cleanup(s.mini.Close)
		return s
	}
	s.bin = bin
	s.dir = tb.TempDir()
	tb.Cleanup(s.Stop) // registered after TempDir, so it runs before the removal
	var lastErr error
	for range 3 { // a free port may be taken by someone else before we bind it
		if s.port, err = freePort(); err != nil {
			tb.Fatalf("redisserver: %v", err)
		}
		if lastErr = s.start(); lastErr == nil {
			return s
		}
	}
	tb.Fatalf("redisserver: %v", lastErr)
	return nil
}

// Addr returns the server's host:port.
func (s *Server) Addr() string { return net.JoinHostPort("127.0.0.1", strconv.Itoa(s.port)) }

// URL returns a go-redis URL for database 0: redis://127.0.0.1:port/0.
func (s *Server) URL() string { return "redis://" + s.Addr() + "/0" }

// Real reports whether a real redis-server process runs (false: miniredis).
func (s *Server) Real() bool { return s.mini == nil }

// Dir returns the server's data directory (empty for miniredis).
func (s *Server) Dir() string { return s.dir }

// Start starts a stopped server again on the same port and directory, so the
// data in its append-only file is loaded. It is a no-op if it is running.
func (s *Server) Start() {
	s.tb.Helper()
	if s.mini != nil {
		s.mu.Lock()
		defer s.mu.Unlock()
		if s.miniUp {
			return
		}
		if err := s.mini.Restart(); err != nil {
			s.tb.Fatalf("redisserver: restart miniredis: %v", err)
		}
		s.miniUp = true
		return
	}
	if err := s.start(); err != nil {
		s.tb.Fatalf("redisserver: %v", err)
	}
}

// Restart stops the server gracefully and starts it again.
func (s *Server) Restart() {
	s.tb.Helper()
	s.Stop()
	s.Start()
}

// Stop shuts the server down gracefully (SIGTERM: Redis flushes its
// append-only file and exits) and waits for it to exit.
func (s *Server) Stop() { s.halt(syscall.SIGTERM) }

// Kill kills the server with SIGKILL, as a crash would, and waits for it to
// exit. Writes of the last second may be lost (appendfsync everysec).
func (s *Server) Kill() { s.halt(syscall.SIGKILL) }

func (s *Server) halt(sig syscall.Signal) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.mini != nil {
		s.mini.Close()
		s.miniUp = false
		return
	}
	if s.cmd == nil {
		return
	}
	_ = s.cmd.Process.Signal(sig)
	select {
	case <-s.done:
	case <-time.After(10 * time.Second):
		_ = s.cmd.Process.Kill()
		<-s.done
	}
	s.cmd = nil
}

// start runs redis-server on s.port in s.dir and waits until it answers PING.
func (s *Server) start() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.cmd != nil {
		return nil
	}
	logFile := filepath.Join(s.dir, "redis.log")
	cmd := exec.Command(s.bin,
		"--port", strconv.Itoa(s.port),
		"--bind", "127.0.0.1",
		"--dir", s.dir,
		"--save", "",
		"--appendonly", "yes",
		"--appendfsync", "everysec",
		"--daemonize", "no",
		"--logfile", logFile,
	)
	cmd.SysProcAttr = sysProcAttr()
	if err := cmd.Start(); err != nil {
		return fmt.Errorf("start %s: %w", s.bin, err)
	}
	done := make(chan struct{})
	go func() { _ = cmd.Wait(); close(done) }()

	deadline := time.Now().Add(startTimeout)
	for {
		if err := ping(s.Addr()); err == nil {
			break
		} else if time.Now().After(deadline) {
			_ = cmd.Process.Kill()
			<-done
			return fmt.Errorf("%s on port %d did not answer PING: %v%s", Binary, s.port, err, logTail(logFile))
		}
		select {
		case <-done:
			return fmt.Errorf("%s on port %d exited at start%s", Binary, s.port, logTail(logFile))
		case <-time.After(20 * time.Millisecond):
		}
	}
	s.cmd, s.done = cmd, done
	return nil
}

// ping sends an inline PING and expects +PONG.
func ping(addr string) error {
	c, err := net.DialTimeout("tcp", addr, time.Second)
	if err != nil {
		return err
	}
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(time.Second))
	if _, err := c.Write([]byte("PING\r\n")); err != nil {
		return err
	}
	line, err := bufio.NewReader(c).ReadString('\n')
	if err != nil {
		return err
	}
	if !strings.HasPrefix(line, "+PONG") {
		return fmt.Errorf("PING answered %q", strings.TrimSpace(line))
	}
	return nil
}

// freePort asks the kernel for a free loopback port.
func freePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, fmt.Errorf("find a free port: %w", err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}

// logTail returns the last lines of the server log, for error messages.
func logTail(path string) string {
	b, err := os.ReadFile(path)
	if err != nil || len(b) == 0 {
		return ""
	}
	lines := strings.Split(strings.TrimSpace(string(b)), "\n")
	if len(lines) > 10 {
		lines = lines[len(lines)-10:]
	}
	return "\n" + strings.Join(lines, "\n")
}
