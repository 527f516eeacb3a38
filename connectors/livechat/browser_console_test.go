package livechat_test

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
)

// A wrong agent token: the console says why it is not connected, and
// keeps saying it after the gateway closed the connection.
func TestBrowserConsoleWrongToken(t *testing.T) {
	tab := browser(t)
	g := startGateway(t, gwConfig, boltStore(t), "test", nil)
	step(t, tab, "connect with a wrong token",
		chromedp.Navigate(g.base+"/in/chat/agent"),
		chromedp.SendKeys(chromedp.ID("token"), "not-the-token-0123456789"),
		chromedp.Click(chromedp.ID("connect")),
		waitJS(`document.getElementById("status").textContent.includes("unknown agent token")`),
		// The gateway closes the connection right after the error.
		chromedp.Sleep(time.Second),
	)
	status, err := chromedp.Run(tab, chromedp.Evaluate[string](`document.getElementById("status").textContent`))
	if err != nil {
		t.Fatal(err)
	}
	if !containsAll(status, "unknown agent token", "not connected") {
		t.Fatalf("status %q: the reason is gone", status)
	}
	shot(t, tab, "console-wrong-token")
	// The right token then connects.
	step(t, tab, "connect with the right token",
		chromedp.Evaluate[chromedp.Void](`document.getElementById("token").value = ""`),
		chromedp.SendKeys(chromedp.ID("token"), aliceToken),
		chromedp.Click(chromedp.ID("connect")),
		waitJS(`document.getElementById("status").textContent === "connected as alice"`),
	)
}

func containsAll(s string, subs ...string) bool {
	for _, x := range subs {
		if !strings.Contains(s, x) {
			return false
		}
	}
	return true
}

// fits reports (as JS) whether every element of sel is inside the
// window, at least minW pixels wide.
func fits(sel string, minW int) string {
	return fmt.Sprintf(`Array.from(document.querySelectorAll(%q)).every(function (n) {
  var r = n.getBoundingClientRect();
  return r.width >= %d && r.left >= 0 && r.top >= 0 && r.right <= innerWidth && r.bottom <= innerHeight;
}) && document.querySelectorAll(%q).length > 0`, sel, minW, sel)
}

// The console works on a 375 px phone: no horizontal scrolling; the queue,
// then the conversation with its reply box and buttons, and back. Two
// conversations of one contact can be told apart in the queue, and
// "visitor is typing…" ends with the visitor's message.
func TestBrowserConsolePhone(t *testing.T) {
	tab := browser(t)
	g := startGateway(t, gwConfig, boltStore(t), "test", nil)
	for i := range 2 { // one contact, two browsers: same name and email, same words
		v, _ := g.visitor(map[string]any{"name": "Ann Example", "email": "ann@client.test"})
		v.say(fmt.Sprintf("m-%d", i), "Hello, is anyone there?")
	}
	noScroll := waitJS(`document.documentElement.scrollWidth <= innerWidth`)
	step(t, tab, "connect on a phone",
		chromedp.EmulateViewport(375, 667),
		chromedp.Navigate(g.base+"/in/chat/agent"),
		chromedp.SendKeys(chromedp.ID("token"), aliceToken),
		chromedp.Click(chromedp.ID("connect")),
		waitJS(`document.getElementById("status").textContent === "connected as alice"`),
		waitJS(`document.querySelectorAll("#queue li.waiting").length === 2`),
		noScroll,
		waitJS(fits("#token", 100)),
		waitJS(fits("#connect", 20)),
		waitJS(fits("#status", 20)),
		waitJS(fits("#queue li", 300)),
	)
	items, err := chromedp.Run(tab, chromedp.Evaluate[[]string](`Array.from(document.querySelectorAll("#queue li")).map(n => n.textContent)`))
	if err != nil {
		t.Fatal(err)
	}
	if items[0] == items[1] {
		t.Errorf("two conversations look the same in the queue: %q", items[0])
	}
	shot(t, tab, "console-phone-queue")
	step(t, tab, "open a conversation",
		chromedp.Click(chromedp.CSS("#queue li.waiting")),
		waitJS(`document.querySelector("#log .msg.visitor") !== null`),
		noScroll,
		waitJS(fits("#accept", 20)),
		waitJS(fits("#reply", 200)),
		waitJS(fits("#send", 20)),
		waitJS(fits("#log", 300)),
		waitJS(fits("#back", 20)),
	)
	shot(t, tab, "console-phone-chat")
	step(t, tab, "accept and reply",
		chromedp.Click(chromedp.ID("accept")),
		waitJS(`document.querySelector("#log .msg.system") !== null`),
		chromedp.SendKeys(chromedp.ID("reply"), "Yes, hello!"),
		chromedp.Click(chromedp.ID("send")),
		waitJS(`document.querySelector("#log .msg.agent[data-seq]") !== null`),
		chromedp.Click(chromedp.ID("back")),
		waitJS(fits("#queue li", 300)),
	)
}

// "visitor is typing…" goes away with the visitor's message.
func TestBrowserConsoleTypingClears(t *testing.T) {
	tab := browser(t)
	g := startGateway(t, gwConfig, boltStore(t), "test", nil)
	v, _ := g.visitor(map[string]any{"name": "Ann"})
	v.say("m-1", "Hello")
	step(t, tab, "open the conversation",
		chromedp.Navigate(g.base+"/in/chat/agent"),
		chromedp.SendKeys(chromedp.ID("token"), aliceToken),
		chromedp.Click(chromedp.ID("connect")),
		chromedp.Click(chromedp.CSS("#queue li.waiting")),
		waitJS(`document.querySelector("#log .msg.visitor") !== null`),
	)
	v.send(map[string]any{"type": "typing"})
	step(t, tab, "the visitor types", waitJS(`document.getElementById("typing").textContent !== ""`))
	v.say("m-2", "Are you there?")
	ctx, cancel := context.WithTimeout(tab, time.Second)
	defer cancel()
	if err := chromedp.Do(ctx, waitJS(`document.querySelectorAll("#log .msg.visitor").length === 2 && document.getElementById("typing").textContent === ""`)); err != nil {
		st, _ := chromedp.Run(tab, chromedp.Evaluate[string](`document.getElementById("typing").textContent`))
		t.Fatalf("a second after the visitor's message the console shows %q: %v", st, err)
	}
	shot(t, tab, "console-desktop")
}

// Beside a conversation the console lists the visitor's CRM items, each a
// link to its card on the board.
func TestBrowserConsoleShowsVisitorItems(t *testing.T) {
	tab := browser(t)
	g := startGateway(t, gwConfig, boltStore(t), "test", nil)
	lead := g.createLead("cleo@client.test")
	v, _ := g.visitor(map[string]any{"name": "Cleo", "email": "cleo@client.test"})
	conv := v.say("m-1", "Hello")["conversation_id"].(string)
	g.applied("chat:"+conv+":started", lead.ID)
	step(t, tab, "open the conversation",
		chromedp.Navigate(g.base+"/in/chat/agent"),
		chromedp.SendKeys(chromedp.ID("token"), aliceToken),
		chromedp.Click(chromedp.ID("connect")),
		chromedp.Click(chromedp.CSS("#queue li.waiting")),
		waitJS(`document.querySelector("#items a") !== null`),
	)
	href, err := chromedp.Run(tab, chromedp.Evaluate[string](`document.querySelector("#items a").href`))
	if err != nil {
		t.Fatal(err)
	}
	if want := g.base + "/ui/#/item/" + lead.ID; href != want {
		t.Fatalf("item link %q, want %q", href, want)
	}
	shot(t, tab, "console-visitor-items")
}
