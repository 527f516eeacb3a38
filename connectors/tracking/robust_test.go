package tracking

import (
	"log/slog"
	"math/rand/v2"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/stagegate/stagegate/connectors"
	"github.com/stagegate/stagegate/connectors/tracking/botscore"
)

// badTokens are what scanners, truncating mail clients and attackers send.
func badTokens(good string) map[string]string {
	b := []byte(good)
	if b[len(b)-3] == 'A' { // a MAC character changed for another base64url one
		b[len(b)-3] = 'B'
	} else {
		b[len(b)-3] = 'A'
	}
	tampered := string(b)
	r := rand.New(rand.NewPCG(1, 2))
	random := make([]byte, len(good))
	for i := range random {
		random[i] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"[r.IntN(64)]
	}
	return map[string]string{
		"tampered":    tampered,
		"truncated":   good[:len(good)-4],
		"empty":       "",
		"4 KB":        strings.Repeat("Q", 4096),
		"random":      string(random),
		"percent":     "%00%0d%0a",
		"utf8":        "%C3%A9%E2%80%94",
		"dots":        "..%2F..%2Fetc",
		"with slash":  good + "%2Fx",
		"trailing /":  good + "/",
		"raw slash":   good + "/x",
		"raw slashes": "a/b/c",
	}
}

func TestBadTokens(t *testing.T) {
	e := newEnv(t, nil, nil)
	p := e.prepare(basicMessage)
	stored := map[string]bool{}
	for _, l := range p.Links {
		stored[l.URL] = true
	}
	pixelTok := strings.TrimPrefix(path(p.PixelURL), "/t/o/")
	clickTok := strings.TrimPrefix(path(p.Links[0].ClickURL), "/t/c/")
	for name, tok := range badTokens(pixelTok) {
		t.Run("pixel "+name, func(t *testing.T) {
			a := e.do("GET", "/t/o/"+tok, "", nil)
			checkGIF(t, a, false) // whatever the path under /t/o/: the GIF
			checkGIF(t, e.do("HEAD", "/t/o/"+tok, "", nil), true)
		})
	}
	t.Run("pixel without slash", func(t *testing.T) {
		checkGIF(t, e.do("GET", "/t/o", "", nil), false)
	})
	for name, tok := range badTokens(clickTok) {
		t.Run("click "+name, func(t *testing.T) {
			a := e.do("GET", "/t/c/"+tok+"?u=https://evil.example", "", nil)
			if a.code >= 500 {
				t.Fatalf("%d", a.code)
			}
			if loc := a.header.Get("Location"); loc != "" && !stored[loc] {
				t.Fatalf("redirect to %q, not a stored destination", loc)
			}
			if a.code == http.StatusFound && name != "tampered" {
				t.Errorf("%s redirected", name)
			}
			if a.code == http.StatusNotFound && a.header.Get("Content-Type") != "text/html; charset=utf-8" {
				t.Errorf("%s: 404 is %q, not the connector's page", name, a.header.Get("Content-Type"))
			}
		})
	}
	if n := len(e.in.Events()); n != 0 {
		t.Errorf("bad tokens made %d events", n)
	}
	if n := e.fake.ListLen(e.tr.hitsKey(p.ID)); n != 0 {
		t.Errorf("bad tokens stored %d hits", n)
	}
	if w := e.logs.count(slog.LevelWarn) + e.logs.count(slog.LevelError); w != 0 {
		t.Errorf("%d warnings for bad tokens", w)
	}
	if s := e.tr.statsNow(); s.BadTokens == 0 || s.UnsignedClicks != 1 {
		t.Errorf("stats %+v", s)
	}
}

// TestUnsignedClick: a scanner-mangled signature on a known link still
// reaches the destination, and records nothing.
func TestUnsignedClick(t *testing.T) {
	e := newEnv(t, nil, nil)
	p := e.prepare(basicMessage)
	other := mustSigner(t, "some-other-key-0123456789")
	id, _ := parseMsgID(p.ID)
	a := e.do("GET", "/t/c/"+other.Token(id, 2), "", nil)
	if a.code != http.StatusFound || a.header.Get("Location") != "https://example.com/demo" {
		t.Fatalf("answer %d %v", a.code, a.header)
	}
	a = e.do("GET", "/t/c/"+other.Token(id, 9), "", nil)
	if a.code != http.StatusNotFound || a.header.Get("Location") != "" || !strings.Contains(a.body, "not valid") {
		t.Fatalf("unknown link: %d %v %q", a.code, a.header, a.body)
	}
	a = e.do("GET", "/t/c/"+e.tr.signer.Token(newMsgID(), 1), "", nil)
	if a.code != http.StatusNotFound {
		t.Fatalf("unknown message: %d", a.code)
	}
	if len(e.in.Events()) != 0 || e.fake.ListLen(e.tr.hitsKey(p.ID)) != 0 {
		t.Errorf("unsigned click recorded: %q", e.in.IDs())
	}
}

func TestKeyRotationOverHTTP(t *testing.T) {
	oldKey, newKey := "old-tracking-key-0123456789", "new-tracking-key-0123456789"
	before := newEnv(t, nil, func(c *Config) { c.Keys = []string{oldKey} })
	p := before.prepare(basicMessage)
	after := newEnv(t, before.fake, func(c *Config) { c.Keys = []string{newKey, oldKey} })
	after.clk.Add(time.Hour)
	checkGIF(t, after.do("GET", path(p.PixelURL), "", nil), false)
	a := after.do("GET", path(p.Links[0].ClickURL), "", nil)
	if a.code != http.StatusFound || a.header.Get("Location") != "https://example.com/pricing" {
		t.Fatalf("old click token: %d %v", a.code, a.header)
	}
	if got := after.in.IDs(); len(got) != 2 {
		t.Fatalf("old tokens made events %q", got)
	}
	p2 := after.prepare(basicMessage)
	if strings.HasPrefix(p2.PixelURL, testPublic+"/t/o/") && before.tr.signer.Token(mustParse(t, p2.ID), 0) == strings.TrimPrefix(path(p2.PixelURL), "/t/o/") {
		t.Error("new messages are still signed with the old key")
	}
}

func mustParse(t *testing.T, s string) MsgID {
	t.Helper()
	id, ok := parseMsgID(s)
	if !ok {
		t.Fatalf("bad id %q", s)
	}
	return id
}

// TestStoreDown: the pixel is still served and counted as lost; a click on
// a cached link still redirects; on a link not cached, 503 and no
// redirect; a failing intake changes no answer.
func TestStoreDown(t *testing.T) {
	e := newEnv(t, nil, nil)
	p := e.prepare(basicMessage)
	cold := newEnv(t, e.fake, nil) // another process: nothing cached
	e.clk.Add(time.Hour)
	e.fake.SetDown(true)
	e.in.SetDown(true)

	checkGIF(t, e.do("GET", path(p.PixelURL), "", nil), false)
	checkGIF(t, cold.do("GET", path(p.PixelURL), "", nil), false)
	checkGIF(t, e.do("HEAD", path(p.PixelURL), "", nil), true)
	a := e.do("GET", path(p.Links[0].ClickURL), "", nil)
	if a.code != http.StatusFound || a.header.Get("Location") != "https://example.com/pricing" {
		t.Fatalf("cached click while down: %d %v", a.code, a.header)
	}
	a = cold.do("GET", path(p.Links[0].ClickURL)+"?u=https://evil.example", "", nil)
	if a.code != http.StatusServiceUnavailable || a.header.Get("Location") != "" || a.header.Get("Retry-After") == "" {
		t.Fatalf("uncached click while down: %d %v", a.code, a.header)
	}
	for range 50 { // a flood of hits while down logs a few lines, not fifty
		e.do("GET", path(p.PixelURL), "", nil)
	}
	if s := e.tr.statsNow(); s.HitsLost < 50 || s.EventsLost < 50 {
		t.Errorf("stats while down %+v", s)
	}
	if w := e.logs.count(slog.LevelWarn); w == 0 || w > 3 {
		t.Errorf("%d warnings while down, want 1 to 3 (rate-limited)", w)
	}
	if !strings.Contains(strings.Join(e.in.Rejects(), ","), "track/hit_lost") {
		t.Errorf("lost hits not counted in metrics: %q", e.in.Rejects())
	}

	e.fake.SetDown(false)
	e.in.SetDown(false)
	e.clk.Add(botscore.FlagWindow + time.Second) // the HEAD above flagged this client for a while
	e.do("GET", path(p.PixelURL), "", nil)
	if got := e.in.IDs(); len(got) != 1 || got[0] != openEventID("track", p.ID, false) {
		t.Errorf("after recovery: events %q", got)
	}
	// Preparing while down is a 503.
	e.fake.SetDown(true)
	if a := e.do("POST", "/api/v1/messages", basicMessage, nil); a.code != http.StatusServiceUnavailable {
		t.Errorf("prepare while down: %d %s", a.code, a.body)
	}
}

var _ connectors.Intake = (*fakeIntake)(nil)
