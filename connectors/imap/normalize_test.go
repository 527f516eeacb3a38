package imap

import (
	"bytes"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/stagegate/stagegate/internal/testutil/golden"

	"github.com/stagegate/stagegate/normalize"
)

// t0 is the fixed "now" of the normalizer tests.
var t0 = time.Date(2026, 3, 1, 20, 0, 0, 0, time.UTC)

// testRules are the rules of the golden tests: acme.test is ours.
func testRules(t testing.TB) Rules {
	own, err := NewOwn([]string{"acme.test"}, "sales@acme.test")
	if err != nil {
		t.Fatal(err)
	}
	return Rules{Own: own, ExcerptChars: 200}
}

// testFetched wraps raw as mail UID 7 of folder INBOX (Sent when sent).
func testFetched(raw []byte, sent bool) Fetched {
	f := Fetched{
		Connector: "mail", Account: "sales@acme.test", Folder: "INBOX", UIDValidity: 42, UID: 7,
		InternalDate: t0.Add(-time.Minute), Size: int64(len(raw)), Raw: raw, Received: t0,
	}
	if sent {
		f.Folder, f.Sent = "Sent", true
	}
	return f
}

// goldenResult renders a Result readably: Raw as its length.
func goldenResult(t *testing.T, r Result) []byte {
	t.Helper()
	type goldenEvent struct {
		normalize.Event
		RawBytes int `json:"raw_bytes"`
	}
	out := struct {
		MessageID string        `json:"message_id,omitempty"`
		Refs      []string      `json:"refs,omitempty"`
		Date      time.Time     `json:"date,omitzero"`
		Ignored   string        `json:"ignored,omitempty"`
		Events    []goldenEvent `json:"events"`
	}{MessageID: r.MessageID, Refs: r.Refs, Date: r.Date, Ignored: r.Ignored, Events: []goldenEvent{}}
	for _, ev := range r.Events {
		e := *ev
		e.Raw = nil
		out.Events = append(out.Events, goldenEvent{Event: e, RawBytes: len(ev.Raw)})
	}
	var b bytes.Buffer
	enc := json.NewEncoder(&b)
	enc.SetEscapeHTML(false)
	enc.SetIndent("", "  ")
	if err := enc.Encode(out); err != nil {
		t.Fatal(err)
	}
	return b.Bytes()
}

// TestNormalizeGolden normalizes testdata/mail/*.eml; files named sent_*
// are read as mail of the sent folder.
func TestNormalizeGolden(t *testing.T) {
	files, _ := filepath.Glob("testdata/mail/*.eml")
	if len(files) == 0 {
		t.Fatal("no testdata/mail/*.eml")
	}
	for _, file := range files {
		name := strings.TrimSuffix(filepath.Base(file), ".eml")
		t.Run(name, func(t *testing.T) {
			raw, err := os.ReadFile(file)
			if err != nil {
				t.Fatal(err)
			}
			res := Normalize(testFetched(raw, strings.HasPrefix(name, "sent_")), testRules(t))
			checkEvents(t, res)
			golden.Check(t, file, goldenResult(t, res))
		})
	}
}

// checkEvents checks what must hold of every result, whatever the input.
func checkEvents(t testing.TB, res Result) {
	t.Helper()
	for _, ev := range res.Events {
		if ev.ID == "" || !ev.Type.Valid() || ev.Connector != "mail" {
			t.Fatalf("bad event identity: %+v", ev)
		}
		if !strings.HasPrefix(ev.ID, "mail:") || len(ev.ID) > 400 {
			t.Fatalf("event id %q", ev.ID)
		}
		if ev.Attrs["mailbox"] == "" || ev.Attrs["uid"] == "" {
			t.Fatalf("event %s lacks mailbox/uid attrs", ev.ID)
		}
		for k, v := range ev.Attrs {
			if !utf8.ValidString(v) || len(v) > 4*maxAttrBytes {
				t.Fatalf("attr %s: %d bytes, valid UTF-8 %v", k, len(v), utf8.ValidString(v))
			}
		}
		if ev.Subject.Email != "" && normalize.NormalizeEmail(ev.Subject.Email) != ev.Subject.Email {
			t.Fatalf("subject email %q is not normalized", ev.Subject.Email)
		}
		if len(ev.Raw) > normalize.MaxRaw || len(ev.Warnings) > maxWarnings {
			t.Fatalf("raw %d bytes, %d warnings", len(ev.Raw), len(ev.Warnings))
		}
	}
}

// TestNormalizeKeys checks the event ids: Message-ID based, distinct per
// sent recipient, and stable for mail without a Message-ID.
func TestNormalizeKeys(t *testing.T) {
	rules := testRules(t)
	read := func(name string) []byte {
		b, err := os.ReadFile("testdata/mail/" + name)
		if err != nil {
			t.Fatal(err)
		}
		return b
	}
	in := Normalize(testFetched(read("plain.eml"), false), rules)
	if got := in.Events[0].ID; got != "mail:CAF1234.abc@mail.client.test" {
		t.Errorf("incoming id %q", got)
	}
	// The same mail in another folder, with another UID: one event id.
	f := testFetched(read("plain.eml"), false)
	f.Folder, f.UID, f.UIDValidity = "Support", 99, 1
	if again := Normalize(f, rules); again.Events[0].ID != in.Events[0].ID {
		t.Errorf("id changed with folder/uid: %q", again.Events[0].ID)
	}
	sent := Normalize(testFetched(read("sent_multi.eml"), true), rules)
	if len(sent.Events) != 2 || sent.Events[0].ID == sent.Events[1].ID {
		t.Fatalf("sent events: %d", len(sent.Events))
	}
	if !strings.HasPrefix(sent.Events[0].ID, "mail:sent:offer-77@acme.test:") {
		t.Errorf("sent id %q", sent.Events[0].ID)
	}
	// No Message-ID: the key survives a redelivery (new Received, UID,
	// internal date and folder) and differs when the body differs.
	raw := read("hostile_no_message_id.eml")
	a := Normalize(testFetched(raw, false), rules).Events[0].ID
	f = testFetched(append([]byte("Received: from mx by mx; Sun, 1 Mar 2026\r\n"), raw...), false)
	f.UID, f.InternalDate = 8, t0
	if b := Normalize(f, rules).Events[0].ID; b != a || !strings.HasPrefix(a, "mail:nomid:") {
		t.Errorf("no-Message-ID keys %q and %q", a, b)
	}
	other := bytes.Replace(raw, []byte("where is my id"), []byte("another body"), 1)
	if c := Normalize(testFetched(other, false), rules).Events[0].ID; c == a {
		t.Error("different mails share a key")
	}
}

// TestNotCustomer checks that each kind of automatic mail is recognized and
// the reason is what the engine's decision will show.
func TestNotCustomer(t *testing.T) {
	for file, want := range map[string]string{
		"autoreply.eml": "auto-submitted: auto-replied", "xautoreply.eml": "automatic reply (X-Autoreply)",
		"list.eml": "precedence: list", "bounce.eml": "bounce (empty Return-Path)",
		"own_from.eml": "sent from our own address", "plain.eml": "", "own_from_replyto.eml": "",
		"sent_vacation.eml": "auto-submitted: auto-replied",
	} {
		raw, err := os.ReadFile("testdata/mail/" + file)
		if err != nil {
			t.Fatal(err)
		}
		res := Normalize(testFetched(raw, strings.HasPrefix(file, "sent_")), testRules(t))
		if got := res.Events[0].Attrs[normalize.AttrNotCustomerMail]; got != want {
			t.Errorf("%s: not_customer %q, want %q", file, got, want)
		}
	}
	// Lists can be accepted; Precedence: list still marks the digest.
	raw := []byte("From: a@client.test\r\nList-Id: <l.client.test>\r\nMessage-ID: <l@x>\r\n\r\nhi")
	r := testRules(t)
	r.AcceptLists = true
	if got := Normalize(testFetched(raw, false), r).Events[0].Attrs[normalize.AttrNotCustomerMail]; got != "" {
		t.Errorf("accept_lists: not_customer %q", got)
	}
}

// FuzzNormalize feeds arbitrary bytes to the normalizer: it must not panic,
// must give one incoming event, and every event must be well formed. The
// seed corpus is testdata/mail/*.eml plus testdata/fuzz/FuzzNormalize.
func FuzzNormalize(f *testing.F) {
	files, _ := filepath.Glob("testdata/mail/*.eml")
	for _, file := range files {
		if b, err := os.ReadFile(file); err == nil && len(b) < 64<<10 {
			f.Add(b, strings.HasPrefix(filepath.Base(file), "sent_"))
		}
	}
	rules := testRules(f)
	f.Fuzz(func(t *testing.T, raw []byte, sent bool) {
		// A stalled normalizer would stall the connector: crash instead.
		tm := time.AfterFunc(10*time.Second, func() { panic("Normalize ran for more than 10s") })
		defer tm.Stop()
		res := Normalize(testFetched(raw, sent), rules)
		if !sent && len(res.Events) != 1 {
			t.Fatalf("incoming mail gave %d events", len(res.Events))
		}
		checkEvents(t, res)
	})
}

// BenchmarkNormalize measures the normalizer on a small ordinary mail.
func BenchmarkNormalize(b *testing.B) {
	raw, err := os.ReadFile("testdata/mail/plain.eml")
	if err != nil {
		b.Fatal(err)
	}
	rules, f := testRules(b), testFetched(raw, false)
	b.ReportAllocs()
	for range b.N {
		Normalize(f, rules)
	}
}
