package main

import (
	"context"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"path/filepath"
	"runtime/pprof"
	"slices"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/gorilla/websocket"

	"github.com/stagegate/stagegate/config"
	"github.com/stagegate/stagegate/gateway"
	"github.com/stagegate/stagegate/store"
)

// latencyConfig is the gateway of the latency run: each message names the
// stage the visitor's item goes to next, so every message moves an item.
const latencyConfig = `
listen: 127.0.0.1:0
store: STORE
api: {tokens: ["chatbench-api-token-0123456789"]}
engine: {workers: WORKERS}
pipelines:
  - id: bench
    stages:
      - id: new
      - id: a
        triggers: [{type: chat.text, text: "go-a", allow_back: true}]
      - id: b
        triggers: [{type: chat.text, text: "go-b", allow_back: true}]
connectors:
  - name: chat
    type: livechat
    create: {pipeline: bench, stage: new}
    secret: "chatbench-secret-0123456789"
    channels: [{id: sales}]
    allow_no_origin: true
    limits: {rate: 100, burst: 100}
`

// benchVisitor is one connection of the latency run.
type benchVisitor struct {
	ws    *websocket.Conn
	id    string // visitor id
	conv  string
	item  string
	sent  int
	mu    sync.Mutex
	acked map[string]time.Time // client message id → ack received
}

func runLatency(args []string) error {
	fs := flag.NewFlagSet("latency", flag.ExitOnError)
	conns := fs.Int("conns", 1000, "visitor connections")
	rate := fs.Int("rate", 1000, "messages per second, all connections together (open loop)")
	duration := fs.Duration("duration", 20*time.Second, "length of the measured load")
	storeKind := fs.String("store", "bolt", "bolt or redis")
	redisURL := fs.String("redis-url", "redis://127.0.0.1:6379/0", "Redis URL for -store redis")
	workers := fs.Int("workers", 64, "engine workers")
	cpuProfile := fs.String("cpuprofile", "", "write a CPU profile of the load phase to this file")
	_ = fs.Parse(args)

	dir, err := os.MkdirTemp("", "chatbench")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)
	storeYAML := "{driver: bolt, path: " + filepath.Join(dir, "sg.db") + "}"
	if *storeKind == "redis" {
		storeYAML = fmt.Sprintf("{driver: redis, url: %q, prefix: chatbench%d}", *redisURL, time.Now().UnixNano())
	}
	text := strings.NewReplacer("STORE", storeYAML, "WORKERS", fmt.Sprint(*workers)).Replace(latencyConfig)
	cfg, err := config.Parse([]byte(text), gateway.Kinds, gateway.ActionTypes(), func(string) (string, bool) { return "", false })
	if err != nil {
		return err
	}
	ctx, cancel := signalContext()
	defer cancel()
	g, err := gateway.New(ctx, cfg, gateway.Options{Instance: "chatbench"})
	if err != nil {
		return err
	}
	addr, err := g.Listen()
	if err != nil {
		return err
	}
	runDone := make(chan error, 1)
	go func() { runDone <- g.Run(ctx) }()
	defer func() {
		cancel()
		if err := <-runDone; err != nil {
			fmt.Fprintln(os.Stderr, "chatbench: gateway:", err)
		}
	}()
	st := g.Store()

	vs, err := connectVisitors("ws://"+addr.String()+"/in/chat/ws", *conns)
	if err != nil {
		return err
	}
	defer func() {
		for _, v := range vs {
			v.ws.Close()
		}
	}()
	// Warm up: each visitor's first message creates its lead.
	for _, v := range vs {
		if err := v.say("w", "hello"); err != nil {
			return err
		}
	}
	if err := waitItems(ctx, st, vs, 60*time.Second); err != nil {
		return err
	}
	fmt.Fprintf(os.Stderr, "%d visitors with an item; load %d msg/s for %v\n", len(vs), *rate, *duration)

	if *cpuProfile != "" {
		f, err := os.Create(*cpuProfile)
		if err != nil {
			return err
		}
		defer f.Close()
		if err := pprof.StartCPUProfile(f); err != nil {
			return err
		}
		defer pprof.StopCPUProfile()
	}
	total := int(duration.Seconds() * float64(*rate))
	sentAt := make(map[string]time.Time, total) // event id → send time
	lastEvent := map[*benchVisitor]string{}
	var maxBehind time.Duration
	start := time.Now()
	for k := range total {
		due := start.Add(time.Duration(k) * time.Second / time.Duration(*rate))
		if d := time.Until(due); d > 0 {
			time.Sleep(d)
		} else if -d > maxBehind {
			maxBehind = -d
		}
		v := vs[k%len(vs)]
		v.sent++
		word := "go-a"
		if v.sent%2 == 0 {
			word = "go-b"
		}
		id := fmt.Sprintf("l%d", k)
		evID := "chat:" + v.conv + ":msg:" + id
		sentAt[evID] = due // open loop: latency counts from the schedule
		lastEvent[v] = evID
		if err := v.say(id, word); err != nil {
			return err
		}
	}
	fmt.Fprintf(os.Stderr, "sent %d in %v (up to %v behind schedule)\n", total, time.Since(start).Round(time.Millisecond), maxBehind.Round(time.Millisecond))

	lat, missing, err := collectMoves(ctx, st, vs, sentAt, lastEvent, 60*time.Second)
	if err != nil {
		return err
	}
	var acks []time.Duration
	for _, v := range vs {
		v.mu.Lock()
		for id, at := range v.acked {
			if t, ok := sentAt["chat:"+v.conv+":msg:"+id]; ok {
				acks = append(acks, at.Sub(t))
			}
		}
		v.mu.Unlock()
	}
	slices.Sort(lat)
	slices.Sort(acks)
	fmt.Printf("messages %d, moves measured %d, not moved within 60s %d\n", total, len(lat), missing)
	fmt.Printf("message → item moved: p50 %s p90 %s p99 %s max %s\n", pct(lat, 50), pct(lat, 90), pct(lat, 99), pct(lat, 100))
	fmt.Printf("message → ack:        p50 %s p99 %s max %s\n", pct(acks, 50), pct(acks, 99), pct(acks, 100))
	fmt.Printf("\n| livechat (%s): visitor message → item moved p99 @ %d msg/s over %d connections (%d messages, open loop; %d not moved) | %s | p50 %s, max %s; message → ack p99 %s | — | ≤ 50 ms |\n",
		*storeKind, *rate, len(vs), total, missing, pct(lat, 99), pct(lat, 50), pct(lat, 100), pct(acks, 99))
	return nil
}

func connectVisitors(url string, n int) ([]*benchVisitor, error) {
	vs := make([]*benchVisitor, 0, n)
	for range n {
		ws, _, err := websocket.DefaultDialer.Dial(url, nil)
		if err != nil {
			return vs, err
		}
		v := &benchVisitor{ws: ws, acked: map[string]time.Time{}}
		if err := ws.WriteJSON(map[string]any{"type": "hello"}); err != nil {
			return vs, err
		}
		var w struct {
			VisitorID string `json:"visitor_id"`
		}
		if err := ws.ReadJSON(&w); err != nil {
			return vs, err
		}
		v.id = w.VisitorID
		go v.read()
		vs = append(vs, v)
	}
	return vs, nil
}

// read records acks; the first one names the conversation.
func (v *benchVisitor) read() {
	for {
		var f struct {
			Type           string `json:"type"`
			ID             string `json:"id"`
			ConversationID string `json:"conversation_id"`
			Code           string `json:"code"`
		}
		if err := v.ws.ReadJSON(&f); err != nil {
			return
		}
		switch f.Type {
		case "ack":
			v.mu.Lock()
			v.acked[f.ID] = time.Now()
			if v.conv == "" {
				v.conv = f.ConversationID
			}
			v.mu.Unlock()
		case "error":
			fmt.Fprintf(os.Stderr, "error frame for %s: %s\n", f.ID, f.Code)
		}
	}
}

func (v *benchVisitor) say(id, text string) error {
	return v.ws.WriteJSON(map[string]any{"type": "message", "id": id, "text": text})
}

// waitItems waits until every visitor's first message was acked and its
// item exists.
func waitItems(ctx context.Context, st store.Store, vs []*benchVisitor, limit time.Duration) error {
	deadline := time.Now().Add(limit)
	for _, v := range vs {
		for v.item == "" {
			if time.Now().After(deadline) {
				return fmt.Errorf("visitor %s has no item after %v", v.id, limit)
			}
			v.mu.Lock()
			conv := v.conv
			v.mu.Unlock()
			if conv != "" {
				if c, err := st.FindContact(ctx, store.Identity{Kind: store.IdentityVisitor, Value: v.id}); err == nil {
					if items, err := st.ListItems(ctx, store.ItemFilter{ContactID: c.ID}); err == nil && len(items) > 0 {
						v.item = items[0].ID
						continue
					}
				}
			}
			time.Sleep(10 * time.Millisecond)
		}
	}
	return nil
}

// collectMoves waits until each item moved for its visitor's last message,
// then reads every timeline and returns message → move latencies.
func collectMoves(ctx context.Context, st store.Store, vs []*benchVisitor, sentAt map[string]time.Time,
	last map[*benchVisitor]string, limit time.Duration) ([]time.Duration, int, error) {
	deadline := time.Now().Add(limit)
	var lat []time.Duration
	found := 0
	for _, v := range vs {
		for {
			tl, err := st.Timeline(ctx, v.item)
			if err != nil {
				return nil, 0, err
			}
			done := last[v] == ""
			for _, e := range tl {
				if e.EventID == last[v] {
					done = true
				}
			}
			if done || time.Now().After(deadline) {
				for _, e := range tl {
					if t, ok := sentAt[e.EventID]; ok {
						lat = append(lat, e.At.Sub(t))
						found++
					}
				}
				break
			}
			time.Sleep(20 * time.Millisecond)
		}
	}
	return lat, len(sentAt) - found, nil
}

func pct(d []time.Duration, p int) string {
	if len(d) == 0 {
		return "n/a"
	}
	i := (len(d)*p + 99) / 100
	i = min(max(i-1, 0), len(d)-1)
	return fmt.Sprintf("%.1f ms", float64(d[i].Microseconds())/1000)
}

func signalContext() (context.Context, context.CancelFunc) {
	return signal.NotifyContext(context.Background(), syscall.SIGTERM, os.Interrupt)
}
