package livechat_test

import (
	"testing"

	"github.com/stagegate/stagegate/internal/testutil/redisserver"
)

// A visitor and an agent connected to two gateways sharing one Redis talk
// to each other: messages fan out through Redis, and the item moves once.
func TestTwoInstancesOnRedis(t *testing.T) {
	srv := redisserver.Start(t)
	storeYAML := "{driver: redis, url: " + srv.URL() + ", prefix: lc}"
	a := startGateway(t, gwConfig, storeYAML, "gw-a", nil)
	b := startGateway(t, gwConfig, storeYAML, "gw-b", nil)

	agent := b.agent()
	v, w := a.visitor(nil)
	conv := v.say("m1", "Hello from instance A")["conversation_id"].(string)
	queued := agent.expectWhere("conversation", func(f map[string]any) bool {
		return f["conversation"].(map[string]any)["id"] == conv
	})
	if s := queued["conversation"].(map[string]any); s["status"] != "waiting" || s["preview"] != "Hello from instance A" {
		t.Fatalf("queue entry on B: %v", s)
	}
	agent.send(map[string]any{"type": "accept", "conversation_id": conv})
	hist := agent.expect("history")
	if msgs := hist["messages"].([]any); len(msgs) != 2 {
		t.Fatalf("history on B: %v", hist)
	}
	agent.send(map[string]any{"type": "message", "conversation_id": conv, "id": "r1", "text": "Hi, this is B"})
	agent.expect("ack")
	reply := v.expectWhere("message", func(f map[string]any) bool { return f["from"] == "agent" })
	if reply["text"] != "Hi, this is B" || reply["seq"] != float64(3) {
		t.Fatalf("visitor on A got %v", reply)
	}
	v.say("m2", "Price please")
	got := agent.expectWhere("message", func(f map[string]any) bool { return f["id"] == "m2" })
	if got["seq"] != float64(4) {
		t.Fatalf("agent on B got %v", got)
	}
	it := a.item(w["visitor_id"].(string))
	if st := b.applied("chat:"+conv+":msg:m2", it.ID); st != "asked_price" {
		t.Fatalf("item at %q, want asked_price", st)
	}

	// The visitor moves to instance B and resumes from its cursor.
	v.ws.Close()
	agent.send(map[string]any{"type": "message", "conversation_id": conv, "id": "r2", "text": "while you were away"})
	agent.expect("ack")
	_, w2 := b.visitor(map[string]any{"visitor_token": w["visitor_token"],
		"cursor": map[string]any{"conversation_id": conv, "last_seq": 4}})
	msgs := w2["messages"].([]any)
	if len(msgs) != 1 || msgs[0].(map[string]any)["text"] != "while you were away" {
		t.Fatalf("resume on B: %v", w2)
	}
}
