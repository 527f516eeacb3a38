package e2e

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stagegate/stagegate/internal/stdwebhooks"
)

// newClient is an HTTP client for one test, with enough idle connections
// per host for the concurrency the tests use.
func newClient(t *testing.T) *http.Client {
	tr := &http.Transport{
		DialContext:         (&net.Dialer{Timeout: 2 * time.Second}).DialContext,
		MaxIdleConns:        256,
		MaxIdleConnsPerHost: 128,
		IdleConnTimeout:     30 * time.Second,
	}
	t.Cleanup(tr.CloseIdleConnections)
	return &http.Client{Timeout: 20 * time.Second, Transport: tr}
}

func getStatus(c *http.Client, u string) (int, error) {
	resp, err := c.Get(u)
	if err != nil {
		return 0, err
	}
	_, _ = io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	return resp.StatusCode, nil
}

// apiCall makes a REST API request with the bearer token and decodes a JSON
// answer into out (when not nil). It is safe to call from any goroutine.
func apiCall(c *http.Client, base, method, path string, body, out any) (int, error) {
	var rd io.Reader
	if body != nil {
		buf, err := json.Marshal(body)
		if err != nil {
			return 0, err
		}
		rd = bytes.NewReader(buf)
	}
	req, err := http.NewRequest(method, base+path, rd)
	if err != nil {
		return 0, err
	}
	req.Header.Set("Authorization", "Bearer "+apiToken)
	req.Header.Set("Content-Type", "application/json")
	resp, err := c.Do(req)
	if err != nil {
		return 0, err
	}
	defer resp.Body.Close()
	data, err := io.ReadAll(resp.Body)
	if err != nil {
		return resp.StatusCode, err
	}
	if out != nil && len(data) > 0 && resp.StatusCode < 300 {
		if err := json.Unmarshal(data, out); err != nil {
			return resp.StatusCode, fmt.Errorf("%s %s: %d %s: %v", method, path, resp.StatusCode, data, err)
		}
	}
	if resp.StatusCode >= 300 {
		return resp.StatusCode, fmt.Errorf("%s %s: %d %s", method, path, resp.StatusCode, bytes.TrimSpace(data))
	}
	return resp.StatusCode, nil
}

// Shapes of the API answers the tests read.
type (
	itemReply struct {
		ID      string `json:"id"`
		Stage   string `json:"stage"`
		Closed  bool   `json:"closed"`
		Version int64  `json:"version"`
	}
	timelineEntry struct {
		Kind    string `json:"kind"`
		From    string `json:"from"`
		To      string `json:"to"`
		Trigger string `json:"trigger"`
		EventID string `json:"event_id"`
	}
	timelineReply struct {
		Entries []timelineEntry `json:"entries"`
	}
	eventReply struct {
		Applied   bool `json:"applied"`
		Unmatched bool `json:"unmatched"`
		Items     []struct {
			ItemID string `json:"item_id"`
			Moved  bool   `json:"moved"`
		} `json:"items"`
	}
	acceptedReply struct {
		EventID   string `json:"event_id"`
		Duplicate bool   `json:"duplicate"`
	}
)

// createItems creates one item at stage "new" per email and returns their
// ids in the same order.
func createItems(t *testing.T, c *http.Client, base string, emails []string) []string {
	t.Helper()
	ids := make([]string, len(emails))
	errs := parallel(len(emails), 8, func(i int) error {
		var it itemReply
		if _, err := apiCall(c, base, "POST", "/api/v1/items", map[string]any{
			"pipeline": "sales", "responsible": "e2e", "contact": map[string]string{"email": emails[i]},
		}, &it); err != nil {
			return err
		}
		if it.ID == "" || it.Stage != "new" || it.Version != 1 {
			return fmt.Errorf("created item %+v", it)
		}
		ids[i] = it.ID
		return nil
	})
	if len(errs) > 0 {
		t.Fatalf("create items: %d errors, first: %v", len(errs), errs[0])
	}
	return ids
}

// parallel runs f(0..n-1) on workers goroutines and returns the errors.
func parallel(n, workers int, f func(i int) error) []error {
	var (
		mu   sync.Mutex
		errs []error
		next atomic.Int64
		wg   sync.WaitGroup
	)
	for range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				i := int(next.Add(1) - 1)
				if i >= n {
					return
				}
				if err := f(i); err != nil {
					mu.Lock()
					errs = append(errs, err)
					mu.Unlock()
				}
			}
		}()
	}
	wg.Wait()
	return errs
}

// event is one customer action a test sends until it is accepted.
type event struct {
	// via is "hook" (a signed webhook to the connector "hooks") or "api"
	// (POST /api/v1/events).
	via string
	// key is the webhook-id, or the API event id.
	key  string
	body []byte
	// to picks the gateway of an attempt (nil: the stream's default).
	to *gatewayProc

	// Set by the stream.
	status   int  // the 2xx status that accepted it, 0 if none did
	dup      bool // the accepting answer said duplicate
	attempts int
}

// eventID is the id the gateway gives the event.
func (e *event) eventID() string {
	if e.via == "api" {
		return "api:" + e.key
	}
	return "hooks:" + e.key
}

// hookEvent is a signed webhook of type typ for the contact with email.
func hookEvent(key, typ, email string) *event {
	body, _ := json.Marshal(map[string]any{"type": typ, "subject": map[string]string{"email": email}})
	return &event{via: "hook", key: key, body: body}
}

// apiEvent is an API event of type typ for the contact with email.
func apiEvent(key, typ, email string) *event {
	body, _ := json.Marshal(map[string]any{"id": key, "type": typ, "subject": map[string]string{"email": email}})
	return &event{via: "api", key: key, body: body}
}

// attempt is one request of a stream.
type attempt struct {
	ev         *event
	start, end time.Time
	status     int // 0: transport error
	err        error
	dup        bool
	retryAfter string
}

// send makes one attempt to deliver ev to base.
func send(c *http.Client, base string, ev *event) attempt {
	a := attempt{ev: ev, start: time.Now()}
	var req *http.Request
	var err error
	if ev.via == "api" {
		req, err = http.NewRequest("POST", base+"/api/v1/events", bytes.NewReader(ev.body))
		if err == nil {
			req.Header.Set("Authorization", "Bearer "+apiToken)
		}
	} else {
		req, err = http.NewRequest("POST", base+"/in/hooks", bytes.NewReader(ev.body))
		if err == nil {
			now := time.Now()
			req.Header.Set("webhook-id", ev.key)
			req.Header.Set("webhook-timestamp", fmt.Sprint(now.Unix()))
			req.Header.Set("webhook-signature", stdwebhooks.Sign(webhookSecret, ev.key, now, ev.body))
		}
	}
	if err != nil {
		a.err, a.end = err, time.Now()
		return a
	}
	req.Header.Set("Content-Type", "application/json")
	resp, err := c.Do(req)
	if err != nil {
		a.err, a.end = err, time.Now()
		return a
	}
	data, err := io.ReadAll(resp.Body)
	resp.Body.Close()
	a.end = time.Now()
	a.status = resp.StatusCode
	a.retryAfter = resp.Header.Get("Retry-After")
	if err != nil {
		a.status, a.err = 0, err // the answer did not arrive whole: not acknowledged
		return a
	}
	if a.status/100 == 2 {
		var rep acceptedReply
		if err := json.Unmarshal(data, &rep); err != nil {
			a.err = fmt.Errorf("2xx with body %q: %v", data, err)
			return a
		}
		a.dup = rep.Duplicate
		if rep.EventID != ev.eventID() {
			a.err = fmt.Errorf("accepted as %q, want %q", rep.EventID, ev.eventID())
		}
	} else {
		a.err = fmt.Errorf("%d %s", a.status, bytes.TrimSpace(data))
	}
	return a
}

// stream delivers events from several goroutines, each retrying an event
// with the same key (as a provider would) until it gets a 2xx. Transport
// errors, 503 and other 5xx answers are retried; 4xx answers are failures.
type stream struct {
	c        *http.Client
	to       *gatewayProc // default target
	workers  int
	backoff  time.Duration
	pace     time.Duration // pause after each accepted event, per worker
	observe  func(attempt) // optional, called for every attempt
	accepted atomic.Int64  // events accepted so far

	n2xx, nDup, n503, nConnErr, nOther, nRetries atomic.Int64

	mu       sync.Mutex
	failures []string
}

// run delivers every event, or stops when ctx is done; it returns when all
// workers have stopped.
func (s *stream) run(ctx context.Context, events []*event) {
	ch := make(chan *event)
	var wg sync.WaitGroup
	for range s.workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for ev := range ch {
				s.deliver(ctx, ev)
				if s.pace > 0 {
					select {
					case <-ctx.Done():
					case <-time.After(s.pace):
					}
				}
			}
		}()
	}
	for _, ev := range events {
		select {
		case ch <- ev:
			continue
		case <-ctx.Done():
		}
		break
	}
	close(ch)
	wg.Wait()
}

func (s *stream) deliver(ctx context.Context, ev *event) {
	for ctx.Err() == nil {
		target := s.to
		if ev.to != nil {
			target = ev.to
		}
		a := send(s.c, target.base(), ev)
		ev.attempts++
		if s.observe != nil {
			s.observe(a)
		}
		switch {
		case a.status/100 == 2 && a.err == nil:
			s.n2xx.Add(1)
			if a.dup {
				s.nDup.Add(1)
			}
			ev.status, ev.dup = a.status, a.dup
			s.accepted.Add(1)
			return
		case a.status/100 == 2, a.status/100 == 4:
			s.fail("%s %s: %v", ev.via, ev.key, a.err)
			return
		case a.status == http.StatusServiceUnavailable:
			s.n503.Add(1)
		case a.status == 0:
			s.nConnErr.Add(1)
		default:
			s.nOther.Add(1)
		}
		s.nRetries.Add(1)
		select {
		case <-ctx.Done():
		case <-time.After(s.backoff):
		}
	}
}

func (s *stream) fail(format string, args ...any) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.failures = append(s.failures, fmt.Sprintf(format, args...))
}

// report fails the test for every 4xx or malformed answer, and for events
// never accepted; it logs the counts.
func (s *stream) report(t *testing.T, events []*event) {
	t.Helper()
	s.mu.Lock()
	defer s.mu.Unlock()
	t.Logf("stream: %d events, 2xx %d (duplicate %d), 503 %d, transport errors %d, other 5xx %d, retries %d",
		len(events), s.n2xx.Load(), s.nDup.Load(), s.n503.Load(), s.nConnErr.Load(), s.nOther.Load(), s.nRetries.Load())
	for i, f := range s.failures {
		if i == 10 {
			t.Errorf("… and %d more failures", len(s.failures)-10)
			break
		}
		t.Errorf("stream: %s", f)
	}
	var lost []string
	for _, ev := range events {
		if ev.status == 0 {
			lost = append(lost, ev.key)
		}
	}
	if len(lost) > 0 {
		t.Errorf("stream: %d events never got a 2xx (first: %v)", len(lost), lost[:min(len(lost), 10)])
	}
}

// waitApplied polls GET /api/v1/events/{id} until every id is applied (and
// matched an item), or fails the test after timeout.
func waitApplied(t *testing.T, c *http.Client, base string, ids []string, timeout time.Duration) {
	t.Helper()
	begin := time.Now()
	pending := ids
	var lastErr error
	for round := 0; ; round++ {
		var mu sync.Mutex
		var still []string
		parallel(len(pending), 8, func(i int) error {
			var rep eventReply
			_, err := apiCall(c, base, "GET", "/api/v1/events/"+url.PathEscape(pending[i]), nil, &rep)
			if err != nil || !rep.Applied || rep.Unmatched {
				mu.Lock()
				still = append(still, pending[i])
				if err != nil {
					lastErr = err
				} else if rep.Applied && rep.Unmatched {
					lastErr = fmt.Errorf("event %s applied as unmatched", pending[i])
				}
				mu.Unlock()
			}
			return nil
		})
		pending = still
		if len(pending) == 0 {
			t.Logf("all %d events applied %v after the stream ended", len(ids), time.Since(begin).Round(time.Millisecond))
			return
		}
		if time.Since(begin) > timeout {
			t.Errorf("%d of %d accepted events not applied within %v (first: %v; last error: %v)",
				len(pending), len(ids), timeout, pending[:min(len(pending), 10)], lastErr)
			return
		}
		time.Sleep(200 * time.Millisecond)
	}
}

// moves returns the move entries of an item's timeline.
func moves(c *http.Client, base, itemID string) ([]timelineEntry, error) {
	var tl timelineReply
	if _, err := apiCall(c, base, "GET", "/api/v1/items/"+itemID+"/timeline", nil, &tl); err != nil {
		return nil, err
	}
	var ms []timelineEntry
	for _, e := range tl.Entries {
		if e.Kind == "move" {
			ms = append(ms, e)
		}
	}
	return ms, nil
}

// checkMovedOnce asserts that each item (ids[i]) was moved exactly once,
// from new to s1, by eventIDs[i]: stage s1, version 2, one move entry.
func checkMovedOnce(t *testing.T, c *http.Client, base string, ids, eventIDs []string) {
	t.Helper()
	var mu sync.Mutex
	var bad []string
	errs := parallel(len(ids), 8, func(i int) error {
		var it itemReply
		if _, err := apiCall(c, base, "GET", "/api/v1/items/"+ids[i], nil, &it); err != nil {
			return err
		}
		ms, err := moves(c, base, ids[i])
		if err != nil {
			return err
		}
		ok := it.Stage == "s1" && it.Version == 2 && len(ms) == 1 &&
			ms[0].From == "new" && ms[0].To == "s1" && ms[0].EventID == eventIDs[i]
		if !ok {
			mu.Lock()
			bad = append(bad, fmt.Sprintf("item %s (event %s): stage %s version %d moves %+v", ids[i], eventIDs[i], it.Stage, it.Version, ms))
			mu.Unlock()
		}
		return nil
	})
	for _, err := range errs[:min(len(errs), 5)] {
		t.Errorf("check items: %v", err)
	}
	if len(bad) > 0 {
		t.Errorf("%d of %d items not moved exactly once:\n%s", len(bad), len(ids), strings.Join(bad[:min(len(bad), 10)], "\n"))
		return
	}
	if len(errs) == 0 {
		t.Logf("all %d items moved exactly once (stage s1, version 2, one move entry)", len(ids))
	}
}
