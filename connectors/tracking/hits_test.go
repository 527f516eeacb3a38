package tracking

import (
	"bytes"
	"net/http"
	"slices"
	"strings"
	"testing"
	"time"
)

// checkGIF asserts a pixel answer.
func checkGIF(t *testing.T, a answer, head bool) {
	t.Helper()
	if a.code != http.StatusOK || a.header.Get("Content-Type") != "image/gif" || a.header.Get("Cache-Control") != "no-store" ||
		a.header.Get("Content-Length") != "43" {
		t.Fatalf("pixel answer %d %v", a.code, a.header)
	}
	if head {
		if a.body != "" {
			t.Fatalf("HEAD has a body of %d bytes", len(a.body))
		}
		return
	}
	if len(a.body) != 43 || !bytes.Equal([]byte(a.body), pixelGIF) || !strings.HasPrefix(a.body, "GIF89a") {
		t.Fatalf("pixel body %q", a.body)
	}
}

func TestPixelGIF(t *testing.T) {
	if len(pixelGIF) != 43 {
		t.Fatalf("pixel is %d bytes", len(pixelGIF))
	}
}

func TestOpenAndClick(t *testing.T) {
	e := newEnv(t, nil, nil)
	p := e.prepare(basicMessage)
	if len(p.Links) != 2 || p.Links[0].URL != "https://example.com/pricing" || p.ItemID != "i_1" {
		t.Fatalf("prepared %+v", p)
	}
	e.clk.Add(time.Hour)

	checkGIF(t, e.do("GET", path(p.PixelURL), "", nil), false)
	checkGIF(t, e.do("GET", path(p.PixelURL), "", nil), false) // a second open moves nothing again
	a := e.do("GET", path(p.Links[0].ClickURL), "", nil)
	if a.code != http.StatusFound || a.header.Get("Location") != "https://example.com/pricing" || a.header.Get("Cache-Control") != "no-store" {
		t.Fatalf("click answer %d %v", a.code, a.header)
	}
	want := []string{openEventID("track", p.ID, false), clickEventID("track", p.ID, 1, false)}
	if got := e.in.IDs(); !slices.Equal(got, want) {
		t.Fatalf("events %q, want %q", got, want)
	}
	evs := e.in.Events()
	open, click := evs[0], evs[1]
	if open.Type != "email.opened" || open.Subject.ItemID != "i_1" || open.Subject.Email != "ann@client.test" ||
		open.Attrs["machine"] != "false" || open.Attrs["message_id"] != p.MessageID || open.Attrs["inferred"] != "" {
		t.Errorf("open event %+v", open)
	}
	if click.Type != "email.clicked" || click.Attrs["url"] != "https://example.com/pricing" ||
		click.Attrs["link_id"] != p.Links[0].ID || click.Attrs["machine"] != "false" || click.Attrs["user_agent"] != humanUA {
		t.Errorf("click event %+v", click)
	}
	if n := e.fake.ListLen(e.tr.hitsKey(p.ID)); n != 3 {
		t.Errorf("%d hits stored, want 3 (every hit is kept)", n)
	}
	if s := e.tr.statsNow(); s.Opens != 2 || s.Clicks != 1 || s.HitsRecorded != 3 || s.MachineHits != 0 {
		t.Errorf("stats %+v", s)
	}
}

// TestMachineThenHumanOpen: an Apple privacy proxy prefetch at delivery is
// a machine open; the reader's open later is the human one.
func TestMachineThenHumanOpen(t *testing.T) {
	e := newEnv(t, nil, nil)
	p := e.prepare(basicMessage)
	e.clk.Add(2 * time.Second)
	checkGIF(t, e.do("GET", path(p.PixelURL), "", map[string]string{"User-Agent": "Mozilla/5.0"}), false)
	e.clk.Add(time.Hour)
	checkGIF(t, e.do("GET", path(p.PixelURL), "", nil), false)
	evs := e.in.Events()
	if len(evs) != 2 || evs[0].ID != openEventID("track", p.ID, true) || evs[1].ID != openEventID("track", p.ID, false) {
		t.Fatalf("events %q", e.in.IDs())
	}
	if evs[0].Attrs["machine"] != "true" || evs[0].Attrs["reasons"] != "ua:apple_privacy_proxy,quick:2.0s" || evs[0].Attrs["score"] != "100" {
		t.Errorf("machine open attrs %q", evs[0].Attrs)
	}
	if evs[1].Attrs["machine"] != "false" || evs[1].Attrs["score"] != "0" {
		t.Errorf("human open attrs %q", evs[1].Attrs)
	}
}

// TestOpenInferredFromClick: images blocked, so no pixel hit; the human
// click implies the open.
func TestOpenInferredFromClick(t *testing.T) {
	e := newEnv(t, nil, nil)
	p := e.prepare(basicMessage)
	e.clk.Add(time.Hour)
	e.do("GET", path(p.Links[1].ClickURL), "", nil)
	evs := e.in.Events()
	if len(evs) != 2 || evs[1].ID != openEventID("track", p.ID, false) || evs[1].Attrs["inferred"] != "click" {
		t.Fatalf("events %q", e.in.IDs())
	}
	// A later real open is the same event: a duplicate, nothing new.
	e.do("GET", path(p.PixelURL), "", nil)
	if n := len(e.in.Events()); n != 2 {
		t.Errorf("%d events after the real open", n)
	}
	// A machine click implies no open.
	e2 := newEnv(t, nil, nil)
	p2 := e2.prepare(basicMessage)
	e2.do("GET", path(p2.Links[0].ClickURL), "", map[string]string{"User-Agent": "curl/8.5.0"})
	if ids := e2.in.IDs(); !slices.Equal(ids, []string{clickEventID("track", p2.ID, 1, true)}) {
		t.Errorf("machine click events %q", ids)
	}
}

func TestHeadRequests(t *testing.T) {
	e := newEnv(t, nil, nil)
	p := e.prepare(basicMessage)
	e.clk.Add(time.Hour)
	checkGIF(t, e.do("HEAD", path(p.PixelURL), "", nil), true)
	a := e.do("HEAD", path(p.Links[0].ClickURL), "", nil)
	if a.code != http.StatusFound || a.header.Get("Location") != "https://example.com/pricing" {
		t.Fatalf("HEAD click %d %v", a.code, a.header)
	}
	for _, ev := range e.in.Events() {
		if ev.Attrs["machine"] != "true" || !strings.Contains(ev.Attrs["reasons"], "head_request") {
			t.Errorf("HEAD event %s attrs %q", ev.ID, ev.Attrs)
		}
	}
}

// TestClickIgnoresRequestTargets: nothing from the request becomes a
// redirect target.
func TestClickIgnoresRequestTargets(t *testing.T) {
	e := newEnv(t, nil, nil)
	p := e.prepare(basicMessage)
	for _, q := range []string{"?u=https://evil.example", "?url=https://evil.example&next=//evil.example", "/../../evil.example"} {
		a := e.do("GET", path(p.Links[0].ClickURL)+q, "", map[string]string{"Referer": "https://evil.example/"})
		if q[0] == '/' { // the mux cleans the path: a same-origin redirect at most
			if loc := a.header.Get("Location"); loc != "" && (!strings.HasPrefix(loc, "/") || strings.HasPrefix(loc, "//")) {
				t.Errorf("%s: %d Location %q", q, a.code, loc)
			}
			continue
		}
		if a.code != http.StatusFound || a.header.Get("Location") != "https://example.com/pricing" {
			t.Errorf("%s: %d %q", q, a.code, a.header.Get("Location"))
		}
	}
}

func TestHoneypotFlagsClient(t *testing.T) {
	e := newEnv(t, nil, nil)
	req := strings.Replace(basicMessage, `"subject"`, `"honeypot":true,"subject"`, 1)
	p := e.prepare(req)
	if !p.Links[0].Honeypot || len(p.Links) != 3 {
		t.Fatalf("links %+v", p.Links)
	}
	e.clk.Add(time.Hour)
	scanner := map[string]string{"User-Agent": humanUA} // a scanner dressed as a browser
	a := e.do("GET", path(p.Links[0].ClickURL), "", scanner)
	if a.code != http.StatusOK || a.header.Get("Location") != "" || !strings.Contains(a.body, "<title></title>") {
		t.Fatalf("honeypot answer %d %v %q", a.code, a.header, a.body)
	}
	if n := len(e.in.Events()); n != 0 {
		t.Fatalf("honeypot click made %d events", n)
	}
	e.clk.Add(20 * time.Second) // past the burst window: only the flag remains
	e.do("GET", path(p.Links[1].ClickURL), "", scanner)
	evs := e.in.Events()
	if len(evs) != 1 || evs[0].Attrs["machine"] != "true" || evs[0].Attrs["reasons"] != "flagged_client" {
		t.Fatalf("click after the honeypot: %q %v", e.in.IDs(), evs)
	}
}

func TestBurstOfClicks(t *testing.T) {
	e := newEnv(t, nil, nil)
	p := e.prepare(`{"item_id":"i_1","from":"bob@seller.test","to":"ann@client.test","subject":"x",
		"html":"<a href=\"https://e.test/1\">1</a><a href=\"https://e.test/2\">2</a><a href=\"https://e.test/3\">3</a>"}`)
	e.clk.Add(time.Hour)
	for i, l := range p.Links {
		e.clk.Add(300 * time.Millisecond)
		a := e.do("GET", path(l.ClickURL), "", nil)
		if a.header.Get("Location") != l.URL {
			t.Fatalf("link %d: Location %q", i+1, a.header.Get("Location"))
		}
	}
	got := e.in.IDs()
	want := []string{
		clickEventID("track", p.ID, 1, false), openEventID("track", p.ID, false), clickEventID("track", p.ID, 2, false),
		clickEventID("track", p.ID, 3, true),
	}
	if !slices.Equal(got, want) {
		t.Fatalf("events %q, want %q", got, want)
	}
	if r := e.in.Events()[3].Attrs["reasons"]; r != "burst:3_links" {
		t.Errorf("reasons %q", r)
	}
}

// TestBurstAcrossProcesses: two gateway processes share the store; each
// sees the other's clicks when scoring.
func TestBurstAcrossProcesses(t *testing.T) {
	a := newEnv(t, nil, nil)
	b := newEnvClock(t, a.clk, a.fake, nil)
	b.tr.Push = a.tr.Push // one intake for both processes
	p := a.prepare(`{"item_id":"i_1","from":"bob@seller.test","to":"ann@client.test","subject":"x",
		"html":"<a href=\"https://e.test/1\">1</a><a href=\"https://e.test/2\">2</a>"}`)
	a.clk.Add(time.Hour)
	b.do("GET", path(p.Links[0].ClickURL), "", nil) // b loads the message, no hits yet
	a.clk.Add(time.Second)
	a.do("GET", path(p.Links[1].ClickURL), "", nil)
	evs := a.in.Events()
	last := evs[len(evs)-1]
	if last.ID != clickEventID("track", p.ID, 2, true) || last.Attrs["reasons"] != "burst:2_links" {
		t.Fatalf("events %q, last attrs %q", a.in.IDs(), last.Attrs)
	}
}

func TestMaxHits(t *testing.T) {
	e := newEnv(t, nil, func(c *Config) { c.MaxHits = 3 })
	p := e.prepare(basicMessage)
	e.clk.Add(time.Hour)
	for range 5 {
		checkGIF(t, e.do("GET", path(p.PixelURL), "", nil), false)
	}
	if n := e.fake.ListLen(e.tr.hitsKey(p.ID)); n != 3 {
		t.Errorf("%d hits stored, want max_hits 3", n)
	}
	if s := e.tr.statsNow(); s.HitsOverCap != 2 || s.Opens != 5 {
		t.Errorf("stats %+v", s)
	}
}
