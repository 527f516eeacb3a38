package tracking

import (
	"bytes"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stagegate/stagegate/internal/testutil/golden"
	"github.com/stagegate/stagegate/normalize"
)

// eventCase is one input of the event normalizers under testdata/events.
type eventCase struct {
	Kind     string        `json:"kind"` // open, click, sent, site.visit, site.return
	Inferred string        `json:"inferred"`
	At       time.Time     `json:"at"`
	Message  msgRecord     `json:"message"`
	Hit      *scoredHit    `json:"hit"`
	Visitor  visitorRecord `json:"visitor"`
	View     pageView      `json:"view"`
}

// goldenEvent shows Raw as text rather than base64.
type goldenEvent struct {
	*normalize.Event
	Raw string `json:"raw,omitempty"`
}

func TestNormalizeGolden(t *testing.T) {
	inputs, err := filepath.Glob("testdata/events/*.json")
	if err != nil || len(inputs) == 0 {
		t.Fatalf("no inputs: %v", err)
	}
	now := time.Date(2026, 3, 1, 10, 15, 31, 0, time.UTC)
	for _, in := range inputs {
		t.Run(filepath.Base(in), func(t *testing.T) {
			b, err := os.ReadFile(in)
			if err != nil {
				t.Fatal(err)
			}
			var c eventCase
			dec := json.NewDecoder(bytes.NewReader(b))
			dec.DisallowUnknownFields()
			if err := dec.Decode(&c); err != nil {
				t.Fatal(err)
			}
			var ev *normalize.Event
			switch c.Kind {
			case "open":
				ev = normalizeOpen("track", &c.Message, c.Hit, c.Inferred, c.At, now)
			case "click":
				ev = normalizeClick("track", &c.Message, c.Hit, now)
			case "sent":
				ev = normalizeSent("track", &c.Message, c.At, now)
			case "site.visit", "site.return":
				ev = normalizeVisit("track", &c.Visitor, normalize.Type(c.Kind), c.View, c.At)
			default:
				t.Fatalf("kind %q", c.Kind)
			}
			if !ev.Type.Valid() || ev.ID == "" || !strings.HasPrefix(ev.ID, "track:") {
				t.Errorf("event id %q type %q", ev.ID, ev.Type)
			}
			var out bytes.Buffer
			enc := json.NewEncoder(&out)
			enc.SetEscapeHTML(false)
			enc.SetIndent("", "  ")
			if err := enc.Encode(goldenEvent{Event: ev, Raw: string(ev.Raw)}); err != nil {
				t.Fatal(err)
			}
			golden.Check(t, in, out.Bytes())
		})
	}
}
