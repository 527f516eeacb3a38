package imap

import (
	"bufio"
	"bytes"
	"fmt"
	"io"
	"mime"
	"regexp"
	"strings"
	"unicode/utf8"

	"github.com/emersion/go-message"
	"github.com/emersion/go-message/charset"
	"github.com/emersion/go-message/mail"
	"github.com/emersion/go-message/textproto"

	"github.com/stagegate/stagegate/normalize"
)

// Limits of the header parser. Mail over them still becomes an event; what
// was left out is noted in its warnings.
const (
	maxHeaderBytes  = 1 << 20 // header block parsed
	maxHeaderFields = 1000    // fields kept, besides the ones we read
	maxWarnings     = 20
	maxAttrBytes    = 2048
	maxRefs         = 50
)

// wantedFields are always kept, wherever they stand in a huge header.
var wantedFields = map[string]bool{
	"From": true, "Sender": true, "Reply-To": true, "To": true, "Cc": true, "Bcc": true,
	"Subject": true, "Date": true, "Message-Id": true, "In-Reply-To": true, "References": true,
	"Auto-Submitted": true, "X-Autoreply": true, "X-Autorespond": true, "X-Autoresponder": true,
	"Precedence": true, "List-Id": true, "List-Unsubscribe": true, "Return-Path": true,
	"Content-Type": true, "Content-Transfer-Encoding": true, "Mime-Version": true,
}

// warnings collects problems met while parsing, each once, at most maxWarnings.
type warnings []string

func (w *warnings) add(format string, args ...any) {
	msg := fmt.Sprintf(format, args...)
	for _, m := range *w {
		if m == msg {
			return
		}
	}
	if len(*w) < maxWarnings {
		*w = append(*w, msg)
	}
}

// splitMessage cuts raw into its header block and body.
func splitMessage(raw []byte, w *warnings) (header, body []byte) {
	i, n := bytes.Index(raw, []byte("\r\n\r\n")), 4
	if j := bytes.Index(raw, []byte("\n\n")); j >= 0 && (i < 0 || j < i) {
		i, n = j, 2
	}
	if i < 0 {
		w.add("no blank line ends the header: the whole mail is read as header")
		return raw, nil
	}
	return raw[:i+n], raw[i+n:]
}

// parseHeader reads a header block leniently: malformed lines are dropped,
// fields beyond maxHeaderFields are dropped unless we read them, and the
// block is cut at maxHeaderBytes. It never fails.
func parseHeader(block []byte, w *warnings) mail.Header {
	if len(block) > maxHeaderBytes {
		w.add("header of %d bytes: only the first %d are read", len(block), maxHeaderBytes)
		block = block[:maxHeaderBytes]
		if k := bytes.LastIndexByte(block, '\n'); k > 0 {
			block = block[:k+1]
		}
	}
	var clean bytes.Buffer
	clean.Grow(len(block) + 64)
	fields, dropped, malformed, long, longest := 0, 0, 0, 0, 0
	keep := false
	for line := range bytes.Lines(block) {
		line = bytes.TrimRight(line, "\r\n")
		if len(bytes.TrimSpace(line)) == 0 {
			continue
		}
		if line[0] == ' ' || line[0] == '\t' {
			if keep {
				clean.Write(line)
				clean.WriteString("\r\n")
			}
			continue
		}
		colon := bytes.IndexByte(line, ':')
		if colon <= 0 || !validKey(bytes.TrimRight(line[:colon], " \t")) {
			malformed++
			keep = false
			continue
		}
		name := canonicalKey(string(bytes.TrimRight(line[:colon], " \t")))
		fields++
		if fields > maxHeaderFields && !wantedFields[name] {
			dropped++
			keep = false
			continue
		}
		keep = true
		if len(line) > 998 {
			long++
			longest = max(longest, len(line))
		}
		clean.Write(line)
		clean.WriteString("\r\n")
	}
	switch {
	case !utf8.Valid(clean.Bytes()):
		w.add("8-bit header that is not UTF-8, read as Latin-1")
		clean = *bytes.NewBufferString(latin1Lines(clean.Bytes()))
	case !isASCII(clean.Bytes()):
		w.add("8-bit header without RFC 2047 encoding, read as UTF-8")
	}
	clean.WriteString("\r\n")
	if long > 0 {
		w.add("%d header lines longer than the 998 bytes RFC 5322 allows (the longest: %d)", long, longest)
	}
	if malformed > 0 {
		w.add("%d malformed header lines dropped", malformed)
	}
	if dropped > 0 {
		w.add("header has %d fields: %d after the first %d dropped", fields, dropped, maxHeaderFields)
	}
	h, err := textproto.ReadHeader(bufio.NewReader(&clean))
	if err != nil {
		w.add("header: %v", err)
	}
	return mail.Header{Header: message.Header{Header: h}}
}

func isASCII(b []byte) bool {
	for _, c := range b {
		if c >= 0x80 {
			return false
		}
	}
	return true
}

// validKey reports whether b is a header field name (RFC 5322 2.2).
func validKey(b []byte) bool {
	for _, c := range b {
		if c <= ' ' || c >= 127 || c == ':' {
			return false
		}
	}
	return len(b) > 0
}

func canonicalKey(k string) string {
	b := []byte(strings.ToLower(k))
	up := true
	for i, c := range b {
		if up && 'a' <= c && c <= 'z' {
			b[i] = c - 'a' + 'A'
		}
		up = c == '-'
	}
	return string(b)
}

// text returns a header field decoded (RFC 2047, charsets) as valid UTF-8,
// cut to maxAttrBytes. An encoded word in a charset we cannot decode keeps
// its bytes (read as UTF-8, else Latin-1) and is noted.
func text(h *mail.Header, key string, w *warnings) string {
	raw := h.Get(key)
	unknown := ""
	dec := mime.WordDecoder{CharsetReader: func(cs string, r io.Reader) (io.Reader, error) {
		if cr, err := charset.Reader(cs, r); err == nil {
			return cr, nil
		}
		unknown = cs
		return r, nil
	}}
	v, err := dec.DecodeHeader(raw)
	if err != nil {
		v = raw
		w.add("%s: %v", key, err)
	}
	if unknown != "" {
		w.add("%s: unknown charset %q, bytes kept as they are", key, clip(unknown, 64))
	}
	return clip(utf8Text(v, key, w), maxAttrBytes)
}

// utf8Text returns s when it is valid UTF-8, else reads it as Latin-1 (the
// usual 8-bit text in the wild) and notes it.
func utf8Text(s, what string, w *warnings) string {
	if utf8.ValidString(s) {
		return s
	}
	w.add("%s: 8-bit text that is not UTF-8, read as Latin-1", what)
	return latin1(s)
}

// latin1 reads each byte of s as one ISO 8859-1 character.
func latin1(s string) string {
	r := make([]rune, 0, len(s))
	for i := 0; i < len(s); i++ {
		r = append(r, rune(s[i]))
	}
	return string(r)
}

// latin1Lines re-reads the lines of b that are not valid UTF-8 as Latin-1
// and keeps the others.
func latin1Lines(b []byte) string {
	var out strings.Builder
	for line := range bytes.Lines(b) {
		if utf8.Valid(line) {
			out.Write(line)
		} else {
			out.WriteString(latin1(string(line)))
		}
	}
	return out.String()
}

// clip cuts s to at most n bytes on a rune boundary.
func clip(s string, n int) string {
	if len(s) <= n {
		return s
	}
	for n > 0 && !utf8.RuneStart(s[n]) {
		n--
	}
	return s[:n]
}

// address is a parsed mailbox: normalized address and display name.
type address struct{ Addr, Name string }

var looseAddr = regexp.MustCompile(`[A-Za-z0-9._%+'=!#$&*/?^{|}~-]+@[A-Za-z0-9.-]+\.[A-Za-z0-9-]+`)

// addresses parses an address header; when the strict parser fails it
// picks what looks like addresses out of the raw text.
func addresses(h *mail.Header, key string, w *warnings) []address {
	if !h.Has(key) {
		return nil
	}
	var out []address
	list, err := h.AddressList(key)
	if err == nil {
		for _, a := range list {
			if e := normalize.NormalizeEmail(a.Address); e != "" {
				out = append(out, address{Addr: e, Name: clip(utf8Text(a.Name, key, w), 256)})
			}
		}
		return out
	}
	raw := strings.Join(h.Values(key), ",")
	for _, m := range looseAddr.FindAllString(raw, 100) {
		if e := normalize.NormalizeEmail(m); e != "" {
			out = append(out, address{Addr: e})
		}
	}
	w.add("%s: %v; %d address(es) recovered", key, err, len(out))
	return out
}

// msgIDs returns the Message-IDs of a field, without angle brackets, in
// order; bare tokens with an @ are taken when no bracketed one is there.
func msgIDs(h *mail.Header, key string) []string {
	raw := strings.Join(h.Values(key), " ")
	var ids []string
	for rest := raw; ; {
		i := strings.IndexByte(rest, '<')
		if i < 0 {
			break
		}
		rest = rest[i+1:]
		j := strings.IndexAny(rest, "<> \t\r\n")
		if j < 0 {
			break
		}
		if rest[j] == '>' && j > 0 && j <= 250 {
			ids = append(ids, rest[:j])
		}
		rest = rest[j:]
	}
	if len(ids) == 0 {
		for _, f := range strings.Fields(raw) {
			if strings.Contains(f, "@") && len(f) <= 250 {
				ids = append(ids, strings.Trim(f, "<>,;"))
			}
		}
	}
	for i, id := range ids {
		if !utf8.ValidString(id) {
			ids[i] = strings.ToValidUTF8(id, "?")
		}
	}
	return ids
}

func joinAddrs(as []address) string {
	s := make([]string, len(as))
	for i, a := range as {
		s[i] = a.Addr
	}
	return clip(strings.Join(s, ", "), maxAttrBytes)
}
