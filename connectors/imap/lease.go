package imap

import (
	"context"
	"encoding/json"
	"errors"
	"time"

	"github.com/stagegate/stagegate/internal/backoff"
	"github.com/stagegate/stagegate/store"
)

// leaseValue is what a lease record holds.
type leaseValue struct {
	Holder string    `json:"holder"`
	At     time.Time `json:"at"`
}

// acquire waits until this gateway holds the folder's lease (always at
// once when leases are off, and on a store only one process can open,
// bolt: no other gateway can share it, and a lease left by a crash would
// only delay the restarted gateway by its TTL) and returns a context that ends when the lease
// is lost or ctx is done, and a release function. It returns a nil context
// when ctx ended first.
//
// The lease is a store record written with compare-and-set and a TTL; the
// holder renews it every leaseRenew. When the holder dies, the record
// expires and another gateway takes the folder within leaseTTL+leaseRenew.
func (w *worker) acquire(ctx context.Context) (context.Context, func()) {
	if !w.c.cfg.LeaseEnabled() || w.c.single {
		return ctx, func() {}
	}
	l := &lease{rec: w.c.records, key: w.c.key("lease", w.folder), holder: w.c.holder, ttl: w.c.leaseTTL}
	waiting := false
	for {
		ok, err := l.try(ctx, w.c.now())
		if ok {
			break
		}
		if err != nil {
			w.st.failed(err, w.c.now(), w.c.now().Add(w.c.leaseRenew))
			w.c.log.Warn("imap lease: store error", "folder", w.folder, "err", err)
		} else if !waiting {
			waiting = true
			w.st.set(StateWaitingLease, w.c.now(), true)
			w.c.log.Info("another gateway watches this folder; standing by", "folder", w.folder)
		}
		if !backoff.Sleep(ctx, w.c.leaseRenew) {
			return nil, nil
		}
	}
	lctx, cancel := context.WithCancel(ctx)
	done := make(chan struct{})
	go func() {
		defer close(done)
		defer cancel()
		l.keep(lctx, w.c.leaseRenew, w.c.now, func(err error) {
			w.c.log.Warn("imap lease lost; stopping this folder", "folder", w.folder, "err", err)
		})
	}()
	return lctx, func() {
		cancel()
		<-done
		if !w.c.keepLease.Load() {
			l.release()
		}
	}
}

// lease is one held (or wanted) lease record.
type lease struct {
	rec     store.Records
	key     string
	holder  string
	ttl     time.Duration
	version int64
}

// try takes the lease if it is free or already ours. A lease record that
// does not decode is taken over, so it is read raw rather than with
// store.GetJSON.
func (l *lease) try(ctx context.Context, now time.Time) (bool, error) {
	r, err := l.rec.GetRecord(ctx, l.key)
	switch {
	case errors.Is(err, store.ErrNotFound):
		l.version = 0
	case err != nil:
		return false, err
	default:
		var v leaseValue
		if json.Unmarshal(r.Value, &v) == nil && v.Holder != l.holder {
			return false, nil
		}
		l.version = r.Version
	}
	err = l.put(ctx, now)
	if errors.Is(err, store.ErrConflict) {
		return false, nil
	}
	return err == nil, err
}

// put writes the lease expecting the version last read or written: a
// conflict (store.ErrConflict) means another gateway holds it now.
func (l *lease) put(ctx context.Context, now time.Time) error {
	v, err := store.PutJSON(ctx, l.rec, l.key, leaseValue{Holder: l.holder, At: now.UTC()}, l.version, l.ttl)
	if err == nil {
		l.version = v
	}
	return err
}

// keep renews the lease every renew until ctx ends or the lease is lost:
// someone else wrote it (conflict), or it could not be renewed before it
// expired.
func (l *lease) keep(ctx context.Context, renew time.Duration, now func() time.Time, lost func(error)) {
	last := now()
	for backoff.Sleep(ctx, renew) {
		err := l.put(ctx, now())
		switch {
		case err == nil:
			last = now()
		case errors.Is(err, store.ErrConflict), errors.Is(err, store.ErrNotFound):
			lost(err)
			return
		case now().Sub(last) >= l.ttl-renew/2:
			lost(err)
			return
		}
	}
}

// release deletes the lease so that another gateway may take the folder at
// once (after a graceful stop).
func (l *lease) release() {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	_ = l.rec.DeleteRecord(ctx, l.key, l.version)
}
