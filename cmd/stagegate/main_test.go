package main

import (
	"bytes"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// baseConfig is a valid config without environment variables.
const baseConfig = `listen: 127.0.0.1:0
store: {driver: bolt, path: DB}
api: {tokens: [cmd-test-token-0123]}
secrets: {tracking_keys: [cmd-test-tracking-key-0123]}
pipelines:
  - id: sales
    stages: [{id: new}, {id: won}]
`

// writeConfig writes src (DB replaced by a bolt file in a temporary
// folder) and returns its path.
func writeConfig(t *testing.T, src string) string {
	t.Helper()
	dir := t.TempDir()
	src = strings.ReplaceAll(src, "DB", filepath.Join(dir, "sg.db"))
	path := filepath.Join(dir, "sg.yaml")
	if err := os.WriteFile(path, []byte(src), 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

// runCmd runs the command line args and returns its exit code, stdout and
// stderr.
func runCmd(args ...string) (int, string, string) {
	var out, errb bytes.Buffer
	code := run(args, &out, &errb)
	return code, out.String(), errb.String()
}

// Two tracking connectors claim the same routes: check refuses the config
// (naming both connectors' paths) exactly as serve does, and neither
// shows Go source paths.
func TestCheckRouteConflict(t *testing.T) {
	path := writeConfig(t, baseConfig+"connectors:\n  - {name: track, type: tracking}\n  - {name: track2, type: tracking}\n")
	for _, cmd := range []string{"check", "serve"} {
		code, _, stderr := runCmd(cmd, "-config", path)
		if code != 1 {
			t.Errorf("%s: exit %d, want 1 (%s)", cmd, code, stderr)
		}
		if !strings.Contains(stderr, "connectors[1].type:") || !strings.Contains(stderr, "connectors[0]") ||
			!strings.Contains(stderr, `"track2"`) {
			t.Errorf("%s: the conflict is not reported at the connectors' paths:\n%s", cmd, stderr)
		}
		if strings.Contains(stderr, ".go:") {
			t.Errorf("%s: Go source paths in the message:\n%s", cmd, stderr)
		}
	}
}

// check counts in words: "1 pipeline", "0 connectors".
func TestCheckPlural(t *testing.T) {
	path := writeConfig(t, baseConfig)
	code, stdout, stderr := runCmd("check", "-config", path)
	if code != 0 || !strings.Contains(stdout, ": ok (1 pipeline, 0 connectors, store bolt)") {
		t.Fatalf("exit %d, stdout %q, stderr %q", code, stdout, stderr)
	}
}

// The example config in a plain shell: check names the three variables
// the shell lacks and nothing else (the tracking connector inherits
// secrets.tracking_keys: its problem is reported once, where it is set);
// with the Makefile's development values it passes.
func TestCheckExampleConfigEnv(t *testing.T) {
	const example = "../../configs/stagegate.yaml"
	vars := []string{"STAGEGATE_API_TOKEN", "STAGEGATE_TRACKING_KEY", "STAGEGATE_WEBHOOK_SECRET"}
	for _, v := range vars {
		t.Setenv(v, "") // restored after the test
		os.Unsetenv(v)
	}
	code, _, stderr := runCmd("check", "-config", example)
	want := example + ": api.tokens[0]: undefined environment variable STAGEGATE_API_TOKEN\n" +
		example + ": secrets.tracking_keys[0]: undefined environment variable STAGEGATE_TRACKING_KEY\n" +
		example + ": connectors[1].secret: undefined environment variable STAGEGATE_WEBHOOK_SECRET\n"
	if code != 1 || stderr != want {
		t.Errorf("plain shell: exit %d, stderr:\n%s\nwant:\n%s", code, stderr, want)
	}

	t.Setenv("STAGEGATE_API_TOKEN", "dev-token-change-me")
	t.Setenv("STAGEGATE_TRACKING_KEY", "short")
	t.Setenv("STAGEGATE_WEBHOOK_SECRET", "whsec_ZGV2LXdlYmhvb2stc2VjcmV0LWNoYW5nZS1tZQ==")
	code, _, stderr = runCmd("check", "-config", example)
	want = example + ": secrets.tracking_keys[0]: must be at least 16 bytes\n"
	if code != 1 || stderr != want {
		t.Errorf("short tracking key: exit %d, stderr:\n%s\nwant:\n%s", code, stderr, want)
	}

	t.Setenv("STAGEGATE_TRACKING_KEY", "dev-tracking-key-change-me")
	if code, stdout, stderr := runCmd("check", "-config", example); code != 0 || !strings.Contains(stdout, ": ok (") {
		t.Errorf("development values: exit %d, stdout %q, stderr %q", code, stdout, stderr)
	}
}

// freeAddr returns a loopback address nobody listens on (for a moment).
func freeAddr(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().String()
}

// serve -listen overrides the config's address (the config's listen
// 127.0.0.1:0 would pick a random port), and SIGINT stops it cleanly with
// exit code 0.
func TestServeListenFlagAndSIGINT(t *testing.T) {
	path := writeConfig(t, baseConfig)
	addr := freeAddr(t)
	done := make(chan int, 1)
	stderr := &syncBuffer{}
	go func() {
		done <- run([]string{"serve", "-config", path, "-listen", addr, "-log-format", "json"}, io.Discard, stderr)
	}()
	deadline := time.Now().Add(10 * time.Second)
	for {
		resp, err := http.Get("http://" + addr + "/healthz")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				break
			}
		}
		select {
		case code := <-done:
			t.Fatalf("serve exited %d: %s", code, stderr.String())
		default:
		}
		if time.Now().After(deadline) {
			t.Fatalf("nothing listens on %s: %s", addr, stderr.String())
		}
		time.Sleep(50 * time.Millisecond)
	}
	if err := syscall.Kill(os.Getpid(), syscall.SIGINT); err != nil {
		t.Fatal(err)
	}
	select {
	case code := <-done:
		if code != 0 {
			t.Fatalf("exit %d after SIGINT: %s", code, stderr.String())
		}
	case <-time.After(20 * time.Second):
		t.Fatal("serve did not stop on SIGINT")
	}
}

func TestServeBadListenFlag(t *testing.T) {
	path := writeConfig(t, baseConfig)
	code, _, stderr := runCmd("serve", "-config", path, "-listen", "localhost")
	if code != 2 || !strings.Contains(stderr, `-listen: must be host:port, not "localhost"`) {
		t.Fatalf("exit %d: %s", code, stderr)
	}
}

// syncBuffer is a bytes.Buffer safe for one writer and one reader.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}
