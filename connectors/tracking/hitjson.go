package tracking

import (
	"math"
	"strconv"
	"time"
	"unicode/utf8"
)

// appendHit appends h as JSON, as json.Marshal would write it (the field
// names and omissions of scoredHit's tags), without reflection: the pixel and
// click paths encode one hit per request.
func appendHit(b []byte, h *scoredHit) []byte {
	b = append(b, `{"at":"`...)
	b = h.At.AppendFormat(b, time.RFC3339Nano)
	b = append(b, `","kind":`...)
	b = appendJSONString(b, h.Kind)
	if h.Link != 0 {
		b = append(b, `,"link":`...)
		b = strconv.AppendInt(b, int64(h.Link), 10)
	}
	b = append(b, `,"method":`...)
	b = appendJSONString(b, h.Method)
	if h.UA != "" {
		b = append(b, `,"user_agent":`...)
		b = appendJSONString(b, h.UA)
	}
	if h.IP != "" {
		b = append(b, `,"ip":`...)
		b = appendJSONString(b, h.IP)
	}
	b = append(b, `,"since_s":`...)
	b = appendJSONFloat(b, h.SinceS)
	b = append(b, `,"machine":`...)
	b = strconv.AppendBool(b, h.Machine)
	b = append(b, `,"score":`...)
	b = strconv.AppendInt(b, int64(h.Score), 10)
	if len(h.Reasons) > 0 {
		b = append(b, `,"reasons":[`...)
		for i, r := range h.Reasons {
			if i > 0 {
				b = append(b, ',')
			}
			b = appendJSONString(b, r)
		}
		b = append(b, ']')
	}
	return append(b, '}')
}

// appendJSONString appends s as a JSON string; invalid UTF-8 becomes
// U+FFFD, like encoding/json.
func appendJSONString(b []byte, s string) []byte {
	const hex = "0123456789abcdef"
	b = append(b, '"')
	plain := true
	for i := 0; i < len(s) && plain; i++ {
		c := s[i]
		plain = c >= 0x20 && c < utf8.RuneSelf && c != '"' && c != '\\' && c != '<' && c != '>' && c != '&'
	}
	if plain { // the usual user agent: nothing to escape
		b = append(b, s...)
		return append(b, '"')
	}
	for i := 0; i < len(s); {
		c := s[i]
		if c < utf8.RuneSelf {
			switch {
			case c == '"' || c == '\\':
				b = append(b, '\\', c)
			case c == '\n':
				b = append(b, '\\', 'n')
			case c == '\r':
				b = append(b, '\\', 'r')
			case c == '\t':
				b = append(b, '\\', 't')
			case c == '\b':
				b = append(b, '\\', 'b')
			case c == '\f':
				b = append(b, '\\', 'f')
			case c < 0x20 || c == '<' || c == '>' || c == '&':
				b = append(b, '\\', 'u', '0', '0', hex[c>>4], hex[c&0xf])
			default:
				b = append(b, c)
			}
			i++
			continue
		}
		r, size := utf8.DecodeRuneInString(s[i:])
		switch {
		case r == utf8.RuneError && size == 1:
			b = append(b, `\ufffd`...)
		case r == '\u2028' || r == '\u2029':
			b = append(b, '\\', 'u', '2', '0', '2', hex[r&0xf])
		default:
			b = append(b, s[i:i+size]...)
		}
		i += size
	}
	return append(b, '"')
}

// appendJSONFloat appends f the way encoding/json writes a float64.
func appendJSONFloat(b []byte, f float64) []byte {
	format := byte('f')
	if abs := math.Abs(f); abs != 0 && (abs < 1e-6 || abs >= 1e21) {
		format = 'e'
	}
	b = strconv.AppendFloat(b, f, format, -1, 64)
	if format == 'e' { // e-09 → e-9
		if n := len(b); n >= 4 && b[n-4] == 'e' && b[n-3] == '-' && b[n-2] == '0' {
			b[n-2] = b[n-1]
			b = b[:n-1]
		}
	}
	return b
}
