package imap

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"mime"
	"net"
	"slices"
	"sync/atomic"
	"time"

	"github.com/emersion/go-imap/v2"
	"github.com/emersion/go-imap/v2/imapclient"
	"github.com/emersion/go-message/charset"
)

// errTimeout is returned when the server did not answer within the
// command timeout and the connection was closed.
var errTimeout = errors.New("no answer from the server within the command timeout")

// conn is one logged-in IMAP connection. Every command runs under a
// watchdog: a server that stays silent longer than the command timeout
// (a dead link, a stuck server) gets its connection closed, which fails the
// command, so that no wait lasts forever.
type conn struct {
	c        *imapclient.Client
	timeout  time.Duration
	watchdog *time.Timer
	fired    atomic.Bool
	stop     func() bool // stops closing the client when ctx ends
	commands *atomic.Int64
}

// dial connects, waits for the greeting and logs in. wake receives a token
// whenever the server announces new mail (EXISTS) in the selected folder.
func (c *Connector) dial(ctx context.Context, wake chan<- struct{}, commands *atomic.Int64) (*conn, error) {
	cfg := c.cfg
	d := net.Dialer{Timeout: cfg.CommandTimeout, KeepAlive: 30 * time.Second}
	raw, err := d.DialContext(ctx, "tcp", cfg.Addr())
	if err != nil {
		return nil, fmt.Errorf("connect %s: %w", cfg.Addr(), err)
	}
	opts := &imapclient.Options{
		WordDecoder: &mime.WordDecoder{CharsetReader: charset.Reader},
		UnilateralDataHandler: &imapclient.UnilateralDataHandler{
			Mailbox: func(d *imapclient.UnilateralDataMailbox) {
				if d.NumMessages != nil {
					poke(wake)
				}
			},
		},
		TLSConfig: &tls.Config{ServerName: cfg.Host, InsecureSkipVerify: cfg.InsecureSkipVerify, MinVersion: tls.VersionTLS12},
	}
	cn := &conn{timeout: cfg.CommandTimeout, commands: commands}
	// The watchdog closes raw: that also unblocks a STARTTLS or TLS
	// handshake that never completes.
	cn.watchdog = time.AfterFunc(cfg.CommandTimeout, func() { cn.fired.Store(true); raw.Close() })
	switch cfg.TLS {
	case TLSImplicit:
		tc := tls.Client(raw, opts.TLSConfig)
		if err := tc.HandshakeContext(ctx); err != nil {
			cn.watchdog.Stop()
			raw.Close()
			return nil, fmt.Errorf("tls handshake with %s: %w", cfg.Addr(), err)
		}
		cn.c = imapclient.New(tc, opts)
	case TLSStart:
		cn.c, err = imapclient.NewStartTLS(raw, opts)
		if err != nil {
			cn.watchdog.Stop()
			raw.Close()
			return nil, fmt.Errorf("starttls with %s: %w", cfg.Addr(), cn.cause(err))
		}
	default:
		cn.c = imapclient.New(raw, opts)
	}
	cn.stop = context.AfterFunc(ctx, func() { cn.c.Close() })
	if err := cn.c.WaitGreeting(); err != nil {
		cn.close()
		return nil, fmt.Errorf("greeting from %s: %w", cfg.Addr(), cn.cause(err))
	}
	cn.watchdog.Stop()
	if err := cn.do(func() error { return cn.c.Login(cfg.Username, cfg.Password).Wait() }); err != nil {
		cn.close()
		return nil, fmt.Errorf("login as %s: %w", cfg.Username, err)
	}
	return cn, nil
}

// poke sends a token on ch without blocking (one pending token is enough).
func poke(ch chan<- struct{}) {
	select {
	case ch <- struct{}{}:
	default:
	}
}

// do runs one command (one round trip) under the watchdog.
func (cn *conn) do(f func() error) error {
	cn.commands.Add(1)
	cn.arm()
	err := f()
	cn.watchdog.Stop()
	return cn.cause(err)
}

// arm (re)starts the watchdog; a long FETCH re-arms it at each mail.
func (cn *conn) arm() { cn.watchdog.Reset(cn.timeout) }

// cause replaces the error of a command that the watchdog cut short.
func (cn *conn) cause(err error) error {
	if err != nil && cn.fired.Load() {
		return fmt.Errorf("%w (%v)", errTimeout, cn.timeout)
	}
	return err
}

// close logs out politely when the link is healthy and closes it.
func (cn *conn) close() {
	if cn.stop != nil {
		cn.stop()
	}
	cn.watchdog.Stop()
	if cn.c == nil {
		return
	}
	select {
	case <-cn.c.Closed():
	default:
		done := make(chan struct{})
		go func() {
			defer close(done)
			_ = cn.c.Logout().Wait()
		}()
		select {
		case <-done:
		case <-time.After(2 * time.Second):
		}
	}
	cn.c.Close()
}

// canIdle reports whether the server supports IDLE.
func (cn *conn) canIdle() bool {
	caps := cn.c.Caps()
	return caps.Has(imap.CapIdle) || caps.Has(imap.CapIMAP4rev2)
}

// sentFolder returns the folder with the \Sent special-use attribute, or "".
func (cn *conn) sentFolder() (string, error) {
	var opts *imap.ListOptions
	caps := cn.c.Caps()
	if caps.Has(imap.CapSpecialUse) || caps.Has(imap.CapListExtended) || caps.Has(imap.CapIMAP4rev2) {
		opts = &imap.ListOptions{ReturnSpecialUse: true}
	}
	var list []*imap.ListData
	err := cn.do(func() (err error) {
		list, err = cn.c.List("", "*", opts).Collect()
		return err
	})
	if err != nil {
		return "", fmt.Errorf("list folders: %w", err)
	}
	for _, l := range list {
		if slices.Contains(l.Attrs, imap.MailboxAttrSent) {
			return l.Mailbox, nil
		}
	}
	return "", nil
}

// examine opens folder read-only (EXAMINE): nothing we do can change it.
func (cn *conn) examine(folder string) (*imap.SelectData, error) {
	var sel *imap.SelectData
	err := cn.do(func() (err error) {
		sel, err = cn.c.Select(folder, &imap.SelectOptions{ReadOnly: true}).Wait()
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("examine %q: %w", folder, err)
	}
	return sel, nil
}

// uidsAfter lists the UIDs greater than last, ascending (UID SEARCH).
func (cn *conn) uidsAfter(last uint32) ([]uint32, error) {
	crit := &imap.SearchCriteria{UID: []imap.UIDSet{{imap.UIDRange{Start: imap.UID(last + 1), Stop: 0}}}}
	return cn.search(crit, func(u uint32) bool { return u > last })
}

// firstSince returns the lowest UID of mail received since t (by day, as
// IMAP SEARCH SINCE works), 0 when there is none.
func (cn *conn) firstSince(t time.Time) (uint32, error) {
	uids, err := cn.search(&imap.SearchCriteria{Since: t}, func(uint32) bool { return true })
	if err != nil || len(uids) == 0 {
		return 0, err
	}
	return uids[0], nil
}

// uidNext returns the folder's UIDNEXT; servers that do not send it with
// EXAMINE get it computed from the highest UID.
func (cn *conn) uidNext(sel *imap.SelectData) (uint32, error) {
	if sel.UIDNext > 0 {
		return uint32(sel.UIDNext), nil
	}
	if sel.NumMessages == 0 {
		return 1, nil
	}
	uids, err := cn.search(&imap.SearchCriteria{}, func(uint32) bool { return true })
	if err != nil || len(uids) == 0 {
		return 1, err
	}
	return uids[len(uids)-1] + 1, nil
}

func (cn *conn) search(crit *imap.SearchCriteria, keep func(uint32) bool) ([]uint32, error) {
	var data *imap.SearchData
	if err := cn.do(func() (err error) { data, err = cn.c.UIDSearch(crit, nil).Wait(); return err }); err != nil {
		return nil, fmt.Errorf("uid search: %w", err)
	}
	var out []uint32
	for _, u := range data.AllUIDs() {
		if keep(uint32(u)) {
			out = append(out, uint32(u))
		}
	}
	slices.Sort(out)
	return slices.Compact(out), nil
}
