package livechat_test

import (
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	browsertest "github.com/stagegate/stagegate/internal/testutil/browser"
)

// browser starts the tests' headless Chromium.
func browser(t *testing.T) context.Context {
	t.Helper()
	return browsertest.Start(t)
}

// step runs actions in a tab with a time limit.
func step(t *testing.T, tab context.Context, what string, actions ...chromedp.Action[chromedp.Void]) {
	t.Helper()
	ctx, cancel := context.WithTimeout(tab, 20*time.Second)
	defer cancel()
	if err := chromedp.Do(ctx, actions...); err != nil {
		t.Fatalf("%s: %v", what, err)
	}
}

// waitJS waits until a JavaScript expression is truthy.
func waitJS(expr string) chromedp.Action[chromedp.Void] {
	return chromedp.Func(func(ctx context.Context, tg *chromedp.Target) error {
		_, err := chromedp.Poll[chromedp.Void](expr, chromedp.WithPollingInterval(50*time.Millisecond))(ctx, tg)
		return err
	})
}

// A real browser: a page of another (allowed) origin embeds the widget;
// the visitor writes; the agent console in a second tab accepts and
// replies; the widget shows the reply, and the item moved. The demo page
// works too.
func TestBrowserWidgetAndConsole(t *testing.T) {
	tab1 := browser(t)
	site := httptest.NewServer(nil) // its URL names the allowed origin; the handler is set below
	defer site.Close()
	cfg := strings.Replace(gwConfig, `allowed_origins: ["https://www.example.com"]`,
		`allowed_origins: ["https://www.example.com", "`+site.URL+`"]`, 1)
	g := startGateway(t, cfg, boltStore(t), "test", nil)
	site.Config.Handler = http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "text/html; charset=utf-8")
		fmt.Fprintf(w, `<!doctype html><html><head><title>Shop</title></head><body><h1>A shop</h1>
<script src="%s/in/chat/widget.js" data-channel="sales" async></script></body></html>`, g.base)
	})

	step(t, tab1, "open the shop page and the widget",
		chromedp.Navigate(site.URL),
		chromedp.Click(chromedp.ID("sg-chat-button")),
		chromedp.WaitVisible(chromedp.ID("sg-chat-input")),
		waitJS(`document.getElementById("sg-chat-status").textContent === "online"`),
		chromedp.SendKeys(chromedp.ID("sg-chat-name"), "Ann"),
		chromedp.SendKeys(chromedp.ID("sg-chat-input"), "Hello, I need the Price list"),
		chromedp.Click(chromedp.ID("sg-chat-send")),
		waitJS(`document.querySelector('#sg-chat-log .sg-visitor[data-seq="1"]') !== null`),
		waitJS(`window.StagegateChat.state().outbox.length === 0`),
	)
	token, err := chromedp.Run(tab1, chromedp.Evaluate[string](`window.StagegateChat.state().token`))
	if err != nil {
		t.Fatal(err)
	}
	visitorID := strings.Split(token, ".")[1]

	tab2, cancel := chromedp.NewContext(tab1)
	defer cancel()
	step(t, tab2, "agent console: connect, accept, reply",
		chromedp.Navigate(g.base+"/in/chat/agent"),
		chromedp.SendKeys(chromedp.ID("token"), aliceToken),
		chromedp.Click(chromedp.ID("connect")),
		chromedp.WaitVisible(chromedp.CSS("#queue li.waiting")),
		waitJS(`document.querySelector("#queue li.waiting").textContent.includes("Ann")`),
		chromedp.Click(chromedp.CSS("#queue li.waiting")),
		chromedp.WaitVisible(chromedp.ID("accept")),
		waitJS(`document.querySelector("#log .msg.visitor") !== null`),
		chromedp.Click(chromedp.ID("accept")),
		waitJS(`document.querySelector("#log .msg.system") !== null`),
		chromedp.SendKeys(chromedp.ID("reply"), "Hi Ann! Here it comes."),
		chromedp.Click(chromedp.ID("send")),
		waitJS(`document.querySelector("#log .msg.agent[data-seq]") !== null`),
	)
	step(t, tab1, "the widget shows the reply",
		waitJS(`Array.from(document.querySelectorAll("#sg-chat-log .sg-agent")).some(n => n.textContent === "Hi Ann! Here it comes.")`),
		waitJS(`document.querySelector("#sg-chat-log .sg-system") !== null`),
	)
	it := g.item(visitorID)
	deadline := time.Now().Add(10 * time.Second)
	for it.Stage != "asked_price" && time.Now().Before(deadline) {
		time.Sleep(50 * time.Millisecond)
		it, _ = g.g.Store().GetItem(context.Background(), it.ID)
	}
	if it.Stage != "asked_price" {
		t.Fatalf("item at %q, want asked_price", it.Stage)
	}

	// The demo page, served by the gateway itself, embeds a working widget.
	tab3, cancel3 := chromedp.NewContext(tab1)
	defer cancel3()
	step(t, tab3, "demo page",
		chromedp.Navigate(g.base+"/in/chat/demo"),
		chromedp.Click(chromedp.ID("sg-chat-button")),
		waitJS(`document.getElementById("sg-chat-status").textContent === "online"`),
		chromedp.SendKeys(chromedp.ID("sg-chat-input"), "hi from the demo"),
		chromedp.Click(chromedp.ID("sg-chat-send")),
		waitJS(`document.querySelector('#sg-chat-log .sg-visitor[data-seq="1"]') !== null`),
	)
}
