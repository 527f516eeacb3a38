package livechat_test

import (
	"bytes"
	"context"
	"encoding/json"
	"net/http"
	"testing"

	"github.com/stagegate/stagegate/store"
)

// createLead creates an item for a contact with email through the API.
func (g *gw) createLead(email string) store.Item {
	g.t.Helper()
	body, _ := json.Marshal(map[string]any{"pipeline": "sales", "stage": "new", "contact": map[string]any{"email": email, "name": "Ann"}})
	req, _ := http.NewRequest("POST", g.base+"/api/v1/items", bytes.NewReader(body))
	req.Header.Set("Authorization", "Bearer "+apiToken)
	req.Header.Set("Content-Type", "application/json")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		g.t.Fatal(err)
	}
	defer resp.Body.Close()
	var it store.Item
	if err := json.NewDecoder(resp.Body).Decode(&it); err != nil || resp.StatusCode != http.StatusCreated {
		g.t.Fatalf("create lead: %d %v", resp.StatusCode, err)
	}
	return it
}

// A visitor who gives the email of an existing lead after the first
// message: the next events of the conversation reach that lead's item.
func TestGatewayIdentifyAfterFirstMessage(t *testing.T) {
	g := startGateway(t, gwConfig, boltStore(t), "test", nil)
	lead := g.createLead("ann@client.test")
	v, w := g.visitor(nil)
	vid := w["visitor_id"].(string)
	conv := v.say("m1", "hello")["conversation_id"].(string)
	chatItem := g.item(vid)
	g.applied("chat:"+conv+":started", chatItem.ID)
	v.send(map[string]any{"type": "identify", "email": "Ann@Client.test"})
	v.say("m2", "Price please")
	if st := g.applied("chat:"+conv+":msg:m2", lead.ID); st != "asked_price" {
		rec, dec, _ := g.g.Store().GetEvent(context.Background(), "chat:"+conv+":msg:m2")
		t.Fatalf("the existing lead is at %q, want asked_price; event %+v decisions %+v", st, rec.Event.Subject, dec)
	}
}

// The phone a visitor gives later, in another format than the lead's,
// reaches the lead too (both in E.164).
func TestGatewayIdentifyPhoneLater(t *testing.T) {
	g := startGateway(t, gwConfig, boltStore(t), "test", nil)
	body, _ := json.Marshal(map[string]any{"pipeline": "sales", "stage": "new", "contact": map[string]any{"phone": "+1 202 555 0123"}})
	req, _ := http.NewRequest("POST", g.base+"/api/v1/items", bytes.NewReader(body))
	req.Header.Set("Authorization", "Bearer "+apiToken)
	req.Header.Set("Content-Type", "application/json")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	var lead store.Item
	_ = json.NewDecoder(resp.Body).Decode(&lead)
	resp.Body.Close()
	v, w := g.visitor(nil)
	conv := v.say("m1", "hello")["conversation_id"].(string)
	g.applied("chat:"+conv+":started", g.item(w["visitor_id"].(string)).ID)
	v.send(map[string]any{"type": "identify", "phone": "(202) 555-0123"})
	v.say("m2", "Price please")
	if st := g.applied("chat:"+conv+":msg:m2", lead.ID); st != "asked_price" {
		t.Fatalf("the existing lead is at %q, want asked_price", st)
	}
}

// An agent who opens a conversation gets, after its history, the CRM items
// of the visitor's contact — the lead made for the chat and the existing
// lead of the email the visitor gave — for the console to link to the board.
func TestGatewayAgentSeesVisitorItems(t *testing.T) {
	g := startGateway(t, gwConfig, boltStore(t), "test", nil)
	lead := g.createLead("bea@client.test")
	v, _ := g.visitor(map[string]any{"email": "bea@client.test"})
	conv := v.say("m1", "hello")["conversation_id"].(string)
	g.applied("chat:"+conv+":started", lead.ID)

	a := g.agent()
	a.send(map[string]any{"type": "open", "conversation_id": conv})
	a.expectWhere("history", func(f map[string]any) bool { return f["conversation"].(map[string]any)["id"] == conv })
	f := a.expectWhere("items", func(f map[string]any) bool { return f["conversation_id"] == conv })
	items, _ := f["items"].([]any)
	if len(items) != 1 {
		t.Fatalf("items frame %v, want the one lead", f)
	}
	it := items[0].(map[string]any)
	if it["id"] != lead.ID || it["pipeline"] != "sales" || it["stage"] == "" {
		t.Fatalf("item %v, want %s in sales with its stage", it, lead.ID)
	}
}
