package imap

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/emersion/go-imap/v2"
	"github.com/emersion/go-imap/v2/imapclient"

	"github.com/stagegate/stagegate/internal/backoff"
)

// errNoSentFolder: folders.sent is auto and no folder has \Sent.
var errNoSentFolder = errors.New(`no folder has the \Sent special-use attribute; set folders.sent`)

// floorSlack is how much earlier than our start a mail may have arrived
// (by the server's clock) and still be taken, for clock skew.
const floorSlack = 10 * time.Minute

// worker watches one folder on its own connection: it connects, catches
// up, waits for new mail (IDLE or poll), and reconnects with backoff when
// anything fails.
type worker struct {
	c      *Connector
	folder string // as configured; SentAuto for the \Sent folder
	sent   bool
	wake   chan struct{} // a token when the server announces new mail
	st     folderState
}

func newWorker(c *Connector, folder string, sent bool) *worker {
	w := &worker{c: c, folder: folder, sent: sent, wake: make(chan struct{}, 1)}
	kind := "incoming"
	if sent {
		kind = "sent"
	}
	w.st.st = FolderStatus{Account: c.cfg.Username, Folder: folder, Kind: kind, State: StateStarting, Since: c.now().UTC()}
	return w
}

// run watches the folder until ctx is done, holding its lease meanwhile.
func (w *worker) run(ctx context.Context) {
	for ctx.Err() == nil {
		lctx, release := w.acquire(ctx)
		if lctx == nil {
			break
		}
		w.serve(lctx)
		release()
	}
	w.st.set(StateStopped, w.c.now(), true)
}

// serve runs sessions until ctx is done, backing off after failures.
func (w *worker) serve(ctx context.Context) {
	bo := backoff.New(w.c.cfg.ReconnectMin, w.c.cfg.ReconnectMax)
	log := w.c.log.With("folder", w.folder)
	for ctx.Err() == nil {
		healthy, err := w.session(ctx)
		if ctx.Err() != nil {
			return
		}
		if errors.Is(err, errCursorMoved) {
			log.Warn("another gateway advanced this folder's cursor; starting over", "err", err)
			return
		}
		if healthy {
			bo.Reset()
		}
		d := bo.Next()
		if errors.Is(err, errNoSentFolder) {
			d = w.c.cfg.ReconnectMax
			w.st.set(StateDisabled, w.c.now(), true)
			log.Info("no sent folder to watch; checking again later", "retry_in", d)
		} else {
			w.st.failed(err, w.c.now(), w.c.now().Add(d))
			log.Warn("imap session failed; reconnecting", "err", err, "retry_in", d.Round(time.Millisecond))
		}
		if !backoff.Sleep(ctx, d) {
			return
		}
	}
}

// session connects and watches the folder until something fails. healthy
// says it got as far as reading the folder up to date.
func (w *worker) session(ctx context.Context) (healthy bool, err error) {
	w.st.set(StateConnecting, w.c.now(), false)
	cn, err := w.c.dial(ctx, w.wake, &w.st.commands)
	if err != nil {
		return false, err
	}
	defer cn.close()
	w.st.connects.Add(1)
	folder := w.folder
	if w.sent && folder == SentAuto {
		if folder, err = cn.sentFolder(); err != nil {
			return false, err
		}
		if folder == "" {
			return false, errNoSentFolder
		}
	}
	sel, err := cn.examine(folder)
	if err != nil {
		return false, err
	}
	cur, err := w.openCursor(ctx, cn, folder, sel)
	if err != nil {
		return false, err
	}
	idle := w.c.cfg.Mode == ModeAuto && cn.canIdle()
	changed, checked := true, w.c.now()
	for {
		if changed {
			drain(w.wake)
			w.st.set(StateSyncing, w.c.now(), true)
			if err := w.catchUp(ctx, cn, folder, &cur); err != nil {
				return healthy, err
			}
			w.st.synced(folder, cur, w.c.now())
			healthy = true
		}
		if idle {
			w.st.set(StateIdle, w.c.now(), true)
			changed, err = w.idle(ctx, cn)
		} else {
			w.st.set(StatePolling, w.c.now(), true)
			changed, err = w.poll(ctx, cn)
		}
		if err != nil {
			return healthy, err
		}
		if !changed && w.c.now().Sub(checked) >= w.c.cfg.IdleRefresh {
			// Not every server says that its folder was deleted and
			// recreated, nor announces every new mail reliably: now and
			// then, open the folder again and compare.
			checked = w.c.now()
			if sel, err = cn.examine(folder); err != nil {
				return healthy, err
			}
			switch {
			case sel.UIDValidity != cur.UIDValidity:
				if cur, err = w.openCursor(ctx, cn, folder, sel); err != nil {
					return healthy, err
				}
				changed = true
			case uint32(sel.UIDNext) > cur.LastUID+1:
				changed = true
			}
		}
	}
}

// openCursor reads the folder's cursor, or creates it the first time the
// folder is seen (start: now, or a backfill window), or restarts it when
// the folder's UIDVALIDITY changed (the folder was recreated: rescan).
func (w *worker) openCursor(ctx context.Context, cn *conn, folder string, sel *imap.SelectData) (cursor, error) {
	key := w.c.key("cursor", folder)
	cur, ok, err := loadCursor(ctx, w.c.records, key)
	if err != nil {
		return cursor{}, err
	}
	now := w.c.now()
	next, err := cn.uidNext(sel)
	if err != nil {
		return cursor{}, err
	}
	log := w.c.log.With("folder", folder)
	switch {
	case !ok:
		back, _ := w.c.cfg.Backfill()
		cur = cursor{UIDValidity: sel.UIDValidity, LastUID: next - 1, Floor: now.Add(-floorSlack).UTC()}
		if back > 0 {
			cur.Floor = now.Add(-back).UTC()
			first, err := cn.firstSince(cur.Floor)
			if err != nil {
				return cursor{}, err
			}
			if first > 0 {
				cur.LastUID = first - 1
			}
		}
		log.Info("watching a new folder", "uidvalidity", cur.UIDValidity, "from_uid", cur.LastUID+1, "floor", cur.Floor)
	case cur.UIDValidity != sel.UIDValidity:
		log.Warn("UIDVALIDITY changed (the folder was recreated): rescanning it; mail already recorded is not recorded again",
			"old", cur.UIDValidity, "new", sel.UIDValidity, "messages", sel.NumMessages)
		cur = cursor{
			UIDValidity: sel.UIDValidity, Floor: cur.Floor, RescanUntil: next - 1,
			RescanFloor: now.Add(-w.c.cfg.RescanWindow).UTC(), PrevUIDValidity: cur.UIDValidity, version: cur.version,
		}
	default:
		return cur, nil
	}
	if err := cur.save(ctx, w.c.records, key, now); err != nil {
		return cursor{}, err
	}
	return cur, nil
}

// idle waits with IDLE for new mail, at most IdleRefresh; ending IDLE
// needs an answer from the server, which proves the connection alive.
func (w *worker) idle(ctx context.Context, cn *conn) (bool, error) {
	if pending(w.wake) {
		return true, nil
	}
	var cmd *imapclient.IdleCommand
	if err := cn.do(func() (err error) { cmd, err = cn.c.Idle(); return err }); err != nil {
		return false, fmt.Errorf("idle: %w", err)
	}
	t := time.NewTimer(w.c.cfg.IdleRefresh)
	defer t.Stop()
	woke := false
	select {
	case <-ctx.Done():
	case <-w.wake:
		woke = true
		w.st.idleWakeups.Add(1)
	case <-t.C:
	case <-cn.c.Closed():
	}
	err := cn.do(func() error {
		if err := cmd.Close(); err != nil {
			return err
		}
		return cmd.Wait()
	})
	if ctx.Err() != nil {
		return false, ctx.Err()
	}
	if err != nil {
		return false, fmt.Errorf("idle: %w", err)
	}
	return woke, nil
}

// poll waits PollInterval, then sends one NOOP; the server answers it with
// EXISTS when mail arrived. A poll that finds nothing costs one round trip.
func (w *worker) poll(ctx context.Context, cn *conn) (bool, error) {
	if pending(w.wake) {
		return true, nil
	}
	if !backoff.Sleep(ctx, w.c.cfg.PollInterval) {
		return false, ctx.Err()
	}
	if err := cn.do(func() error { return cn.c.Noop().Wait() }); err != nil {
		return false, fmt.Errorf("noop: %w", err)
	}
	w.st.polls.Add(1)
	return pending(w.wake), nil
}

// pending reports whether a wake token is waiting, leaving it there.
func pending(ch chan struct{}) bool {
	select {
	case <-ch:
		poke(ch)
		return true
	default:
		return false
	}
}

func drain(ch chan struct{}) {
	select {
	case <-ch:
	default:
	}
}
