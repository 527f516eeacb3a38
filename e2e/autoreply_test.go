package e2e

import (
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stagegate/stagegate/engine"
	"github.com/stagegate/stagegate/internal/testutil/smtpserver"
)

// autoreplyYAML: the forms connector site answers each submission of its
// contact form with an autoreply through the SMTP server at smtpPort.
func autoreplyYAML(port int, storeYAML string, smtpPort int) string {
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
    stages: [{id: new}]
connectors:
  - name: site
    type: forms
    create: {pipeline: sales}
    forms:
      - id: contact
        autoreply:
          smtp: out
          from: "Sales <sales@example.com>"
          subject: "Thanks, {{.Contact.Name}}"
          text: "We got your message."
          track: false
`, port, storeYAML, smtpPort)
}

// SIGKILL after the SMTP server stored a form's autoreply and before the
// gateway learnt it was accepted: the autoreply, queued with the
// submission's event, runs again after the restart with the same
// Message-ID, and is done after two attempts.
func TestKillDuringFormAutoreply(t *testing.T) {
	if testing.Short() {
		t.Skip("e2e fault test: skipped with -short")
	}
	srv := smtpserver.Start(t)
	g := &gatewayProc{t: t, name: "autoreply", dir: t.TempDir(), out: &logBuffer{}}
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
		if err := os.WriteFile(g.cfgPath, []byte(autoreplyYAML(g.port, g.store, srv.Port)), 0o600); err != nil {
			t.Fatal(err)
		}
		if err := g.waitReady(g.launch(), 30*time.Second); err != nil {
			t.Fatal(err)
		}
	}
	launch()
	c := newClient(t)
	req, _ := http.NewRequest("POST", g.base()+"/in/site/contact",
		strings.NewReader(url.Values{"email": {"slowack@client.test"}, "name": {"Sam"}}.Encode()))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.Header.Set("Accept", "application/json")
	resp, err := c.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	var acc struct {
		EventID string `json:"event_id"`
	}
	err = json.NewDecoder(resp.Body).Decode(&acc)
	resp.Body.Close()
	if err != nil || resp.StatusCode != http.StatusOK || acc.EventID == "" {
		t.Fatalf("form: %d %+v %v", resp.StatusCode, acc, err)
	}
	waitFor(t, 15*time.Second, "the server stored the autoreply", func() bool { return len(srv.Messages()) == 1 })
	g.kill()
	launch()
	waitFor(t, 15*time.Second, "the autoreply sent again", func() bool { return len(srv.Messages()) == 2 })
	msgs := srv.Messages()
	first, second := msgs[0].Header().Get("Message-Id"), msgs[1].Header().Get("Message-Id")
	if first == "" || first != second {
		t.Fatalf("Message-IDs %q and %q, want the same", first, second)
	}
	id := engine.ActionID(engine.EventActionKey(acc.EventID, "autoreply"))
	var a struct {
		Status   string `json:"status"`
		Attempts int    `json:"attempts"`
	}
	waitFor(t, 15*time.Second, "the autoreply done", func() bool {
		_, err := apiCall(c, g.base(), "GET", "/api/v1/actions/"+id, nil, &a)
		return err == nil && a.Status == "done"
	})
	if a.Attempts != 2 {
		t.Fatalf("autoreply done after %d attempts, want 2", a.Attempts)
	}
	time.Sleep(300 * time.Millisecond)
	if n := len(srv.Messages()); n != 2 {
		t.Fatalf("%d messages, want 2", n)
	}
}
