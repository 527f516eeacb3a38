package livechat

import (
	"errors"
	"io"
	"sync"
	"time"

	"github.com/gorilla/websocket"
)

// conn is one websocket and its writer. Frames are queued with enqueue,
// which never blocks: a client whose queue is full is too slow and is
// disconnected (it resumes from its cursor on reconnect).
//
// There is at most one writer goroutine per connection, and only while
// there is something to write: enqueue, closeWith and the ping timer
// start it, and it returns when the queue is empty. An idle connection so
// costs one goroutine (the reader) and a timer, like a bare gorilla echo
// server, and the queue is a slice rather than a buffered channel so that
// it costs nothing while empty.
type conn struct {
	ws     *websocket.Conn
	limits *Limits

	mu        sync.Mutex // guards the fields below
	queue     [][]byte
	pingDue   bool
	closeCode int // when not 0: write the queue, then this close frame, then nothing
	closeText string
	closeSent bool
	dead      bool
	writer    chan struct{} // closed when the running writer returns; nil when none runs
	pinger    *time.Timer

	done     chan struct{} // closed by kill
	killOnce sync.Once

	// Rate limiting; used by the reading goroutine only.
	tokens  float64
	refill  time.Time
	refused int
}

func newConn(ws *websocket.Conn, l *Limits) *conn {
	c := &conn{ws: ws, limits: l, done: make(chan struct{}), tokens: float64(l.Burst), refill: time.Now()}
	ws.SetReadLimit(l.MaxFrame)
	_ = ws.SetReadDeadline(time.Now().Add(l.PongWait))
	ws.SetPongHandler(func(string) error { return ws.SetReadDeadline(time.Now().Add(l.PongWait)) })
	c.mu.Lock()
	c.pinger = time.AfterFunc(l.PingInterval, c.ping)
	c.mu.Unlock()
	return c
}

// enqueue queues one frame; it returns false when the connection is gone
// or was just dropped for being too slow.
func (c *conn) enqueue(b []byte) bool {
	c.mu.Lock()
	if c.dead || c.closeCode != 0 {
		c.mu.Unlock()
		return false
	}
	if len(c.queue) >= c.limits.SendBuffer {
		c.mu.Unlock()
		c.kill()
		return false
	}
	c.queue = append(c.queue, b)
	c.startWriter()
	c.mu.Unlock()
	return true
}

// closeWith writes what is queued, then a close frame with code; the
// connection ends when the reader returns.
func (c *conn) closeWith(code int, text string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.closeCode == 0 && !c.dead {
		c.closeCode, c.closeText = code, text
		c.startWriter()
	}
}

// ping runs on the ping timer.
func (c *conn) ping() {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.dead || c.closeSent {
		return
	}
	c.pingDue = true
	c.startWriter()
	c.pinger.Reset(c.limits.PingInterval)
}

// startWriter starts the writer unless one runs. Called with c.mu held.
func (c *conn) startWriter() {
	if c.writer != nil || c.dead {
		return
	}
	done := make(chan struct{})
	c.writer = done
	go c.writeLoop(done)
}

func (c *conn) writeLoop(done chan struct{}) {
	defer close(done)
	for {
		c.mu.Lock()
		q, ping := c.queue, c.pingDue && !c.closeSent
		code, text := c.closeCode, c.closeText
		if c.closeSent {
			code = 0
		}
		c.queue, c.pingDue = nil, false
		if c.dead || (len(q) == 0 && !ping && code == 0) {
			c.writer = nil
			c.mu.Unlock()
			return
		}
		c.closeSent = c.closeSent || code != 0
		c.mu.Unlock()
		if err := c.write(q, ping, code, text); err != nil {
			c.kill()
		}
	}
}

func (c *conn) write(q [][]byte, ping bool, code int, text string) error {
	deadline := time.Now().Add(c.limits.WriteWait)
	if ping {
		if err := c.ws.WriteControl(websocket.PingMessage, nil, deadline); err != nil {
			return err
		}
	}
	for _, b := range q {
		_ = c.ws.SetWriteDeadline(deadline)
		if err := c.ws.WriteMessage(websocket.TextMessage, b); err != nil {
			return err
		}
	}
	if code != 0 {
		return c.ws.WriteControl(websocket.CloseMessage, websocket.FormatCloseMessage(code, text), deadline)
	}
	return nil
}

// kill ends the connection at once: the reader gets an error and the
// writer stops.
func (c *conn) kill() {
	c.killOnce.Do(func() {
		c.mu.Lock()
		c.dead = true
		c.pinger.Stop()
		c.mu.Unlock()
		close(c.done)
		_ = c.ws.NetConn().Close()
	})
}

// closing reports whether closeWith was called.
func (c *conn) closing() bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.closeCode != 0
}

// closeWait bounds how long a connection the gateway closes waits for
// the client's close frame before it drops the TCP connection.
const closeWait = time.Second

// finish ends the connection: after closeWith it first lets the writer
// send the queue and the close frame (within the write wait) and waits
// for the client's close (see drain); then it kills the connection and
// waits for the writer to return. It runs on the reading goroutine.
func (c *conn) finish() {
	if c.closing() {
		if w := c.runningWriter(); w != nil {
			t := time.NewTimer(c.limits.WriteWait)
			select {
			case <-w:
			case <-t.C:
			}
			t.Stop()
		}
		if c.sentClose() {
			c.drain(closeWait)
		}
	}
	c.kill()
	if w := c.runningWriter(); w != nil {
		<-w
	}
}

// sentClose reports whether the close frame was written and the
// connection is still up.
func (c *conn) sentClose() bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.closeSent && !c.dead && c.writer == nil
}

// drain reads and discards what the client sends after the gateway's
// close frame until the client's close frame arrives, the client goes
// away, or wait passes. Closing the TCP connection with the client's
// frames unread (a flooding client writes on) would send a reset, and the
// client could see the reset instead of the close frame.
func (c *conn) drain(wait time.Duration) {
	deadline := time.Now().Add(wait)
	_ = c.ws.SetReadDeadline(deadline)
	c.ws.SetReadLimit(0)                                         // what comes now is discarded anyway
	c.ws.SetCloseHandler(func(int, string) error { return nil }) // ours is sent: no reply
	for {                                                        // until the client's close, its end, or the deadline
		_, r, err := c.ws.NextReader()
		if err != nil {
			return
		}
		if _, err := io.Copy(io.Discard, r); err != nil {
			return
		}
	}
}

func (c *conn) runningWriter() chan struct{} {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.writer
}

// read returns the next text message. Any message counts as a sign of
// life, like a pong.
func (c *conn) read() ([]byte, error) {
	for {
		typ, b, err := c.ws.ReadMessage()
		if err != nil {
			return nil, err
		}
		_ = c.ws.SetReadDeadline(time.Now().Add(c.limits.PongWait))
		if typ == websocket.TextMessage {
			return b, nil
		}
		c.enqueue(errorFrame(CodeBadFrame, "frames are JSON text messages", "", false))
	}
}

// errFlood is returned by allow when a client keeps sending over its rate.
var errFlood = errors.New("rate limit exceeded persistently")

// floodLimit is how many refused frames in a row close the connection.
const floodLimit = 100

// allow takes one token of the connection's bucket. It returns false when
// the frame is over the rate, and errFlood when the client ignores the
// refusals.
func (c *conn) allow() (bool, error) {
	now := time.Now()
	c.tokens = min(float64(c.limits.Burst), c.tokens+now.Sub(c.refill).Seconds()*c.limits.Rate)
	c.refill = now
	if c.tokens >= 1 {
		c.tokens--
		c.refused = 0
		return true, nil
	}
	c.refused++
	if c.refused >= floodLimit {
		return false, errFlood
	}
	return false, nil
}
