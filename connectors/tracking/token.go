package tracking

import (
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base32"
	"encoding/base64"
	"encoding/binary"
	"errors"
	"hash"
	"strings"
	"sync"
)

// Token layout, before base64url (no padding):
//
//	version (1 byte) | message id (9 bytes) | link index (uvarint) | MAC (12 bytes)
//
// MAC is HMAC-SHA256 over "stagegate/t\x00" and the bytes before it,
// truncated to 96 bits. Link index 0 is the open pixel; links count from 1.
// A token is 31 to 34 characters. The destination is never in the token:
// it lives in the store under the message id.
const (
	tokenVersion = 1
	msgIDLen     = 9
	macLen       = 12
	maxLinkIndex = 1<<21 - 1 // three uvarint bytes at most
	minTokenRaw  = 1 + msgIDLen + 1 + macLen
	maxTokenRaw  = 1 + msgIDLen + 3 + macLen
	// maxTokenLen is the longest token text the handlers try to decode.
	maxTokenLen = (maxTokenRaw*8 + 5) / 6
)

var macDomain = []byte("stagegate/t\x00")

// tokenEncoding is unpadded base64url that rejects non-zero trailing bits,
// so one token has one spelling.
var tokenEncoding = base64.RawURLEncoding.Strict()

// Token errors. A token that fails with errBadSignature still names its
// message and link.
var (
	errMalformedToken = errors.New("malformed tracking token")
	errBadSignature   = errors.New("tracking token signature does not verify")
)

// MsgID is a tracked message's id: 9 random bytes.
type MsgID [msgIDLen]byte

// msgIDEncoding writes a MsgID as 15 lower-case letters and digits: safe
// in event ids, store keys, URLs and Message-IDs alike.
var msgIDEncoding = base32.NewEncoding("0123456789abcdefghijklmnopqrstuv").WithPadding(base32.NoPadding)

// String returns the id's text form.
func (m MsgID) String() string { return msgIDEncoding.EncodeToString(m[:]) }

// parseMsgID reads the text form of a MsgID; only the form String writes
// is accepted.
func parseMsgID(s string) (MsgID, bool) {
	var m MsgID
	if len(s) != msgIDEncoding.EncodedLen(msgIDLen) {
		return m, false
	}
	n, err := msgIDEncoding.Decode(m[:], []byte(s))
	return m, err == nil && n == msgIDLen && m.String() == s
}

// newMsgID returns a random message id.
func newMsgID() MsgID {
	var m MsgID
	_, _ = rand.Read(m[:]) // crypto/rand.Read never fails (Go 1.24+)
	return m
}

// MsgIDFor returns the message id derived from key (the first 9 bytes of
// its SHA-256 under a domain of its own): a sender that keys its messages
// gets one id per key, on every retry.
func MsgIDFor(key string) MsgID {
	sum := sha256.Sum256([]byte("stagegate/message\x00" + key))
	var m MsgID
	copy(m[:], sum[:])
	return m
}

// tokenSigner signs tokens with its first key and verifies them with any of
// its keys. It is safe for concurrent use.
type tokenSigner struct {
	pools []sync.Pool // one pool of HMAC states per key, in key order
}

// newSigner builds a tokenSigner; keys[0] signs. It fails without keys.
func newSigner(keys []string) (*tokenSigner, error) {
	if len(keys) == 0 {
		return nil, errors.New("tracking: no signing key")
	}
	s := &tokenSigner{pools: make([]sync.Pool, len(keys))}
	for i, k := range keys {
		key := []byte(k)
		s.pools[i].New = func() any { return hmac.New(sha256.New, key) }
	}
	return s, nil
}

// mac appends the truncated MAC of body under key i to dst.
func (s *tokenSigner) mac(i int, dst, body []byte) []byte {
	h := s.pools[i].Get().(hash.Hash)
	h.Reset()
	h.Write(macDomain)
	h.Write(body)
	var sum [sha256.Size]byte
	out := append(dst, h.Sum(sum[:0])[:macLen]...)
	s.pools[i].Put(h)
	return out
}

// Token returns the signed token of link (0: the open pixel) of message m.
func (s *tokenSigner) Token(m MsgID, link int) string {
	var buf [maxTokenRaw]byte
	b := append(buf[:0], tokenVersion)
	b = append(b, m[:]...)
	b = binary.AppendUvarint(b, uint64(link))
	b = s.mac(0, b, b)
	return tokenEncoding.EncodeToString(b)
}

// parsedToken is what a token names.
type parsedToken struct {
	Msg  MsgID
	Link int
}

// Decode reads a token (an optional ".gif" suffix is ignored). It returns
// errMalformedToken when the token names nothing, and the message and link
// with errBadSignature when no key verifies it.
func (s *tokenSigner) Decode(tok string) (parsedToken, error) {
	tok = strings.TrimSuffix(tok, ".gif")
	if len(tok) < (minTokenRaw*8+5)/6 || len(tok) > maxTokenLen {
		return parsedToken{}, errMalformedToken
	}
	for i := 0; i < len(tok); i++ { // the decoder would skip CR and LF
		if c := tok[i]; !('A' <= c && c <= 'Z' || 'a' <= c && c <= 'z' || '0' <= c && c <= '9' || c == '-' || c == '_') {
			return parsedToken{}, errMalformedToken
		}
	}
	var buf [maxTokenRaw + 3]byte
	n, err := tokenEncoding.Decode(buf[:], []byte(tok))
	if err != nil || n < minTokenRaw || buf[0] != tokenVersion {
		return parsedToken{}, errMalformedToken
	}
	raw := buf[:n]
	var p parsedToken
	copy(p.Msg[:], raw[1:1+msgIDLen])
	link, k := binary.Uvarint(raw[1+msgIDLen:])
	if k <= 0 || link > maxLinkIndex || len(raw) != 1+msgIDLen+k+macLen {
		return parsedToken{}, errMalformedToken
	}
	// A non-minimal varint (0x80 0x00) would give one link two tokens.
	if k != uvarintLen(link) {
		return parsedToken{}, errMalformedToken
	}
	p.Link = int(link)
	body, sig := raw[:len(raw)-macLen], raw[len(raw)-macLen:]
	var want [macLen]byte
	for i := range s.pools {
		if hmac.Equal(s.mac(i, want[:0], body), sig) {
			return p, nil
		}
	}
	return p, errBadSignature
}

// uvarintLen is the length of x's minimal uvarint encoding.
func uvarintLen(x uint64) int {
	n := 1
	for x >= 0x80 {
		x >>= 7
		n++
	}
	return n
}
