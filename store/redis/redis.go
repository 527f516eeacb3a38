// Package redis is the production store driver: every gateway process of a
// deployment talks to one Redis (github.com/redis/go-redis/v9), so several
// processes behave as one gateway. Every write that must be atomic runs as
// one Lua script (EVALSHA, falling back to EVAL when the script cache is
// empty, e.g. after a Redis restart).
//
// # Key layout
//
// Every key starts with the configured prefix P (store.Config.Prefix, with a
// ":" appended when it does not end in one; "sg:" by default). Ids are put
// into keys verbatim. Keys marked "TTL" expire after the dedup window.
//
//	P log                       stream: the intake log; fields id (event id), e (event JSON);
//	                            consumer group "engine"; entries are XDEL'd once acknowledged
//	P dedup:<event>             string "1", TTL: the dedup key, SET NX
//	P event:<event>             hash, TTL: e (event JSON), seq (stream id), applied (0|1),
//	                            applied_at (RFC 3339), unmatched (0|1), note; and per item
//	                            a:<item> ("1", the (event, item) applied marker) and
//	                            d:<item> (ItemDecisions JSON), which expire with the record
//	P decisions:<event>         hash, TTL: item id → ItemDecisions JSON, and
//	P applied:<event>           hash, TTL: item id → "1": the same, for an event without a
//	                            record (expired, or never appended) and as gateways before
//	                            the record layout wrote them; always read too (markLua)
//	P unmatched                 sorted set: event id, score = ack time (µs, strictly increasing);
//	                            trimmed to the newest 10,000
//	P contact:<id>              string: Contact JSON without identities
//	P contact-ids:<id>          list: the contact's identities as "kind:value", in order of addition
//	P identity:<kind>:<value>   string: owning contact id
//	P item:<id>                 hash: id, pipeline, stage, contact_id, responsible, closed (0|1),
//	                            fields (JSON), version, created_at, updated_at, score
//	P items                     sorted set of all item ids, score = created_at in µs
//	P items:pipeline:<p>        sorted set, same score, one per pipeline
//	P items:stage:<len(p)>:<p>:<s>  sorted set, same score, one per pipeline and stage
//	P items:contact:<c>         sorted set, same score, one per contact
//	P timeline:<item>           list: TimelineEntry JSON, oldest first
//	P timeline-ids:<item>       set: entry ids already in the timeline (not of the moves that applied an event: their applied markers keep them single)
//	P rec:<key>                 hash: v (version), d (value); PEXPIRE'd when put with a ttl
//	P list:<key>                hash: seq (decimal, gapless from 1) → "<len(id)>:<id><value>"
//	P list-ids:<key>            hash: element id → seq (not of elements appended Unique); expires together with P list:<key>
//	P outbox:<id>, P outbox:due, P outbox:st:<status>, P outbox:item:<item>,
//	P outbox:grp:<stage entry>  the outbox of stage actions (see outbox.go)
//	P bc:<topic>                pub/sub channel (not a key) of Publish and Subscribe
//
// No key uses a hash tag and the scripts derive some index keys from the
// prefix, so the driver needs a standalone (or replicated) Redis, not a
// cluster.
//
// # The log
//
// Append runs SET NX on the dedup key and, only if that succeeded, XADDs the
// event and writes its record, in one script: a duplicate never reaches the
// stream. ReadLog reads the stream through the consumer group; each consumer
// name must belong to one live process (the gateway uses hostname-pid).
// Entries a consumer has held unacknowledged for longer than ClaimAfter are
// taken over by the next consumer that looks (XAUTOCLAIM, at most every
// ClaimAfter/2, capped at 5s), which is how the entries of a crashed process
// are delivered again. Ack acknowledges, deletes the entry and records the
// outcome in one script.
//
// # Errors
//
// Errors read "redis: <operation> <id>: …". Network errors, timeouts, a
// closed Store and a server that cannot serve yet (LOADING, MISCONF, …) wrap
// store.ErrUnavailable; go-redis reconnects by itself, so the same Store
// works again once Redis is back (within about a second: after many failed
// dials go-redis fails fast and probes once a second), and the consumer
// group is recreated if Redis came back without it.
//
// # Durability
//
// Append returns once Redis has executed the script. How durable that is
// depends on the server's persistence: with appendonly yes and appendfsync
// everysec (the recommended setting) a power loss can lose up to one second
// of accepted events; appendfsync always loses none.
package redis

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"time"

	"github.com/redis/go-redis/v9"
	"github.com/redis/go-redis/v9/maintnotifications"

	"github.com/stagegate/stagegate/internal/backoff"
	"github.com/stagegate/stagegate/store"
)

// Group is the name of the consumer group that reads the intake log.
const Group = "engine"

// UnmatchedKeep is how many unmatched event ids are remembered.
const UnmatchedKeep = 10000

// Options are the driver's settings that are not part of the config file.
type Options struct {
	// Logger receives reclaims, dropped log entries and group repairs; nil
	// discards them.
	Logger *slog.Logger
	// Now is the clock for stored timestamps (applied_at, defaults of
	// created_at); nil means time.Now. Expiry uses the Redis clock.
	Now func() time.Time
	// WaitForRedis: when Redis cannot be reached at Open, Open returns the
	// Store anyway instead of an error. Its calls fail with
	// store.ErrUnavailable (as during an outage) until Redis answers, and
	// the rest of Open's set-up (consumer group, scripts) is retried in the
	// background with backoff. Other errors (a bad password) still fail.
	WaitForRedis bool
}

// Store is the Redis implementation of store.Store. It is safe for
// concurrent use, and survives Redis restarts: go-redis reconnects on its
// own, and the consumer group is recreated if Redis came back empty.
type Store struct {
	rdb       *redis.Client
	prefix    string
	window    time.Duration
	claimIdle time.Duration // store.Config.ClaimAfter
	log       *slog.Logger
	now       func() time.Time
	claim     claimState

	readMu sync.Mutex
	own    map[string]string // consumer → where re-reading its own pending entries goes on

	// closeMu is held shared by every write in flight and exclusively by
	// Close, so Close lets writes that were sent finish first.
	closeMu sync.RWMutex

	closed    chan struct{} // closed by Close: ends the subscriptions
	closeOnce sync.Once

	appends       chan *appendReq // to the appenders (appender.go)
	appendersDone chan struct{}
	appendsClosed bool // under closeMu
}

var _ store.Store = (*Store)(nil)

// Open connects to cfg.URL, checks that Redis answers and creates the
// consumer group if needed. Empty DedupWindow, ClaimAfter and Prefix take
// the store package defaults. An unreachable Redis gives an error wrapping
// store.ErrUnavailable, unless opts.WaitForRedis.
func Open(ctx context.Context, cfg store.Config, opts Options) (*Store, error) {
	if cfg.URL == "" {
		return nil, errors.New("redis: open: no url")
	}
	ropt, err := redis.ParseURL(cfg.URL)
	if err != nil {
		return nil, fmt.Errorf("redis: open: %w", err)
	}
	// Honour the callers' deadlines; fail over a refused connection within
	// about a second (go-redis retries each command 3 times by default, with
	// 5 dial attempts each); skip the maintenance-notification handshake
	// meant for Redis Enterprise/Cloud. Other settings come from the URL
	// (max_retries, dial_timeout, read_timeout, pool_size, ...).
	ropt.ContextTimeoutEnabled = true
	ropt.DialerRetries = 2
	ropt.MaintNotificationsConfig = &maintnotifications.Config{Mode: maintnotifications.ModeDisabled}

	s := &Store{
		rdb:       redis.NewClient(ropt),
		prefix:    normPrefix(cfg.Prefix),
		window:    cmpOr(cfg.DedupWindow, store.DefaultDedupWindow),
		claimIdle: cmpOr(cfg.ClaimAfter, store.DefaultClaimAfter),
		log:       opts.Logger,
		now:       opts.Now,
		own:       make(map[string]string),
		closed:    make(chan struct{}),
	}
	if s.log == nil {
		s.log = slog.New(slog.DiscardHandler)
	}
	if s.now == nil {
		s.now = time.Now
	}
	s.claim.every = min(max(s.claimIdle/2, 100*time.Millisecond), 5*time.Second)
	if err := s.setup(ctx, ropt.Addr); err != nil {
		if !opts.WaitForRedis || !errors.Is(err, store.ErrUnavailable) || ctx.Err() != nil {
			_ = s.rdb.Close()
			return nil, err
		}
		s.log.Warn("redis: unreachable at start-up; waiting for it (readyz fails meanwhile)", "addr", ropt.Addr, "err", err)
		go s.setupLater(ropt.Addr)
	}
	s.startAppenders()
	return s, nil
}

// setup checks that Redis answers, creates the consumer group if needed
// and loads the scripts, so that the first calls need no EVAL fallback.
func (s *Store) setup(ctx context.Context, addr string) error {
	if err := s.rdb.Ping(ctx).Err(); err != nil {
		return wrap("open", addr, err)
	}
	if err := s.ensureGroup(ctx); err != nil {
		return err
	}
	for _, sc := range scripts {
		if err := sc.Load(ctx, s.rdb).Err(); err != nil {
			return wrap("load scripts", "", err)
		}
	}
	return nil
}

// setupLater retries setup with backoff until it succeeds or the store is
// closed (Redis was down when the store was opened).
func (s *Store) setupLater(addr string) {
	bo := backoff.New(500*time.Millisecond, 30*time.Second)
	start, d := time.Now(), bo.Next()
	for {
		t := time.NewTimer(d)
		select {
		case <-s.closed:
			t.Stop()
			return
		case <-t.C:
		}
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		err := s.setup(ctx, addr)
		cancel()
		if err == nil {
			s.log.Info("redis: reachable; the store is ready", "addr", addr, "waited", time.Since(start).Round(time.Millisecond).String())
			return
		}
		d = bo.Next()
		s.log.Warn("redis: still unreachable", "addr", addr, "err", err, "retry_in", d.Round(time.Millisecond).String())
	}
}

// normPrefix makes sure the prefix ends in ":".
func normPrefix(p string) string {
	if p == "" {
		p = store.DefaultPrefix
	}
	if !strings.HasSuffix(p, ":") {
		p += ":"
	}
	return p
}

func cmpOr(d, def time.Duration) time.Duration {
	if d <= 0 {
		return def
	}
	return d
}

// Prefix returns the prefix every key of the store starts with.
func (s *Store) Prefix() string { return s.prefix }

// Ping reports whether Redis answers.
func (s *Store) Ping(ctx context.Context) error {
	return wrap("ping", "", s.rdb.Ping(ctx).Err())
}

// Close waits for the writes in flight, closes the subscribers' channels and
// the connections; later calls fail with store.ErrUnavailable.
func (s *Store) Close() error {
	s.closeOnce.Do(func() { close(s.closed) })
	s.closeMu.Lock()
	defer s.closeMu.Unlock()
	s.closeAppenders()
	if err := s.rdb.Close(); err != nil && !errors.Is(err, redis.ErrClosed) {
		return fmt.Errorf("redis: close: %w", err)
	}
	return nil
}

// hold keeps Close from closing the client under a write; call the returned
// function when the write is done.
func (s *Store) hold() func() {
	s.closeMu.RLock()
	return s.closeMu.RUnlock
}

// ensureGroup creates the log stream and its consumer group, reading from
// the start so that entries appended before the group existed (Redis came
// back empty, then an Append ran first) are not skipped.
func (s *Store) ensureGroup(ctx context.Context) error {
	err := s.rdb.XGroupCreateMkStream(ctx, s.key("log"), Group, "0").Err()
	if err != nil && !redis.HasErrorPrefix(err, "BUSYGROUP") {
		return wrap("create consumer group", "", err)
	}
	return nil
}

// key joins the prefix and the parts with ":".
func (s *Store) key(parts ...string) string {
	return s.prefix + strings.Join(parts, ":")
}

// stageKey is the index of one stage of one pipeline; the pipeline's length
// keeps "a:b"+"c" apart from "a"+"b:c". The scripts build the same name.
func (s *Store) stageKey(pipeline, stage string) string {
	return fmt.Sprintf("%sitems:stage:%d:%s:%s", s.prefix, len(pipeline), pipeline, stage)
}
