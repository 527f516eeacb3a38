package connectors

import (
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"strconv"
	"sync"
	"time"

	"github.com/stagegate/stagegate/internal/httpx"
	"github.com/stagegate/stagegate/normalize"
)

// RetryAfter is what a 503 answer asks the sender to wait before retrying.
const RetryAfter = 5 * time.Second

// WarnEvery bounds refusal logging: at most one warning per connector in this
// interval; the others go to debug and are counted in the next warning.
const WarnEvery = 10 * time.Second

// Accepted is the body of a 200 answer: the event id and whether the event
// had been recorded before (a replay, which changes nothing).
type Accepted struct {
	EventID   string `json:"event_id"`
	Duplicate bool   `json:"duplicate"`
}

// Push is what every push (HTTP) connector holds: its identity, its
// dependencies and the ways to answer a request. Embed it in the connector.
type Push struct {
	name    string
	log     *slog.Logger
	intake  Intake
	now     func() time.Time
	maxBody int64
	warns   WarnLimiter // of LogRefusal
}

// NewPush builds the Push of connector b of the given kind; maxBody bounds
// what ReadBody reads.
func NewPush(kind string, b Base, deps Deps, maxBody int64) (*Push, error) {
	if deps.Intake == nil {
		return nil, fmt.Errorf("%s %s: no intake", kind, b.Name)
	}
	s := &Push{name: b.Name, log: deps.Logger, intake: deps.Intake, now: deps.Now, maxBody: maxBody}
	if s.log == nil {
		s.log = slog.New(slog.DiscardHandler)
	}
	if s.now == nil {
		s.now = time.Now
	}
	return s, nil
}

// Name returns the connector's instance name.
func (s *Push) Name() string { return s.name }

// Refuse answers an input that will not become an event, counts it with
// Intake.Reject (reason = code) and logs it without flooding.
func (s *Push) Refuse(w http.ResponseWriter, r *http.Request, status int, code, msg string) {
	s.intake.Reject(s.name, code)
	s.LogRefusal(r, status == http.StatusNotFound || status == http.StatusMethodNotAllowed, code, msg)
	httpx.WriteError(w, status, code, msg)
}

// LogRefusal logs at warn at most once per WarnEvery, else at debug. quiet
// refusals (scanners probing paths) always go to debug.
func (s *Push) LogRefusal(r *http.Request, quiet bool, code, msg string) {
	s.LogRefusalOf(r.RemoteAddr, r.URL.Path, quiet, code, msg)
}

// LogRefusalOf is LogRefusal for a request already answered (its handler
// has returned, so the request is not read again): its remote address and
// path, kept by the caller.
func (s *Push) LogRefusalOf(remote, path string, quiet bool, code, msg string) {
	args := []any{"code", code, "reason", msg, "remote", remote, "path", path}
	if !quiet {
		if warn, quieted := s.warns.Allow(s.now()); warn {
			s.log.Warn("request refused", append(args, "quieted_since_last", quieted)...)
			return
		}
	}
	s.log.Debug("request refused", args...)
}

// ReadBody reads at most s.maxBody bytes of the body. On failure it has
// already answered (413 or 400) and returns ok false.
func (s *Push) ReadBody(w http.ResponseWriter, r *http.Request) ([]byte, bool) {
	if r.ContentLength > s.maxBody {
		s.TooLarge(w, r)
		return nil, false
	}
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, s.maxBody))
	if err != nil {
		if IsTooLarge(err) {
			s.TooLarge(w, r)
		} else {
			s.Refuse(w, r, http.StatusBadRequest, "bad_body", "could not read the body")
		}
		return nil, false
	}
	return body, true
}

// TooLarge answers 413 for a body over the limit.
func (s *Push) TooLarge(w http.ResponseWriter, r *http.Request) {
	s.Refuse(w, r, http.StatusRequestEntityTooLarge, "body_too_large",
		fmt.Sprintf("body larger than %d bytes", s.maxBody))
}

// IsTooLarge reports whether err comes from an http.MaxBytesReader over its limit.
func IsTooLarge(err error) bool {
	var mbe *http.MaxBytesError
	return errors.As(err, &mbe)
}

// Submit hands ev to Intake. On failure it has already answered (503 when
// the intake is unavailable, 500 otherwise) and returns ok false: the
// source is never acknowledged for an event that is not durable.
func (s *Push) Submit(w http.ResponseWriter, r *http.Request, ev *normalize.Event) (Result, bool) {
	res, err := s.intake.Submit(r.Context(), ev)
	switch {
	case err == nil:
		if res.EventID == "" {
			res.EventID = ev.ID
		}
		s.log.Debug("event accepted", "event_id", res.EventID, "type", ev.Type, "duplicate", res.Duplicate)
		return res, true
	case errors.Is(err, ErrUnavailable):
		s.LogRefusal(r, false, "unavailable", err.Error())
		w.Header().Set("Retry-After", strconv.Itoa(int(RetryAfter/time.Second)))
		httpx.WriteError(w, http.StatusServiceUnavailable, "unavailable", "the event could not be recorded; retry later")
	default:
		s.log.Error("intake submit failed", "event_id", ev.ID, "err", err)
		httpx.WriteError(w, http.StatusInternalServerError, "internal", "the event could not be recorded")
	}
	return Result{}, false
}

// Logger returns the connector's logger.
func (s *Push) Logger() *slog.Logger { return s.log }

// Now returns the connector's clock reading.
func (s *Push) Now() time.Time { return s.now() }

// Intake returns the connector's intake.
func (s *Push) Intake() Intake { return s.intake }

// MaxBody returns the body limit given to NewPush.
func (s *Push) MaxBody() int64 { return s.maxBody }

// WriteAccepted answers 200 with the Accepted body for res.
func WriteAccepted(w http.ResponseWriter, res Result) {
	httpx.WriteJSON(w, http.StatusOK, Accepted(res))
}

// WarnLimiter lets one warning through per WarnEvery; the others go to
// debug and are counted in the next warning (quieted_since_last), so a
// flood of bad requests or a dead store writes one line every ten seconds.
// The zero value is ready to use.
type WarnLimiter struct {
	mu      sync.Mutex
	next    time.Time
	quieted int
}

// Allow reports whether to warn at now, and how many warnings were quieted
// since the last one.
func (l *WarnLimiter) Allow(now time.Time) (bool, int) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if now.Before(l.next) {
		l.quieted++
		return false, 0
	}
	q := l.quieted
	l.next, l.quieted = now.Add(WarnEvery), 0
	return true, q
}
