package tracking

import (
	"net/http"
	"net/url"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/stagegate/stagegate/store"
)

const (
	siteOrigin = "https://www.seller.test"
	visitorA   = "0f9a1c2e-7b5d-4e21-9a3c-1d2e3f4a5b6c"
)

func siteEnv(t *testing.T) *env {
	return newEnv(t, nil, func(c *Config) {
		c.Site = Site{Enabled: true, AllowedOrigins: []string{siteOrigin}, ReturnGap: defaultReturnGap,
			LinkDomains: []string{"seller.test"}, Identify: true}
	})
}

func (e *env) view(body string) answer {
	e.t.Helper()
	return e.do("POST", "/t/v", body, map[string]string{"Origin": siteOrigin, "Content-Type": "text/plain;charset=UTF-8"})
}

func TestSiteScript(t *testing.T) {
	e := siteEnv(t)
	a := e.do("GET", "/t/v.js", "", nil)
	if a.code != http.StatusOK || !strings.HasPrefix(a.header.Get("Content-Type"), "text/javascript") ||
		!strings.Contains(a.body, "sendBeacon") || !strings.Contains(a.body, "sg_vid") {
		t.Fatalf("script %d %v", a.code, a.header)
	}
	off := newEnv(t, nil, nil)
	if a := off.do("GET", "/t/v.js", "", nil); a.code != http.StatusNotFound {
		t.Errorf("disabled site script: %d", a.code)
	}
	if a := off.do("POST", "/t/v", `{}`, nil); a.code != http.StatusNotFound {
		t.Errorf("disabled site endpoint: %d", a.code)
	}
}

// TestSiteVisitFromEmailClick: the click redirect carries sg_t to the
// site; the script reports it; the visitor becomes the item's.
func TestSiteVisitFromEmailClick(t *testing.T) {
	e := siteEnv(t)
	p := e.prepare(`{"item_id":"i_7","from":"bob@seller.test","to":"ann@client.test","subject":"x",
		"html":"<a href=\"https://www.seller.test/pricing?plan=pro#faq\">site</a><a href=\"https://other.test/\">other</a>"}`)
	e.clk.Add(time.Hour)
	loc := e.do("GET", path(p.Links[0].ClickURL), "", nil).header.Get("Location")
	tok := strings.TrimPrefix(path(p.Links[0].ClickURL), "/t/c/")
	if loc != "https://www.seller.test/pricing?plan=pro&sg_t="+tok+"#faq" {
		t.Fatalf("site link %q", loc)
	}
	if loc := e.do("GET", path(p.Links[1].ClickURL), "", nil).header.Get("Location"); loc != "https://other.test/" {
		t.Fatalf("other site link %q", loc)
	}
	before := len(e.in.Events())

	a := e.view(`{"v":"` + visitorA + `","u":"https://www.seller.test/pricing?plan=pro","r":"","t":"` + tok + `"}`)
	if a.code != http.StatusNoContent || a.header.Get("Access-Control-Allow-Origin") != siteOrigin {
		t.Fatalf("view: %d %v %s", a.code, a.header, a.body)
	}
	evs := e.in.Events()[before:]
	if len(evs) != 1 || evs[0].Type != "site.visit" || evs[0].Subject.ItemID != "i_7" || evs[0].Subject.VisitorID != visitorA ||
		evs[0].Attrs["linked_by"] != linkedByClick || evs[0].ID != "track:visit:"+visitorA+":2026-03-01" {
		t.Fatalf("visit events %+v", evs)
	}
	// More pages the same day: the same site.visit, no return yet.
	e.clk.Add(10 * time.Minute)
	e.view(`{"v":"` + visitorA + `","u":"https://www.seller.test/demo"}`)
	if n := len(e.in.Events()); n != before+1 {
		t.Errorf("%d events after a second page", n-before)
	}
	// Back after the gap: site.return.
	e.clk.Add(defaultReturnGap + time.Minute)
	e.view(`{"v":"` + visitorA + `","u":"https://www.seller.test/"}`)
	evs = e.in.Events()[before:]
	if len(evs) != 2 || evs[1].Type != "site.return" || evs[1].Subject.ItemID != "i_7" {
		t.Fatalf("after the gap: %q", e.in.IDs()[before:])
	}
}

func TestSiteVisitors(t *testing.T) {
	e := siteEnv(t)
	// Anonymous visitors are counted, not turned into events.
	for range 3 {
		if a := e.view(`{"v":"` + visitorA + `","u":"https://www.seller.test/"}`); a.code != http.StatusNoContent {
			t.Fatalf("anonymous view: %d %s", a.code, a.body)
		}
	}
	if len(e.in.Events()) != 0 || e.tr.statsNow().SiteViewsAnon != 3 {
		t.Fatalf("anonymous views: events %q stats %+v", e.in.IDs(), e.tr.statsNow())
	}
	// A form submission with an email makes the visitor known.
	e.view(`{"v":"` + visitorA + `","u":"https://www.seller.test/contact","e":"Ann@Client.test"}`)
	evs := e.in.Events()
	if len(evs) != 1 || evs[0].Subject.Email != "ann@client.test" || evs[0].Attrs["linked_by"] != linkedByForm {
		t.Fatalf("identified visit %+v", evs)
	}
	// The API ties a chat visitor to an item.
	chat := "chat-visitor-0123456789"
	a := e.do("POST", "/api/v1/visitors/"+chat+"/link", `{"item_id":"i_9"}`, nil)
	if a.code != http.StatusOK || !strings.Contains(a.body, `"linked_by":"api"`) {
		t.Fatalf("link: %d %s", a.code, a.body)
	}
	e.view(`{"v":"` + chat + `","u":"https://www.seller.test/"}`)
	if last := e.in.Events()[len(e.in.Events())-1]; last.Subject.ItemID != "i_9" || last.Type != "site.visit" {
		t.Errorf("chat visitor's visit %+v", last)
	}

	for name, c := range map[string]struct {
		body, origin string
		want         int
	}{
		"bad visitor":    {`{"v":"x","u":"https://www.seller.test/"}`, siteOrigin, http.StatusBadRequest},
		"bad url":        {`{"v":"` + visitorA + `","u":"javascript:alert(1)"}`, siteOrigin, http.StatusBadRequest},
		"not json":       {`v=1`, siteOrigin, http.StatusBadRequest},
		"too big":        {`{"v":"` + visitorA + `","u":"https://www.seller.test/` + strings.Repeat("a", 5000) + `"}`, siteOrigin, http.StatusRequestEntityTooLarge},
		"url too long":   {`{"v":"` + visitorA + `","u":"https://www.seller.test/` + strings.Repeat("a", 2100) + `"}`, siteOrigin, http.StatusBadRequest},
		"foreign origin": {`{"v":"` + visitorA + `","u":"https://www.seller.test/"}`, "https://evil.test", http.StatusForbidden},
	} {
		a := e.do("POST", "/t/v", c.body, map[string]string{"Origin": c.origin})
		if a.code != c.want {
			t.Errorf("%s: %d, want %d (%s)", name, a.code, c.want, a.body)
		}
	}
	pre := e.do("OPTIONS", "/t/v", "", map[string]string{"Origin": siteOrigin, "Access-Control-Request-Method": "POST"})
	if pre.code != http.StatusNoContent || pre.header.Get("Access-Control-Allow-Origin") != siteOrigin {
		t.Errorf("preflight %d %v", pre.code, pre.header)
	}
	// A live-chat visitor id (v_ and 26 base32 letters) is taken too.
	liveChat := "v_mfrggzdfmztwq2lknnwg23tpob"
	if a := e.do("POST", "/api/v1/visitors/"+liveChat+"/link", `{"email":"ann@client.test"}`, nil); a.code != http.StatusOK ||
		!strings.Contains(a.body, `"id":"`+liveChat+`"`) {
		t.Errorf("live chat visitor link: %d %s", a.code, a.body)
	}
	if a := e.do("POST", "/api/v1/visitors/short/link", `{"item_id":"i"}`, nil); a.code != http.StatusBadRequest {
		t.Errorf("bad visitor link: %d", a.code)
	}
}

func TestSiteLinkDomains(t *testing.T) {
	e := siteEnv(t)
	cases := map[string]string{
		"https://seller.test":            "https://seller.test?sg_t=T",
		"https://shop.seller.test/a?b=c": "https://shop.seller.test/a?b=c&sg_t=T",
		"https://notseller.test/":        "https://notseller.test/",
		"https://seller.test.evil/":      "https://seller.test.evil/",
	}
	for in, want := range cases {
		if got := e.tr.siteLink(in, "T"); got != want {
			t.Errorf("siteLink(%q) = %q, want %q", in, got, want)
		}
	}
	if _, err := url.Parse(e.tr.siteLink("https://seller.test/#x", "T")); err != nil {
		t.Error(err)
	}
	if !slices.Contains(e.tr.cfg.Site.LinkDomains, "seller.test") {
		t.Fatal("config")
	}
}

// TestSiteVisitRetryAfterRefusal: a view whose events the intake refuses
// (503) is not counted, so the beacon's retry counts it once and still
// makes the site.return the gap calls for.
func TestSiteVisitRetryAfterRefusal(t *testing.T) {
	e := siteEnv(t)
	if a := e.view(`{"v":"` + visitorA + `","u":"https://www.seller.test/contact","e":"ann@client.test"}`); a.code != http.StatusNoContent {
		t.Fatalf("first view: %d %s", a.code, a.body)
	}
	visitor := func() visitorRecord {
		t.Helper()
		var v visitorRecord
		if _, err := store.GetJSON(t.Context(), e.tr.records, e.tr.visitorKey(visitorA), &v); err != nil {
			t.Fatal(err)
		}
		return v
	}
	first := visitor()
	if first.Views != 1 {
		t.Fatalf("after one view: %d views", first.Views)
	}
	e.clk.Add(2 * defaultReturnGap)
	e.in.SetDown(true)
	page := `{"v":"` + visitorA + `","u":"https://www.seller.test/pricing"}`
	if a := e.view(page); a.code != http.StatusServiceUnavailable {
		t.Fatalf("view with the intake down: %d %s", a.code, a.body)
	}
	if v := visitor(); v.Views != 1 || !v.LastSeen.Equal(first.LastSeen) {
		t.Fatalf("a refused view was counted: %+v", v)
	}
	e.in.SetDown(false)
	if a := e.view(page); a.code != http.StatusNoContent {
		t.Fatalf("retry: %d %s", a.code, a.body)
	}
	if v := visitor(); v.Views != 2 || !v.LastSeen.Equal(e.clk.Now()) {
		t.Errorf("after the retry: %+v, want 2 views, last seen now", v)
	}
	if got := e.tr.statsNow().SiteViewsKnown; got != 2 {
		t.Errorf("known views counted %d, want 2", got)
	}
	returns := 0
	for _, ev := range e.in.Events() {
		if ev.Type == "site.return" {
			returns++
		}
	}
	if returns != 1 {
		t.Errorf("%d site.return events, want 1 (events %q)", returns, e.in.IDs())
	}
}
