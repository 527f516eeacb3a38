package imap

import (
	"context"
	"errors"
	"fmt"
	"sync/atomic"
	"time"

	"github.com/emersion/go-imap/v2"
)

// ErrNoSentFolder: the account has no sent folder to save a copy in
// (folders.sent is none, or auto found no \Sent folder).
var ErrNoSentFolder = errors.New("no sent folder")

// SaveSent appends a copy of a message the gateway sent (the send_email
// action's save_to) to the account's sent folder — folders.sent, or with
// auto the \Sent special-use folder — flagged \Seen and dated at. It is
// the one write the connector ever makes to the mailbox, on a connection
// of its own. The folder's watcher then reads the copy as any sent mail
// (an email.sent event for the same item, a duplicate in effect).
func (c *Connector) SaveSent(ctx context.Context, raw []byte, at time.Time) error {
	var commands atomic.Int64
	cn, err := c.dial(ctx, make(chan struct{}, 1), &commands)
	if err != nil {
		return fmt.Errorf("imap %s: %w", c.name, err)
	}
	defer cn.close()
	folder := c.cfg.SentFolder()
	switch folder {
	case SentNone:
		return fmt.Errorf("imap %s: %w: folders.sent is none", c.name, ErrNoSentFolder)
	case SentAuto:
		if folder, err = cn.sentFolder(); err != nil {
			return fmt.Errorf("imap %s: %w", c.name, err)
		}
		if folder == "" {
			return fmt.Errorf("imap %s: %w: the server marks no folder \\Sent (set folders.sent)", c.name, ErrNoSentFolder)
		}
	}
	err = cn.do(func() error {
		cmd := cn.c.Append(folder, int64(len(raw)), &imap.AppendOptions{Flags: []imap.Flag{imap.FlagSeen}, Time: at})
		if _, err := cmd.Write(raw); err != nil {
			_ = cmd.Close()
			return err
		}
		if err := cmd.Close(); err != nil {
			return err
		}
		_, err := cmd.Wait()
		return err
	})
	if err != nil {
		return fmt.Errorf("imap %s: append to %q: %w", c.name, folder, err)
	}
	return nil
}
