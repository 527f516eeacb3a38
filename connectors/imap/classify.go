package imap

import (
	"fmt"
	"strings"

	"github.com/emersion/go-message/mail"

	"github.com/stagegate/stagegate/normalize"
)

// Own recognizes our own addresses: exact mailboxes and whole domains
// (subdomains included), so that our own mail is never taken for a
// customer's.
type Own struct {
	addrs   map[string]bool
	domains []string
}

// NewOwn builds an Own from own_addresses entries: "sales@acme.test" is one
// mailbox, "acme.test" or "@acme.test" a domain. extra entries (the account's
// username) that are not addresses are skipped.
func NewOwn(entries []string, extra ...string) (Own, error) {
	o := Own{addrs: map[string]bool{}}
	for _, e := range entries {
		p, err := parseOwn(e)
		if err != nil {
			return Own{}, err
		}
		o.add(p)
	}
	for _, e := range extra {
		if a := normalize.NormalizeEmail(e); a != "" {
			o.addrs[a] = true
		}
	}
	return o, nil
}

// ownEntry is one parsed own_addresses entry: addr or domain is set.
type ownEntry struct{ addr, domain string }

func parseOwn(s string) (ownEntry, error) {
	s = strings.ToLower(strings.TrimSpace(s))
	if d, ok := strings.CutPrefix(s, "@"); ok {
		s = d
		if strings.Contains(d, "@") {
			return ownEntry{}, fmt.Errorf("%q is neither an address nor a domain", s)
		}
	}
	if strings.Contains(s, "@") {
		a := normalize.NormalizeEmail(s)
		if a == "" {
			return ownEntry{}, fmt.Errorf("%q is not an email address", s)
		}
		return ownEntry{addr: a}, nil
	}
	if s == "" || strings.ContainsAny(s, " \t,;<>/") || !strings.Contains(s, ".") && s != "localhost" {
		return ownEntry{}, fmt.Errorf("%q is not a domain such as acme.test", s)
	}
	return ownEntry{domain: strings.TrimSuffix(s, ".")}, nil
}

func (o *Own) add(p ownEntry) {
	if p.addr != "" {
		o.addrs[p.addr] = true
	} else {
		o.domains = append(o.domains, p.domain)
	}
}

// Is reports whether addr (normalized) is one of ours.
func (o Own) Is(addr string) bool {
	if addr == "" {
		return false
	}
	if o.addrs[addr] {
		return true
	}
	at := strings.LastIndexByte(addr, '@')
	dom := addr[at+1:]
	for _, d := range o.domains {
		if dom == d || strings.HasSuffix(dom, "."+d) {
			return true
		}
	}
	return false
}

// bounceSenders are local parts that only send delivery reports.
var bounceSenders = map[string]bool{"mailer-daemon": true, "postmaster": true, "mail-daemon": true}

// notCustomer says why mail is not a customer's own writing (an automatic
// reply, a list, a bounce), or "" when it is. Such mail is recorded but
// fires no trigger (normalize.AttrNotCustomerMail).
func notCustomer(h *mail.Header, from string, acceptLists bool) string {
	if v := headerWord(h, "Auto-Submitted"); v != "" && v != "no" {
		return "auto-submitted: " + v
	}
	for _, k := range []string{"X-Autoreply", "X-Autorespond", "X-Autoresponder"} {
		if v := headerWord(h, k); v != "" && v != "no" && v != "false" {
			return "automatic reply (" + k + ")"
		}
	}
	switch v := headerWord(h, "Precedence"); v {
	case "bulk", "junk", "list", "auto_reply":
		return "precedence: " + v
	}
	if !acceptLists {
		for _, k := range []string{"List-Id", "List-Unsubscribe"} {
			if h.Has(k) {
				return "mailing list (" + k + ")"
			}
		}
	}
	if rp := strings.TrimSpace(h.Get("Return-Path")); rp == "<>" {
		return "bounce (empty Return-Path)"
	}
	if at := strings.LastIndexByte(from, '@'); at > 0 && bounceSenders[from[:at]] {
		return "bounce (from " + from[:at] + ")"
	}
	if t, params, err := h.ContentType(); err == nil && t == "multipart/report" {
		return "delivery report (" + strings.ToLower(params["report-type"]) + ")"
	}
	return ""
}

// headerWord returns the first word of a header field, lower-cased.
func headerWord(h *mail.Header, key string) string {
	v := strings.ToLower(strings.TrimSpace(h.Get(key)))
	if i := strings.IndexAny(v, " \t;("); i >= 0 {
		v = v[:i]
	}
	return v
}
