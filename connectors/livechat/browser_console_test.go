package livechat_test

import (
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
