package imap

import (
	"fmt"
	"io"
	"slices"
	"time"

	"github.com/emersion/go-imap/v2"
	"github.com/emersion/go-imap/v2/imapclient"
)

// mailResult is one fetched mail, normalized (or why it could not be).
type mailResult struct {
	uid      uint32
	internal time.Time
	res      Result
	problem  string // set: quarantine the mail instead
}

// fetch runs one UID FETCH of BODY.PEEK[]<0.max> for the UIDs of batch
// above after (the server sends at most max_message_bytes of each mail;
// \Seen is never set) and hands each mail to each as it streams in, with
// why it cannot be read when it cannot. An error from each stops the
// fetch and is returned.
func (w *worker) fetch(cn *conn, folder string, uidValidity, after uint32, batch []uint32, each func(Fetched, string) error) error {
	max := w.c.cfg.MaxMessageBytes
	opts := &imap.FetchOptions{
		UID: true, InternalDate: true, RFC822Size: true,
		BodySection: []*imap.FetchItemBodySection{{Peek: true, Partial: &imap.SectionPartial{Offset: 0, Size: max}}},
	}
	set := make([]imap.UID, len(batch))
	for i, u := range batch {
		set[i] = imap.UID(u)
	}
	cn.commands.Add(1)
	cn.arm()
	defer cn.watchdog.Stop()
	cmd := cn.c.Fetch(imap.UIDSetNum(set...), opts)
	var stop error
	for stop == nil {
		msg := cmd.Next()
		if msg == nil {
			break
		}
		cn.arm()
		f, raw, err := readMessage(msg, max)
		if err != nil {
			stop = err
			break
		}
		if f.UID == 0 || f.UID <= after || !inBatch(batch, f.UID) {
			continue // unsolicited, or the last mail answering "n:*"
		}
		w.st.fetched.Add(1)
		problem := ""
		if raw == nil {
			problem = "the server sent no body"
		}
		f.Connector, f.Account, f.Folder, f.Sent = w.c.name, w.c.cfg.Username, folder, w.sent
		f.UIDValidity, f.Raw, f.Received = uidValidity, raw, w.c.now().UTC()
		stop = each(f, problem)
	}
	if stop != nil {
		// Stopped inside the stream (the link broke inside a mail, or the
		// store failed). Draining the command would read on beside the
		// client's reader; the session ends anyway: close the link.
		cn.c.Close()
		return stop
	}
	if err := cn.cause(cmd.Close()); err != nil {
		return fmt.Errorf("fetch %d mails from %q: %w", len(batch), folder, err)
	}
	return nil
}

// inBatch reports whether uid is in batch (ascending).
func inBatch(batch []uint32, uid uint32) bool {
	_, ok := slices.BinarySearch(batch, uid)
	return ok
}

// readMessage reads one FETCH response. raw is nil when no body came; a
// body cut short (the connection broke) is an error, never a mail.
func readMessage(msg *imapclient.FetchMessageData, max int64) (Fetched, []byte, error) {
	var f Fetched
	var raw []byte
	for {
		item := msg.Next()
		if item == nil {
			return f, raw, nil
		}
		switch it := item.(type) {
		case imapclient.FetchItemDataUID:
			f.UID = uint32(it.UID)
		case imapclient.FetchItemDataInternalDate:
			f.InternalDate = it.Time
		case imapclient.FetchItemDataRFC822Size:
			f.Size = it.Size
		case imapclient.FetchItemDataBodySection:
			if it.Literal == nil {
				continue
			}
			b := make([]byte, min(it.Literal.Size(), max))
			if _, err := io.ReadFull(it.Literal, b); err != nil {
				return f, nil, fmt.Errorf("read mail body: %w", err)
			}
			if _, err := io.Copy(io.Discard, it.Literal); err != nil {
				return f, nil, fmt.Errorf("read mail body: %w", err)
			}
			raw = b
		}
	}
}

// normalize runs the normalizer; a panic (a bug met by a hostile mail)
// quarantines the mail instead of stopping the folder.
func (w *worker) normalize(f Fetched, problem string) (m mailResult) {
	m = mailResult{uid: f.UID, internal: f.InternalDate, problem: problem}
	if problem != "" {
		return m
	}
	defer func() {
		if r := recover(); r != nil {
			m.problem = fmt.Sprintf("the normalizer failed: %v", r)
		}
	}()
	m.res = Normalize(f, w.c.rules)
	return m
}
