package livechat

import (
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base32"
	"encoding/base64"
	"regexp"
	"strings"
)

// Visitor tokens let a browser prove, on every reconnect, that it is the
// visitor it was before: "v1.<visitor id>.<mac>", where mac is the
// unpadded base64url HMAC-SHA256 of "livechat:<connector>:<visitor id>"
// under the connector's secret. They carry no expiry: a visitor is as
// long-lived as the browser's storage, and rotating the secret forgets
// every visitor.

const tokenPrefix = "v1."

var visitorIDPattern = regexp.MustCompile(`^v_[a-z2-7]{26}$`)

var idEncoding = base32.StdEncoding.WithPadding(base32.NoPadding)

// newID returns prefix followed by 26 random base32 characters (128 bits).
func newID(prefix string) string {
	var b [16]byte
	_, _ = rand.Read(b[:]) // never fails (crypto/rand)
	return prefix + strings.ToLower(idEncoding.EncodeToString(b[:]))
}

// tokenSigner signs and verifies the visitor tokens of one connector.
type tokenSigner struct {
	key       []byte
	connector string
}

func (s tokenSigner) mac(visitorID string) string {
	h := hmac.New(sha256.New, s.key)
	h.Write([]byte("livechat:" + s.connector + ":" + visitorID))
	return base64.RawURLEncoding.EncodeToString(h.Sum(nil))
}

// Sign returns the token of visitorID.
func (s tokenSigner) Sign(visitorID string) string {
	return tokenPrefix + visitorID + "." + s.mac(visitorID)
}

// Verify returns the visitor id of a valid token.
func (s tokenSigner) Verify(token string) (string, bool) {
	rest, ok := strings.CutPrefix(token, tokenPrefix)
	if !ok {
		return "", false
	}
	id, mac, ok := strings.Cut(rest, ".")
	if !ok || !visitorIDPattern.MatchString(id) {
		return "", false
	}
	return id, hmac.Equal([]byte(mac), []byte(s.mac(id)))
}

func constantTimeEqual(a, b string) bool {
	return subtle.ConstantTimeCompare([]byte(a), []byte(b)) == 1
}
