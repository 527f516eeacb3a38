package livechat

import (
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/gorilla/websocket"
)

// A flooding client that keeps writing gets the 1008 close frame, every
// time: the gateway waits for its close (or a short timeout) before it
// drops the TCP connection, which would otherwise reset the connection
// with the client's frames unread, and the client might see the reset
// instead of the close frame.
func TestFloodCloseIsGraceful(t *testing.T) {
	h := newHarness(t, func(c *Config) { c.Limits.Rate = 1; c.Limits.Burst = 2 })
	frame := []byte(`{"type":"typing","pad":"` + strings.Repeat("x", 2000) + `"}`)
	resets := 0
	const tries = 20
	for i := range tries {
		v, _ := h.visitor(nil)
		go func() {
			for v.ws.WriteMessage(websocket.TextMessage, frame) == nil {
			}
		}()
		code := 0
		for {
			_ = v.ws.SetReadDeadline(time.Now().Add(5 * time.Second))
			_, _, err := v.ws.ReadMessage()
			if err == nil {
				continue
			}
			var ce *websocket.CloseError
			if errors.As(err, &ce) {
				code = ce.Code
			} else {
				t.Logf("try %d: %v", i, err)
			}
			break
		}
		if code != websocket.ClosePolicyViolation {
			resets++
		}
	}
	if resets > 0 {
		t.Fatalf("%d of %d flooding clients did not get the 1008 close frame", resets, tries)
	}
}
