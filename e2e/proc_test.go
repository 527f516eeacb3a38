package e2e

import (
	"bytes"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// Secrets handed to every gateway subprocess through its environment.
const (
	apiToken      = "e2e-api-token-0123456789"
	webhookSecret = "whsec_ZTJlLXdlYmhvb2stc2VjcmV0LTAxMjM0NTY3ODlhYg=="
)

// gatewayEnv is the environment the config's ${...} references expand from.
var gatewayEnv = []string{"E2E_API_TOKEN=" + apiToken, "E2E_WEBHOOK_SECRET=" + webhookSecret}

// pipelineYAML is the pipeline of every fault test:
//
//	new → s1 (crm.step1, crm.a) → s2 (crm.step1, crm.b) → s3 (crm.b)
//
// No trigger has allow_back. Applied once, crm.step1 moves an item at new to
// s1 (the earliest stage wins); applied twice it would move it on to s2. An
// item that receives crm.a and crm.b, in either order, ends at s2 (a then b:
// new → s1 → s2; b then a: new → s2, and a's stage is behind); crm.b applied
// twice would move it on to s3. So a double application shows as a wrong
// stage and an extra move, not only as a wrong count.
const pipelineYAML = `
pipelines:
  - id: sales
    stages:
      - id: new
      - id: s1
        triggers:
          - {type: crm.step1, name: step1}
          - {type: crm.a, name: a}
      - id: s2
        triggers:
          - {type: crm.step1, name: step1-again}
          - {type: crm.b, name: b}
      - id: s3
        triggers:
          - {type: crm.b, name: b-again}
connectors:
  - name: hooks
    type: webhook
    secret: "${E2E_WEBHOOK_SECRET}"
`

// renderConfig is a full config listening on port with the given store
// section (a YAML flow mapping).
func renderConfig(port int, storeYAML string) string {
	return fmt.Sprintf(`listen: 127.0.0.1:%d
store: %s
api:
  tokens: ["${E2E_API_TOKEN}"]
log: {level: info, format: json}
engine: {workers: 8}
`, port, storeYAML) + pipelineYAML
}

func boltStoreYAML(path string) string {
	return fmt.Sprintf("{driver: bolt, path: %q}", path)
}

// redisStoreYAML uses a short claim_after so that the entries a killed
// gateway held are taken over quickly.
func redisStoreYAML(url, prefix string) string {
	return fmt.Sprintf("{driver: redis, url: %q, prefix: %q, claim_after: 1s}", url, prefix)
}

// gatewayProc is one `stagegate serve` subprocess, restartable on the same
// config (and so the same store). Its methods other than base and the
// read-only ones must be called from the test goroutine.
type gatewayProc struct {
	t       *testing.T
	name    string
	dir     string
	cfgPath string
	store   string
	out     *logBuffer

	mu   sync.Mutex
	port int
	cur  *procRun
	runs int
}

// procRun is one life of the subprocess.
type procRun struct {
	cmd  *exec.Cmd
	done chan struct{}
	err  error // set before done is closed
}

func (r *procRun) exited() bool {
	select {
	case <-r.done:
		return true
	default:
		return false
	}
}

// exitCode is the exit status of a finished run (-1 when killed by a signal).
func (r *procRun) exitCode() int {
	var ee *exec.ExitError
	if errors.As(r.err, &ee) {
		return ee.ExitCode()
	}
	if r.err != nil {
		return -1
	}
	return 0
}

// startGateway runs a gateway on storeYAML and waits until /readyz answers 200.
// The process is killed when the test ends; its output goes to the test log
// when the test failed.
func startGateway(t *testing.T, name, storeYAML string) *gatewayProc {
	t.Helper()
	g := &gatewayProc{t: t, name: name, dir: t.TempDir(), store: storeYAML, out: &logBuffer{}}
	g.cfgPath = filepath.Join(g.dir, "stagegate.yaml")
	t.Cleanup(func() {
		g.stopQuietly()
		if t.Failed() {
			t.Logf("---- output of gateway %s (%d runs) ----\n%s", g.name, g.runs, g.out.tail(150))
		}
	})
	g.start()
	return g
}

// base is the gateway's URL, like http://127.0.0.1:port.
func (g *gatewayProc) base() string {
	g.mu.Lock()
	defer g.mu.Unlock()
	return fmt.Sprintf("http://127.0.0.1:%d", g.port)
}

func (g *gatewayProc) running() *procRun {
	g.mu.Lock()
	defer g.mu.Unlock()
	return g.cur
}

// start launches the process (on the port it had, if any) and waits for
// readiness. If the port has been taken meanwhile it moves to another one.
func (g *gatewayProc) start() {
	g.t.Helper()
	if r := g.running(); r != nil && !r.exited() {
		g.t.Fatalf("gateway %s: start while running", g.name)
	}
	for try := 0; ; try++ {
		g.mu.Lock()
		if g.port == 0 || try > 0 {
			g.port = freePort(g.t)
		}
		port := g.port
		g.mu.Unlock()
		if err := os.WriteFile(g.cfgPath, []byte(renderConfig(port, g.store)), 0o600); err != nil {
			g.t.Fatal(err)
		}
		begin := time.Now()
		r := g.launch()
		err := g.waitReady(r, 30*time.Second)
		if err == nil {
			g.t.Logf("gateway %s: run %d ready on port %d in %v", g.name, g.runs, port, time.Since(begin).Round(time.Millisecond))
			return
		}
		if r.exited() && strings.Contains(g.out.String(), "address already in use") && try < 3 {
			g.t.Logf("gateway %s: port %d taken, trying another", g.name, port)
			continue
		}
		g.t.Fatalf("gateway %s: run %d: %v", g.name, g.runs, err)
	}
}

func (g *gatewayProc) launch() *procRun {
	g.t.Helper()
	g.mu.Lock()
	g.runs++
	n := g.runs
	g.mu.Unlock()
	fmt.Fprintf(g.out, "==== run %d ====\n", n)
	cmd := exec.Command(binPath, "serve", "-config", g.cfgPath)
	cmd.Env = append(os.Environ(), gatewayEnv...)
	cmd.Stdout, cmd.Stderr = g.out, g.out
	if err := cmd.Start(); err != nil {
		g.t.Fatalf("gateway %s: %v", g.name, err)
	}
	r := &procRun{cmd: cmd, done: make(chan struct{})}
	go func() {
		r.err = cmd.Wait()
		close(r.done)
	}()
	g.mu.Lock()
	g.cur = r
	g.mu.Unlock()
	return r
}

// waitReady polls /readyz until it answers 200.
func (g *gatewayProc) waitReady(r *procRun, timeout time.Duration) error {
	c := &http.Client{Timeout: 2 * time.Second}
	defer c.CloseIdleConnections()
	deadline := time.Now().Add(timeout)
	for {
		if r != nil && r.exited() {
			return fmt.Errorf("exited before ready (%v)", r.err)
		}
		if st, _ := getStatus(c, g.base()+"/readyz"); st == http.StatusOK {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("/readyz not 200 within %v", timeout)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// kill sends SIGKILL, as a crash would, and waits for the exit.
func (g *gatewayProc) kill() {
	g.t.Helper()
	r := g.running()
	if r == nil || r.exited() {
		g.t.Fatalf("gateway %s: kill: not running", g.name)
	}
	_ = r.cmd.Process.Signal(syscall.SIGKILL)
	select {
	case <-r.done:
	case <-time.After(10 * time.Second):
		g.t.Fatalf("gateway %s: did not die after SIGKILL", g.name)
	}
	fmt.Fprintf(g.out, "==== run %d killed ====\n", g.runs)
}

// terminate sends SIGTERM and waits up to timeout; it returns the exit code
// and how long the exit took (it kills the process and fails the test when
// it does not exit in time).
func (g *gatewayProc) terminate(timeout time.Duration) (int, time.Duration) {
	g.t.Helper()
	r := g.running()
	if r == nil || r.exited() {
		g.t.Fatalf("gateway %s: terminate: not running", g.name)
	}
	begin := time.Now()
	_ = r.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-r.done:
		return r.exitCode(), time.Since(begin)
	case <-time.After(timeout):
		_ = r.cmd.Process.Kill()
		<-r.done
		g.t.Fatalf("gateway %s: did not exit within %v of SIGTERM", g.name, timeout)
		return -1, 0
	}
}

// stopQuietly kills a process still running at the end of the test.
func (g *gatewayProc) stopQuietly() {
	r := g.running()
	if r == nil || r.exited() {
		return
	}
	_ = r.cmd.Process.Kill()
	select {
	case <-r.done:
	case <-time.After(10 * time.Second):
	}
}

// freePort asks the kernel for a free loopback port.
func freePort(t *testing.T) int {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatalf("free port: %v", err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

// logBuffer collects a subprocess's output; safe for concurrent use. It keeps
// at most maxLog bytes (the newest).
type logBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

const maxLog = 4 << 20

func (b *logBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.buf.Write(p)
	if b.buf.Len() > maxLog {
		keep := b.buf.Bytes()[b.buf.Len()-maxLog/2:]
		nb := append([]byte("…(truncated)\n"), keep...)
		b.buf.Reset()
		b.buf.Write(nb)
	}
	return len(p), nil
}

func (b *logBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

// tail returns the last n lines.
func (b *logBuffer) tail(n int) string {
	lines := strings.Split(strings.TrimRight(b.String(), "\n"), "\n")
	if len(lines) > n {
		lines = append([]string{fmt.Sprintf("…(%d earlier lines)", len(lines)-n)}, lines[len(lines)-n:]...)
	}
	return strings.Join(lines, "\n")
}
