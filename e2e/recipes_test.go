package e2e

import (
	"context"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"
)

// The README's recipes for CRM-side triggers, run as a user would: its sh
// blocks pasted into sh against the binary serving configs/stagegate.yaml
// with `make run`'s development secrets (on a free port instead of 8080,
// its store in a temporary folder).
func TestReadmeRecipes(t *testing.T) {
	for _, tool := range []string{"sh", "curl", "sed"} {
		if _, err := exec.LookPath(tool); err != nil {
			t.Skipf("%s is not on PATH", tool)
		}
	}
	root, err := moduleRoot()
	if err != nil {
		t.Fatal(err)
	}
	readme, err := os.ReadFile(filepath.Join(root, "README.md"))
	if err != nil {
		t.Fatal(err)
	}
	text := string(readme)
	start := strings.Index(text, "## Recipes: CRM-side triggers")
	if start < 0 {
		t.Fatal("README has no recipes section")
	}
	section := text[start:]
	if end := strings.Index(section[3:], "\n## "); end >= 0 {
		section = section[:end+3]
	}
	var script strings.Builder
	for _, part := range strings.Split(section, "```sh\n")[1:] {
		block, _, _ := strings.Cut(part, "```")
		script.WriteString(block + "\n")
	}

	port := freePort(t)
	base := "http://127.0.0.1:" + strconv.Itoa(port)
	ctx, cancel := context.WithCancel(context.Background())
	cmd := exec.CommandContext(ctx, binPath, "serve", "-config", filepath.Join(root, "configs", "stagegate.yaml"), "-listen", "127.0.0.1:"+strconv.Itoa(port))
	cmd.Dir = t.TempDir() // the config's store path, data/, is relative
	cmd.Env = append(os.Environ(), "STAGEGATE_API_TOKEN=dev-token-change-me", "STAGEGATE_TRACKING_KEY=dev-tracking-key-change-me",
		"STAGEGATE_WEBHOOK_SECRET=whsec_ZGV2LXdlYmhvb2stc2VjcmV0LWNoYW5nZS1tZQ==")
	out := &logBuffer{}
	cmd.Stdout, cmd.Stderr = out, out
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		cancel()
		_ = cmd.Wait()
		if t.Failed() {
			t.Logf("gateway output:\n%s", out.tail(50))
		}
	})
	deadline := time.Now().Add(20 * time.Second)
	for {
		resp, err := http.Get(base + "/readyz")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == 200 {
				break
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("gateway not ready: %v", err)
		}
		time.Sleep(50 * time.Millisecond)
	}

	src := strings.ReplaceAll(script.String(), "http://127.0.0.1:8080", base)
	sh := exec.Command("sh")
	sh.Stdin = strings.NewReader(src)
	got, err := sh.CombinedOutput()
	if err != nil {
		t.Fatalf("recipes: %v\n%s", err, got)
	}
	for _, want := range []string{
		`"from":"new","to":"engaged","moved":true,"decisions":[{"trigger":"proposal opened"`,       // dry run
		`"outcome":"conditions_not_met","reason":"attr template is \"invoice\", not \"proposal\""`, // dry run, no move
		`"stage":"new","contact_id"`, // still at new
		`"from":"new","to":"contacted","moved":true,"decisions":[{"trigger":"proposal created"`,                        // document created
		`"from":"contacted","to":"engaged","moved":true,"decisions":[{"trigger":"proposal opened"`,                     // document opened
		`"from":"engaged","to":"won","moved":true,"decisions":[{"trigger":"invoice paid"`,                              // invoice paid
		`"from":"new","to":"contacted","moved":true,"decisions":[{"trigger":"lead taken","type":"responsible.changed"`, // responsible
		`"code":"version_mismatch"`, // stale If-Match
		`"from":"contacted","to":"engaged","moved":true,"decisions":[{"trigger":"demo done"`, // task status
		`"to":"lost","moved":true`,                // field changed
		`"kind":"field_changed","to":"no budget"`, // timeline
		`"from":"new","to":"engaged","moved":true,"decisions":[{"trigger":"demo slot booked","type":"crm.resource_booked"`, // resource booked
	} {
		if !strings.Contains(string(got), want) {
			t.Errorf("recipes' output lacks %s", want)
		}
	}
	if t.Failed() {
		t.Logf("recipes' output:\n%s", got)
	}
}
