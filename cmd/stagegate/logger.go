package main

import (
	"fmt"
	"io"
	"log/slog"
	"os"

	"github.com/stagegate/stagegate/config"
)

// newLogger builds the process logger: text on a terminal, JSON otherwise,
// unless the config or a flag says which.
func newLogger(w io.Writer, c config.Log) (*slog.Logger, error) {
	var lvl slog.Level
	if c.Level != "" {
		if err := lvl.UnmarshalText([]byte(c.Level)); err != nil {
			return nil, fmt.Errorf("log level %q: %w", c.Level, err)
		}
	}
	opts := &slog.HandlerOptions{Level: lvl, ReplaceAttr: durationsAsText}
	switch c.Format {
	case "text":
		return slog.New(slog.NewTextHandler(w, opts)), nil
	case "json":
		return slog.New(slog.NewJSONHandler(w, opts)), nil
	case "", "auto":
		if isTerminal(w) {
			return slog.New(slog.NewTextHandler(w, opts)), nil
		}
		return slog.New(slog.NewJSONHandler(w, opts)), nil
	default:
		return nil, fmt.Errorf("log format %q: want auto, text or json", c.Format)
	}
}

// durationsAsText writes a time.Duration as Go writes it ("1.5s",
// "250ms") rather than the JSON handler's integer nanoseconds, so that
// both formats read alike.
func durationsAsText(_ []string, a slog.Attr) slog.Attr {
	if a.Value.Kind() == slog.KindDuration {
		a.Value = slog.StringValue(a.Value.Duration().String())
	}
	return a
}

// isTerminal reports whether w is a character device (a terminal).
func isTerminal(w io.Writer) bool {
	f, ok := w.(*os.File)
	if !ok {
		return false
	}
	st, err := f.Stat()
	return err == nil && st.Mode()&os.ModeCharDevice != 0
}
