package livechat_test

import (
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/cdproto/cdp"
	"github.com/chromedp/cdproto/page"
	"github.com/chromedp/chromedp"
	"github.com/chromedp/chromedp/kb"
)

// shop is a site of another (allowed) origin whose every page embeds the
// widget, and a gateway that allows it.
type shop struct {
	g    *gw
	site *httptest.Server
}

func newShop(t *testing.T, mutate func(cfg string) string) *shop {
	t.Helper()
	site := httptest.NewServer(nil)
	t.Cleanup(site.Close)
	cfg := strings.Replace(gwConfig, `allowed_origins: ["https://www.example.com"]`,
		`allowed_origins: ["https://www.example.com", "`+site.URL+`"]`, 1)
	if mutate != nil {
		cfg = mutate(cfg)
	}
	g := startGateway(t, cfg, boltStore(t), "test", nil)
	site.Config.Handler = http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/html; charset=utf-8")
		frame := "" // /two/…: a second page of the site beside it, as a second tab would be
		if strings.HasPrefix(r.URL.Path, "/two/") {
			frame = `<iframe id="tab-b" src="/contact" style="width:360px;height:520px;border:1px solid #999"></iframe>`
		}
		fmt.Fprintf(w, `<!doctype html><html><head><meta name="viewport" content="width=device-width, initial-scale=1">
<title>Shop</title></head><body><h1>A shop: %s</h1>%s
<script src="%s/in/chat/widget.js" data-channel="sales" async></script></body></html>`, r.URL.Path, frame, g.base)
	})
	return &shop{g: g, site: site}
}

// wsSpy runs in every document before its scripts: it keeps the page's
// last WebSocket in window.__sgws, and refuses new ones while
// window.__sgblock is true, so that a test can cut the widget's connection
// and keep it from reconnecting for a while.
const wsSpy = `(function () {
  var W = window.WebSocket;
  function S(u, p) {
    if (window.__sgblock) throw new Error("blocked by the test");
    var s = p === undefined ? new W(u) : new W(u, p);
    window.__sgws = s; return s;
  }
  S.prototype = W.prototype; S.OPEN = 1; S.CLOSED = 3; S.CONNECTING = 0; S.CLOSING = 2;
  window.WebSocket = S;
})();`

func addInitScript(src string) chromedp.Action[chromedp.Void] {
	return chromedp.Func(func(ctx context.Context, tg *chromedp.Target) error {
		_, err := cdp.Call(ctx, tg, page.AddScriptToEvaluateOnNewDocument, page.AddScriptToEvaluateOnNewDocumentParams{Source: src})
		return err
	})
}

// seqs is the widget log's sequence numbers, in the order shown.
const seqs = `Array.from(document.querySelectorAll("#sg-chat-log [data-seq]")).map(n => n.dataset.seq).join(",")`

// shot saves a screenshot of the tab under the test's temporary folder
// (and under $CHAT_SHOTS, when set, to look at).
func shot(t *testing.T, tab context.Context, name string) {
	t.Helper()
	b, err := chromedp.Run(tab, chromedp.FullScreenshot(100))
	if err != nil {
		t.Fatalf("screenshot %s: %v", name, err)
	}
	dir := os.Getenv("CHAT_SHOTS")
	if dir == "" {
		dir = t.TempDir()
	}
	if err := os.WriteFile(filepath.Join(dir, name+".png"), b, 0o644); err != nil {
		t.Fatal(err)
	}
}

// After a reload, and on another page of the site, the widget shows the
// open conversation's history; a dropped connection later resumes from
// the page's cursor: every message once, in order, none missing.
func TestBrowserWidgetHistoryAcrossPages(t *testing.T) {
	tab := browser(t)
	sh := newShop(t, nil)
	ag := sh.g.agent()
	step(t, tab, "first page: write",
		addInitScript(wsSpy),
		chromedp.Navigate(sh.site.URL+"/pricing"),
		chromedp.Click(chromedp.ID("sg-chat-button")),
		waitJS(`document.getElementById("sg-chat-status").textContent === "online"`),
		chromedp.SendKeys(chromedp.ID("sg-chat-input"), "Do you ship to Canada?"),
		chromedp.Click(chromedp.ID("sg-chat-send")),
		waitJS(`document.querySelector('#sg-chat-log .sg-visitor[data-seq="1"]') !== null`),
	)
	q := ag.expect("conversation")
	conv := q["conversation"].(map[string]any)["id"].(string)
	ag.send(map[string]any{"type": "message", "conversation_id": conv, "id": "r-1", "text": "Yes, we do."})
	ag.expect("ack")
	step(t, tab, "the reply arrives",
		waitJS(seqs+` === "1,2,3"`),
	)

	for _, nav := range []struct {
		what string
		a    chromedp.Action[chromedp.Void]
	}{
		{"another page", chromedp.Navigate(sh.site.URL + "/contact")},
		{"a reload", chromedp.Reload()},
	} {
		step(t, tab, nav.what+": the history is shown",
			nav.a,
			waitJS(`document.getElementById("sg-chat-status") && document.getElementById("sg-chat-status").textContent === "online"`),
			chromedp.Click(chromedp.ID("sg-chat-button")),
			waitJS(seqs+` === "1,2,3"`),
			waitJS(`document.querySelector('#sg-chat-log .sg-visitor').textContent === "Do you ship to Canada?"`),
			waitJS(`document.querySelector('#sg-chat-log .sg-agent').textContent === "Yes, we do."`),
		)
	}
	shot(t, tab, "widget-history-after-reload")

	// Cut the connection; the agent writes while the widget is away.
	step(t, tab, "cut the connection",
		chromedp.Evaluate[chromedp.Void](`window.__sgblock = true; window.__sgws.close()`),
		waitJS(`document.getElementById("sg-chat-status").textContent === "reconnecting…"`),
	)
	ag.send(map[string]any{"type": "message", "conversation_id": conv, "id": "r-2", "text": "Shipping is free."})
	ag.expect("ack")
	ag.send(map[string]any{"type": "message", "conversation_id": conv, "id": "r-3", "text": "Anything else?"})
	ag.expect("ack")
	step(t, tab, "reconnect: exactly what was missed",
		chromedp.Evaluate[chromedp.Void](`window.__sgblock = false`),
		waitJS(`document.getElementById("sg-chat-status").textContent === "online"`),
		waitJS(seqs+` === "1,2,3,4,5"`),
		chromedp.SendKeys(chromedp.ID("sg-chat-input"), "No, thanks"),
		chromedp.Click(chromedp.ID("sg-chat-send")),
		waitJS(seqs+` === "1,2,3,4,5,6"`),
		waitJS(`document.querySelectorAll("#sg-chat-log .sg-pending").length === 0`),
	)
}

// rect is an element's box in the viewport, as JSON.
func rect(sel string) string {
	return `JSON.stringify((function (r) { return {l: Math.round(r.left), t: Math.round(r.top), r: Math.round(r.right), b: Math.round(r.bottom)}; })(document.querySelector("` + sel + `").getBoundingClientRect()))`
}

type box struct{ L, T, R, B int }

func boxOf(t *testing.T, tab context.Context, sel string) box {
	t.Helper()
	s, err := chromedp.Run(tab, chromedp.Evaluate[string](rect(sel)))
	if err != nil {
		t.Fatal(err)
	}
	var b box
	if _, err := fmt.Sscanf(strings.NewReplacer(`{"l":`, "", `,"t":`, " ", `,"r":`, " ", `,"b":`, " ", "}", "").Replace(s), "%d %d %d %d", &b.L, &b.T, &b.R, &b.B); err != nil {
		t.Fatalf("rect %s: %v", s, err)
	}
	return b
}

// The Chat button stays where it is when the panel opens, and the panel
// fits the window, on a desktop and on a 375 px phone.
func TestBrowserWidgetLayout(t *testing.T) {
	tab := browser(t)
	sh := newShop(t, nil)
	for _, vp := range []struct {
		name string
		w, h int64
	}{{"desktop", 1280, 800}, {"phone", 375, 667}, {"short", 800, 400}} {
		step(t, tab, vp.name+": load",
			chromedp.EmulateViewport(vp.w, vp.h),
			chromedp.Navigate(sh.site.URL+"/"+vp.name),
			waitJS(`document.getElementById("sg-chat-status") && document.getElementById("sg-chat-status").textContent === "online"`),
		)
		closed := boxOf(t, tab, "#sg-chat-button")
		step(t, tab, vp.name+": open", chromedp.Click(chromedp.ID("sg-chat-button")), chromedp.WaitVisible(chromedp.ID("sg-chat-input")))
		opened := boxOf(t, tab, "#sg-chat-button")
		if closed != opened {
			t.Errorf("%s: the Chat button moved from %+v to %+v when the panel opened", vp.name, closed, opened)
		}
		panel := boxOf(t, tab, "#sg-chat-panel")
		if panel.L < 0 || panel.T < 0 || panel.R > int(vp.w) || panel.B > int(vp.h) {
			t.Errorf("%s: the panel %+v does not fit the %dx%d window", vp.name, panel, vp.w, vp.h)
		}
		send := boxOf(t, tab, "#sg-chat-send")
		if send.R > int(vp.w) || send.B > int(vp.h) || send.T < 0 {
			t.Errorf("%s: the Send button %+v is outside the window", vp.name, send)
		}
		shot(t, tab, "widget-open-"+vp.name)
	}
}

// "typing…" goes away as soon as a message from the typing side arrives,
// not 3 s later.
func TestBrowserWidgetTypingClears(t *testing.T) {
	tab := browser(t)
	sh := newShop(t, nil)
	ag := sh.g.agent()
	step(t, tab, "write",
		chromedp.Navigate(sh.site.URL+"/"),
		chromedp.Click(chromedp.ID("sg-chat-button")),
		waitJS(`document.getElementById("sg-chat-status").textContent === "online"`),
		chromedp.SendKeys(chromedp.ID("sg-chat-input"), "Hello"),
		chromedp.Click(chromedp.ID("sg-chat-send")),
		waitJS(`document.querySelector('#sg-chat-log .sg-visitor[data-seq="1"]') !== null`),
	)
	conv := ag.expect("conversation")["conversation"].(map[string]any)["id"].(string)
	ag.send(map[string]any{"type": "accept", "conversation_id": conv})
	ag.expect("history")
	ag.send(map[string]any{"type": "typing", "conversation_id": conv})
	step(t, tab, "the agent types", waitJS(`document.getElementById("sg-chat-status").textContent === "typing…"`))
	ag.send(map[string]any{"type": "message", "conversation_id": conv, "id": "r-1", "text": "Hi there"})
	ag.expect("ack")
	ctx, cancel := context.WithTimeout(tab, time.Second)
	defer cancel()
	if err := chromedp.Do(ctx,
		waitJS(`document.querySelector("#sg-chat-log .sg-agent") !== null && document.getElementById("sg-chat-status").textContent === "online"`),
	); err != nil {
		st, _ := chromedp.Run(tab, chromedp.Evaluate[string](`document.getElementById("sg-chat-status").textContent`))
		t.Fatalf("a second after the agent's message the status is %q: %v", st, err)
	}
}

// A visitor who writes first and gives an email afterwards (typed in the
// widget's field, Enter) without writing again: the gateway learns the
// email at once, and the conversation's next event (the agent's
// acceptance) reaches the existing lead of that email.
func TestBrowserWidgetIdentifyLater(t *testing.T) {
	tab := browser(t)
	sh := newShop(t, nil)
	lead := sh.g.createLead("ann@client.test")
	ag := sh.g.agent()
	step(t, tab, "write without giving anything",
		chromedp.Navigate(sh.site.URL+"/"),
		chromedp.Click(chromedp.ID("sg-chat-button")),
		waitJS(`document.getElementById("sg-chat-status").textContent === "online"`),
		chromedp.SendKeys(chromedp.ID("sg-chat-input"), "Hello"),
		chromedp.Click(chromedp.ID("sg-chat-send")),
		waitJS(`document.querySelector('#sg-chat-log .sg-visitor[data-seq="1"]') !== null`),
	)
	conv := ag.expect("conversation")["conversation"].(map[string]any)["id"].(string)
	step(t, tab, "then the email",
		chromedp.SendKeys(chromedp.ID("sg-chat-email"), "Ann@Client.test"+kb.Enter),
		waitJS(`document.getElementById("sg-chat-email") === null && document.getElementById("sg-chat-name") !== null`),
	)
	ag.expectWhere("conversation", func(f map[string]any) bool {
		c := f["conversation"].(map[string]any)
		return c["id"] == conv && c["email"] == "ann@client.test"
	})
	ag.send(map[string]any{"type": "accept", "conversation_id": conv})
	sh.g.applied("chat:"+conv+":accepted", lead.ID)
	rec, decisions, err := sh.g.g.Store().GetEvent(context.Background(), "chat:"+conv+":accepted")
	if err != nil {
		t.Fatal(err)
	}
	if len(decisions) != 1 || decisions[0].ItemID != lead.ID {
		t.Fatalf("chat.accepted (subject %+v) went to %+v, want the lead %s", rec.Event.Subject, decisions, lead.ID)
	}
}

// Two pages of the site open at once (here a page and, in a frame, a
// second one: they share the widget's saved state as two tabs do). A
// message written in the first while it is offline stays saved while the
// second writes and is acknowledged, and reaches the conversation once:
// the second page sends it too. It used to be lost: the second page's save
// overwrote the saved outbox, and the first page, reloaded before it could
// send, found nothing to send.
func TestBrowserWidgetTwoPagesKeepEachOthersMessages(t *testing.T) {
	tab := browser(t)
	sh := newShop(t, nil)
	const b = `document.getElementById("tab-b").contentWindow`
	status := func(win string) string {
		return win + `.document.getElementById("sg-chat-status") && ` + win + `.document.getElementById("sg-chat-status").textContent`
	}
	shown := func(win string) string { // the visitor messages the conversation shows, stored ones only
		return `Array.from(` + win + `.document.querySelectorAll("#sg-chat-log .sg-visitor[data-seq]")).map(n => n.textContent)`
	}
	once := func(win, text string) string {
		return shown(win) + `.filter(s => s === ` + fmt.Sprintf("%q", text) + `).length === 1`
	}
	step(t, tab, "a first page: the visitor writes",
		addInitScript(wsSpy),
		chromedp.Navigate(sh.site.URL+"/pricing"),
		waitJS(status("window")+` === "online"`),
		chromedp.Evaluate[chromedp.Void](`window.StagegateChat.send("first")`),
		waitJS(once("window", "first")),
	)
	step(t, tab, "two pages of the site open",
		chromedp.Navigate(sh.site.URL+"/two/pricing"),
		waitJS(status("window")+` === "online"`),
		waitJS(status(b)+` === "online"`),
		waitJS(once(b, "first")),
	)
	step(t, tab, "the first page offline writes",
		chromedp.Evaluate[chromedp.Void](`window.__sgblock = true; window.__sgws.close()`),
		waitJS(status("window")+` === "reconnecting…"`),
		chromedp.Evaluate[chromedp.Void](`window.StagegateChat.send("written offline in A")`),
		waitJS(`document.querySelectorAll("#sg-chat-log .sg-pending").length === 1`),
	)
	step(t, tab, "the second page writes; the first one's message goes with it",
		chromedp.Evaluate[chromedp.Void](b+`.StagegateChat.send("written in B")`),
		waitJS(once(b, "written in B")),
		waitJS(once(b, "written offline in A")),
		waitJS(b+`.StagegateChat.state().outbox.length === 0`),
	)
	shot(t, tab, "widget-two-pages")
	step(t, tab, "reloaded, both pages show every message once",
		chromedp.Reload(),
		waitJS(status("window")+` === "online"`),
		waitJS(status(b)+` === "online"`),
		waitJS(once("window", "written offline in A")),
		waitJS(`window.StagegateChat.state().outbox.length === 0`),
	)
	for _, win := range []string{"window", b} {
		got, err := chromedp.Run(tab, chromedp.Evaluate[[]string](shown(win)))
		if err != nil {
			t.Fatal(err)
		}
		if want := []string{"first", "written in B", "written offline in A"}; !slices.Equal(slices.Sorted(slices.Values(got)), want) {
			t.Errorf("%s shows %q, want each of %q once", win, got, want)
		}
	}
}
