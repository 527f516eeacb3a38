package tracking

import (
	"slices"
	"testing"
	"time"
)

func testScorer(t *testing.T, extra ...string) *scorer {
	t.Helper()
	agents, err := newAgentList(extra)
	if err != nil {
		t.Fatal(err)
	}
	return &scorer{threshold: defaultThreshold, quick: defaultQuick, burst: defaultBurstWindow, agents: agents}
}

// TestScoreSignals checks each signal alone and in the combinations that
// matter, with the reasons recorded.
func TestScoreSignals(t *testing.T) {
	s := testScorer(t, "95 acme_gateway contains AcmeScan")
	const ip = "203.0.113.7"
	human := func() facts {
		return facts{Kind: kindOpen, Method: "GET", UA: humanUA, Client: clientKey(ip, humanUA), At: t0, Since: time.Hour, Links: 3}
	}
	click := func(link int, ago time.Duration) recentHit {
		return recentHit{at: t0.Add(-ago).UnixNano(), click: true, link: link, client: clientKey("198.51.100.1", "x")}
	}
	cases := []struct {
		name    string
		mod     func(*facts)
		machine bool
		reasons []string
	}{
		{"human open", func(*facts) {}, false, nil},
		{"apple privacy proxy", func(f *facts) { f.UA = "Mozilla/5.0" }, true, []string{"ua:apple_privacy_proxy"}},
		{"gmail image proxy alone is a real open", func(f *facts) {
			f.UA = "Mozilla/5.0 (Windows NT 5.1; rv:11.0) Gecko Firefox/11.0 (via ggpht.com GoogleImageProxy)"
		}, false, []string{"ua:google_image_proxy"}},
		{"gmail image proxy right at delivery", func(f *facts) {
			f.UA = "Mozilla/5.0 (via ggpht.com GoogleImageProxy)"
			f.Since = 2 * time.Second
		}, true, []string{"ua:google_image_proxy", "quick:2.0s"}},
		{"microsoft scanner", func(f *facts) { f.UA = "Mozilla/5.0 (compatible; BingPreview/1.0b)" }, true, []string{"ua:microsoft_preview"}},
		{"security gateway", func(f *facts) { f.UA = "Barracuda Sentinel (EE)" }, true, []string{"ua:barracuda"}},
		{"crawler", func(f *facts) { f.UA = "Mozilla/5.0 (compatible; Googlebot/2.1; +http://www.google.com/bot.html)" }, true, []string{"ua:crawler"}},
		{"http library", func(f *facts) { f.UA = "python-requests/2.31.0" }, true, []string{"ua:http_library"}},
		{"phone brand is not a bot", func(f *facts) { f.UA = "Mozilla/5.0 (Linux; Android 9; CUBOT X20 PRO) Chrome/120 Mobile" }, false, nil},
		{"configured agent", func(f *facts) { f.UA = "AcmeScan/3" }, true, []string{"ua:acme_gateway"}},
		{"no user agent", func(f *facts) { f.UA = ""; f.Client = clientKey(ip, "") }, true, []string{"no_user_agent"}},
		{"HEAD", func(f *facts) { f.Method = "HEAD" }, true, []string{"head_request"}},
		{"within seconds of sending", func(f *facts) { f.Since = 1500 * time.Millisecond }, true, []string{"quick:1.5s"}},
		{"after the quick window", func(f *facts) { f.Since = defaultQuick }, false, nil},
		{"honeypot", func(f *facts) { f.Kind, f.Link, f.Honeypot = kindClick, 1, true }, true, []string{"honeypot"}},
		{"all links within seconds", func(f *facts) {
			f.Kind, f.Link, f.Links = kindClick, 3, 3
			f.Recent = []recentHit{click(1, 2*time.Second), click(2, time.Second)}
		}, true, []string{"burst:3_links"}},
		{"both links of a two-link message", func(f *facts) {
			f.Kind, f.Link, f.Links = kindClick, 2, 2
			f.Recent = []recentHit{click(1, 500*time.Millisecond)}
		}, true, []string{"burst:2_links"}},
		{"two of three links is a person", func(f *facts) {
			f.Kind, f.Link, f.Links = kindClick, 2, 3
			f.Recent = []recentHit{click(1, 5*time.Second)}
		}, false, nil},
		{"same link twice is not a burst", func(f *facts) {
			f.Kind, f.Link, f.Links = kindClick, 1, 2
			f.Recent = []recentHit{click(1, time.Second)}
		}, false, nil},
		{"clicks spread over minutes", func(f *facts) {
			f.Kind, f.Link, f.Links = kindClick, 3, 3
			f.Recent = []recentHit{click(1, 3*time.Minute), click(2, time.Minute)}
		}, false, nil},
		{"honeypot clicks do not make a burst", func(f *facts) {
			f.Kind, f.Link, f.Links = kindClick, 2, 1
			hp := click(1, time.Second)
			hp.honeypot, hp.client = true, clientKey("other", "")
			f.Recent = []recentHit{hp}
		}, false, nil},
		{"client flagged by an earlier hit", func(f *facts) {
			f.Kind, f.Link = kindClick, 2
			f.Recent = []recentHit{{at: t0.Add(-time.Minute).UnixNano(), click: true, link: 1, honeypot: true, client: clientKey(ip, humanUA), score: 100}}
		}, true, []string{"flagged_client"}},
		{"flag expires", func(f *facts) {
			f.Recent = []recentHit{{at: t0.Add(-flagWindow - time.Second).UnixNano(), click: true, link: 1, client: clientKey(ip, humanUA), score: 100}}
		}, false, nil},
		{"another client is not flagged", func(f *facts) {
			f.Recent = []recentHit{{at: t0.Add(-time.Minute).UnixNano(), client: clientKey("192.0.2.1", humanUA), score: 100}}
		}, false, nil},
		{"score is capped", func(f *facts) { f.Method, f.UA, f.Since = "HEAD", "curl/8.0", 0 }, true,
			[]string{"head_request", "ua:http_library", "quick:0.0s"}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			f := human()
			c.mod(&f)
			v := s.score(f)
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
