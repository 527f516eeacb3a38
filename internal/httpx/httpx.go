// Package httpx holds the small HTTP helpers every handler of the gateway
// shares: JSON answers and the JSON error shape of the public API,
// {"error": {"code": "...", "message": "..."}}.
package httpx

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"maps"
	"net/http"
	"reflect"
	"slices"
	"strings"
	"time"
)

// WriteJSON answers status with v encoded as JSON.
func WriteJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(status)
	enc := json.NewEncoder(w)
	enc.SetEscapeHTML(false)
	_ = enc.Encode(v)
}

// ErrorBody is the body of every error answer.
type ErrorBody struct {
	Error ErrorDetail `json:"error"`
}

// ErrorDetail is the inside of an ErrorBody: Code is stable and
// machine-readable; Message is safe to show the caller.
type ErrorDetail struct {
	Code    string `json:"code"`
	Message string `json:"message"`
}

// WriteError answers status with the JSON error shape. The message is shown
// to the caller: never put an internal cause in it.
func WriteError(w http.ResponseWriter, status int, code, message string) {
	if status == http.StatusServiceUnavailable && w.Header().Get("Retry-After") == "" {
		w.Header().Set("Retry-After", "1")
	}
	WriteJSON(w, status, ErrorBody{Error: ErrorDetail{Code: code, Message: message}})
}

// DecodeJSON reads one JSON value from r's body (bounded by limit bytes)
// into v, rejecting unknown fields and trailing data. On failure it has
// already answered the request (413, or 400 bad_json with a message in
// plain words: the field, what it must be, what was sent — never a Go type
// name) and returns false.
func DecodeJSON(w http.ResponseWriter, r *http.Request, limit int64, v any) bool {
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, limit))
	var tooBig *http.MaxBytesError
	if errors.As(err, &tooBig) {
		WriteError(w, http.StatusRequestEntityTooLarge, "body_too_large", "request body is over the limit")
		return false
	}
	if err != nil {
		WriteError(w, http.StatusBadRequest, "bad_json", "the request body could not be read")
		return false
	}
	r.Body = io.NopCloser(bytes.NewReader(body))
	dec := json.NewDecoder(bytes.NewReader(body))
	dec.DisallowUnknownFields()
	err = dec.Decode(v)
	if err == nil {
		if _, extra := dec.Token(); extra != io.EOF {
			WriteError(w, http.StatusBadRequest, "bad_json", "malformed JSON: unexpected data after the JSON value")
			return false
		}
		return true
	}
	WriteError(w, http.StatusBadRequest, "bad_json", JSONErrorMessage(err, body))
	return false
}

// JSONErrorMessage says in plain words why body did not decode with err
// (an error of encoding/json): the field, what it must be and what was
// sent, without Go type names.
func JSONErrorMessage(err error, body []byte) string {
	var (
		syntax *json.SyntaxError
		typ    *json.UnmarshalTypeError
		tm     *time.ParseError
	)
	switch {
	case errors.Is(err, io.EOF):
		return "empty request body: a JSON object is required"
	case errors.Is(err, io.ErrUnexpectedEOF):
		return "malformed JSON: the body ends before the JSON value does"
	case errors.As(err, &syntax):
		return fmt.Sprintf("malformed JSON at byte %d: %s", syntax.Offset, strings.TrimPrefix(syntax.Error(), "json: "))
	case errors.As(err, &typ):
		want := jsonKind(typ.Type)
		if typ.Field == "" {
			return fmt.Sprintf("the body must be %s, not %s", want, jsonValue(typ.Value))
		}
		return fmt.Sprintf("%s: must be %s, not %s", typ.Field, want, jsonValue(typ.Value))
	case errors.As(err, &tm):
		msg := fmt.Sprintf("must be an RFC 3339 time such as 2026-03-01T10:15:00Z, not %q", tm.Value)
		if field := findString(body, tm.Value); field != "" {
			return field + ": " + msg
		}
		return "a time " + msg
	}
	msg := strings.TrimPrefix(err.Error(), "json: ")
	if strings.HasPrefix(msg, "unknown field ") {
		return msg
	}
	return "malformed JSON: " + msg
}

// jsonKind names the JSON value a Go type decodes from.
func jsonKind(t reflect.Type) string {
	if t == nil {
		return "another value"
	}
	if t == reflect.TypeFor[time.Time]() {
		return "an RFC 3339 time string"
	}
	switch t.Kind() {
	case reflect.String:
		return "a string"
	case reflect.Bool:
		return "true or false"
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64,
		reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64, reflect.Uintptr:
		return "a whole number"
	case reflect.Float32, reflect.Float64:
		return "a number"
	case reflect.Struct:
		return "an object"
	case reflect.Map:
		if t.Elem().Kind() == reflect.String {
			return "an object of strings"
		}
		return "an object"
	case reflect.Slice, reflect.Array:
		return "a list"
	case reflect.Pointer:
		return jsonKind(t.Elem())
	}
	return "another value"
}

// jsonValue names a JSON value as encoding/json describes it ("array",
// "number -1").
func jsonValue(v string) string {
	kind, rest, _ := strings.Cut(v, " ")
	switch kind {
	case "array":
		return "a list"
	case "object":
		return "an object"
	case "string":
		return "a string"
	case "bool":
		return "true or false"
	case "number":
		if rest != "" {
			return "the number " + rest
		}
		return "a number"
	}
	return v
}

// findString returns the path (a.b[2].c) of the first string value s in
// the JSON document body, or "".
func findString(body []byte, s string) string {
	var doc any
	if json.Unmarshal(body, &doc) != nil {
		return ""
	}
	var walk func(v any, path string) string
	walk = func(v any, path string) string {
		switch x := v.(type) {
		case string:
			if x == s {
				return path
			}
		case map[string]any:
			for _, k := range slices.Sorted(maps.Keys(x)) {
				p := k
				if path != "" {
					p = path + "." + k
				}
				if found := walk(x[k], p); found != "" {
					return found
				}
			}
		case []any:
			for i, e := range x {
				if found := walk(e, fmt.Sprintf("%s[%d]", path, i)); found != "" {
					return found
				}
			}
		}
		return ""
	}
	return walk(doc, "")
}
