package botscore

import (
	"slices"
	"testing"
	"time"
)

// The tracking connector's defaults (scoring.threshold, quick, burst_window).
const (
	defaultThreshold   = 50
	defaultQuick       = 10 * time.Second
	defaultBurstWindow = 10 * time.Second
)

// t0 is the fixed "now" of the tests; humanUA a desktop browser.
var t0 = time.Date(2026, 3, 1, 10, 15, 30, 0, time.UTC)

const humanUA = "Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/17.4 Safari/605.1.15"

func testScorer(t *testing.T, extra ...string) *Scorer {
	t.Helper()
	s, err := New(defaultThreshold, defaultQuick, defaultBurstWindow, extra)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// TestScoreSignals checks each signal alone and in the combinations that
// matter, with the reasons recorded.
func TestScoreSignals(t *testing.T) {
	s := testScorer(t, "95 acme_gateway contains AcmeScan")
	const ip = "203.0.113.7"
	human := func() Facts {
		return Facts{Method: "GET", UA: humanUA, Client: ClientKey(ip, humanUA), At: t0, Since: time.Hour, Links: 3}
	}
	click := func(link int, ago time.Duration) Recent {
		return Recent{At: t0.Add(-ago).UnixNano(), Click: true, Link: link, Client: ClientKey("198.51.100.1", "x")}
	}
	cases := []struct {
		name    string
		mod     func(*Facts)
		machine bool
		reasons []string
	}{
		{"human open", func(*Facts) {}, false, nil},
		{"apple privacy proxy", func(f *Facts) { f.UA = "Mozilla/5.0" }, true, []string{"ua:apple_privacy_proxy"}},
		{"gmail image proxy alone is a real open", func(f *Facts) {
			f.UA = "Mozilla/5.0 (Windows NT 5.1; rv:11.0) Gecko Firefox/11.0 (via ggpht.com GoogleImageProxy)"
		}, false, []string{"ua:google_image_proxy"}},
		{"gmail image proxy right at delivery", func(f *Facts) {
			f.UA = "Mozilla/5.0 (via ggpht.com GoogleImageProxy)"
			f.Since = 2 * time.Second
		}, true, []string{"ua:google_image_proxy", "quick:2.0s"}},
		{"microsoft scanner", func(f *Facts) { f.UA = "Mozilla/5.0 (compatible; BingPreview/1.0b)" }, true, []string{"ua:microsoft_preview"}},
		{"security gateway", func(f *Facts) { f.UA = "Barracuda Sentinel (EE)" }, true, []string{"ua:barracuda"}},
		{"crawler", func(f *Facts) { f.UA = "Mozilla/5.0 (compatible; Googlebot/2.1; +http://www.google.com/bot.html)" }, true, []string{"ua:crawler"}},
		{"http library", func(f *Facts) { f.UA = "python-requests/2.31.0" }, true, []string{"ua:http_library"}},
		{"phone brand is not a bot", func(f *Facts) { f.UA = "Mozilla/5.0 (Linux; Android 9; CUBOT X20 PRO) Chrome/120 Mobile" }, false, nil},
		{"configured agent", func(f *Facts) { f.UA = "AcmeScan/3" }, true, []string{"ua:acme_gateway"}},
		{"no user agent", func(f *Facts) { f.UA = ""; f.Client = ClientKey(ip, "") }, true, []string{"no_user_agent"}},
		{"HEAD", func(f *Facts) { f.Method = "HEAD" }, true, []string{"head_request"}},
		{"within seconds of sending", func(f *Facts) { f.Since = 1500 * time.Millisecond }, true, []string{"quick:1.5s"}},
		{"after the quick window", func(f *Facts) { f.Since = defaultQuick }, false, nil},
		{"honeypot", func(f *Facts) { f.Click, f.Link, f.Honeypot = true, 1, true }, true, []string{"honeypot"}},
		{"all links within seconds", func(f *Facts) {
			f.Click, f.Link, f.Links = true, 3, 3
			f.Recent = []Recent{click(1, 2*time.Second), click(2, time.Second)}
		}, true, []string{"burst:3_links"}},
		{"both links of a two-link message", func(f *Facts) {
			f.Click, f.Link, f.Links = true, 2, 2
			f.Recent = []Recent{click(1, 500*time.Millisecond)}
		}, true, []string{"burst:2_links"}},
		{"two of three links is a person", func(f *Facts) {
			f.Click, f.Link, f.Links = true, 2, 3
			f.Recent = []Recent{click(1, 5*time.Second)}
		}, false, nil},
		{"same link twice is not a burst", func(f *Facts) {
			f.Click, f.Link, f.Links = true, 1, 2
			f.Recent = []Recent{click(1, time.Second)}
		}, false, nil},
		{"clicks spread over minutes", func(f *Facts) {
			f.Click, f.Link, f.Links = true, 3, 3
			f.Recent = []Recent{click(1, 3*time.Minute), click(2, time.Minute)}
		}, false, nil},
		{"honeypot clicks do not make a burst", func(f *Facts) {
			f.Click, f.Link, f.Links = true, 2, 1
			hp := click(1, time.Second)
			hp.Honeypot, hp.Client = true, ClientKey("other", "")
			f.Recent = []Recent{hp}
		}, false, nil},
		{"client flagged by an earlier hit", func(f *Facts) {
			f.Click, f.Link = true, 2
			f.Recent = []Recent{{At: t0.Add(-time.Minute).UnixNano(), Click: true, Link: 1, Honeypot: true, Client: ClientKey(ip, humanUA), Score: 100}}
		}, true, []string{"flagged_client"}},
		{"flag expires", func(f *Facts) {
			f.Recent = []Recent{{At: t0.Add(-FlagWindow - time.Second).UnixNano(), Click: true, Link: 1, Client: ClientKey(ip, humanUA), Score: 100}}
		}, false, nil},
		{"another client is not flagged", func(f *Facts) {
			f.Recent = []Recent{{At: t0.Add(-time.Minute).UnixNano(), Client: ClientKey("192.0.2.1", humanUA), Score: 100}}
		}, false, nil},
		{"score is capped", func(f *Facts) { f.Method, f.UA, f.Since = "HEAD", "curl/8.0", 0 }, true,
			[]string{"head_request", "ua:http_library", "quick:0.0s"}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			f := human()
			c.mod(&f)
			v := s.Score(f)
			if v.Machine != c.machine || !slices.Equal(v.Reasons, c.reasons) {
				t.Errorf("score %d machine %v reasons %q; want machine %v reasons %q", v.Score, v.Machine, v.Reasons, c.machine, c.reasons)
			}
			if v.Score < 0 || v.Score > 100 || (v.Score >= defaultThreshold) != v.Machine {
				t.Errorf("score %d inconsistent with machine %v", v.Score, v.Machine)
			}
		})
	}
}

func TestAgentRules(t *testing.T) {
	for _, bad := range []string{"", "90 name contains", "x name contains y", "101 n exact y", "50 n regex y"} {
		if _, err := parseAgentRule(bad); err == nil {
			t.Errorf("rule %q accepted", bad)
		}
	}
	r, err := parseAgentRule("  40   my_proxy   prefix   Some Proxy/1 (x) ")
	if err != nil || r.weight != 40 || r.name != "my_proxy" || r.match != "prefix" || r.pattern != "some proxy/1 (x)" {
		t.Errorf("rule %+v %v", r, err)
	}
	l, err := newAgentList(nil)
	if err != nil || len(l.rules) < 40 {
		t.Fatalf("built-in list: %d rules, %v", len(l.rules), err)
	}
	if m := l.match("Mozilla/5.0 (compatible; GoogleImageProxy; via ggpht.com GoogleImageProxy)"); len(m) != 1 {
		t.Errorf("one name counts once: %+v", m)
	}
}
