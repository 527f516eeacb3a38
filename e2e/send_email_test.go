package e2e

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stagegate/stagegate/internal/testutil/smtpserver"
)

// sendEmailYAML: entering offer sends a tracked email through the SMTP
// server at smtpPort; the email.sent event moves the item to mailed. The
// timeout outlasts the server's slow answer, so only the kill cuts it.
func sendEmailYAML(port int, storeYAML string, smtpPort int) string {
	return fmt.Sprintf(`listen: 127.0.0.1:%d
store: %s
api:
  tokens: ["${E2E_API_TOKEN}"]
log: {level: info, format: json}
actions: {backoff_min: 100ms, poll: 100ms}
smtp:
  - {name: out, host: 127.0.0.1, port: %d, tls: none}
pipelines:
  - id: sales
    stages:
      - id: new
      - id: offer
        actions:
          - type: send_email
            smtp: out
            from: "Bob <bob@example.com>"
            subject: Your offer
            html: '<p>See <a href="https://example.com/pricing">our prices</a>.</p>'
            timeout: 2m
      - id: mailed
        triggers: [{type: email.sent}]
connectors:
  - name: track
    type: tracking
    keys: ["0123456789abcdef0123456789abcdef"]
`, port, storeYAML, smtpPort)
}

// SIGKILL after the SMTP server stored the message and before the gateway
// learnt it was accepted: after the restart the action runs again and the
// server gets the message a second time with the same Message-ID (what
// the README tells a receiver to expect); the item then reaches mailed.
func TestKillDuringSendEmail(t *testing.T) {
	if testing.Short() {
		t.Skip("e2e fault test: skipped with -short")
	}
	srv := smtpserver.Start(t)
	g := &gatewayProc{t: t, name: "send_email", dir: t.TempDir(), out: &logBuffer{}}
	g.store = boltStoreYAML(filepath.Join(g.dir, "sg.db"))
	g.cfgPath = filepath.Join(g.dir, "stagegate.yaml")
	t.Cleanup(func() {
		g.stopQuietly()
		if t.Failed() {
			t.Logf("---- output of gateway %s (%d runs) ----\n%s", g.name, g.runs, g.out.tail(150))
		}
	})
	launch := func() {
		g.port = freePort(t)
		if err := os.WriteFile(g.cfgPath, []byte(sendEmailYAML(g.port, g.store, srv.Port)), 0o600); err != nil {
			t.Fatal(err)
		}
		if err := g.waitReady(g.launch(), 30*time.Second); err != nil {
			t.Fatal(err)
		}
	}
	launch()
	c := newClient(t)
	var it itemReply
	if _, err := apiCall(c, g.base(), "POST", "/api/v1/items", map[string]any{
		"pipeline": "sales", "contact": map[string]string{"email": "slowack@client.test"}}, &it); err != nil {
		t.Fatal(err)
	}
	if _, err := apiCall(c, g.base(), "POST", "/api/v1/items/"+it.ID+"/move", map[string]string{"stage": "offer"}, nil); err != nil {
		t.Fatal(err)
	}
	waitFor(t, 15*time.Second, "the server stored the message", func() bool { return len(srv.Messages()) == 1 })
	g.kill()
	launch()
	waitFor(t, 15*time.Second, "the message sent again", func() bool { return len(srv.Messages()) == 2 })
	msgs := srv.Messages()
	first, second := msgs[0].Header().Get("Message-Id"), msgs[1].Header().Get("Message-Id")
	if first == "" || first != second || !strings.HasPrefix(first, "<sg.") {
		t.Fatalf("Message-IDs %q and %q, want the same", first, second)
	}
	waitFor(t, 15*time.Second, "the item at mailed", func() bool {
		var got itemReply
		_, err := apiCall(c, g.base(), "GET", "/api/v1/items/"+it.ID, nil, &got)
		return err == nil && got.Stage == "mailed"
	})
	// The email.sent event the action records can move the item before
	// the runner's own write marks the action done (two commits), so the
	// status is awaited, not read once.
	var st string
	var attempts int
	waitFor(t, 15*time.Second, "the action finished", func() bool {
		st, attempts = actionStatus(t, c, g.base(), it.ID)
		return st != "running" && st != "pending"
	})
	if st != "done" || attempts != 2 {
		t.Fatalf("action %s after %d attempts, want done after 2", st, attempts)
	}
}

func waitFor(t *testing.T, within time.Duration, what string, ok func() bool) {
	t.Helper()
	deadline := time.Now().Add(within)
	for !ok() {
		if time.Now().After(deadline) {
			t.Fatalf("%s: not within %v", what, within)
		}
		time.Sleep(50 * time.Millisecond)
	}
}
