// Package golden compares test output with .golden files kept beside the
// inputs under testdata/, and rewrites them when the tests run with
// -update (go test ./pkg -update).
package golden

import (
	"bytes"
	"flag"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

var update = flag.Bool("update", false, "rewrite the .golden files under testdata/")

// Path is the .golden file beside input (its extension replaced).
func Path(input string) string {
	return strings.TrimSuffix(input, filepath.Ext(input)) + ".golden"
}

// Check compares got with the .golden file beside input, or rewrites that
// file under -update.
func Check(t testing.TB, input string, got []byte) {
	t.Helper()
	CheckFile(t, Path(input), got)
}

// CheckFile compares got with the golden file at path, or writes that file
// (and its folder) under -update. It is Check for a golden file that is not
// named after an input.
func CheckFile(t testing.TB, path string, got []byte) {
	t.Helper()
	if *update {
		if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(path, got, 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("%v (run go test -update to create it)", err)
	}
	if !bytes.Equal(got, want) {
		t.Errorf("%s differs (run go test -update to accept):\n--- got\n%s--- want\n%s", path, got, want)
	}
}
