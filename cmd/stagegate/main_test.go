package main

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"
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
