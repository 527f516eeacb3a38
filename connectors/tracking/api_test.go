package tracking

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/stagegate/stagegate/internal/httpx"
	"github.com/stagegate/stagegate/store"
)

func TestPrepareAPI(t *testing.T) {
	e := newEnv(t, nil, nil)
	p := e.prepare(basicMessage)
	if !strings.HasPrefix(p.MessageID, "<sg."+p.ID+"@seller.test>") || !strings.Contains(p.Raw, "Message-Id: "+p.MessageID) {
		t.Errorf("message id %q", p.MessageID)
	}
	ref, err := store.GetMessageRef(context.Background(), e.recs, p.MessageID)
	if err != nil || ref.ItemID != "i_1" || ref.Source != "tracking" {
		t.Errorf("message ref %+v %v", ref, err)
	}
	if p.Links[0].ID != p.ID+".1" || p.Links[1].Index != 2 || !strings.HasPrefix(p.Links[1].ClickURL, testPublic+"/t/c/") {
		t.Errorf("links %+v", p.Links)
	}

	a := e.do("POST", "/api/v1/messages", basicMessage, map[string]string{"Accept": "message/rfc822"})
	if a.code != http.StatusCreated || a.header.Get("Content-Type") != "message/rfc822" ||
		!strings.HasPrefix(a.header.Get("X-Stagegate-Message-Id"), "<sg.") || !strings.HasPrefix(a.body, "Date: ") {
		t.Errorf("raw answer %d %v %.80q", a.code, a.header, a.body)
	}

	for name, body := range map[string]string{
		"no item":      `{"from":"bob@seller.test","to":"ann@client.test","text":"x"}`,
		"unknown key":  `{"item_id":"i","from":"bob@seller.test","to":"ann@client.test","text":"x","bcc":"x@y.z"}`,
		"not json":     `hello`,
		"to is number": `{"item_id":"i","from":"bob@seller.test","to":5,"text":"x"}`,
	} {
		a := e.do("POST", "/api/v1/messages", body, nil)
		var eb httpx.ErrorBody
		if a.code != http.StatusBadRequest || json.Unmarshal([]byte(a.body), &eb) != nil || eb.Error.Code == "" {
			t.Errorf("%s: %d %s", name, a.code, a.body)
		}
	}
}

func TestMessageReport(t *testing.T) {
	e := newEnv(t, nil, nil)
	p := e.prepare(basicMessage)
	e.clk.Add(time.Second)
	e.do("GET", path(p.PixelURL), "", map[string]string{"User-Agent": "Mozilla/5.0"})
	e.clk.Add(time.Hour)
	e.do("GET", path(p.PixelURL), "", nil)
	e.do("GET", path(p.Links[1].ClickURL), "", nil)

	for _, ref := range []string{p.ID, url.PathEscape(p.MessageID)} {
		a := e.do("GET", "/api/v1/messages/"+ref, "", nil)
		var rep msgReport
		if a.code != http.StatusOK || json.Unmarshal([]byte(a.body), &rep) != nil {
			t.Fatalf("%s: %d %s", ref, a.code, a.body)
		}
		if rep.Message.ItemID != "i_1" || rep.Opens.Human != 1 || rep.Opens.Machine != 1 || rep.Opens.FirstHumanAt == nil ||
			rep.Links[1].Clicks.Human != 1 || rep.Links[0].Clicks.Human != 0 || len(rep.Hits) != 3 {
			t.Errorf("%s: report %+v", ref, rep)
		}
		h := rep.Hits[0]
		if !h.Machine || h.Score != 100 || strings.Join(h.Reasons, ",") != "ua:apple_privacy_proxy,quick:1.0s" ||
			h.SinceS != 1 || h.IP != "127.0.0.1" || h.Method != "GET" || h.Seq != 1 {
			t.Errorf("first hit %+v", h)
		}
	}
	for _, ref := range []string{"nope", e.tr.signer.Token(newMsgID(), 0), newMsgID().String()} {
		if a := e.do("GET", "/api/v1/messages/"+ref, "", nil); a.code != http.StatusNotFound ||
			!strings.Contains(a.body, `no tracked message \"`+ref+`\"`) {
			t.Errorf("%s: %d %s", ref, a.code, a.body)
		}
	}
}

func TestSentAndReplied(t *testing.T) {
	e := newEnv(t, nil, nil)
	p := e.prepare(basicMessage)
	e.clk.Add(10 * time.Minute) // sent long after it was prepared
	a := e.do("POST", "/api/v1/messages/"+p.ID+"/sent", "", nil)
	if a.code != http.StatusOK || !strings.Contains(a.body, sentEventID("track", p.ID)) {
		t.Fatalf("sent: %d %s", a.code, a.body)
	}
	if a := e.do("POST", "/api/v1/messages/"+p.ID+"/sent", "", nil); !strings.Contains(a.body, `"duplicate":true`) {
		t.Errorf("second sent: %s", a.body)
	}
	sent := e.in.Events()[0]
	if sent.Type != "email.sent" || sent.Subject.ItemID != "i_1" || sent.Attrs["to"] != "ann@client.test" || !sent.OccurredAt.Equal(e.clk.Now()) {
		t.Errorf("sent event %+v", sent)
	}
	// A prefetch 3 s after the send is quick, though 10 min after preparing.
	e.clk.Add(3 * time.Second)
	e.do("GET", path(p.PixelURL), "", nil)
	if ev := e.in.Events()[1]; ev.Attrs["reasons"] != "quick:3.0s" {
		t.Errorf("open after send: %q", ev.Attrs)
	}

	e.clk.Add(time.Hour)
	at := e.clk.Now().Add(-time.Minute).Format(time.RFC3339)
	a = e.do("POST", "/api/v1/messages/"+url.PathEscape(p.MessageID)+"/replied", `{"at":"`+at+`"}`, nil)
	if a.code != http.StatusOK {
		t.Fatalf("replied: %d %s", a.code, a.body)
	}
	open := e.in.Events()[2]
	if open.ID != openEventID("track", p.ID, false) || open.Attrs["inferred"] != "reply" || open.OccurredAt.Format(time.RFC3339) != at {
		t.Errorf("inferred open %+v", open)
	}
	res, err := e.tr.recordReply(context.Background(), p.MessageID, e.clk.Now())
	if err != nil || !res.Duplicate {
		t.Errorf("Replied again: %+v %v", res, err)
	}
	if _, err := e.tr.recordReply(context.Background(), "<foreign@else.test>", e.clk.Now()); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("foreign reply: %v", err)
	}
	if a := e.do("POST", "/api/v1/messages/"+newMsgID().String()+"/sent", "", nil); a.code != http.StatusNotFound {
		t.Errorf("unknown sent: %d", a.code)
	}
	if a := e.do("GET", "/api/v1/tracking/stats", "", nil); a.code != http.StatusOK || !strings.Contains(a.body, `"opens":1`) {
		t.Errorf("stats: %d %s", a.code, a.body)
	}
}

// fakeItems knows the items of ids; down makes every lookup fail.
type fakeItems struct {
	ids  map[string]bool
	down bool
}

func (f *fakeItems) GetItem(_ context.Context, id string) (store.Item, error) {
	switch {
	case f.down:
		return store.Item{}, store.ErrUnavailable
	case !f.ids[id]:
		return store.Item{}, fmt.Errorf("item %s: %w", id, store.ErrNotFound)
	}
	return store.Item{ID: id}, nil
}

// TestPrepareUnknownItem: a message for an item that does not exist is
// 404 naming the id, and nothing is stored; store trouble is 503.
func TestPrepareUnknownItem(t *testing.T) {
	e := newEnv(t, nil, nil)
	items := &fakeItems{ids: map[string]bool{"i_1": true}}
	e.tr.items = items
	e.prepare(basicMessage) // i_1 exists
	stored := e.fake.Len()

	a := e.do("POST", "/api/v1/messages", strings.Replace(basicMessage, `"i_1"`, `"i_nope"`, 1), nil)
	var eb httpx.ErrorBody
	if a.code != http.StatusNotFound || json.Unmarshal([]byte(a.body), &eb) != nil || eb.Error.Code != "not_found" ||
		!strings.Contains(eb.Error.Message, `"i_nope"`) {
		t.Errorf("unknown item: %d %s", a.code, a.body)
	}
	if n := e.fake.Len(); n != stored {
		t.Errorf("the refused message stored %d records", n-stored)
	}
	items.down = true
	if a := e.do("POST", "/api/v1/messages", basicMessage, nil); a.code != http.StatusServiceUnavailable {
		t.Errorf("items down: %d %s", a.code, a.body)
	}
}
