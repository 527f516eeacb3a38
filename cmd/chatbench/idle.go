package main

import (
	"bufio"
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"runtime/debug"
	"runtime/pprof"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/gorilla/websocket"

	"github.com/stagegate/stagegate/connectors"
	"github.com/stagegate/stagegate/connectors/livechat"
	"github.com/stagegate/stagegate/normalize"
	"github.com/stagegate/stagegate/store"
	"github.com/stagegate/stagegate/store/bolt"
)

// mem is what a server subprocess reports about itself.
type mem struct {
	GoInuse uint64 `json:"go_inuse"` // heap in use + goroutine stacks, after a GC
	RSS     uint64 `json:"rss"`      // resident set size, after returning free memory to the OS
	Conns   int64  `json:"conns"`
	Stack   uint64 `json:"stack"` // goroutine stacks alone
}

// runIdle opens n idle connections to each kind of server in turn and
// compares the memory each connection costs the server.
func runIdle(args []string) error {
	fs := flag.NewFlagSet("idle", flag.ExitOnError)
	n := fs.Int("n", 10000, "connections to hold")
	sources := fs.Int("sources", 4, "spread client source addresses over 127.0.0.1..N")
	kinds := fs.String("kinds", "echo,livechat", "servers to measure, in order")
	hold := fs.Duration("hold", 2*time.Second, "wait before measuring, with every connection open")
	_ = fs.Parse(args)
	results := map[string]mem{}
	for _, kind := range strings.Split(*kinds, ",") {
		m, err := measureIdle(kind, *n, *sources, *hold)
		if err != nil {
			return fmt.Errorf("%s: %w", kind, err)
		}
		results[kind] = m
		fmt.Printf("%-9s %d connections: %.1f KiB/conn Go heap+stacks (stacks %.1f KiB), %.1f KiB/conn RSS\n",
			kind, m.Conns, kib(m.GoInuse), kib(m.Stack), kib(m.RSS))
	}
	e, l := results["echo"], results["livechat"]
	if e.GoInuse > 0 && l.GoInuse > 0 {
		fmt.Printf("\n| livechat: memory per idle visitor connection (%d connections, after hello/welcome) | %.1f KiB (RSS %.1f KiB) | bare gorilla echo server, same run: %.1f KiB (RSS %.1f KiB) | %.2f× (RSS %.2f×) | ≤ 1.5× |\n",
			*n, kib(l.GoInuse), kib(l.RSS), kib(e.GoInuse), kib(e.RSS),
			float64(l.GoInuse)/float64(e.GoInuse), float64(l.RSS)/float64(e.RSS))
	}
	return nil
}

func kib(b uint64) float64 { return float64(b) / 1024 }

func measureIdle(kind string, n, sources int, hold time.Duration) (mem, error) {
	cmd := exec.Command(os.Args[0], "serve", "-kind", kind)
	cmd.Stderr = os.Stderr
	out, err := cmd.StdoutPipe()
	if err != nil {
		return mem{}, err
	}
	if err := cmd.Start(); err != nil {
		return mem{}, err
	}
	defer func() {
		_ = cmd.Process.Signal(syscall.SIGTERM)
		_ = cmd.Wait()
	}()
	line, err := bufio.NewReader(out).ReadString('\n')
	if err != nil {
		return mem{}, fmt.Errorf("server did not start: %w", err)
	}
	addr := strings.TrimSpace(strings.TrimPrefix(line, "listening "))
	base, err := fetchMem(addr)
	if err != nil {
		return mem{}, err
	}
	url := "ws://" + addr + "/echo"
	if kind == "livechat" {
		url = "ws://" + addr + "/in/chat/ws"
	}
	conns := make([]*websocket.Conn, n)
	var next, failed atomic.Int64
	var firstErr atomic.Value
	var wg sync.WaitGroup
	start := time.Now()
	for range 64 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				i := int(next.Add(1)) - 1
				if i >= n {
					return
				}
				c, err := openIdle(url, kind, i, sources)
				if err != nil {
					failed.Add(1)
					firstErr.CompareAndSwap(nil, err)
					continue
				}
				conns[i] = c
			}
		}()
	}
	wg.Wait()
	defer func() {
		for _, c := range conns {
			if c != nil {
				c.Close()
			}
		}
	}()
	if f := failed.Load(); f > 0 {
		return mem{}, fmt.Errorf("%d of %d connections failed; first: %v", f, n, firstErr.Load())
	}
	fmt.Fprintf(os.Stderr, "%s: %d connections open in %v\n", kind, n, time.Since(start).Round(time.Millisecond))
	time.Sleep(hold)
	if os.Getenv("CHATBENCH_PROFILE") != "" {
		for _, p := range []string{"heap", "goroutine"} {
			if resp, err := http.Get("http://" + addr + "/debug/" + p); err == nil {
				f, _ := os.Create(filepath.Join(os.TempDir(), "chatbench-"+kind+"-"+p+".pprof"))
				_, _ = io.Copy(f, resp.Body)
				f.Close()
				resp.Body.Close()
			}
		}
	}
	after, err := fetchMem(addr)
	if err != nil {
		return mem{}, err
	}
	if after.Conns != int64(n) {
		return mem{}, fmt.Errorf("server holds %d connections, want %d", after.Conns, n)
	}
	per := func(a, b uint64) uint64 { return uint64(max(int64(a)-int64(b), 0)) / uint64(n) }
	return mem{GoInuse: per(after.GoInuse, base.GoInuse), RSS: per(after.RSS, base.RSS), Conns: after.Conns,
		Stack: per(after.Stack, base.Stack)}, nil
}

// openIdle opens one connection from source address 127.0.0.(1 + i%sources)
// and does one exchange: hello/welcome for livechat, one echo otherwise.
func openIdle(url, kind string, i, sources int) (*websocket.Conn, error) {
	nd := &net.Dialer{Timeout: 10 * time.Second,
		LocalAddr: &net.TCPAddr{IP: net.IPv4(127, 0, 0, byte(1+i%sources))}}
	d := websocket.Dialer{NetDialContext: nd.DialContext, HandshakeTimeout: 10 * time.Second,
		ReadBufferSize: 512, WriteBufferSize: 512}
	c, _, err := d.Dial(url, nil)
	if err != nil {
		return nil, err
	}
	_ = c.SetReadDeadline(time.Now().Add(30 * time.Second))
	msg := []byte("hello")
	if kind == "livechat" {
		msg = []byte(`{"type":"hello"}`)
	}
	if err := c.WriteMessage(websocket.TextMessage, msg); err != nil {
		c.Close()
		return nil, err
	}
	if _, _, err := c.ReadMessage(); err != nil {
		c.Close()
		return nil, err
	}
	return c, nil
}

func fetchMem(addr string) (mem, error) {
	resp, err := http.Get("http://" + addr + "/mem")
	if err != nil {
		return mem{}, err
	}
	defer resp.Body.Close()
	var m mem
	return m, json.NewDecoder(resp.Body).Decode(&m)
}

// runServe is the server subprocess: a bare gorilla echo server, or one
// live chat connector on a bolt store, plus GET /mem.
func runServe(args []string) error {
	fs := flag.NewFlagSet("serve", flag.ExitOnError)
	kind := fs.String("kind", "echo", "echo or livechat")
	_ = fs.Parse(args)
	var conns atomic.Int64
	count := conns.Load
	mux := http.NewServeMux()
	switch *kind {
	case "echo": // the gorilla example echo server
		up := websocket.Upgrader{CheckOrigin: func(*http.Request) bool { return true }}
		mux.HandleFunc("/echo", func(w http.ResponseWriter, r *http.Request) {
			c, err := up.Upgrade(w, r, nil)
			if err != nil {
				return
			}
			defer c.Close()
			conns.Add(1)
			defer conns.Add(-1)
			for {
				mt, msg, err := c.ReadMessage()
				if err != nil {
					return
				}
				if c.WriteMessage(mt, msg) != nil {
					return
				}
			}
		})
	case "livechat":
		lc, stop, err := newBenchConnector()
		if err != nil {
			return err
		}
		defer stop()
		mux.Handle("/in/chat/", http.StripPrefix("/in/chat", lc))
		count = func() int64 { return int64(lc.Connections()) }
	default:
		return fmt.Errorf("unknown kind %q", *kind)
	}
	mux.HandleFunc("/mem", func(w http.ResponseWriter, _ *http.Request) {
		runtime.GC()
		debug.FreeOSMemory()
		var ms runtime.MemStats
		runtime.ReadMemStats(&ms)
		_ = json.NewEncoder(w).Encode(mem{GoInuse: ms.HeapInuse + ms.StackInuse, RSS: rss(), Conns: count(), Stack: ms.StackInuse})
	})
	mux.HandleFunc("/debug/heap", func(w http.ResponseWriter, _ *http.Request) {
		runtime.GC()
		_ = pprof.Lookup("heap").WriteTo(w, 0)
	})
	mux.HandleFunc("/debug/goroutine", func(w http.ResponseWriter, _ *http.Request) {
		_ = pprof.Lookup("goroutine").WriteTo(w, 1)
	})
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return err
	}
	fmt.Println("listening", ln.Addr().String())
	srv := &http.Server{Handler: mux, ReadHeaderTimeout: 10 * time.Second}
	go func() { _ = srv.Serve(ln) }()
	ctx, cancel := signalContext()
	defer cancel()
	<-ctx.Done()
	return nil
}

// newBenchConnector builds a live chat connector named chat on a bolt
// store in a temp dir, with an intake that keeps nothing.
func newBenchConnector() (*livechat.Connector, func(), error) {
	dir, err := os.MkdirTemp("", "chatbench")
	if err != nil {
		return nil, nil, err
	}
	st, err := bolt.Open(store.Config{Driver: "bolt", Path: filepath.Join(dir, "sg.db")}, bolt.Options{})
	if err != nil {
		return nil, nil, err
	}
	cfg := livechat.NewConfig()
	cfg.Secret = "chatbench-secret-0123456789"
	cfg.Channels = []livechat.Channel{{ID: "sales"}}
	cfg.AllowNoOrigin = true
	if errs := cfg.Validate(); len(errs) > 0 {
		return nil, nil, errs
	}
	lc, err := livechat.New(connectors.Base{Name: "chat", Type: "livechat"}, cfg, connectors.Deps{
		Logger: slog.New(slog.DiscardHandler), Intake: nopIntake{}, Records: st, Broadcast: st})
	if err != nil {
		return nil, nil, err
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { _ = lc.Run(ctx); close(done) }()
	return lc, func() { cancel(); <-done; st.Close(); os.RemoveAll(dir) }, nil
}

type nopIntake struct{}

func (nopIntake) Submit(_ context.Context, ev *normalize.Event) (connectors.Result, error) {
	return connectors.Result{EventID: ev.ID}, nil
}

func (nopIntake) Reject(string, string) {}

// rss reads VmRSS from /proc/self/status, in bytes.
func rss() uint64 {
	b, err := os.ReadFile("/proc/self/status")
	if err != nil {
		return 0
	}
	for _, line := range strings.Split(string(b), "\n") {
		if f := strings.Fields(line); len(f) >= 2 && f[0] == "VmRSS:" {
			kb, _ := strconv.ParseUint(f[1], 10, 64)
			return kb * 1024
		}
	}
	return 0
}
