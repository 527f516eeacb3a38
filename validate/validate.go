// Package validate collects configuration and input errors together with the
// path of the offending field, so that every problem can be reported at once
// (for example "pipelines[0].stages[2].triggers[0].url: required").
package validate

import (
	"fmt"
	"strings"
)

// Error is one problem found at one path.
type Error struct {
	Path    string
	Message string
}

// Error implements the error interface as "path: message".
func (e Error) Error() string {
	if e.Path == "" {
		return e.Message
	}
	return e.Path + ": " + e.Message
}

// Errors is a list of problems. The zero value is ready to use.
type Errors []Error

// Add records a problem at path.
func (es *Errors) Add(path, format string, args ...any) {
	*es = append(*es, Error{Path: path, Message: fmt.Sprintf(format, args...)})
}

// Merge appends the problems of other, each with prefix joined in front of its path.
func (es *Errors) Merge(prefix string, other Errors) {
	for _, e := range other {
		*es = append(*es, Error{Path: Join(prefix, e.Path), Message: e.Message})
	}
}

// Err returns nil when there are no problems, else the list itself as an error.
func (es Errors) Err() error {
	if len(es) == 0 {
		return nil
	}
	return es
}

// Error joins all problems, one a line.
func (es Errors) Error() string {
	lines := make([]string, len(es))
	for i, e := range es {
		lines[i] = e.Error()
	}
	return strings.Join(lines, "\n")
}

// Join builds a field path: Join("a", "b") is "a.b"; an index segment such as
// "[2]" is appended without a dot.
func Join(prefix, field string) string {
	switch {
	case prefix == "":
		return field
	case field == "":
		return prefix
	case strings.HasPrefix(field, "["):
		return prefix + field
	default:
		return prefix + "." + field
	}
}

// Index builds "prefix[i]".
func Index(prefix string, i int) string {
	return fmt.Sprintf("%s[%d]", prefix, i)
}
