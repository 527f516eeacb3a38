package imap

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"runtime"
	"slices"
	"strconv"
	"sync"

	"github.com/emersion/go-imap/v2"

	"github.com/stagegate/stagegate/connectors"
	"github.com/stagegate/stagegate/normalize"
	"github.com/stagegate/stagegate/store"
)

// catchUp reads every mail past the cursor, in batches of UIDs, and
// advances the cursor after each batch's events are durable.
func (w *worker) catchUp(ctx context.Context, cn *conn, folder string, cur *cursor) error {
	uids, err := cn.uidsAfter(cur.LastUID)
	if err != nil {
		return err
	}
	for len(uids) > 0 {
		n := min(len(uids), w.c.cfg.BatchSize)
		if cur.Trouble != nil && uids[0] <= cur.Trouble.Until {
			n = 1 // narrowing down a mail that ended a session
		}
		if err := w.fetchBatch(ctx, cn, folder, cur, uids[:n]); err != nil {
			return err
		}
		uids = uids[n:]
	}
	return nil
}

// linkParallel bounds the reply links of the sent folder looked up at once.
const linkParallel = 32

// killLimit is how many sessions a mail fetched alone may end (the
// server hung up, or stopped answering) before it is quarantined.
const killLimit = 3

// errStopped stops a FETCH stream when the worker is stopping.
var errStopped = errors.New("stopped before the batch was read")

// fetchBatch fetches, normalizes and records one batch: its events go to
// the intake in one SubmitBatch (more only when one sender's mails must
// follow each other, see submit), and the cursor is written once, after
// they are durable. The stream is read and mails are normalized on every
// CPU (in order) at the same time; the store is only met at the end, so
// nothing of the parsing waits on it. A batch the server refuses (NO) is
// retried one mail at a time, and a single mail it refuses is quarantined,
// so one broken mail never blocks the folder. A batch whose FETCH ends the
// session (the server hangs up: Dovecot says BYE when it cannot read a
// mail file) is narrowed down in the next sessions, see killed; the mails
// that streamed in before are recorded first.
func (w *worker) fetchBatch(ctx context.Context, cn *conn, folder string, cur *cursor, batch []uint32) error {
	done := map[uint32]bool{}
	queue := make(chan chan mailResult, len(batch)) // results, in stream order
	jobs := make(chan func(), runtime.GOMAXPROCS(0))
	var normalizers sync.WaitGroup
	for range runtime.GOMAXPROCS(0) {
		normalizers.Go(func() {
			for job := range jobs {
				job()
			}
		})
	}
	collected := make(chan []mailResult, 1)
	go func() {
		var mails []mailResult
		for out := range queue {
			mails = append(mails, <-out)
		}
		collected <- mails
	}()
	ferr := w.fetch(cn, folder, cur.UIDValidity, cur.LastUID, batch, func(f Fetched, problem string) error {
		if ctx.Err() != nil {
			return errStopped
		}
		out := make(chan mailResult, 1)
		queue <- out
		jobs <- func() { out <- w.normalize(f, problem) }
		return nil
	})
	close(jobs)
	normalizers.Wait()
	close(queue)
	if err := w.submit(ctx, folder, cur, <-collected, done); err != nil {
		return err
	}
	if ferr == nil {
		// Every UID of the batch is done, or was not returned (expunged).
		return w.advance(ctx, folder, cur, batch, done, true)
	}
	if err := w.advance(ctx, folder, cur, batch, done, false); err != nil {
		return errors.Join(ferr, err)
	}
	var refused *imap.Error
	if !errors.As(ferr, &refused) || refused.Type == imap.StatusResponseTypeBye {
		if ctx.Err() != nil || errors.Is(ferr, errStopped) {
			return ferr
		}
		return w.killed(ctx, folder, cur, batch, done, ferr)
	}
	rest := slices.DeleteFunc(slices.Clone(batch), func(u uint32) bool { return u <= cur.LastUID || done[u] })
	if len(batch) > 1 {
		for _, uid := range rest {
			if err := w.fetchBatch(ctx, cn, folder, cur, []uint32{uid}); err != nil {
				return err
			}
		}
		return nil
	}
	for _, uid := range rest {
		q := QuarantineEntry{Account: w.c.cfg.Username, Folder: folder, UIDValidity: cur.UIDValidity, UID: uid,
			Reason: "the server refused to fetch it: " + ferr.Error(), At: w.c.now().UTC()}
		if err := w.c.quarantine(ctx, q); err != nil {
			return err
		}
		w.st.quarantined.Add(1)
		done[uid] = true
	}
	return w.advance(ctx, folder, cur, batch, done, false)
}

// killed records that the FETCH of batch ended the session (ferr), so
// that the next sessions narrow it down: the mails of the batch not done
// yet are fetched one at a time, and a mail whose FETCH alone ends
// killLimit sessions is quarantined. What it counts is kept in the cursor,
// in the store, since every count comes with a reconnection. It returns
// ferr: the session is over either way.
func (w *worker) killed(ctx context.Context, folder string, cur *cursor, batch []uint32, done map[uint32]bool, ferr error) error {
	rest := slices.DeleteFunc(slices.Clone(batch), func(u uint32) bool { return u <= cur.LastUID || done[u] })
	if len(rest) == 0 {
		return ferr
	}
	t := cur.Trouble
	if t == nil {
		t = &trouble{}
	}
	t.Until = max(t.Until, rest[len(rest)-1])
	cur.Trouble = t
	log := w.c.log.With("folder", folder)
	if len(rest) > 1 {
		log.Warn("the server ended the session during a FETCH; fetching its mails one at a time",
			"from_uid", rest[0], "to_uid", rest[len(rest)-1], "err", ferr)
		return errors.Join(ferr, cur.save(ctx, w.c.records, w.c.key("cursor", folder), w.c.now()))
	}
	uid := rest[0]
	if t.Kills == nil {
		t.Kills = map[uint32]int{}
	}
	t.Kills[uid]++
	n := t.Kills[uid]
	if n < killLimit {
		log.Warn("the server ended the session while fetching one mail", "uid", uid, "times", n, "quarantine_at", killLimit, "err", ferr)
		return errors.Join(ferr, cur.save(ctx, w.c.records, w.c.key("cursor", folder), w.c.now()))
	}
	q := QuarantineEntry{Account: w.c.cfg.Username, Folder: folder, UIDValidity: cur.UIDValidity, UID: uid,
		Reason: fmt.Sprintf("the server dropped the connection each time it was asked for it (%d times): %v", n, ferr),
		At:     w.c.now().UTC()}
	if err := w.c.quarantine(ctx, q); err != nil {
		return errors.Join(ferr, err)
	}
	w.st.quarantined.Add(1)
	// Found: the mails after it go back to batches (another killer among
	// them is narrowed down the same way).
	delete(t.Kills, uid)
	t.Until = uid
	done[uid] = true
	return errors.Join(ferr, w.advance(ctx, folder, cur, batch, done, false))
}

// advance moves the cursor over the UIDs of batch that are done, in order,
// stopping at the first that is not (all, when complete), and saves it.
func (w *worker) advance(ctx context.Context, folder string, cur *cursor, batch []uint32, done map[uint32]bool, complete bool) error {
	last := cur.LastUID
	for _, uid := range batch {
		if uid <= last {
			continue
		}
		if !done[uid] && !complete {
			break
		}
		last = uid
	}
	if last == cur.LastUID {
		return nil
	}
	cur.LastUID = last
	return cur.save(ctx, w.c.records, w.c.key("cursor", folder), w.c.now())
}

// submit makes the mails' events durable and marks their UIDs in done,
// all or none of them. The events go to the intake in as few SubmitBatch
// calls as order allows: the mails of one sender (and the events of one
// mail) must reach the log in UID order, so the k-th event of a sender is
// in the k-th call; mails from different senders share the calls, and a
// batch of mails from as many senders is one call. After a failure
// nothing more is submitted and nothing is marked: the cursor stays, and
// the mails are read again and deduplicated.
func (w *worker) submit(ctx context.Context, folder string, cur *cursor, mails []mailResult, done map[uint32]bool) error {
	if len(mails) == 0 {
		return nil
	}
	slices.SortFunc(mails, func(a, b mailResult) int { return cmp.Compare(a.uid, b.uid) })
	var (
		waves   [][]*normalize.Event
		taken   []mailResult // mails with events
		next    = map[string]int{}
		skipped int
		ignored int
		warned  int
	)
	for _, m := range mails {
		switch {
		case m.problem != "":
			q := QuarantineEntry{Account: w.c.cfg.Username, Folder: folder, UIDValidity: cur.UIDValidity, UID: m.uid,
				Reason: m.problem, At: w.c.now().UTC()}
			if err := w.c.quarantine(ctx, q); err != nil {
				return err
			}
			w.st.quarantined.Add(1)
			continue
		case w.skip(cur, m):
			skipped++
			continue
		case len(m.res.Events) == 0:
			ignored++
			continue
		}
		taken = append(taken, m)
		key := "uid:" + strconv.FormatUint(uint64(m.uid), 10)
		if m.res.Events[0].Subject.Email != "" {
			key = m.res.Events[0].Subject.Email
		}
		k := next[key]
		for _, ev := range m.res.Events {
			if k == len(waves) {
				waves = append(waves, nil)
			}
			waves[k] = append(waves[k], ev)
			k++
		}
		next[key] = k
		if len(m.res.Events[0].Warnings) > 0 {
			warned++
		}
	}
	if w.sent {
		if err := w.linkReplies(ctx, taken); err != nil {
			return err
		}
	}
	for _, evs := range waves {
		res, err := connectors.SubmitBatch(ctx, w.c.intake, evs)
		if err != nil {
			return fmt.Errorf("record %d events: %w", len(evs), err)
		}
		for _, r := range res {
			if r.Duplicate {
				w.st.duplicates.Add(1)
			} else {
				w.st.events.Add(1)
			}
		}
	}
	w.st.skipped.Add(int64(skipped))
	w.st.ignored.Add(int64(ignored))
	w.st.warned.Add(int64(warned))
	for _, m := range mails {
		done[m.uid] = true
	}
	return nil
}

// linkReplies runs linkReply for the sent mails, several at once; the
// first error is returned after all have ended.
func (w *worker) linkReplies(ctx context.Context, mails []mailResult) error {
	errs := make([]error, len(mails))
	sem := make(chan struct{}, linkParallel)
	var wg sync.WaitGroup
	for i, m := range mails {
		sem <- struct{}{}
		wg.Go(func() {
			defer func() { <-sem }()
			errs[i] = w.c.linkReply(ctx, m.res)
		})
	}
	wg.Wait()
	return errors.Join(errs...)
}

// skip reports whether a mail is outside what the folder takes: it reached
// the server before the cursor's floor, or, in a rescan, it is dated
// before the rescan window (its event would have left the dedup window).
func (w *worker) skip(cur *cursor, m mailResult) bool {
	if !m.internal.IsZero() && m.internal.Before(cur.Floor) {
		return true
	}
	if cur.rescanning(m.uid) {
		d := m.res.Date
		if d.IsZero() {
			d = m.internal
		}
		return !d.IsZero() && d.Before(cur.RescanFloor)
	}
	return false
}

// linkReply records, for a mail from the sent folder that answers a
// message we know (a tracked message, or an earlier sent mail linked the
// same way), that its own Message-ID belongs to the same item, so the
// customer's reply to it reaches that item before any address lookup.
func (c *Connector) linkReply(ctx context.Context, res Result) error {
	if res.MessageID == "" {
		return nil
	}
	for _, id := range res.Refs {
		ref, err := store.GetMessageRef(ctx, c.records, id)
		if errors.Is(err, store.ErrNotFound) {
			continue
		}
		if err != nil {
			return fmt.Errorf("look up reply target %s: %w", id, err)
		}
		link := store.MessageRef{ItemID: ref.ItemID, Source: "imap/" + c.name, CreatedAt: c.now().UTC()}
		return store.PutMessageRef(ctx, c.records, res.MessageID, link, messageRefTTL)
	}
	return nil
}
