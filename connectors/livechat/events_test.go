package livechat

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stagegate/stagegate/internal/testutil/golden"
)

// eventCase is one input of the event golden tests.
type eventCase struct {
	Kind         string       `json:"kind"` // started, message or accepted
	Connector    string       `json:"connector"`
	Conversation Conversation `json:"conversation"`
	Message      Message      `json:"message"`
}

// The event builders are pure: each testdata/events/*.json gives the
// event in the .golden file beside it.
func TestEventsGolden(t *testing.T) {
	files, _ := filepath.Glob("testdata/events/*.json")
	if len(files) == 0 {
		t.Fatal("no golden inputs")
	}
	for _, in := range files {
		t.Run(strings.TrimSuffix(filepath.Base(in), ".json"), func(t *testing.T) {
			data, err := os.ReadFile(in)
			if err != nil {
				t.Fatal(err)
			}
			var c eventCase
			if err := json.Unmarshal(data, &c); err != nil {
				t.Fatal(err)
			}
			var got any
			switch c.Kind {
			case "started":
				got = StartedEvent(c.Connector, c.Conversation, c.Message)
			case "message":
				got = MessageEvent(c.Connector, c.Conversation, c.Message)
			case "accepted":
				got = AcceptedEvent(c.Connector, c.Conversation)
			default:
				t.Fatalf("kind %q", c.Kind)
			}
			out, _ := json.MarshalIndent(got, "", "  ")
			out = append(out, '\n')
			golden.Check(t, in, out)
		})
	}
}

func TestReactionSeconds(t *testing.T) {
	first := t0
	for _, tc := range []struct {
		after string
		want  string
	}{{"0s", "0"}, {"1ms", "0.001"}, {"90s", "90"}, {"100.2504s", "100.25"}, {"-5s", "0"}} {
		d, _ := time.ParseDuration(tc.after)
		if got := ReactionSeconds(first, first.Add(d)); got != tc.want {
			t.Errorf("%s: %q, want %q", tc.after, got, tc.want)
		}
	}
	if got := ReactionSeconds(first.AddDate(-1, 0, 0).Truncate(0), first); got == "0" {
		t.Error("a year is not 0 seconds")
	}
}
