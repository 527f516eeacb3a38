package e2e

import (
	"bytes"
	"context"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// runBin runs the binary with args and env (on top of the environment
// without any STAGEGATE_ variable) and returns its exit code and output.
func runBin(t *testing.T, env []string, args ...string) (int, string, string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, binPath, args...)
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, "STAGEGATE_") {
			cmd.Env = append(cmd.Env, kv)
		}
	}
	cmd.Env = append(cmd.Env, env...)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	err := cmd.Run()
	var ee *exec.ExitError
	switch {
	case err == nil:
		return 0, stdout.String(), stderr.String()
	case errors.As(err, &ee) && ee.ExitCode() >= 0:
		return ee.ExitCode(), stdout.String(), stderr.String()
	default:
		t.Fatalf("stagegate %v: %v\nstdout: %s\nstderr: %s", args, err, &stdout, &stderr)
		return 0, "", ""
	}
}

// brokenConfig has one of each problem the checker must report.
const brokenConfig = `listen: 127.0.0.1:8080
colour: blue
store:
  driver: bolt
  path: data/x.db
api:
  tokens: ["${STAGEGATE_E2E_UNDEFINED_TOKEN}"]
pipelines:
  - id: sales
    stages:
      - id: new
      - id: s1
        triggers:
          - type: email.clicked
          - type: nosuch.trigger
          - type: chat.reaction_time
      - id: s1
connectors:
  - name: forms
    type: forms
    create: {pipeline: sales, stage: nowhere}
    forms:
      - id: contact
`

// `stagegate check` on a config with many problems exits 1 and prints every
// problem, each with its path in the file; `serve` refuses it the same way.
func TestCheckReportsEveryProblem(t *testing.T) {
	path := filepath.Join(t.TempDir(), "broken.yaml")
	if err := os.WriteFile(path, []byte(brokenConfig), 0o600); err != nil {
		t.Fatal(err)
	}
	want := []struct{ at, says string }{
		{"colour", "unknown key"},
		{"api.tokens[0]", "STAGEGATE_E2E_UNDEFINED_TOKEN"},
		{"pipelines[0].stages[1].triggers[0].url", "required"},
		{"pipelines[0].stages[1].triggers[1].type", `"nosuch.trigger"`},
		{"pipelines[0].stages[1].triggers[2].seconds", "required"},
		{"pipelines[0].stages[2].id", `duplicate`},
		{"connectors[0].create.stage", `"nowhere"`},
	}
	for _, cmd := range []string{"check", "serve"} {
		t.Run(cmd, func(t *testing.T) {
			code, stdout, stderr := runBin(t, nil, cmd, "-config", path)
			t.Logf("stagegate %s exit %d; stderr:\n%s", cmd, code, stderr)
			if code != 1 {
				t.Errorf("exit status %d, want 1", code)
			}
			if strings.TrimSpace(stdout) != "" {
				t.Errorf("stdout %q, want nothing", stdout)
			}
			lines := strings.Split(strings.TrimRight(stderr, "\n"), "\n")
			for _, w := range want {
				prefix := path + ": " + w.at + ": "
				found := false
				for _, l := range lines {
					if strings.HasPrefix(l, prefix) && strings.Contains(l[len(prefix):], w.says) {
						found = true
					}
				}
				if !found {
					t.Errorf("no line %q…%q", prefix, w.says)
				}
			}
			for _, l := range lines {
				if !strings.HasPrefix(l, path+": ") {
					t.Errorf("line without the file name: %q", l)
				}
			}
		})
	}
}

// The example config checks out with its ${ENV} secrets set, and names each
// missing one when they are not.
func TestCheckExampleConfig(t *testing.T) {
	root, err := moduleRoot()
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(root, "configs", "stagegate.yaml")
	vars := []string{"STAGEGATE_API_TOKEN", "STAGEGATE_TRACKING_KEY", "STAGEGATE_WEBHOOK_SECRET"}
	code, stdout, stderr := runBin(t, []string{
		"STAGEGATE_API_TOKEN=e2e-token-0123456789",
		"STAGEGATE_TRACKING_KEY=e2e-tracking-key-0123456789",
		"STAGEGATE_WEBHOOK_SECRET=" + webhookSecret,
	}, "check", "-config", path)
	if code != 0 || !strings.Contains(stdout, "ok") {
		t.Errorf("check with secrets set: exit %d\nstdout: %s\nstderr: %s", code, stdout, stderr)
	} else {
		t.Logf("check: %s", strings.TrimSpace(stdout))
	}

	code, _, stderr = runBin(t, nil, "check", "-config", path)
	if code != 1 {
		t.Errorf("check without the secrets: exit %d, want 1", code)
	}
	for _, v := range vars {
		if !strings.Contains(stderr, v) {
			t.Errorf("check without the secrets does not name %s:\n%s", v, stderr)
		}
	}
}

func TestVersion(t *testing.T) {
	code, stdout, stderr := runBin(t, nil, "version")
	if code != 0 || strings.TrimSpace(stdout) != "stagegate "+binVersion {
		t.Errorf("version: exit %d, stdout %q (want %q), stderr %q", code, stdout, "stagegate "+binVersion, stderr)
	}
	if code, _, _ := runBin(t, nil, "no-such-command"); code != 2 {
		t.Errorf("unknown command: exit %d, want 2", code)
	}
}
