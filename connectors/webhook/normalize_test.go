package webhook

import (
	"bytes"
	"encoding/json"
	"errors"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/stagegate/stagegate/internal/testutil/golden"

	"github.com/stagegate/stagegate/normalize"
)

// goldenEvent shows Raw as text rather than base64, so goldens are readable.
type goldenEvent struct {
	*normalize.Event
	Raw string `json:"raw,omitempty"`
}

// goldenOutput renders a normalizer's result: the event, or its error.
func goldenOutput(t *testing.T, ev *normalize.Event, err error) []byte {
	t.Helper()
	var v any
	switch {
	case err != nil:
		if !errors.Is(err, ErrBadField) && !errors.Is(err, ErrBadJSON) {
			t.Errorf("error %v wraps neither ErrBadField nor ErrBadJSON", err)
		}
		v = map[string]string{"error": err.Error()}
	default:
		v = goldenEvent{Event: ev, Raw: string(ev.Raw)}
	}
	var out bytes.Buffer
	enc := json.NewEncoder(&out)
	enc.SetEscapeHTML(false)
	enc.SetIndent("", "  ")
	if err := enc.Encode(v); err != nil {
		t.Fatal(err)
	}
	return out.Bytes()
}

// TestNormalizeWebhookGolden normalizes testdata/webhook/*.json; the
// webhook-id is "msg_" and the file's base name.
func TestNormalizeWebhookGolden(t *testing.T) {
	files, _ := filepath.Glob("testdata/webhook/*.json")
	if len(files) == 0 {
		t.Fatal("no testdata/webhook/*.json")
	}
	for _, file := range files {
		name := strings.TrimSuffix(filepath.Base(file), ".json")
		t.Run(name, func(t *testing.T) {
			body, err := os.ReadFile(file)
			if err != nil {
				t.Fatal(err)
			}
			ev, err := NormalizeWebhook("hooks", "msg_"+name, body, t0, "US")
			golden.Check(t, file, goldenOutput(t, ev, err))
		})
	}
}

// TestNormalizeFormGolden normalizes testdata/forms/*.form. A .form file is
// "key: value" lines describing the form (id, kind, redirect, and the field
// of each slot: email, phone, name), a blank line, then the url-encoded
// body, which may be split over lines (joined with "&").
func TestNormalizeFormGolden(t *testing.T) {
	files, _ := filepath.Glob("testdata/forms/*.form")
	if len(files) == 0 {
		t.Fatal("no testdata/forms/*.form")
	}
	for _, file := range files {
		t.Run(strings.TrimSuffix(filepath.Base(file), ".form"), func(t *testing.T) {
			form, body := readFormFile(t, file)
			fields, err := url.ParseQuery(body)
			if err != nil {
				t.Fatal(err)
			}
			ev, err := NormalizeForm("forms", form, fields, []byte(body), t0, "US")
			golden.Check(t, file, goldenOutput(t, ev, err))
		})
	}
}

func readFormFile(t *testing.T, file string) (FormConfig, string) {
	t.Helper()
	b, err := os.ReadFile(file)
	if err != nil {
		t.Fatal(err)
	}
	head, body, ok := strings.Cut(string(b), "\n\n")
	if !ok {
		t.Fatalf("%s: no blank line between form and body", file)
	}
	form := FormConfig{ID: "contact", Fields: map[string]string{}}
	for _, line := range strings.Split(head, "\n") {
		k, v, _ := strings.Cut(line, ":")
		k, v = strings.TrimSpace(k), strings.TrimSpace(v)
		switch k {
		case "id":
			form.ID = v
		case "kind":
			form.Kind = v
		case "redirect":
			form.Redirect = v
		case "email", "phone", "name":
			form.Fields[k] = v
		default:
			t.Fatalf("%s: unknown key %q", file, k)
		}
	}
	return form, strings.Join(strings.Fields(body), "&")
}

func TestFormEventID(t *testing.T) {
	a := url.Values{"email": {"ann@client.test"}, "name": {"Ann"}}
	b := url.Values{"name": {"Ann"}, "email": {"ann@client.test"}}
	if FormEventID("f", "contact", a, t0) != FormEventID("f", "contact", b, t0.Add(29*1e9)) {
		t.Error("same fields within the minute: ids differ")
	}
	if FormEventID("f", "contact", a, t0) == FormEventID("f", "contact", a, t0.Add(60*1e9)) {
		t.Error("same fields in the next minute: ids equal")
	}
	if FormEventID("f", "contact", a, t0) == FormEventID("f", "other", a, t0) {
		t.Error("two forms: ids equal")
	}
	a.Set(SubmissionIDField, "sub-1")
	if got := FormEventID("f", "contact", a, t0); got != "f:contact:sub-1" {
		t.Errorf("with submission_id: %q", got)
	}
}

func TestTruncate(t *testing.T) {
	for _, tt := range []struct {
		in   string
		n    int
		want string
		cut  bool
	}{
		{"abc", 3, "abc", false},
		{"abcd", 3, "abc", true},
		{"äöüß", 2, "äö", true},
		{"a\xffb", 3, "a\uFFFDb", false},
	} {
		got, cut := truncate(tt.in, tt.n)
		if got != tt.want || cut != tt.cut {
			t.Errorf("truncate(%q, %d) = %q, %v; want %q, %v", tt.in, tt.n, got, cut, tt.want, tt.cut)
		}
	}
}
