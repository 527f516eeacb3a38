package livechat

import (
	"encoding/json"
	"errors"
	"reflect"
	"strings"
	"testing"
)

func TestDecodeFrame(t *testing.T) {
	for _, tc := range []struct {
		name, in string
		ok       bool
	}{
		{"hello", `{"type":"hello","visitor_token":"v1.x.y","cursor":{"conversation_id":"cabc","last_seq":3}}`, true},
		{"agent hello", `{"type":"hello","token":"t","cursors":[{"conversation_id":"c1","last_seq":0}]}`, true},
		{"message", `{"type":"message","id":"m-1","text":"hi"}`, true},
		{"unknown keys ignored", `{"type":"typing","future":{"x":1}}`, true},
		{"not an object", `[]`, false},
		{"trailing data", `{"type":"typing"} {}`, false},
		{"unknown type", `{"type":"welcome"}`, false},
		{"no type", `{}`, false},
		{"message without id", `{"type":"message","text":"hi"}`, false},
		{"message id with space", `{"type":"message","id":"a b","text":"hi"}`, false},
		{"blank text", `{"type":"message","id":"a","text":" \n "}`, false},
		{"text too long", `{"type":"message","id":"a","text":"` + strings.Repeat("x", 101) + `"}`, false},
		{"negative cursor", `{"type":"hello","cursor":{"conversation_id":"c","last_seq":-1}}`, false},
		{"bad conversation id", `{"type":"open","conversation_id":"../x"}`, false},
		{"too many cursors", `{"type":"hello","cursors":[` + strings.Repeat(`{"conversation_id":"c"},`, 100) + `{}]}`, false},
		{"long name", `{"type":"identify","name":"` + strings.Repeat("n", 600) + `"}`, false},
		{"invalid UTF-8", "{\"type\":\"message\",\"id\":\"a\",\"text\":\"\xff\"}", true}, // JSON replaces it
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := DecodeFrame([]byte(tc.in), 100)
			if (err == nil) != tc.ok {
				t.Fatalf("err = %v, want ok %v", err, tc.ok)
			}
			if err != nil && !errors.Is(err, ErrBadFrame) {
				t.Fatalf("error %v does not wrap ErrBadFrame", err)
			}
		})
	}
}

// FuzzDecodeFrame checks that the frame decoder never panics, that what it
// accepts respects the limits, and that an accepted frame encodes and
// decodes to itself.
func FuzzDecodeFrame(f *testing.F) {
	for _, s := range []string{
		`{"type":"hello","visitor_token":"v1.v_aaaa.bbb","cursor":{"conversation_id":"cabc","last_seq":3},"channel":"sales","name":"Ann","email":"a@b.c"}`,
		`{"type":"hello","token":"tok","cursors":[{"conversation_id":"c1","last_seq":2}]}`,
		`{"type":"message","id":"m1","text":"hello"}`,
		`{"type":"message","conversation_id":"c1","id":"r1","text":"hi"}`,
		`{"type":"accept","conversation_id":"c1","last_seq":0}`,
		`{"type":"identify","phone":"+1 202 555 0123"}`,
		`{"type":"typing"}`, `{"type":"close"}`, `{"type":"open","conversation_id":"c1"}`,
		`{"type":"message","id":"m1","text":"\u00e9\ud83d\ude00"}`, `{`, `null`, `"x"`, ``,
	} {
		f.Add([]byte(s))
	}
	const maxText = 200
	f.Fuzz(func(t *testing.T, data []byte) {
		fr, err := DecodeFrame(data, maxText)
		if err != nil {
			if !errors.Is(err, ErrBadFrame) {
				t.Fatalf("error %v does not wrap ErrBadFrame", err)
			}
			return
		}
		if fr.Type == TypeMessage && (len(fr.Text) > maxText || !clientIDPattern.MatchString(fr.ID)) {
			t.Fatalf("accepted a message over the limits: %+v", fr)
		}
		again, err := json.Marshal(fr)
		if err != nil {
			t.Fatal(err)
		}
		fr2, err := DecodeFrame(again, maxText)
		if err != nil {
			t.Fatalf("re-decoding %s: %v", again, err)
		}
		if !reflect.DeepEqual(fr, fr2) {
			t.Fatalf("round trip changed the frame:\n%+v\n%+v", fr, fr2)
		}
	})
}
