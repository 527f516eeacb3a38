package telephony

import (
	"errors"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/stagegate/stagegate/internal/testutil/golden"
	"github.com/stagegate/stagegate/normalize"
)

// goldenCallback renders a parser's result: the callback with its raw body
// as text, or its error.
func goldenCallback(t *testing.T, cb *Callback, err error) []byte {
	t.Helper()
	if err != nil {
		if !errors.Is(err, ErrMissingField) && !errors.Is(err, ErrBadField) &&
			!errors.Is(err, ErrBadStatus) && !errors.Is(err, ErrBadNumber) {
			t.Errorf("error %v wraps none of the parser errors", err)
		}
		return goldenJSON(t, map[string]string{"error": err.Error()})
	}
	return goldenJSON(t, storedCallback{Callback: *cb, Raw: string(cb.Raw)})
}

// TestParseTwilioGolden parses testdata/twilio/*.form: one "Name=value" a
// line, values as Twilio sends them before form encoding.
func TestParseTwilioGolden(t *testing.T) {
	files, _ := filepath.Glob("testdata/twilio/*.form")
	if len(files) == 0 {
		t.Fatal("no testdata/twilio/*.form")
	}
	for _, file := range files {
		t.Run(strings.TrimSuffix(filepath.Base(file), ".form"), func(t *testing.T) {
			b, err := os.ReadFile(file)
			if err != nil {
				t.Fatal(err)
			}
			params := url.Values{}
			for _, line := range strings.Split(strings.TrimSpace(string(b)), "\n") {
				k, v, _ := strings.Cut(line, "=")
				params.Add(k, v)
			}
			body := params.Encode()
			cb, err := ParseTwilio(params, []byte(body), t0, newNumbers("US"))
			if strings.HasPrefix(filepath.Base(file), "err_") != (err != nil) {
				t.Errorf("error %v for %s", err, file)
			}
			golden.CheckFile(t, strings.TrimSuffix(file, ".form")+".golden", goldenCallback(t, cb, err))
		})
	}
}

// TestParseGenericGolden parses testdata/generic/*.json; the webhook-id is
// "msg_" and the file's base name.
func TestParseGenericGolden(t *testing.T) {
	files, _ := filepath.Glob("testdata/generic/*.json")
	if len(files) == 0 {
		t.Fatal("no testdata/generic/*.json")
	}
	for _, file := range files {
		name := strings.TrimSuffix(filepath.Base(file), ".json")
		t.Run(name, func(t *testing.T) {
			body, err := os.ReadFile(file)
			if err != nil {
				t.Fatal(err)
			}
			cb, err := ParseGeneric("msg_"+name, body, t0, newNumbers("US"))
			if strings.HasPrefix(name, "err_") != (err != nil) {
				t.Errorf("error %v for %s", err, file)
			}
			golden.CheckFile(t, strings.TrimSuffix(file, ".json")+".golden", goldenCallback(t, cb, err))
		})
	}
}

func TestParty(t *testing.T) {
	n := newNumbers("US")
	for in, want := range map[string]Party{
		"+1 (555) 000-1111":                  {Number: lineMain},
		"555.000.1111":                       {Number: lineMain},
		"+15550001111":                       {Number: lineMain},
		"":                                   {Anonymous: true}, // a caller without caller ID
		"Anonymous":                          {Anonymous: true},
		"+266696687":                         {Anonymous: true},
		"+7378742833":                        {Anonymous: true},
		"+2562533":                           {Anonymous: true},
		"client:alice":                       {Endpoint: "client:alice"},
		"sip:bob@pbx.example.com":            {Endpoint: "sip:bob@pbx.example.com"},
		"sip:+15550001111@trunk.example.com": {Number: lineMain},
		"sip:anonymous@anonymous.invalid":    {Anonymous: true},
		"101":                                {Endpoint: "ext:101"},
		"+44 20 7946 0958":                   {Number: "+442079460958"},
	} {
		got, err := n.party("From", in)
		if err != nil || got != want {
			t.Errorf("party(%q) = %+v, %v; want %+v", in, got, err, want)
		}
	}
	if p, err := n.party("To", ""); err != nil || p != (Party{}) {
		t.Errorf("empty To: %+v, %v; want nothing", p, err)
	}
	for _, in := range []string{"call me", "+1 555", "+99 12345678", "#31#", "00000000000000000000"} {
		if _, err := n.party("From", in); !errors.Is(err, ErrBadNumber) {
			t.Errorf("party(%q): error %v, want ErrBadNumber", in, err)
		}
	}
}

func TestValidCallID(t *testing.T) {
	for _, s := range []string{"", "CA1", "a b", "x\x00", strings.Repeat("a", 128), strings.Repeat("a", 129), "1712.1", "ü", "a;b", "a/b:c@d+e=f-g_h"} {
		want := len(s) <= maxIDLen && normalize.ValidSourceID(s)
		if got := validCallID(s); got != want {
			t.Errorf("validCallID(%q) = %v, want %v", s, got, want)
		}
	}
}
