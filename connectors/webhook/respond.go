package webhook

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"strconv"
	"sync"
	"time"

	"github.com/stagegate/stagegate/connectors"
	"github.com/stagegate/stagegate/normalize"
)

// RetryAfter is what a 503 answer asks the sender to wait before retrying.
const RetryAfter = 5 * time.Second

// warnEvery bounds refusal logging: at most one warning per connector in this
// interval; the others go to debug and are counted in the next warning.
const warnEvery = 10 * time.Second

// Accepted is the body of a 200 answer: the event id and whether the event
// had been recorded before (a replay, which changes nothing).
type Accepted struct {
	EventID   string `json:"event_id"`
	Duplicate bool   `json:"duplicate"`
}

// ErrorBody is the body of every error answer:
// {"error": {"code": "bad_signature", "message": "..."}}.
type ErrorBody struct {
	Error ErrorDetail `json:"error"`
}

// ErrorDetail is the inside of an ErrorBody. Code is stable and
// machine-readable; Message is safe to show the caller.
type ErrorDetail struct {
	Code    string `json:"code"`
	Message string `json:"message"`
}

// shared is what both kinds hold: identity, dependencies and ways to answer.
type shared struct {
	name     string
	log      *slog.Logger
	intake   connectors.Intake
	now      func() time.Time
	region   string
	maxBody  int64
	mu       sync.Mutex // guards the two fields below
	nextWarn time.Time
	quieted  int
}

func newShared(kind string, b connectors.Base, deps connectors.Deps, region string, maxBody int64) (*shared, error) {
	if deps.Intake == nil {
		return nil, fmt.Errorf("%s %s: no intake", kind, b.Name)
	}
	s := &shared{name: b.Name, log: deps.Logger, intake: deps.Intake, now: deps.Now, region: region, maxBody: maxBody}
	if s.log == nil {
		s.log = slog.New(slog.DiscardHandler)
	}
	if s.now == nil {
		s.now = time.Now
	}
	return s, nil
}

// Name returns the connector's instance name.
func (s *shared) Name() string { return s.name }

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(v)
}

func writeError(w http.ResponseWriter, status int, code, msg string) {
	writeJSON(w, status, ErrorBody{Error: ErrorDetail{Code: code, Message: msg}})
}

// refuse answers an input that will not become an event, counts it with
// Intake.Reject (reason = code) and logs it without flooding.
func (s *shared) refuse(w http.ResponseWriter, r *http.Request, status int, code, msg string) {
	s.intake.Reject(s.name, code)
	s.logRefusal(r, status == http.StatusNotFound || status == http.StatusMethodNotAllowed, code, msg)
	writeError(w, status, code, msg)
}

// logRefusal logs at warn at most once per warnEvery, else at debug. quiet
// refusals (scanners probing paths) always go to debug.
func (s *shared) logRefusal(r *http.Request, quiet bool, code, msg string) {
	args := []any{"code", code, "reason", msg, "remote", r.RemoteAddr, "path", r.URL.Path}
	if !quiet {
		s.mu.Lock()
		now := s.now()
		warn := !now.Before(s.nextWarn)
		quieted := s.quieted
		if warn {
			s.nextWarn, s.quieted = now.Add(warnEvery), 0
		} else {
			s.quieted++
		}
		s.mu.Unlock()
		if warn {
			s.log.Warn("request refused", append(args, "quieted_since_last", quieted)...)
			return
		}
	}
	s.log.Debug("request refused", args...)
}

// readBody reads at most s.maxBody bytes of the body. On failure it has
// already answered (413 or 400) and returns ok false.
func (s *shared) readBody(w http.ResponseWriter, r *http.Request) ([]byte, bool) {
	if r.ContentLength > s.maxBody {
		s.tooLarge(w, r)
		return nil, false
	}
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, s.maxBody))
	if err != nil {
		if isTooLarge(err) {
			s.tooLarge(w, r)
		} else {
			s.refuse(w, r, http.StatusBadRequest, "bad_body", "could not read the body")
		}
		return nil, false
	}
	return body, true
}

func (s *shared) tooLarge(w http.ResponseWriter, r *http.Request) {
	s.refuse(w, r, http.StatusRequestEntityTooLarge, "body_too_large",
		fmt.Sprintf("body larger than %d bytes", s.maxBody))
}

func isTooLarge(err error) bool {
	var mbe *http.MaxBytesError
	return errors.As(err, &mbe)
}

// submit hands ev to Intake. On failure it has already answered (503 when
// the intake is unavailable, 500 otherwise) and returns ok false: the
// source is never acknowledged for an event that is not durable.
func (s *shared) submit(w http.ResponseWriter, r *http.Request, ev *normalize.Event) (connectors.Result, bool) {
	res, err := s.intake.Submit(r.Context(), ev)
	switch {
	case err == nil:
		if res.EventID == "" {
			res.EventID = ev.ID
		}
		s.log.Debug("event accepted", "event_id", res.EventID, "type", ev.Type, "duplicate", res.Duplicate)
		return res, true
	case errors.Is(err, connectors.ErrUnavailable):
		s.logRefusal(r, false, "unavailable", err.Error())
		w.Header().Set("Retry-After", strconv.Itoa(int(RetryAfter/time.Second)))
		writeError(w, http.StatusServiceUnavailable, "unavailable", "the event could not be recorded; retry later")
	default:
		s.log.Error("intake submit failed", "event_id", ev.ID, "err", err)
		writeError(w, http.StatusInternalServerError, "internal", "the event could not be recorded")
	}
	return connectors.Result{}, false
}
