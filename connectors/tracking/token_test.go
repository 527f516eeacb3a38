package tracking

import (
	"errors"
	"strings"
	"testing"
)

func mustSigner(t testing.TB, keys ...string) *tokenSigner {
	t.Helper()
	s, err := newSigner(keys)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func TestTokenRoundTrip(t *testing.T) {
	s := mustSigner(t, testKey)
	m := newMsgID()
	for _, link := range []int{0, 1, 127, 128, 16383, 16384, maxLinkIndex} {
		tok := s.Token(m, link)
		if len(tok) < 31 || len(tok) > maxTokenLen {
			t.Errorf("link %d: token %q is %d characters", link, tok, len(tok))
		}
		if strings.Trim(tok, "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_") != "" {
			t.Errorf("token %q is not URL-safe", tok)
		}
		p, err := s.Decode(tok)
		if err != nil || p.Msg != m || p.Link != link {
			t.Errorf("link %d: Decode = %+v, %v", link, p, err)
		}
		if p, err := s.Decode(tok + ".gif"); err != nil || p.Link != link {
			t.Errorf("link %d with .gif: %v", link, err)
		}
	}
}

func TestTokenRejects(t *testing.T) {
	s := mustSigner(t, testKey)
	m := newMsgID()
	tok := s.Token(m, 3)
	flip := func(i int) string {
		b := []byte(tok)
		if b[i] == 'A' {
			b[i] = 'B'
		} else {
			b[i] = 'A'
		}
		return string(b)
	}
	cases := []struct {
		name, tok string
		want      error
	}{
		{"empty", "", errMalformedToken},
		{"truncated", tok[:len(tok)-1], errMalformedToken},
		{"truncated to id", tok[:16], errMalformedToken},
		{"4 KB", strings.Repeat("A", 4096), errMalformedToken},
		{"newline inside", tok[:10] + "\n" + tok[10:], errMalformedToken},
		{"padding", tok + "=", errMalformedToken},
		{"not base64", strings.Repeat("!", len(tok)), errMalformedToken},
		{"mac flipped", flip(len(tok) - 2), errBadSignature},
		{"message flipped", flip(5), errBadSignature},
		{"other key", mustSigner(t, "another-key-0123456789").Token(m, 3), errBadSignature},
		{"extra byte", s.Token(m, 3) + "AA", errMalformedToken},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			_, err := s.Decode(c.tok)
			if !errors.Is(err, c.want) {
				t.Errorf("Decode(%q) = %v, want %v", c.tok, err, c.want)
			}
		})
	}
	// A bad signature still names the message and link (scanner-mangled MAC).
	p, err := s.Decode(flip(len(tok) - 2))
	if !errors.Is(err, errBadSignature) || p.Msg != m || p.Link != 3 {
		t.Errorf("tampered MAC: %+v %v", p, err)
	}
}

// TestKeyRotation: after a new key is put first, tokens of the old key
// still verify, and new tokens use the new key.
func TestKeyRotation(t *testing.T) {
	old := mustSigner(t, "old-key-0123456789abcdef")
	rotated := mustSigner(t, "new-key-0123456789abcdef", "old-key-0123456789abcdef")
	onlyNew := mustSigner(t, "new-key-0123456789abcdef")
	m := newMsgID()
	oldTok := old.Token(m, 1)
	if _, err := rotated.Decode(oldTok); err != nil {
		t.Errorf("old token after rotation: %v", err)
	}
	newTok := rotated.Token(m, 1)
	if newTok == oldTok {
		t.Error("the rotated signer still signs with the old key")
	}
	if _, err := onlyNew.Decode(newTok); err != nil {
		t.Errorf("new token: %v", err)
	}
	if _, err := onlyNew.Decode(oldTok); !errors.Is(err, errBadSignature) {
		t.Errorf("old token once the old key is gone: %v", err)
	}
}

func TestMsgIDText(t *testing.T) {
	m := newMsgID()
	got, ok := parseMsgID(m.String())
	if !ok || got != m || len(m.String()) != 15 {
		t.Errorf("ParseMsgID(%q) = %v %v", m, got, ok)
	}
	for _, bad := range []string{"", "short", "!!!!!!!!!!!!!!!", m.String() + "a", strings.ToUpper(m.String()), m.String()[:14] + "v"} {
		if _, ok := parseMsgID(bad); ok {
			t.Errorf("ParseMsgID(%q) ok", bad)
		}
	}
	for _, ref := range []string{m.String(), "<sg." + m.String() + "@seller.test>", "sg." + m.String() + "@Seller.Test"} {
		if id, ok := msgIDFromRef(ref); !ok || id != m.String() {
			t.Errorf("msgIDFromRef(%q) = %q %v", ref, id, ok)
		}
	}
	if _, ok := msgIDFromRef("<abc@other.test>"); ok {
		t.Error("a foreign Message-ID is ours")
	}
}

// FuzzDecodeToken: the decoder never panics, accepts only what the signer
// made, and a token it accepts re-encodes to itself.
func FuzzDecodeToken(f *testing.F) {
	s := mustSigner(f, testKey, "second-key-0123456789")
	m := MsgID{1, 2, 3, 4, 5, 6, 7, 8, 9}
	for _, link := range []int{0, 1, 200, maxLinkIndex} {
		f.Add(s.Token(m, link))
	}
	f.Add("")
	f.Add(strings.Repeat("A", 40))
	f.Add("AQEBAQEBAQEBAYCAgICAgICAgICAgIA")
	f.Fuzz(func(t *testing.T, tok string) {
		p, err := s.Decode(tok)
		switch {
		case err == nil:
			if p.Link < 0 || p.Link > maxLinkIndex {
				t.Fatalf("link %d out of range", p.Link)
			}
			if got := s.Token(p.Msg, p.Link); got != strings.TrimSuffix(tok, ".gif") {
				t.Fatalf("accepted %q but signs %q", tok, got)
			}
		case errors.Is(err, errBadSignature):
			if p.Link < 0 || p.Link > maxLinkIndex {
				t.Fatalf("link %d out of range", p.Link)
			}
		case errors.Is(err, errMalformedToken):
			if p != (parsedToken{}) {
				t.Fatalf("malformed token names %+v", p)
			}
		default:
			t.Fatalf("unexpected error %v", err)
		}
	})
}
