package imap

import (
	"bytes"
	"errors"
	"html"
	"io"
	"regexp"
	"strings"
	"sync"
	"unicode/utf8"

	"github.com/emersion/go-message"
	// The charset package registers every charset go-message can decode.
	_ "github.com/emersion/go-message/charset"
	"github.com/emersion/go-message/mail"
)

// Limits of the body walk.
const (
	maxParts     = 200
	maxDepth     = 10
	maxTextRead  = 256 << 10 // decoded bytes of a text part kept for the excerpt
	maxAttachLog = 20        // attachments listed by name
)

// Attachment is what is kept of an attachment: metadata only.
type Attachment struct {
	Filename    string `json:"filename,omitempty"`
	ContentType string `json:"content_type"`
	Size        int64  `json:"size"` // decoded bytes read (within the fetched part of the mail)
}

// body is what the walk keeps of a message body.
type body struct {
	plain, html string
	attachments []Attachment
	parts       int
}

// readBody walks the MIME tree of a message whose header is h and whose
// raw body is raw. It never fails: problems become warnings and the walk
// keeps what it could read.
func readBody(h mail.Header, raw []byte, w *warnings) body {
	var b body
	ent, err := message.New(h.Header, bytes.NewReader(raw))
	if err != nil {
		w.add("body: %v", err)
	}
	if ent != nil {
		b.walk(ent, 0, w)
	}
	return b
}

func (b *body) walk(e *message.Entity, depth int, w *warnings) {
	b.parts++
	if b.parts > maxParts {
		if b.parts == maxParts+1 {
			w.add("more than %d MIME parts: the rest is not read", maxParts)
		}
		return
	}
	if mr := e.MultipartReader(); mr != nil {
		if depth >= maxDepth {
			w.add("MIME parts nested deeper than %d are not read", maxDepth)
			return
		}
		for {
			p, err := mr.NextPart()
			if errors.Is(err, io.EOF) {
				return
			}
			if err != nil && !message.IsUnknownCharset(err) && !message.IsUnknownEncoding(err) {
				w.add("MIME structure: %v", err)
				return
			}
			if err != nil {
				w.add("part: %v", err)
			}
			if p == nil {
				return
			}
			b.walk(p, depth+1, w)
		}
	}
	b.leaf(e, w)
}

// leaf reads one non-multipart part: the first text/plain and text/html
// that are not attachments are kept for the excerpt, the rest is counted.
func (b *body) leaf(e *message.Entity, w *warnings) {
	ctype, _, err := e.Header.ContentType()
	if err != nil || ctype == "" {
		ctype = "text/plain"
	}
	disp, _, _ := e.Header.ContentDisposition()
	ah := mail.AttachmentHeader{Header: e.Header}
	filename, _ := ah.Filename()
	isAttachment := disp == "attachment" || filename != "" && disp != "inline" ||
		!strings.HasPrefix(ctype, "text/") && !strings.HasPrefix(ctype, "multipart/")
	want := !isAttachment && (ctype == "text/plain" && b.plain == "" || ctype == "text/html" && b.html == "")
	var keep bytes.Buffer
	n, err := copyCounting(&keep, e.Body, want)
	if err != nil {
		w.add("%s part: %v (%d bytes read)", ctype, err, n)
	}
	if isAttachment {
		b.attachments = append(b.attachments, Attachment{
			Filename: clip(utf8Text(filename, "attachment name", w), 256), ContentType: ctype, Size: n})
		return
	}
	if want {
		s := keep.String()
		if !utf8.ValidString(s) {
			s = utf8Text(s, ctype+" text", w)
		}
		if ctype == "text/plain" {
			b.plain = s
		} else {
			b.html = s
		}
	}
}

// copyBuffers are the read buffers of copyCounting.
var copyBuffers = sync.Pool{New: func() any { b := make([]byte, 32<<10); return &b }}

// copyCounting reads r to the end, keeping the first maxTextRead bytes in
// dst when keep is set, and returns how many bytes it read. A reader that
// stops making progress ends the copy with io.ErrNoProgress.
func copyCounting(dst *bytes.Buffer, r io.Reader, keep bool) (int64, error) {
	bp := copyBuffers.Get().(*[]byte)
	defer copyBuffers.Put(bp)
	buf := *bp
	var n int64
	for empty := 0; ; {
		k, err := r.Read(buf)
		if keep && dst.Len() < maxTextRead {
			dst.Write(buf[:min(k, maxTextRead-dst.Len())])
		}
		n += int64(k)
		switch {
		case errors.Is(err, io.EOF):
			return n, nil
		case err != nil:
			return n, err
		case k == 0:
			if empty++; empty > 100 {
				return n, io.ErrNoProgress
			}
		default:
			empty = 0
		}
	}
}

// excerpt returns the body's text (text/plain, else text from the HTML),
// whitespace collapsed, at most n runes.
func (b *body) excerpt(n int) string {
	s := b.plain
	if strings.TrimSpace(s) == "" && b.html != "" {
		s = htmlText(b.html)
	}
	return squash(s, n)
}

var (
	htmlDrop  = regexp.MustCompile(`(?is)<(script|style|head|title)\b.*?</(script|style|head|title)\s*>|<!--.*?-->`)
	htmlBreak = regexp.MustCompile(`(?i)<(br|/p|/div|/tr|/li|/h[1-6]|hr)\b[^>]*>`)
	htmlTag   = regexp.MustCompile(`<[^>]*>`)
)

// htmlText turns HTML into plain text: scripts, styles and comments
// dropped, tags removed, entities decoded.
func htmlText(s string) string {
	s = htmlDrop.ReplaceAllString(s, " ")
	s = htmlBreak.ReplaceAllString(s, "\n")
	s = htmlTag.ReplaceAllString(s, " ")
	return html.UnescapeString(s)
}

// squash collapses runs of white space to one space and cuts s to n runes.
func squash(s string, n int) string {
	var out strings.Builder
	space, count := false, 0
	for _, r := range s {
		if count >= n {
			break
		}
		if r == utf8.RuneError || r == 0 {
			continue
		}
		if r == ' ' || r == '\t' || r == '\n' || r == '\r' || r == '\u00a0' || r == '\f' || r == '\v' {
			space = out.Len() > 0
			continue
		}
		if space {
			out.WriteByte(' ')
			count++
			space = false
		}
		out.WriteRune(r)
		count++
	}
	return out.String()
}
