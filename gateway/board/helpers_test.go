package board_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/cdproto/input"
	"github.com/chromedp/chromedp"

	"github.com/stagegate/stagegate/config"
	"github.com/stagegate/stagegate/gateway"
	"github.com/stagegate/stagegate/gateway/gatewaytest"
	browsertest "github.com/stagegate/stagegate/internal/testutil/browser"
)

const testToken = "test-token-0123456789"

// boardConfig has a pipeline with triggers behind and ahead, a webhook
// action (TARGET) on "engaged", and two final stages; STORE is the store.
const boardConfig = `
listen: 127.0.0.1:0
store: STORE
api:
  tokens: ["` + testToken + `"]
actions:
  allow_private: true
  max_attempts: 1
pipelines:
  - id: sales
    name: Sales
    stages:
      - id: new
      - id: contacted
        triggers:
          - {type: email.clicked, url: "https://example.com/pricing", name: pricing click}
          - {type: crm.called, name: called}
      - id: engaged
        triggers:
          - {type: crm.engaged, name: engaged}
        actions:
          - {type: webhook, url: "TARGET", name: notify crm}
      - id: won
        final: success
        triggers:
          - {type: crm.invoice_paid, name: paid}
      - id: lost
        final: failure
connectors:
  - name: forms
    type: forms
    forms:
      - id: contact
`

// startGateway starts a gateway on the config with the given store section
// and webhook target.
func startGateway(t *testing.T, storeYAML, target, instance string) *gatewaytest.Running {
	t.Helper()
	src := strings.NewReplacer("STORE", storeYAML, "TARGET", target).Replace(boardConfig)
	cfg, err := config.Parse([]byte(src), gateway.Kinds, gateway.ActionTypes(), func(string) (string, bool) { return "", false })
	if err != nil {
		t.Fatalf("config: %v", err)
	}
	return gatewaytest.Start(t, cfg, gateway.Options{Instance: instance, ShutdownTimeout: 5 * time.Second})
}

// call sends an API request with the test token and decodes the answer.
func call(t *testing.T, base, method, path string, body any) map[string]any {
	t.Helper()
	var rd io.Reader
	if body != nil {
		b, _ := json.Marshal(body)
		rd = bytes.NewReader(b)
	}
	req, _ := http.NewRequest(method, base+path, rd)
	req.Header.Set("Authorization", "Bearer "+testToken)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, path, err)
	}
	defer resp.Body.Close()
	raw, _ := io.ReadAll(resp.Body)
	if resp.StatusCode >= 300 {
		t.Fatalf("%s %s: %d %s", method, path, resp.StatusCode, raw)
	}
	var out map[string]any
	if err := json.Unmarshal(raw, &out); err != nil {
		t.Fatalf("%s %s: %v: %s", method, path, err, raw)
	}
	return out
}

// createItem creates an item at "new" and returns its id.
func createItem(t *testing.T, base, name, email, responsible string) string {
	t.Helper()
	it := call(t, base, "POST", "/api/v1/items", map[string]any{
		"pipeline": "sales", "responsible": responsible, "contact": map[string]any{"email": email, "name": name},
	})
	return it["id"].(string)
}

// postEvent posts a CRM event and waits until the engine applied it.
func postEvent(t *testing.T, base, id, typ, email string) map[string]any {
	t.Helper()
	return call(t, base, "POST", "/api/v1/events?wait=5s", map[string]any{
		"id": id, "type": typ, "subject": map[string]any{"email": email},
	})
}

// browser starts the tests' headless Chromium (1280 × 900).
func browser(t *testing.T) context.Context {
	t.Helper()
	return browsertest.Start(t, chromedp.WindowSize(1280, 900))
}

// step runs actions in a tab with a time limit.
func step(t *testing.T, tab context.Context, what string, actions ...chromedp.Action[chromedp.Void]) {
	t.Helper()
	ctx, cancel := context.WithTimeout(tab, 20*time.Second)
	defer cancel()
	if err := chromedp.Do(ctx, actions...); err != nil {
		shot(t, tab, "failed-"+strings.ReplaceAll(what, " ", "-"))
		t.Fatalf("%s: %v", what, err)
	}
}

// waitJS waits until a JavaScript expression is truthy.
func waitJS(expr string) chromedp.Action[chromedp.Void] {
	return chromedp.Func(func(ctx context.Context, tg *chromedp.Target) error {
		_, err := chromedp.Poll[chromedp.Void](expr, chromedp.WithPollingInterval(20*time.Millisecond))(ctx, tg)
		return err
	})
}

// eval evaluates a JavaScript expression in the tab.
func eval[T any](t *testing.T, tab context.Context, expr string) T {
	t.Helper()
	v, err := chromedp.Run(tab, chromedp.Evaluate[T](expr))
	if err != nil {
		t.Fatalf("eval %s: %v", expr, err)
	}
	return v
}

// shotDir is where screenshots go: $BOARD_SHOTS, else a new temporary
// directory that outlives the test (CI keeps it as an artifact).
var shotDir string

func shot(t *testing.T, tab context.Context, name string) {
	t.Helper()
	if shotDir == "" {
		shotDir = os.Getenv("BOARD_SHOTS")
		if shotDir == "" {
			d, err := os.MkdirTemp("", "stagegate-board-shots-")
			if err != nil {
				t.Logf("screenshot %s: %v", name, err)
				return
			}
			shotDir = d
		}
		if err := os.MkdirAll(shotDir, 0o755); err != nil {
			t.Logf("screenshot %s: %v", name, err)
			return
		}
	}
	ctx, cancel := context.WithTimeout(tab, 10*time.Second)
	defer cancel()
	png, err := chromedp.Run(ctx, chromedp.CaptureScreenshot())
	if err != nil {
		t.Logf("screenshot %s: %v", name, err)
		return
	}
	path := filepath.Join(shotDir, t.Name()+"-"+name+".png")
	path = strings.ReplaceAll(path, "/"+t.Name(), "/"+strings.ReplaceAll(t.Name(), "/", "_"))
	if err := os.WriteFile(path, png, 0o644); err != nil {
		t.Logf("screenshot %s: %v", name, err)
		return
	}
	t.Logf("screenshot: %s", path)
}

// signIn opens the board and signs in with the test token as actor.
func signIn(t *testing.T, tab context.Context, base, actor string) {
	t.Helper()
	step(t, tab, "sign in",
		chromedp.Navigate(base+"/ui/"),
		chromedp.WaitVisible(chromedp.ID("token")),
		chromedp.SendKeys(chromedp.ID("token"), testToken),
		chromedp.SendKeys(chromedp.ID("actor"), actor),
		chromedp.Click(chromedp.ID("signin-button")),
		chromedp.WaitVisible(chromedp.ID("columns")),
		waitJS(`document.getElementById("live").textContent === "live"`),
	)
}

// cardStage is the expression of the column a card is rendered in.
func cardStage(id string) string {
	return fmt.Sprintf(`(function(){var c=document.querySelector('.card[data-id=%q]');return c?c.closest('.column').getAttribute('data-stage'):''})()`, id)
}

// drag drags the card of an item onto a stage's column with the mouse.
func drag(t *testing.T, tab context.Context, id, stage string) {
	t.Helper()
	type pt struct{ X, Y float64 }
	from := eval[pt](t, tab, fmt.Sprintf(`(function(){var r=document.querySelector('.card[data-id=%q]').getBoundingClientRect();return {X:r.x+r.width/2,Y:r.y+r.height/2}})()`, id))
	to := eval[pt](t, tab, fmt.Sprintf(`(function(){var r=document.querySelector('.column[data-stage=%q] .cards').getBoundingClientRect();return {X:r.x+r.width/2,Y:r.y+Math.min(r.height/2,30)}})()`, stage))
	pressed := func(p *input.DispatchMouseEventParams) {
		p.Button = input.MouseButtonLeft
		p.Buttons = 1
		p.ClickCount = 1
	}
	acts := []chromedp.Action[chromedp.Void]{chromedp.MouseEvent(chromedp.MousePressed, from.X, from.Y, pressed)}
	for i := 1; i <= 10; i++ {
		x := from.X + (to.X-from.X)*float64(i)/10
		y := from.Y + (to.Y-from.Y)*float64(i)/10
		acts = append(acts, chromedp.MouseEvent(chromedp.MouseMoved, x, y, pressed))
	}
	acts = append(acts, chromedp.MouseEvent(chromedp.MouseReleased, to.X, to.Y, pressed))
	step(t, tab, "drag "+id+" to "+stage, acts...)
}

// setValue sets a form control's value as a user would, firing event.
func setValue(id, value, event string) chromedp.Action[chromedp.Void] {
	return chromedp.Evaluate[chromedp.Void](fmt.Sprintf(
		`(function(){var e=document.getElementById(%q);e.value=%q;e.dispatchEvent(new Event(%q))})()`, id, value, event))
}

// clickJS waits for an element and clicks it in the same evaluation, so a
// re-render between finding and clicking it cannot make the click miss.
func clickJS(sel string) chromedp.Action[chromedp.Void] {
	return waitJS(fmt.Sprintf(`(function(){var e=document.querySelector(%q);if(!e)return false;e.click();return true})()`, sel))
}
