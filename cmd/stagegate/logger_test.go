package main

import (
	"bytes"
	"encoding/json"
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/stagegate/stagegate/config"
)

// Durations read as Go writes them ("1.5s") in JSON logs too, not as
// integer nanoseconds, also inside groups and attrs added with With.
func TestLoggerDurationsAsText(t *testing.T) {
	var buf bytes.Buffer
	log, err := newLogger(&buf, config.Log{Level: "info", Format: "json"})
	if err != nil {
		t.Fatal(err)
	}
	log.With("lease", 45*time.Second).Info("claimed", "took", 1500*time.Millisecond,
		slog.Group("retry", "after", 250*time.Millisecond), "n", 3)
	var rec map[string]any
	if err := json.Unmarshal(buf.Bytes(), &rec); err != nil {
		t.Fatalf("%v: %s", err, buf.String())
	}
	retry, _ := rec["retry"].(map[string]any)
	if rec["took"] != "1.5s" || rec["lease"] != "45s" || retry["after"] != "250ms" || rec["n"] != float64(3) {
		t.Errorf("durations not written as text: %s", buf.String())
	}

	buf.Reset()
	log, err = newLogger(&buf, config.Log{Format: "text"})
	if err != nil {
		t.Fatal(err)
	}
	log.Info("claimed", "took", 1500*time.Millisecond)
	if !strings.Contains(buf.String(), "took=1.5s") {
		t.Errorf("text: %s", buf.String())
	}
}
