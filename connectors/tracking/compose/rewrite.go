package compose

import (
	"bytes"
	"errors"
	"fmt"
	"net/url"
	"regexp"
	"strings"

	"golang.org/x/net/html"
)

// noTrackAttr marks a link the builder leaves alone: data-stagegate="no-track".
const noTrackAttr = "data-stagegate"

// errTooManyLinks is returned when a message has more links than max_links.
var errTooManyLinks = errors.New("too many links")

// linker hands out link indexes (from 1) and their click URLs while a
// message is rewritten.
type linker struct {
	links []Link               // links[i] has index i+1
	click func(idx int) string // click URL of a link index
	max   int                  // most links allowed
	byURL map[string]int       // first index of each destination
	skip  map[string]bool      // destinations marked no-track in the HTML
}

func (l *linker) add(dest string, honeypot bool) (int, error) {
	if len(l.links) >= l.max {
		return 0, fmt.Errorf("%w: more than %d", errTooManyLinks, l.max)
	}
	l.links = append(l.links, Link{URL: dest, Honeypot: honeypot})
	idx := len(l.links)
	if _, ok := l.byURL[dest]; !ok && !honeypot {
		l.byURL[dest] = idx
	}
	return idx, nil
}

// trackable returns the normalized destination when href is an absolute
// http(s) URL with a host; mailto:, tel:, #anchors, relative links and
// template placeholders are not.
func trackable(href string) (string, bool) {
	href = strings.TrimSpace(href)
	if len(href) < len("http://x") || !(hasPrefixFold(href, "http://") || hasPrefixFold(href, "https://")) {
		return "", false
	}
	u, err := url.Parse(href)
	if err != nil || u.Host == "" || (u.Scheme != "http" && u.Scheme != "https") {
		return "", false
	}
	if u.Scheme != href[:len(u.Scheme)] { // keep the author's URL, with a lower-case scheme
		href = u.Scheme + href[len(u.Scheme):]
	}
	return href, true
}

func hasPrefixFold(s, prefix string) bool {
	return len(s) >= len(prefix) && strings.EqualFold(s[:len(prefix)], prefix)
}

// rewriteHTML replaces the href of every trackable <a> and <area> by a
// click URL, adds the honeypot link (when honeypot is set) right after
// <body> and the open pixel before </body> (or at the end). Everything else
// is copied byte for byte.
func rewriteHTML(src string, l *linker, pixelURL string, honeypot bool) (string, error) {
	var out bytes.Buffer
	out.Grow(len(src) + 512)
	z := html.NewTokenizer(strings.NewReader(src))
	sawBody, pixelDone := false, false
	var scratch []byte
	insertHoneypot := func() error {
		idx, err := l.add(honeypotDest, true)
		if err != nil {
			return err
		}
		out.WriteString(`<a href="` + html.EscapeString(l.click(idx)) +
			`" style="display:none !important;mso-hide:all" aria-hidden="true" tabindex="-1"></a>`)
		return nil
	}
	if honeypot && !hasBodyTag(src) {
		if err := insertHoneypot(); err != nil {
			return "", err
		}
	}
	for {
		tt := z.Next()
		if tt == html.ErrorToken {
			break // io.EOF: the tokenizer reads from a string and cannot fail otherwise
		}
		scratch = append(scratch[:0], z.Raw()...)
		switch tt {
		case html.StartTagToken, html.SelfClosingTagToken:
			tok := z.Token()
			switch tok.Data {
			case "a", "area":
				changed, err := rewriteAnchor(&tok, l)
				if err != nil {
					return "", err
				}
				if changed {
					out.WriteString(tok.String())
					continue
				}
			case "body":
				out.Write(scratch)
				if honeypot && !sawBody {
					if err := insertHoneypot(); err != nil {
						return "", err
					}
				}
				sawBody = true
				continue
			}
		case html.EndTagToken:
			if name, _ := z.TagName(); string(name) == "body" && !pixelDone {
				out.WriteString(pixelTag(pixelURL))
				pixelDone = true
			}
		}
		out.Write(scratch)
	}
	if !pixelDone {
		out.WriteString(pixelTag(pixelURL))
	}
	return out.String(), nil
}

// hasBodyTag reports whether src has a <body> start tag.
func hasBodyTag(src string) bool {
	z := html.NewTokenizer(strings.NewReader(src))
	for {
		switch z.Next() {
		case html.ErrorToken:
			return false
		case html.StartTagToken:
			if name, _ := z.TagName(); string(name) == "body" {
				return true
			}
		}
	}
}

// rewriteAnchor points tok's href at a click URL, or drops the no-track
// marker; it reports whether tok changed.
func rewriteAnchor(tok *html.Token, l *linker) (bool, error) {
	hrefAt, noTrack := -1, -1
	for i, a := range tok.Attr {
		switch {
		case a.Namespace != "":
		case a.Key == "href" && hrefAt < 0:
			hrefAt = i
		case a.Key == noTrackAttr && strings.EqualFold(strings.TrimSpace(a.Val), "no-track"):
			noTrack = i
		}
	}
	if noTrack >= 0 {
		if hrefAt >= 0 {
			if dest, ok := trackable(tok.Attr[hrefAt].Val); ok {
				l.skip[dest] = true
			}
		}
		tok.Attr = append(tok.Attr[:noTrack], tok.Attr[noTrack+1:]...)
		return true, nil
	}
	if hrefAt < 0 {
		return false, nil
	}
	dest, ok := trackable(tok.Attr[hrefAt].Val)
	if !ok {
		return false, nil
	}
	idx, err := l.add(dest, false)
	if err != nil {
		return false, err
	}
	tok.Attr[hrefAt].Val = l.click(idx)
	return true, nil
}

func pixelTag(src string) string {
	return `<img src="` + html.EscapeString(src) +
		`" width="1" height="1" alt="" style="display:block;width:1px;height:1px;border:0;margin:0;padding:0">`
}

// textURL finds http(s) URLs in plain text; trailing punctuation is not
// part of them.
var textURL = regexp.MustCompile(`(?i)https?://[^\s<>"'()\[\]{}]+`)

// rewriteText replaces each trackable URL of a plain text body by a click
// URL: a destination already linked from the HTML keeps that link's index;
// one marked no-track there is left alone here too.
func rewriteText(src string, l *linker) (string, error) {
	var err error
	out := textURL.ReplaceAllStringFunc(src, func(m string) string {
		trimmed := strings.TrimRight(m, ".,;:!?")
		tail := m[len(trimmed):]
		dest, ok := trackable(trimmed)
		if !ok || err != nil || l.skip[dest] {
			return m
		}
		idx, found := l.byURL[dest]
		if !found {
			if idx, err = l.add(dest, false); err != nil {
				return m
			}
		}
		return l.click(idx) + tail
	})
	return out, err
}
