package webhook

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"mime"
	"mime/multipart"
	"net/http"
	"net/url"

	"github.com/stagegate/stagegate/connectors"
)

// submission is a form post as read from the wire.
type submission struct {
	fields url.Values
	raw    []byte // the body; for multipart, the fields url-encoded (files are not kept)
	json   bool   // the body was JSON: the caller is a script, answer JSON
}

// parseError is a refusal met while reading a submission.
type parseError struct {
	status    int
	code, msg string
}

// parse reads a urlencoded, multipart or JSON body within max_body and
// max_fields. File parts of a multipart body are read and dropped, but count
// against both limits.
func (c *Forms) parse(w http.ResponseWriter, r *http.Request) (*submission, *parseError) {
	mediaType, params, err := mime.ParseMediaType(r.Header.Get("Content-Type"))
	if err != nil {
		mediaType = ""
	}
	if r.ContentLength > c.MaxBody() {
		return nil, c.bodyTooLarge()
	}
	body := http.MaxBytesReader(w, r.Body, c.MaxBody())
	switch mediaType {
	case "application/x-www-form-urlencoded":
		b, err := io.ReadAll(body)
		if err != nil {
			return nil, c.readErr(err)
		}
		if n := bytes.Count(b, []byte("&")) + 1; n > c.maxFields {
			return nil, c.tooManyFields()
		}
		fields, err := url.ParseQuery(string(b))
		if err != nil {
			return nil, &parseError{http.StatusBadRequest, "bad_body", "body is not valid url-encoded form data"}
		}
		return &submission{fields: fields, raw: b}, nil
	case "multipart/form-data":
		return c.parseMultipart(body, params["boundary"])
	case "application/json":
		return c.parseJSON(body)
	default:
		return nil, &parseError{http.StatusUnsupportedMediaType, "unsupported_media_type",
			"send application/x-www-form-urlencoded, multipart/form-data or application/json"}
	}
}

func (c *Forms) parseMultipart(body io.Reader, boundary string) (*submission, *parseError) {
	if boundary == "" {
		return nil, &parseError{http.StatusBadRequest, "bad_body", "multipart body without a boundary"}
	}
	mr := multipart.NewReader(body, boundary)
	fields := url.Values{}
	for n := 1; ; n++ {
		part, err := mr.NextPart()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return nil, c.readErr(err)
		}
		if n > c.maxFields {
			return nil, c.tooManyFields()
		}
		_, disp, _ := mime.ParseMediaType(part.Header.Get("Content-Disposition"))
		_, isFile := disp["filename"]
		if isFile || part.FormName() == "" {
			if _, err := io.Copy(io.Discard, part); err != nil {
				return nil, c.readErr(err)
			}
			continue
		}
		v, err := io.ReadAll(part)
		if err != nil {
			return nil, c.readErr(err)
		}
		fields.Add(part.FormName(), string(v))
	}
	return &submission{fields: fields, raw: []byte(fields.Encode())}, nil
}

func (c *Forms) parseJSON(body io.Reader) (*submission, *parseError) {
	b, err := io.ReadAll(body)
	if err != nil {
		return nil, c.readErr(err)
	}
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.UseNumber()
	var obj map[string]any
	if err := dec.Decode(&obj); err != nil || obj == nil || dec.More() {
		return nil, &parseError{http.StatusBadRequest, "bad_json", "body is not a JSON object"}
	}
	if len(obj) > c.maxFields {
		return nil, c.tooManyFields()
	}
	fields := url.Values{}
	for k, v := range obj {
		switch v := v.(type) {
		case nil:
		case string:
			fields.Set(k, v)
		case json.Number:
			fields.Set(k, v.String())
		case bool:
			fields.Set(k, fmt.Sprint(v))
		default:
			return nil, &parseError{http.StatusBadRequest, "bad_field", fmt.Sprintf("%s: must be a string", k)}
		}
	}
	return &submission{fields: fields, raw: b, json: true}, nil
}

// readErr turns a read error into 413 when the body went over max_body, else 400.
func (c *Forms) readErr(err error) *parseError {
	if connectors.IsTooLarge(err) {
		return c.bodyTooLarge()
	}
	return &parseError{http.StatusBadRequest, "bad_body", "could not read the body"}
}

func (c *Forms) bodyTooLarge() *parseError {
	return &parseError{http.StatusRequestEntityTooLarge, "body_too_large", fmt.Sprintf("body larger than %d bytes", c.MaxBody())}
}

func (c *Forms) tooManyFields() *parseError {
	return &parseError{http.StatusRequestEntityTooLarge, "too_many_fields", fmt.Sprintf("more than %d fields", c.maxFields)}
}
