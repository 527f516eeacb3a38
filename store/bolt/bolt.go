// Package bolt is the embedded default store driver: one go.etcd.io/bbolt
// file used by one process, fsync'd on every commit. Writes are batched by a
// group committer (many callers, one transaction, one fsync), reads run in
// read-only transactions, and a background sweeper forgets event ids once
// the dedup window has passed and deletes expired records and lists.
package bolt

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"sync"
	"time"

	bbolt "go.etcd.io/bbolt"
	bolterrors "go.etcd.io/bbolt/errors"

	"github.com/stagegate/stagegate/store"
)

// Options are the driver's settings that are not part of the config file.
type Options struct {
	// Logger receives sweeper and commit failures; nil discards them.
	Logger *slog.Logger
	// Now is the clock; nil means time.Now. Tests inject a fake one to
	// check the expiry of dedup keys, records and lists.
	Now func() time.Time
	// SweepInterval is how often expired dedup keys, event records,
	// records and lists are deleted; 0 means one minute.
	SweepInterval time.Duration
}

// Store is the bbolt implementation of store.Store.
type Store struct {
	db     *bbolt.DB
	c      *committer
	log    *slog.Logger
	now    func() time.Time
	window time.Duration

	closing   chan struct{} // closed when Close starts
	closeOnce sync.Once
	sweepDone chan struct{}

	readMu sync.Mutex // serializes ReadLog so no entry is handed out twice
	cursor uint64     // highest log sequence delivered since Open

	wakeMu sync.Mutex
	wake   chan struct{} // closed and replaced after every commit that added log entries
	// logGrew is set by a transaction that adds a log entry; only the
	// committer's goroutine touches it (committed reads and clears it).
	logGrew bool

	bc *broadcaster // Publish and Subscribe

	items  *itemCache    // decoded items, for the engine's reads and writes
	recent *recentEvents // appended events not read yet, for readNext
}

var _ store.Store = (*Store)(nil)

// errClosed is returned by every call after Close.
var errClosed = fmt.Errorf("closed: %w", store.ErrUnavailable)

// Bucket names.
var (
	bMeta          = []byte("meta")             // "layout" → u64(version of the file's layout)
	bDedup         = []byte("dedup")            // event id → expiry (timeKey) + u64(rseq) (evref.go)
	bExpiry        = []byte("expiry")           // timeKey(expiry) + event id → nil
	bLog           = []byte("event_log")        // u64(seq) → u64(rseq)
	bEvData        = []byte("event_data")       // u64(rseq) + kind [+ item id] → the event's record, state, decisions, markers (evref.go)
	bUnmatched     = []byte("unmatched_events") // timeKey(ack) + u64(n) → u64(rseq)
	bFailed        = []byte("failed_events")    // timeKey(ack) + u64(n) → u64(rseq) of a parked event
	bDecisions     = []byte("decisions")        // event id \0 item id → ItemDecisions JSON, for an event without a record
	bApplied       = []byte("applied")          // event id \0 item id → nil, for an event without a record
	bContacts      = []byte("contacts")         // contact id → Contact JSON
	bIdentities    = []byte("identities")       // kind \0 value → contact id
	bItems         = []byte("items")            // item id → Item JSON
	bIdxAll        = []byte("idx_all")          // timeKey(created) + item id → nil
	bIdxPipe       = []byte("idx_pipe")         // pipeline \0 timeKey + item id → nil
	bIdxStage      = []byte("idx_stage")        // pipeline \0 stage \0 timeKey + item id → nil
	bIdxContact    = []byte("idx_contact")      // contact id \0 timeKey + item id → nil
	bTimelineEntry = []byte("timeline_entries") // u64(n) → u64(the item's previous n) + entry JSON (timeline.go)
	bTimelineHead  = []byte("timeline_heads")   // item id → u64(n of its newest entry)
	bTimelineID    = []byte("timeline_ids")     // item id \0 entry id → {1}
	bRecords       = []byte("records")          // record key → version, expiry, value (records.go)
	bRecExpiry     = []byte("rec_expiry")       // timeKey(expiry) + record key → nil
	bList          = []byte("list_data")        // list key \0 kind … → the lists' elements (lists.go)
	bListExpiry    = []byte("list_expiry")      // timeKey(expiry) + list key → nil
)

var allBuckets = [][]byte{
	bMeta, bDedup, bExpiry, bLog, bEvData, bUnmatched, bFailed, bDecisions, bApplied,
	bContacts, bIdentities, bItems, bIdxAll, bIdxPipe, bIdxStage, bIdxContact,
	bTimelineEntry, bTimelineHead, bTimelineID,
	bRecords, bRecExpiry, bList, bListExpiry, bOutbox, bOutboxDue, bOutboxStatus, bOutboxItem,
}

// Open opens (creating if needed) the database file cfg.Path and its parent
// directory, and starts the committer and the sweeper. Delivery of the log
// starts again from its oldest unacknowledged entry, and outbox entries
// left running by the previous process are due again at once.
func Open(cfg store.Config, opts Options) (*Store, error) {
	if cfg.Path == "" {
		return nil, errors.New("bolt: open: path is required")
	}
	if err := os.MkdirAll(filepath.Dir(cfg.Path), 0o750); err != nil {
		return nil, fmt.Errorf("bolt: open: %w", err)
	}
	db, err := bbolt.Open(cfg.Path, 0o600, &bbolt.Options{Timeout: 2 * time.Second})
	if err != nil {
		return nil, fmt.Errorf("bolt: open %s: %w", cfg.Path, err)
	}
	now := time.Now
	if opts.Now != nil {
		now = opts.Now
	}
	log := opts.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	upgrade := false
	err = db.Update(func(tx *bbolt.Tx) error {
		for _, name := range allBuckets {
			if _, err := tx.CreateBucketIfNotExists(name); err != nil {
				return fmt.Errorf("bucket %s: %w", name, err)
			}
		}
		var err error
		upgrade, err = checkLayout(tx)
		return err
	})
	if err == nil && upgrade {
		err = upgradeFile(db, cfg.Path, log)
	}
	if err == nil {
		err = db.Update(func(tx *bbolt.Tx) error {
			_, err := releaseLeases(tx, now())
			return err
		})
	}
	if err != nil {
		db.Close()
		return nil, fmt.Errorf("bolt: open %s: %w", cfg.Path, err)
	}
	s := &Store{
		db:        db,
		log:       log,
		now:       opts.Now,
		window:    cfg.DedupWindow,
		closing:   make(chan struct{}),
		sweepDone: make(chan struct{}),
		wake:      make(chan struct{}),
		bc:        newBroadcaster(),
		items:     newItemCache(),
		recent:    newRecentEvents(),
	}
	if s.now == nil {
		s.now = time.Now
	}
	if s.window <= 0 {
		s.window = store.DefaultDedupWindow
	}
	s.c = newCommitter(db, s.log, s.committed)
	interval := opts.SweepInterval
	if interval <= 0 {
		interval = time.Minute
	}
	go s.sweeper(interval)
	return s, nil
}

// upgradeFile brings a file of an earlier layout to the current one in
// steps of one transaction each (upgradeStep), logging the start, every
// 100,000 events or timeline entries and the end.
func upgradeFile(db *bbolt.DB, path string, log *slog.Logger) error {
	began := time.Now()
	log.Info("bolt: upgrading the file to layout 3 (events by record sequence, lists in one bucket, timelines one log chained per item)", "path", path)
	var total upgraded
	logged := 0
	for {
		done := false
		var n upgraded
		err := db.Update(func(tx *bbolt.Tx) error {
			var err error
			done, n, err = upgradeStep(tx)
			return err
		})
		if err != nil {
			return fmt.Errorf("upgrade the file's layout (%d events, %d timeline entries moved; the next start goes on from there): %w", total.events, total.entries, err)
		}
		total.events += n.events
		total.entries += n.entries
		if total.events+total.entries-logged >= 100000 {
			logged = total.events + total.entries
			log.Info("bolt: upgrading", "path", path, "events", total.events, "timeline_entries", total.entries, "took", time.Since(began).Round(time.Millisecond))
		}
		if done {
			log.Info("bolt: upgraded the file to layout 3", "path", path, "events", total.events, "timeline_entries", total.entries, "took", time.Since(began).Round(time.Millisecond))
			return nil
		}
	}
}

// Close closes the subscribers' channels, stops the sweeper, answers every
// queued write, and closes the file.
// Calls made after Close return an error wrapping store.ErrUnavailable;
// closing twice is a no-op.
func (s *Store) Close() error {
	var err error
	s.closeOnce.Do(func() {
		close(s.closing)
		s.bc.close()
		s.c.close()
		<-s.sweepDone
		if cerr := s.db.Close(); cerr != nil {
			err = fmt.Errorf("bolt: close: %w", cerr)
		}
	})
	return err
}

// SingleProcess reports true: one process owns the file, so the engine of
// that process applies every event and need not poll for others'.
func (s *Store) SingleProcess() bool { return true }

// Ping reports whether the database is open and readable.
func (s *Store) Ping(ctx context.Context) error {
	if err := s.view(func(*bbolt.Tx) error { return nil }); err != nil {
		return fmt.Errorf("bolt: ping: %w", err)
	}
	return ctx.Err()
}

// view runs fn in a read-only transaction, mapping a closed database to
// store.ErrUnavailable.
func (s *Store) view(fn func(tx *bbolt.Tx) error) error {
	select {
	case <-s.closing:
		return errClosed
	default:
	}
	err := s.db.View(fn)
	if errors.Is(err, bolterrors.ErrDatabaseNotOpen) {
		return errClosed
	}
	return err
}

// update runs fn through the group committer.
func (s *Store) update(ctx context.Context, fn func(tx *bbolt.Tx) error) error {
	return s.c.do(ctx, fn)
}

// WriteStats is what the store's transactions wrote since Open, for
// benchmarks: commits of the group committer, and the pages bbolt
// allocated (dirty pages written at commit) and their bytes.
type WriteStats struct {
	Commits, Pages, Bytes int64
}

// WriteStats returns the store's WriteStats.
func (s *Store) WriteStats() WriteStats {
	ts := s.db.Stats().TxStats
	return WriteStats{Commits: s.c.commits.Load(), Pages: ts.GetPageCount(), Bytes: ts.GetPageAlloc()}
}
