package imap_test

import (
	"bytes"
	"encoding/json"
	"io"
	"net"
	"net/http"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/stagegate/stagegate/gateway/gatewaytest"

	"github.com/stagegate/stagegate/config"
	"github.com/stagegate/stagegate/connectors/imap"
	"github.com/stagegate/stagegate/gateway"
)

const token = "test-token-0123456789"

// gatewayConfig watches the test account: "mail" reads INBOX and Sent and
// keeps unknown senders unmatched; "leads" reads Support and creates a
// lead for an unknown sender.
const gatewayConfig = `
listen: 127.0.0.1:0
store: {driver: bolt, path: STORE}
api:
  tokens: ["` + token + `"]
pipelines:
  - id: sales
    stages:
      - id: new
      - id: contacted
        triggers:
          - {type: email.sent, name: we wrote}
      - id: replied
        triggers:
          - {type: email.incoming, name: customer wrote}
      - id: won
        final: success
connectors:
  - name: mail
    type: imap
    host: HOST
    port: PORT
    tls: none
    username: USER
    password: "${IMAP_PASSWORD}"
    folders: {incoming: INBOX, sent: Sent}
    own_addresses: [acme.test]
    reconnect_min: 20ms
    idle_refresh: 1s
  - name: leads
    type: imap
    host: HOST
    port: PORT
    tls: none
    username: USER
    password: "${IMAP_PASSWORD}"
    folders: {incoming: Support, sent: none}
    own_addresses: [acme.test]
    create: {pipeline: sales, stage: new}
    reconnect_min: 20ms
    idle_refresh: 1s
`

type gw struct {
	t    *testing.T
	base string
	stop func()
}

func startGateway(t *testing.T, srv imap.MailServer, storePath string) *gw {
	t.Helper()
	host, port, _ := net.SplitHostPort(srv.Addr())
	yaml := strings.NewReplacer("STORE", storePath, "HOST", host, "PORT", port, "USER", srv.User()).Replace(gatewayConfig)
	cfg, err := config.Parse([]byte(yaml), gateway.Kinds, gateway.ActionTypes(),
		func(k string) (string, bool) { return imap.TestPassword, k == "IMAP_PASSWORD" })
	if err != nil {
		t.Fatal(err)
	}
	r := gatewaytest.Start(t, cfg, gateway.Options{Instance: "test", ShutdownTimeout: 5 * time.Second})
	return &gw{t: t, base: r.Base, stop: r.Stop}
}

func (g *gw) call(method, path string, body, out any) int {
	g.t.Helper()
	var rd io.Reader
	if body != nil {
		b, _ := json.Marshal(body)
		rd = bytes.NewReader(b)
	}
	req, _ := http.NewRequest(method, g.base+path, rd)
	req.Header.Set("Authorization", "Bearer "+token)
	req.Header.Set("Content-Type", "application/json")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		g.t.Fatal(err)
	}
	defer resp.Body.Close()
	data, _ := io.ReadAll(resp.Body)
	if out != nil {
		if err := json.Unmarshal(data, out); err != nil {
			g.t.Fatalf("%s %s: %d %s", method, path, resp.StatusCode, data)
		}
	}
	return resp.StatusCode
}

type item struct {
	ID        string `json:"id"`
	Stage     string `json:"stage"`
	ContactID string `json:"contact_id"`
}

// waitStage polls the item until it is at stage.
func (g *gw) waitStage(id, stage string) {
	g.t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		var it item
		g.call("GET", "/api/v1/items/"+id, nil, &it)
		if it.Stage == stage {
			return
		}
		if time.Now().After(deadline) {
			g.t.Fatalf("item %s at %q, want %q", id, it.Stage, stage)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// waitFor polls until ok returns true.
func waitFor(t *testing.T, what string, ok func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !ok() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// TestGateway runs the connector inside a whole gateway: mail moves the
// customer's item (sent, then incoming), an unknown sender is unmatched or
// becomes a lead where the connector creates, an automatic reply moves
// nothing and says why, and a restart records nothing twice.
func TestGateway(t *testing.T) {
	for name, start := range map[string]func(testing.TB) imap.MailServer{
		"memserver": imap.StartMemServer, "dovecot": imap.StartDovecot,
	} {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			testGateway(t, start(t))
		})
	}
}

func testGateway(t *testing.T, srv imap.MailServer) {
	path := filepath.Join(t.TempDir(), "sg.db")
	g := startGateway(t, srv, path)
	var ann item
	if st := g.call("POST", "/api/v1/items", map[string]any{"pipeline": "sales",
		"contact": map[string]string{"email": "ann@client.test", "name": "Ann"}}, &ann); st != 201 {
		t.Fatalf("create item: %d", st)
	}
	waitReady(t, g)

	srv.Deliver(t, "Sent", imap.NewMail("Bob <bob@acme.test>", "Ann <ann@client.test>", "Offer", "offer-1@acme.test"))
	g.waitStage(ann.ID, "contacted")
	srv.Deliver(t, "INBOX", imap.NewMail("ooo@client.test", imap.TestUser, "Away", "ooo-1@client.test", "Auto-Submitted: auto-replied"))
	srv.Deliver(t, "INBOX", imap.NewMail("Ann <ann@client.test>", imap.TestUser, "Re: Offer", "ann-2@client.test",
		"In-Reply-To: <offer-1@acme.test>"))
	g.waitStage(ann.ID, "replied")

	// An unknown sender: unmatched on "mail", a new lead on "leads".
	srv.Deliver(t, "INBOX", imap.NewMail("zed@client.test", imap.TestUser, "Hi", "zed-1@client.test"))
	srv.Deliver(t, "Support", imap.NewMail("Yan <yan@client.test>", imap.TestUser, "Help", "yan-1@client.test"))
	waitFor(t, "zed in /api/v1/unmatched", func() bool {
		var un struct {
			Events []struct {
				Event struct{ ID string } `json:"event"`
			} `json:"events"`
		}
		g.call("GET", "/api/v1/unmatched", nil, &un)
		return slices.ContainsFunc(un.Events, func(e struct {
			Event struct{ ID string } `json:"event"`
		}) bool {
			return e.Event.ID == "mail:zed-1@client.test"
		})
	})
	waitFor(t, "a lead for yan", func() bool {
		var list struct{ Items []item }
		g.call("GET", "/api/v1/items?pipeline=sales", nil, &list)
		return len(list.Items) == 2
	})

	// The auto reply is recorded; its decision says why nothing fired.
	var ev struct {
		Event struct {
			Attrs map[string]string `json:"attrs"`
		} `json:"event"`
		Unmatched bool   `json:"unmatched"`
		Note      string `json:"note"`
	}
	if st := g.call("GET", "/api/v1/events/mail:ooo-1@client.test", nil, &ev); st != 200 ||
		ev.Event.Attrs["not_customer"] != "auto-submitted: auto-replied" {
		t.Errorf("auto reply event: %d %+v", st, ev)
	}

	// Restart: nothing is recorded twice, and mail keeps coming.
	g.stop()
	srv.Deliver(t, "INBOX", imap.NewMail("Ann <ann@client.test>", imap.TestUser, "Again", "ann-3@client.test"))
	g = startGateway(t, srv, path)
	waitFor(t, "ann-3 recorded", func() bool {
		return g.call("GET", "/api/v1/events/mail:ann-3@client.test", nil, nil) == 200
	})
	var tl struct {
		Entries []struct {
			From    string `json:"from"`
			To      string `json:"to"`
			EventID string `json:"event_id"`
		} `json:"entries"`
	}
	g.call("GET", "/api/v1/items/"+ann.ID+"/timeline", nil, &tl)
	moves := 0
	for _, e := range tl.Entries {
		if e.To != "" && e.From != "" {
			moves++
		}
	}
	if moves != 2 {
		t.Errorf("timeline %+v: want 2 moves", tl.Entries)
	}
	var status struct {
		OK      bool                `json:"ok"`
		Folders []imap.FolderStatus `json:"folders"`
	}
	if st := g.call("GET", "/api/v1/imap/mail/status", nil, &status); st != 200 || len(status.Folders) != 2 {
		t.Errorf("status: %d %+v", st, status)
	}
	for _, folder := range []string{"INBOX", "Sent", "Support"} {
		for _, f := range imap.FolderFlags(t, srv, folder) {
			if strings.Contains(f, "Seen") {
				t.Errorf("%s: %s", folder, f)
			}
		}
	}
}

// waitReady waits until both connectors watch their folders.
func waitReady(t *testing.T, g *gw) {
	t.Helper()
	for _, name := range []string{"mail", "leads"} {
		waitFor(t, name+" idle", func() bool {
			var s struct {
				Folders []imap.FolderStatus `json:"folders"`
			}
			g.call("GET", "/api/v1/imap/"+name+"/status", nil, &s)
			for _, f := range s.Folders {
				if f.State != imap.StateIdle {
					return false
				}
			}
			return len(s.Folders) > 0
		})
	}
}
