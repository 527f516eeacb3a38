package board_test

import (
	"fmt"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
	"github.com/chromedp/chromedp/kb"

	"github.com/stagegate/stagegate/internal/testutil/redisserver"
)

// A real browser on one gateway: sign in; an event posted through the API
// moves a card on the open board without a reload; a drag moves an item
// and its timeline shows the actor; a failed action's Retry works; the
// drawer explains an event that did not move the item; an unmatched event
// becomes a lead; the failed and health pages render; the board is usable
// at 375 px.
func TestBrowserBoard(t *testing.T) {
	tab := browser(t)
	var fail atomic.Bool
	fail.Store(true)
	var hits atomic.Int32
	target := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		hits.Add(1)
		if fail.Load() {
			http.Error(w, "crm down", http.StatusServiceUnavailable)
			return
		}
		w.WriteHeader(http.StatusNoContent)
	}))
	defer target.Close()
	g := startGateway(t, "{driver: bolt, path: "+filepath.Join(t.TempDir(), "sg.db")+"}", target.URL+"/hook", "a")
	ann := createItem(t, g.Base, "Ann Lee", "ann@client.test", "bob")
	createItem(t, g.Base, "Ben Ode", "ben@client.test", "carol")

	step(t, tab, "a wrong token is refused",
		chromedp.Navigate(g.Base+"/ui/"),
		chromedp.WaitVisible(chromedp.ID("token")),
		chromedp.SendKeys(chromedp.ID("token"), "wrong-token-123"),
		chromedp.Click(chromedp.ID("signin-button")),
		waitJS(`document.getElementById("signin-error").textContent.includes("not one of the gateway's API tokens")`),
	)
	shot(t, tab, "00-sign-in-refused")
	signIn(t, tab, g.Base, "alice")
	step(t, tab, "the board shows the cards and the stage rules",
		waitJS(fmt.Sprintf(`%s === "new"`, cardStage(ann))),
		waitJS(`document.querySelectorAll(".column").length === 5`),
		waitJS(`document.querySelector('.column[data-stage="contacted"] .rules').textContent.includes("clicks a link starting with https://example.com/pricing — human clicks only")`),
		waitJS(`document.querySelector('.column[data-stage="engaged"] .rules').textContent.includes("Sends the stage entry (POST) to `+target.URL+`/hook")`),
		waitJS(`document.querySelector('.column[data-stage="won"] .final.success') !== null`),
		waitJS(`document.querySelector('.column[data-stage="new"] .count').textContent === "2"`),
	)
	if href := eval[string](t, tab, `location.href`); strings.Contains(href, testToken) {
		t.Fatalf("the token is in the URL: %s", href)
	}
	if got := eval[string](t, tab, `sessionStorage.getItem("stagegate.token")`); got != testToken {
		t.Fatalf("sessionStorage token = %q", got)
	}
	shot(t, tab, "01-board")

	// Live: an event moves the card without a reload.
	eval[bool](t, tab, `window.__noReload = true`)
	start := time.Now()
	postEvent(t, g.Base, "call-1", "crm.called", "ann@client.test")
	step(t, tab, "the card moves live", waitJS(fmt.Sprintf(`%s === "contacted"`, cardStage(ann))))
	took := time.Since(start)
	t.Logf("card moved %v after the event was posted", took)
	if took > 2*time.Second {
		t.Errorf("the card moved %v after the event, want within a second or so", took)
	}
	if !eval[bool](t, tab, `window.__noReload === true`) {
		t.Fatal("the page was reloaded")
	}
	shot(t, tab, "02-moved-live")

	// Filter by responsible and text.
	step(t, tab, "filters",
		setValue("f-resp", "carol", "change"),
		waitJS(fmt.Sprintf(`document.querySelector('.card[data-id=%q]') === null && document.querySelectorAll(".card").length === 1`, ann)),
		setValue("f-resp", "", "change"),
		chromedp.SendKeys(chromedp.ID("f-text"), "ann@"),
		waitJS(fmt.Sprintf(`document.querySelector('.card[data-id=%q]') !== null && document.querySelectorAll(".card").length === 1`, ann)),
		setValue("f-text", "", "input"),
		waitJS(`document.querySelectorAll(".card").length === 2`),
	)

	// Drag to "engaged": a manual move as alice; the stage's webhook runs
	// (and fails: the target answers 503, max_attempts is 1).
	drag(t, tab, ann, "engaged")
	step(t, tab, "the dragged card is at engaged",
		waitJS(fmt.Sprintf(`%s === "engaged"`, cardStage(ann))),
		waitJS(`document.getElementById("toast").textContent === "Moved to engaged as alice"`))
	it := call(t, g.Base, "GET", "/api/v1/items/"+ann, nil)
	if it["stage"] != "engaged" {
		t.Fatalf("item at %v after the drag, want engaged", it["stage"])
	}
	step(t, tab, "the drawer: timeline with the actor, the failed action",
		// Found and clicked in one evaluation: the live update of the move
		// can redraw the card between chromedp's query and its click
		// ("Could not find node with given id").
		clickJS(fmt.Sprintf(`.card[data-id=%q]`, ann)),
		chromedp.WaitVisible(chromedp.ID("timeline")),
		waitJS(`Array.from(document.querySelectorAll("#timeline li.move")).some(li => li.textContent.includes("contacted → engaged") && li.querySelector(".actor") && li.querySelector(".actor").textContent === "alice")`),
		waitJS(`document.getElementById("drawer-title").textContent === "Ann Lee"`),
		waitJS(`document.querySelector('#item-actions .action-row[data-status="failed"]') !== null`),
	)
	shot(t, tab, "03-drawer-failed-action")

	// Retry the failed action from the drawer, with the target up again.
	fail.Store(false)
	step(t, tab, "retry the failed action",
		clickJS(`#item-actions .action-row[data-status="failed"] button.retry`),
		waitJS(`document.querySelector('#item-actions .action-row[data-status="done"]') !== null`),
	)
	if hits.Load() < 2 {
		t.Fatalf("target hit %d times, want the failed attempt and the retry", hits.Load())
	}
	shot(t, tab, "04-drawer-retried")

	// A move's event explains itself: the call that moved Ann to contacted.
	step(t, tab, "the move's event, explained",
		clickJS(`#timeline button.explain-toggle[data-event="api:call-1"]`),
		waitJS(`Array.from(document.querySelectorAll(".explain .decisions li.won")).some(li => li.textContent.includes("“called”") && li.textContent.includes("fired"))`),
	)

	// A non-move: the same kind of call again, with Ann at engaged — the
	// trigger's stage is behind her. The drawer lists it live and says why.
	postEvent(t, g.Base, "call-2", "crm.called", "ann@client.test")
	step(t, tab, "the drawer explains a non-move",
		waitJS(`document.querySelector('#timeline li.nonmove button.explain-toggle[data-event="api:call-2"]') !== null`),
		clickJS(`#timeline li.nonmove button.explain-toggle[data-event="api:call-2"]`),
		waitJS(`Array.from(document.querySelectorAll(".explain")).some(b => !b.hidden && b.textContent.includes("Did not move the item (it stayed at engaged)") && b.querySelector("li.stage_behind") && b.querySelector("li.stage_behind").textContent.includes("behind"))`),
		waitJS(`Array.from(document.querySelectorAll(".explain pre.raw")).some(p => p.textContent.includes("call-2"))`),
	)
	shot(t, tab, "05-drawer-non-move")
	step(t, tab, "close the drawer with Escape",
		chromedp.KeyEvent("\x1b"),
		waitJS(`document.getElementById("drawer").hidden`),
	)

	// Keyboard: Alt+→ on a focused card moves it one stage.
	step(t, tab, "keyboard move",
		focusCard(ann),
		chromedp.KeyEvent(kb.ArrowRight, chromedp.KeyModifiers(chromedp.ModifierAlt)),
		waitJS(fmt.Sprintf(`%s === "won"`, cardStage(ann))),
	)

	step(t, tab, "keyboard: Enter opens the drawer, Tab stays in it, Esc returns to the card",
		focusCard(ann),
		chromedp.KeyEvent("\r"),
		waitJS(`!document.getElementById("drawer").hidden && document.getElementById("drawer").contains(document.activeElement)`),
		waitJS(`document.querySelector("#timeline") !== null`),
		chromedp.KeyEvent("\t"), chromedp.KeyEvent("\t"), chromedp.KeyEvent("\t"),
		waitJS(`document.getElementById("drawer").contains(document.activeElement)`),
		chromedp.KeyEvent("\x1b"),
		waitJS(fmt.Sprintf(`document.getElementById("drawer").hidden && document.activeElement.getAttribute("data-id") === %q`, ann)),
	)

	step(t, tab, "a link to an item opens its drawer",
		chromedp.Navigate(g.Base+"/ui/#/item/"+ann),
		waitJS(`!document.getElementById("drawer").hidden && document.getElementById("drawer-title").textContent === "Ann Lee"`),
		waitJS(`location.hash === "#/board"`),
		chromedp.KeyEvent("\x1b"),
	)

	// Unmatched: an event from a stranger, made into a lead.
	postEvent(t, g.Base, "paid-x", "crm.invoice_paid", "neo@new.test")
	step(t, tab, "create a lead from an unmatched event",
		chromedp.Navigate(g.Base+"/ui/#/unmatched"),
		chromedp.WaitVisible(chromedp.CSS(`.unmatched-row[data-event="api:paid-x"] button.create-lead`)),
		// Clicked by a query at click time: a refresh may draw the list
		// again between finding the button and pressing it.
		clickJS(`.unmatched-row[data-event="api:paid-x"] button.create-lead`),
		chromedp.WaitVisible(chromedp.CSS(`.lead-form input[name="name"]`)),
		// Cancel closes the form and gives the button back.
		clickJS(`.lead-form button.secondary`),
		waitJS(`document.querySelector(".lead-form") === null && !document.querySelector('.unmatched-row[data-event="api:paid-x"] button.create-lead').disabled`),
		clickJS(`.unmatched-row[data-event="api:paid-x"] button.create-lead`),
		chromedp.WaitVisible(chromedp.CSS(`.lead-form input[name="name"]`)),
		chromedp.SendKeys(chromedp.CSS(`.lead-form input[name="name"]`), "Neo"),
	)
	shot(t, tab, "06-unmatched")
	step(t, tab, "submit the lead",
		chromedp.Click(chromedp.CSS(`.lead-form button.create-submit`)),
		waitJS(`document.getElementById("drawer-title").textContent === "Neo"`),
	)
	items := call(t, g.Base, "GET", "/api/v1/items?pipeline=sales", nil)["items"].([]any)
	if len(items) != 3 {
		t.Fatalf("%d items after creating a lead, want 3", len(items))
	}

	step(t, tab, "failed page",
		chromedp.KeyEvent("\x1b"),
		chromedp.Navigate(g.Base+"/ui/#/failed"),
		waitJS(`document.getElementById("failed") !== null && document.getElementById("failed").textContent.includes("Failed actions (0)")`),
	)
	step(t, tab, "health page",
		chromedp.Navigate(g.Base+"/ui/#/health"),
		waitJS(`document.getElementById("ready-status") !== null && document.getElementById("ready-status").textContent === "ready"`),
		waitJS(`document.getElementById("health").textContent.includes("Events received")`),
		waitJS(`document.getElementById("connectors") !== null && document.getElementById("connectors").textContent.includes("api")`),
	)
	shot(t, tab, "07-health")

	// Phone width: the page itself does not scroll sideways (the columns
	// do, one at a time), and a card can still be opened and moved.
	step(t, tab, "375 px",
		chromedp.EmulateViewport(375, 812, chromedp.EmulateScale(2)),
		chromedp.Navigate(g.Base+"/ui/#/board"),
		chromedp.WaitVisible(chromedp.ID("columns")),
		waitJS(`document.querySelectorAll(".card").length === 3`),
	)
	if w := eval[int](t, tab, `document.documentElement.scrollWidth`); w > 375 {
		t.Errorf("the page is %d px wide at 375 px", w)
	}
	shot(t, tab, "08-phone-board")
	step(t, tab, "phone drawer",
		chromedp.Click(chromedp.CSS(fmt.Sprintf(`.card[data-id=%q]`, ann))),
		chromedp.WaitVisible(chromedp.ID("timeline")),
	)
	shot(t, tab, "09-phone-drawer")
	step(t, tab, "phone drawer: a move's explanation",
		clickJS(`#timeline button.explain-toggle[data-event="api:call-1"]`),
		waitJS(`document.querySelector(".explain .decisions li.won") !== null`),
		chromedp.ScrollIntoView(chromedp.CSS(`.explain .decisions`)),
	)
	shot(t, tab, "10-phone-explain")
	for _, p := range []string{"unmatched", "failed", "health"} {
		step(t, tab, "phone "+p,
			chromedp.KeyEvent("\x1b"),
			chromedp.Navigate(g.Base+"/ui/#/"+p),
			waitJS(`document.getElementById("`+p+`") !== null && document.getElementById("`+p+`").children.length > 0`),
		)
		if p == "unmatched" {
			step(t, tab, "the unmatched event now has a lead",
				waitJS(`document.querySelector('.unmatched-row[data-event="api:paid-x"]').textContent.includes("Has a lead now at new")`),
				waitJS(`document.querySelector('.unmatched-row[data-event="api:paid-x"] button.create-lead').disabled`))
		}
		if w := eval[int](t, tab, `document.documentElement.scrollWidth`); w > 375 {
			t.Errorf("the %s page is %d px wide at 375 px", p, w)
		}
		shot(t, tab, "11-phone-"+p)
	}
}

// Two gateways on one Redis: the board served by one shows, live, a move
// made through the other and an event applied by either.
func TestBrowserBoardTwoGateways(t *testing.T) {
	srv := redisserver.Start(t)
	if !srv.Real() {
		t.Log("redis-server not installed: miniredis stands in")
	}
	storeYAML := fmt.Sprintf("{driver: redis, url: %q, prefix: %q}", srv.URL(), fmt.Sprintf("board%d", time.Now().UnixNano()))
	a := startGateway(t, storeYAML, "http://127.0.0.1:9/none", "a")
	b := startGateway(t, storeYAML, "http://127.0.0.1:9/none", "b")
	ann := createItem(t, a.Base, "Ann Lee", "ann@client.test", "bob")

	tab := browser(t)
	signIn(t, tab, b.Base, "alice")
	step(t, tab, "the board of b shows the item made on a", waitJS(fmt.Sprintf(`%s === "new"`, cardStage(ann))))

	start := time.Now()
	call(t, a.Base, "POST", "/api/v1/items/"+ann+"/move", map[string]any{"stage": "won", "as_user": "dave"})
	step(t, tab, "a move on a appears on b", waitJS(fmt.Sprintf(`%s === "won"`, cardStage(ann))))
	t.Logf("the move on gateway a reached the board of gateway b after %v", time.Since(start))
	shot(t, tab, "01-moved-on-other-gateway")
	step(t, tab, "b's drawer shows the actor of a's move",
		clickJS(fmt.Sprintf(`.card[data-id=%q]`, ann)), // the card was just redrawn live: see above
		waitJS(`Array.from(document.querySelectorAll("#timeline li.move .actor")).some(a => a.textContent === "dave")`),
		chromedp.KeyEvent("\x1b"),
	)

	postEvent(t, a.Base, "back-1", "crm.called", "ann@client.test") // closed: no move
	ben := createItem(t, a.Base, "Ben Ode", "ben@client.test", "carol")
	postEvent(t, a.Base, "eng-1", "crm.engaged", "ben@client.test")
	step(t, tab, "an event applied by either gateway moves the card on b",
		waitJS(fmt.Sprintf(`%s === "engaged"`, cardStage(ben))))

	// Its webhook target does not answer: the failed page lists the action.
	step(t, tab, "the failed page lists the failed action",
		chromedp.Navigate(b.Base+"/ui/#/failed"),
		waitJS(`document.querySelector('#failed-actions .action-row[data-status="failed"] button.retry') !== null`),
	)
	shot(t, tab, "02-failed-page")
}

// focusCard focuses an item's card in one JavaScript step: a live
// re-render may replace the card's node between a lookup and a focus.
func focusCard(id string) chromedp.Action[chromedp.Void] {
	return chromedp.Evaluate[chromedp.Void](fmt.Sprintf(`document.querySelector('.card[data-id=%q]').focus()`, id))
}
