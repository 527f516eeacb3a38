package compose

import (
	"strings"

	"golang.org/x/net/html"
)

// blockTags end a line in the text rendering of HTML.
var blockTags = map[string]bool{
	"p": true, "div": true, "br": true, "tr": true, "li": true, "table": true,
	"h1": true, "h2": true, "h3": true, "h4": true, "h5": true, "h6": true,
	"blockquote": true, "pre": true, "hr": true, "ul": true, "ol": true,
}

// skipTags hold no readable text.
var skipTags = map[string]bool{"head": true, "title": true, "style": true, "script": true}

// htmlToText renders an HTML body as plain text for the text/plain
// alternative of a message that was given only HTML. A link's destination
// follows its text in parentheses when the text does not show it, so the
// text part's links can be tracked too.
func htmlToText(src string) string {
	z := html.NewTokenizer(strings.NewReader(src))
	var b strings.Builder
	skip := 0
	var href string // destination of the open <a>, "" when none
	var anchorText strings.Builder
	newline := func() {
		s := b.String()
		if s != "" && !strings.HasSuffix(s, "\n\n") {
			b.WriteByte('\n')
		}
	}
	for {
		tt := z.Next()
		if tt == html.ErrorToken {
			break
		}
		name, _ := z.TagName()
		tag := string(name)
		switch tt {
		case html.StartTagToken, html.SelfClosingTagToken:
			switch {
			case skipTags[tag] && tt == html.StartTagToken:
				skip++
			case tag == "a":
				href = ""
				for {
					k, v, more := z.TagAttr()
					if string(k) == "href" {
						if dest, ok := trackable(string(v)); ok {
							href = dest
						}
					}
					if !more {
						break
					}
				}
				anchorText.Reset()
			case blockTags[tag]:
				newline()
			}
		case html.EndTagToken:
			switch {
			case skipTags[tag]:
				if skip > 0 {
					skip--
				}
			case tag == "a":
				if href != "" && !strings.Contains(anchorText.String(), href) {
					b.WriteString(" (" + href + ")")
				}
				href = ""
			case blockTags[tag]:
				newline()
			}
		case html.TextToken:
			if skip > 0 {
				continue
			}
			t := collapseSpace(string(z.Text()))
			if t == " " && (b.Len() == 0 || strings.HasSuffix(b.String(), "\n") || strings.HasSuffix(b.String(), " ")) {
				continue
			}
			b.WriteString(t)
			anchorText.WriteString(t)
		}
	}
	lines := strings.Split(b.String(), "\n")
	for i, l := range lines {
		lines[i] = strings.TrimSpace(l)
	}
	return strings.TrimSpace(strings.Join(lines, "\n")) + "\n"
}

// collapseSpace replaces each run of white space by one space.
func collapseSpace(s string) string {
	f := strings.Fields(s)
	if len(f) == 0 {
		if s == "" {
			return ""
		}
		return " "
	}
	out := strings.Join(f, " ")
	if strings.TrimLeft(s[:1], " \t\r\n\f") == "" {
		out = " " + out
	}
	if strings.TrimRight(s[len(s)-1:], " \t\r\n\f") == "" {
		out += " "
	}
	return out
}
