package imap

import (
	"context"
	"encoding/json"
	"fmt"
	"sync"
	"sync/atomic"
	"time"
)

// Folder states shown by Status.
const (
	StateStarting     = "starting"
	StateWaitingLease = "waiting_lease" // another gateway holds the folder
	StateConnecting   = "connecting"
	StateSyncing      = "syncing"
	StateIdle         = "idle"    // IDLE: the server pushes new mail
	StatePolling      = "polling" // no IDLE: polling
	StateBackoff      = "backoff" // the last attempt failed; retrying
	StateDisabled     = "disabled"
	StateStopped      = "stopped"
)

// FolderStatus is the state of one watched folder, for /readyz and the API.
type FolderStatus struct {
	Account     string    `json:"account"`
	Folder      string    `json:"folder"`
	Kind        string    `json:"kind"` // incoming or sent
	State       string    `json:"state"`
	Since       time.Time `json:"since"`
	OK          bool      `json:"ok"`
	LastError   string    `json:"last_error,omitempty"`
	LastErrorAt time.Time `json:"last_error_at,omitzero"`
	RetryAt     time.Time `json:"retry_at,omitzero"`
	LastSync    time.Time `json:"last_sync,omitzero"`
	UIDValidity uint32    `json:"uidvalidity,omitempty"`
	LastUID     uint32    `json:"last_uid,omitempty"`
	Rescanning  bool      `json:"rescanning,omitempty"`
	Counters    Counters  `json:"counters"`
}

// Counters are a folder's running totals since the gateway started.
type Counters struct {
	Events      int64 `json:"events"`       // new events recorded
	Duplicates  int64 `json:"duplicates"`   // events the intake already had
	Ignored     int64 `json:"ignored"`      // mail that gave no event (sent to our own addresses only)
	Skipped     int64 `json:"skipped"`      // mail older than the folder's floor or the rescan window
	Quarantined int64 `json:"quarantined"`  // mail that could not be fetched or read
	Warned      int64 `json:"warned"`       // mail whose events carry warnings
	Connects    int64 `json:"connects"`     // successful logins
	Failures    int64 `json:"failures"`     // failed sessions (connect, login, command, store)
	Commands    int64 `json:"commands"`     // IMAP commands sent (round trips)
	Polls       int64 `json:"polls"`        // poll cycles (NOOP) without IDLE
	IdleWakeups int64 `json:"idle_wakeups"` // IDLE cycles ended by new mail
	Fetched     int64 `json:"fetched"`      // mails fetched
}

// folderState is the live state of one worker; safe for concurrent use.
type folderState struct {
	mu sync.Mutex
	st FolderStatus

	events, duplicates, ignored, skipped, quarantined, warned atomic.Int64
	connects, failures, commands, polls, idleWakeups, fetched atomic.Int64
}

func (s *folderState) set(state string, now time.Time, ok bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.st.State != state {
		s.st.State, s.st.Since = state, now.UTC()
	}
	s.st.OK = ok
	if ok {
		s.st.RetryAt = time.Time{}
	}
}

func (s *folderState) failed(err error, now, retry time.Time) {
	s.failures.Add(1)
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.st.State != StateBackoff {
		s.st.State, s.st.Since = StateBackoff, now.UTC()
	}
	s.st.OK = false
	s.st.LastError, s.st.LastErrorAt, s.st.RetryAt = err.Error(), now.UTC(), retry.UTC()
}

func (s *folderState) synced(folder string, c cursor, now time.Time) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.st.Folder, s.st.LastSync = folder, now.UTC()
	s.st.UIDValidity, s.st.LastUID, s.st.Rescanning = c.UIDValidity, c.LastUID, c.RescanUntil > 0
}

func (s *folderState) snapshot() FolderStatus {
	s.mu.Lock()
	st := s.st
	s.mu.Unlock()
	st.Counters = Counters{
		Events: s.events.Load(), Duplicates: s.duplicates.Load(), Ignored: s.ignored.Load(),
		Skipped: s.skipped.Load(), Quarantined: s.quarantined.Load(), Warned: s.warned.Load(),
		Connects: s.connects.Load(), Failures: s.failures.Load(), Commands: s.commands.Load(),
		Polls: s.polls.Load(), IdleWakeups: s.idleWakeups.Load(), Fetched: s.fetched.Load(),
	}
	return st
}

// Status returns the state of every watched folder.
func (c *Connector) Status() []FolderStatus {
	out := make([]FolderStatus, len(c.workers))
	for i, w := range c.workers {
		out[i] = w.st.snapshot()
	}
	return out
}

// Health reports whether every folder is working (connected, or
// deliberately waiting: another gateway holds it, or there is no sent
// folder), with the []FolderStatus of the folders as detail, for /readyz.
// A failing account shows here and in the metrics; it does not stop the
// others.
func (c *Connector) Health() (ok bool, detail any) {
	st := c.Status()
	ok = true
	for _, f := range st {
		ok = ok && f.OK
	}
	return ok, st
}

// QuarantineEntry is a mail that could not be fetched or read. The mail is
// left in the folder; the cursor moved past it.
type QuarantineEntry struct {
	Account     string    `json:"account"`
	Folder      string    `json:"folder"`
	UIDValidity uint32    `json:"uidvalidity"`
	UID         uint32    `json:"uid"`
	Reason      string    `json:"reason"`
	At          time.Time `json:"at"`
}

func (c *Connector) quarantineKey() string { return "imap/" + c.name + "/quarantine" }

// quarantine records e; recording it twice keeps one entry.
func (c *Connector) quarantine(ctx context.Context, e QuarantineEntry) error {
	b, err := json.Marshal(e)
	if err != nil {
		return err
	}
	id := fmt.Sprintf("%s/%s/%d/%d", e.Account, e.Folder, e.UIDValidity, e.UID)
	if _, _, err := c.records.AppendList(ctx, c.quarantineKey(), id, b, quarantineTTL); err != nil {
		return fmt.Errorf("record quarantine of uid %d: %w", e.UID, err)
	}
	c.log.Warn("mail quarantined", "folder", e.Folder, "uid", e.UID, "reason", e.Reason)
	return nil
}

// Quarantine lists up to limit quarantined mails, oldest first.
func (c *Connector) Quarantine(ctx context.Context, limit int) ([]QuarantineEntry, error) {
	elems, err := c.records.ReadList(ctx, c.quarantineKey(), 0, limit)
	if err != nil {
		return nil, fmt.Errorf("imap %s: read quarantine: %w", c.name, err)
	}
	out := make([]QuarantineEntry, 0, len(elems))
	for _, e := range elems {
		var q QuarantineEntry
		if json.Unmarshal(e.Value, &q) == nil {
			out = append(out, q)
		}
	}
	return out, nil
}
