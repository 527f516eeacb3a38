package compose

import (
	"bytes"
	"encoding/json"
	"errors"
	"io"
	"os/exec"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/emersion/go-message"
	gomail "github.com/emersion/go-message/mail"
)

// richHTML has every kind of link the builder meets, and non-ASCII text.
const richHTML = `<!DOCTYPE html>
<html><head><title>Offre</title><style>a{color:red}</style></head>
<body class="x">
<p>Grüße, Ann — 价格 &amp; «devis»</p>
<p><a href="https://example.com/pricing?a=1&amp;b=2">Pricing</a>
<a HREF="HTTP://Example.com/Demo#top" class="btn">Demo</a>
<a href="mailto:bob@seller.test">mail</a> <a href="tel:+15551230000">call</a>
<a href="#section">anchor</a> <a href="/relative">relative</a>
<a href="https://example.com/unsubscribe" data-stagegate="no-track">unsubscribe</a>
<a href="{{unsubscribe_url}}">template</a> <a name="n">no href</a>
<img src="https://example.com/logo.png"></p>
</body></html>`

func richRequest() *Request {
	return &Request{
		ItemID: "i_42", From: "Bob Seller <bob@seller.test>", To: AddressList{"Ann Müller <ann@client.test>", "cc@client.test"},
		Subject: "Ihr Angebot — 价格 ✓", HTML: richHTML,
		Headers: map[string]string{"X-Campaign": "spring", "X-Note": "Grüße"},
	}
}

// t0 is the fixed "now" of the tests; testPublic the gateway's public URL.
var t0 = time.Date(2026, 3, 1, 10, 15, 30, 0, time.UTC)

const testPublic = "https://track.example.com"

// tokens stands in for the tracker's signer: the token of link i of
// message id (0: the pixel).
type tokens struct{}

func (tokens) Token(id string, i int) string { return "tok_" + id + "_" + strconv.Itoa(i) }

func buildFor(t *testing.T, req *Request) (*Message, tokens, string) {
	t.Helper()
	var s tokens
	id := "0908070605040302010000"
	b, err := Build(req, Input{
		ID: id, Now: t0, MaxLinks: 50, Pixel: testPublic + "/t/o/" + s.Token(id, 0),
		Click: func(i int) string { return testPublic + "/t/c/" + s.Token(id, i) },
	})
	if err != nil {
		t.Fatal(err)
	}
	return b, s, id
}

// parsed is a message read back by a parser.
type parsed struct {
	Subject, From, To, MessageID, ContentType, Date string
	Headers                                         map[string]string
	Parts                                           map[string]string // content type → decoded body
}

// parseGo reads a message with go-message.
func parseGo(t *testing.T, raw []byte) parsed {
	t.Helper()
	r, err := gomail.CreateReader(bytes.NewReader(raw))
	if err != nil {
		t.Fatalf("go-message: %v", err)
	}
	var p parsed
	p.Subject, _ = r.Header.Subject()
	from, _ := r.Header.AddressList("From")
	to, _ := r.Header.AddressList("To")
	p.From = from[0].String()
	for _, a := range to {
		p.To += a.Address + ";"
	}
	p.MessageID, _ = r.Header.MessageID()
	p.ContentType, _, _ = r.Header.ContentType()
	d, err := r.Header.Date()
	if err != nil || !d.Equal(t0) {
		t.Errorf("Date %v (%v)", d, err)
	}
	p.Headers = map[string]string{}
	for _, k := range []string{"X-Campaign", "X-Note"} {
		p.Headers[k], _ = r.Header.Text(k)
	}
	p.Parts = map[string]string{}
	for {
		part, err := r.NextPart()
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatalf("go-message part: %v", err)
		}
		ih, ok := part.Header.(*gomail.InlineHeader)
		if !ok {
			t.Fatalf("part header %T", part.Header)
		}
		ct, params, _ := ih.ContentType()
		if params["charset"] != "utf-8" {
			t.Errorf("%s charset %q", ct, params["charset"])
		}
		b, _ := io.ReadAll(part.Body)
		p.Parts[ct] = string(b)
	}
	return p
}

// pythonParser reads a message with Python's email package and prints what
// it found as JSON.
const pythonParser = `
import email, email.policy, json, sys
m = email.message_from_bytes(sys.stdin.buffer.read(), policy=email.policy.default)
out = {"subject": str(m["subject"]), "from": str(m["from"]), "message_id": str(m["message-id"]),
       "to": [a.addr_spec for a in m["to"].addresses], "content_type": m.get_content_type(),
       "defects": [str(d) for d in m.defects], "parts": {}, "x_note": str(m["x-note"])}
for part in m.walk():
    if part.get_content_maintype() == "multipart":
        continue
    out["defects"] += [str(d) for d in part.defects]
    out["parts"][part.get_content_type()] = part.get_content()
print(json.dumps(out))
`

func TestBuildParsesBack(t *testing.T) {
	b, s, id := buildFor(t, richRequest())
	raw := b.Raw
	for i, c := range raw {
		if c > 127 {
			t.Fatalf("byte %d of the message is not ASCII: %q", i, raw[max(0, i-20):i+5])
		}
	}
	for _, line := range strings.Split(string(raw), "\r\n") {
		if len(line) > 998 {
			t.Fatalf("line longer than 998: %q", line)
		}
	}
	if !bytes.Contains(raw, []byte("\r\nMIME-Version: 1.0\r\n")) && !bytes.HasPrefix(raw, []byte("Mime-Version: 1.0")) && !bytes.Contains(raw, []byte("Mime-Version: 1.0\r\n")) {
		t.Errorf("no MIME-Version header")
	}
	p := parseGo(t, raw)
	checkParsed(t, "go-message", p.Subject, p.MessageID, p.ContentType, p.To, p.Parts, s, id, b)
	if p.From != `"Bob Seller" <bob@seller.test>` {
		t.Errorf("From %q", p.From)
	}
	if p.Headers["X-Campaign"] != "spring" || p.Headers["X-Note"] != "Grüße" {
		t.Errorf("custom headers %q", p.Headers)
	}

	py, err := exec.LookPath("python3")
	if err != nil {
		t.Skip("python3 not on PATH: the independent parser check is skipped")
	}
	cmd := exec.Command(py, "-c", pythonParser)
	cmd.Stdin = bytes.NewReader(raw)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("python: %v\n%s", err, stderr.String())
	}
	var pr struct {
		Subject, From, MessageID, ContentType, XNote string
		To                                           []string
		Defects                                      []string
		Parts                                        map[string]string
	}
	dec := json.NewDecoder(bytes.NewReader(out))
	if err := dec.Decode(&struct {
		Subject     *string            `json:"subject"`
		From        *string            `json:"from"`
		MessageID   *string            `json:"message_id"`
		ContentType *string            `json:"content_type"`
		XNote       *string            `json:"x_note"`
		To          *[]string          `json:"to"`
		Defects     *[]string          `json:"defects"`
		Parts       *map[string]string `json:"parts"`
	}{&pr.Subject, &pr.From, &pr.MessageID, &pr.ContentType, &pr.XNote, &pr.To, &pr.Defects, &pr.Parts}); err != nil {
		t.Fatalf("python output %s: %v", out, err)
	}
	if len(pr.Defects) > 0 {
		t.Errorf("python found defects: %q", pr.Defects)
	}
	if pr.XNote != "Grüße" || pr.From != "Bob Seller <bob@seller.test>" {
		t.Errorf("python: X-Note %q From %q", pr.XNote, pr.From)
	}
	checkParsed(t, "python", pr.Subject, strings.Trim(pr.MessageID, "<>"), pr.ContentType,
		strings.Join(pr.To, ";")+";", pr.Parts, s, id, b)
}

// checkParsed checks what a parser read against what was built.
func checkParsed(t *testing.T, parser, subject, messageID, ct, to string, parts map[string]string, s tokens, id string, b *Message) {
	t.Helper()
	if subject != "Ihr Angebot — 价格 ✓" {
		t.Errorf("%s: subject %q", parser, subject)
	}
	if messageID != "sg."+id+"@seller.test" || messageID != b.MessageID {
		t.Errorf("%s: Message-ID %q", parser, messageID)
	}
	if ct != "multipart/alternative" {
		t.Errorf("%s: content type %q", parser, ct)
	}
	if to != "ann@client.test;cc@client.test;" {
		t.Errorf("%s: to %q", parser, to)
	}
	html, text := parts["text/html"], strings.ReplaceAll(parts["text/plain"], "\r\n", "\n")
	if html == "" || text == "" || len(parts) != 2 {
		t.Fatalf("%s: parts %q", parser, keys(parts))
	}
	click := func(i int) string { return testPublic + "/t/c/" + s.Token(id, i) }
	for _, want := range []string{
		"Grüße, Ann — 价格 &amp; «devis»",
		`<a href="` + click(1) + `">Pricing</a>`,
		`<a href="` + click(2) + `" class="btn">Demo</a>`,
		`<a href="mailto:bob@seller.test">mail</a>`, `<a href="tel:+15551230000">call</a>`,
		`<a href="#section">anchor</a>`, `<a href="/relative">relative</a>`,
		`<a href="https://example.com/unsubscribe">unsubscribe</a>`,
		`<a href="{{unsubscribe_url}}">template</a>`, `<a name="n">no href</a>`,
		`<img src="https://example.com/logo.png">`,
		`<img src="` + testPublic + "/t/o/" + s.Token(id, 0) + `"`,
		"<style>a{color:red}</style>",
	} {
		if !strings.Contains(html, want) {
			t.Errorf("%s: html lacks %q", parser, want)
		}
	}
	if strings.Index(html, "/t/o/") > strings.Index(html, "</body>") {
		t.Errorf("%s: pixel after </body>", parser)
	}
	for _, want := range []string{"Grüße, Ann — 价格 & «devis»", "Pricing (" + click(1) + ")", "Demo (" + click(2) + ")"} {
		if !strings.Contains(text, want) {
			t.Errorf("%s: text lacks %q:\n%s", parser, want, text)
		}
	}
	if !strings.Contains(text, "unsubscribe (https://example.com/unsubscribe)") {
		t.Errorf("%s: text tracks the no-track link:\n%s", parser, text)
	}
	wantLinks := []Link{{URL: "https://example.com/pricing?a=1&b=2"}, {URL: "http://Example.com/Demo#top"}}
	if len(b.Links) != len(wantLinks) || b.Links[0] != wantLinks[0] || b.Links[1] != wantLinks[1] {
		t.Errorf("%s: stored links %+v", parser, b.Links)
	}
}

func keys(m map[string]string) []string {
	var out []string
	for k := range m {
		out = append(out, k)
	}
	return out
}

func TestBuildTextOnlyAndGivenText(t *testing.T) {
	req := &Request{ItemID: "i_1", From: "bob@seller.test", To: AddressList{"ann@client.test"}, Subject: "Hi",
		Text: "Prices: https://example.com/pricing. Mail me: bob@seller.test\n"}
	b, s, id := buildFor(t, req)
	e, err := message.Read(bytes.NewReader(b.Raw))
	if err != nil {
		t.Fatal(err)
	}
	if ct, _, _ := e.Header.ContentType(); ct != "text/plain" {
		t.Errorf("content type %q", ct)
	}
	body, _ := io.ReadAll(e.Body)
	if want := "Prices: " + testPublic + "/t/c/" + s.Token(id, 1) + ". Mail me"; !strings.Contains(string(body), want) {
		t.Errorf("body %q lacks %q", body, want)
	}

	off := false
	req.TrackText = &off
	req.HTML = `<a href="https://example.com/pricing">x</a>`
	b, _, _ = buildFor(t, req)
	p := parseGo(t, b.Raw)
	if !strings.Contains(p.Parts["text/plain"], "Prices: https://example.com/pricing.") {
		t.Errorf("track_text false rewrote the text: %q", p.Parts["text/plain"])
	}
	if len(b.Links) != 1 {
		t.Errorf("links %+v", b.Links)
	}
}

func TestBuildHoneypot(t *testing.T) {
	req := richRequest()
	req.Honeypot = true
	b, s, id := buildFor(t, req)
	if !b.Links[0].Honeypot || b.Links[0].URL != "" || b.Links[1].URL != "https://example.com/pricing?a=1&b=2" {
		t.Fatalf("links %+v", b.Links)
	}
	html := parseGo(t, b.Raw).Parts["text/html"]
	hp := `<body class="x"><a href="` + testPublic + "/t/c/" + s.Token(id, 1) + `" style="display:none`
	if !strings.Contains(html, hp) {
		t.Errorf("honeypot not right after <body>:\n%s", html)
	}
	if n := len(b.Links); n != 3 {
		t.Errorf("%d links, want the honeypot and two", n)
	}
}

func TestBuildRefuses(t *testing.T) {
	base := func() *Request {
		return &Request{ItemID: "i_1", From: "bob@seller.test", To: AddressList{"ann@client.test"}, Text: "hi"}
	}
	cases := map[string]func(*Request){
		"no item":          func(r *Request) { r.ItemID = "" },
		"bad item":         func(r *Request) { r.ItemID = "a b" },
		"no from":          func(r *Request) { r.From = "" },
		"bad from":         func(r *Request) { r.From = "not an address" },
		"no to":            func(r *Request) { r.To = nil },
		"bad to":           func(r *Request) { r.To = AddressList{"<<"} },
		"no body":          func(r *Request) { r.Text = " " },
		"subject newline":  func(r *Request) { r.Subject = "a\r\nBcc: x@y.z" },
		"reserved header":  func(r *Request) { r.Headers = map[string]string{"message-id": "<x@y>"} },
		"header injection": func(r *Request) { r.Headers = map[string]string{"X-A": "v\r\nBcc: x@y.z"} },
		"bad header name":  func(r *Request) { r.Headers = map[string]string{"X A": "v"} },
		"too many links": func(r *Request) {
			r.HTML = strings.Repeat(`<a href="https://e.test/">x</a>`, 51)
		},
	}
	for name, mod := range cases {
		t.Run(name, func(t *testing.T) {
			req := base()
			mod(req)
			_, err := Build(req, Input{ID: "x", Now: t0, MaxLinks: 50, Click: func(int) string { return "u" }, Pixel: "p"})
			if !errors.Is(err, ErrBadRequest) {
				t.Errorf("err %v, want ErrBadRequest", err)
			}
		})
	}
}
