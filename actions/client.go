package actions

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/netip"
	"net/url"
	"regexp"
	"strconv"
	"strings"
	"time"

	"code.dny.dev/ssrf"
	"github.com/go-resty/resty/v2"

	"github.com/stagegate/stagegate/engine"
)

// Resolver looks up the addresses of a host name; *net.Resolver is one.
// Tests give a fake one.
type Resolver interface {
	LookupNetIP(ctx context.Context, network, host string) ([]netip.Addr, error)
}

// ErrRefused marks a request refused before it was sent: its target is not
// allowed (a special address, or a host written as a non-canonical number).
var ErrRefused = errors.New("target refused")

// maxBody bounds how much of an answer is read.
const maxBody = 1 << 20

// dialer resolves the host itself and dials each address with the SSRF
// guard as the dialer's Control, which sees the address actually dialled:
// neither a name resolving to a private address nor DNS rebinding between
// a check and the connection gets through.
type dialer struct {
	resolver Resolver
	net      net.Dialer
}

func (d *dialer) DialContext(ctx context.Context, network, addr string) (net.Conn, error) {
	host, port, err := net.SplitHostPort(addr)
	if err != nil {
		return nil, err
	}
	var ips []netip.Addr
	if ip, err := netip.ParseAddr(host); err == nil {
		ips = []netip.Addr{ip}
	} else if ips, err = d.resolver.LookupNetIP(ctx, "ip", host); err != nil {
		return nil, err
	}
	if len(ips) == 0 {
		return nil, fmt.Errorf("lookup %s: no addresses", host)
	}
	var errs []error
	for _, ip := range ips {
		c, err := d.net.DialContext(ctx, network, net.JoinHostPort(ip.Unmap().String(), port))
		if err == nil {
			return c, nil
		}
		errs = append(errs, err)
	}
	return nil, errors.Join(errs...)
}

// newHTTP builds the resty client every HTTP action uses: guarded dialer,
// no proxy (a proxy would dial for us, out of the guard's sight), no
// redirects (a 3xx is answered as is and counts as a failure).
func newHTTP(cfg Config, resolver Resolver, logger *slog.Logger) (*resty.Client, error) {
	d := &dialer{resolver: resolver, net: net.Dialer{Timeout: cfg.Timeout, KeepAlive: 30 * time.Second}}
	if !cfg.AllowPrivate {
		opts := []ssrf.Option{ssrf.WithAnyPort()}
		var v4, v6 []netip.Prefix
		for _, n := range cfg.AllowNetworks {
			p, err := netip.ParsePrefix(n)
			if err != nil {
				return nil, fmt.Errorf("actions: allow_networks: %w", err)
			}
			if p.Addr().Is4() {
				v4 = append(v4, p)
			} else {
				v6 = append(v6, p)
			}
		}
		opts = append(opts, ssrf.WithAllowedV4Prefixes(v4...), ssrf.WithAllowedV6Prefixes(v6...))
		d.net.Control = ssrf.New(opts...).Safe
	}
	tr := &http.Transport{
		Proxy:                 nil,
		DialContext:           d.DialContext,
		ForceAttemptHTTP2:     true,
		MaxIdleConns:          256,
		MaxIdleConnsPerHost:   64,
		IdleConnTimeout:       90 * time.Second,
		TLSHandshakeTimeout:   10 * time.Second,
		ExpectContinueTimeout: time.Second,
	}
	c := resty.NewWithClient(&http.Client{Transport: tr})
	c.SetRedirectPolicy(resty.RedirectPolicyFunc(func(*http.Request, []*http.Request) error {
		return http.ErrUseLastResponse
	}))
	c.SetHeader("User-Agent", cfg.UserAgent)
	c.SetLogger(restyLogger{logger}).SetDisableWarn(true)
	// One attempt per call. Retries are the outbox's: durable (a retry held
	// in memory dies with the process) and visible. Every error not marked
	// permanent is retried there, transport errors and timeouts included —
	// which a resty retry condition would also have to handle itself, as it
	// replaces resty's default condition instead of adding to it.
	c.SetRetryCount(0)
	return c, nil
}

// reply is the part of an answer actions look at.
type reply struct {
	status int
	header http.Header
	body   []byte
}

// send makes one request and reads at most maxBody of the answer. A
// target refused by the guard or by checkTarget is a permanent error;
// other transport errors and timeouts are retryable.
func send(ctx context.Context, c *resty.Client, method, target string, header http.Header, body []byte) (reply, error) {
	if err := checkTarget(target); err != nil {
		return reply{}, engine.Permanent(err)
	}
	req := c.R().SetContext(ctx).SetBody(body).SetDoNotParseResponse(true)
	for k, vs := range header {
		for _, v := range vs {
			req.Header.Add(k, v)
		}
	}
	resp, err := req.Execute(method, target)
	if err != nil {
		var ue *url.Error
		if errors.As(err, &ue) { // its message holds the URL, which may hold a secret
			err = fmt.Errorf("%s: %w", ue.Op, ue.Err)
		}
		if errors.Is(err, ssrf.ErrProhibitedIP) || errors.Is(err, ssrf.ErrProhibitedPort) ||
			errors.Is(err, ssrf.ErrProhibitedNetwork) || errors.Is(err, ssrf.ErrInvalidHostPort) {
			return reply{}, engine.Permanent(fmt.Errorf("%w: %w", ErrRefused, err))
		}
		return reply{}, err
	}
	raw := resp.RawBody()
	defer raw.Close()
	data, err := io.ReadAll(io.LimitReader(raw, maxBody))
	if err != nil {
		return reply{}, fmt.Errorf("read answer: %w", err)
	}
	return reply{status: resp.StatusCode(), header: resp.Header(), body: data}, nil
}

// checkTarget refuses URLs whose host is a number in a form other than
// plain dotted decimal (0x7f000001, 017700000001, 127.1): resolvers
// disagree on what they mean, so they are refused whatever they would
// resolve to. Real addresses are left to the guard at dial time.
func checkTarget(target string) error {
	u, err := url.Parse(target)
	if err != nil {
		return err
	}
	host := u.Hostname()
	if _, err := netip.ParseAddr(host); err == nil || host == "" {
		return nil
	}
	for _, label := range strings.Split(strings.TrimSuffix(host, "."), ".") {
		if !numericLabel.MatchString(label) {
			return nil
		}
	}
	return fmt.Errorf("%w: host %q is a number but not a plain dotted-decimal address", ErrRefused, host)
}

var numericLabel = regexp.MustCompile(`^(0[xX][0-9a-fA-F]*|[0-9]+)$`)

// redact is u without user info and query, for messages: either may hold
// a secret.
func redact(u string) string {
	p, err := url.Parse(u)
	if err != nil {
		return "(bad url)"
	}
	p.User = nil
	if p.RawQuery != "" {
		p.RawQuery = "…"
	}
	return p.String()
}

// retryableStatus reports whether an answer with code is worth another
// attempt: 429 and 5xx.
func retryableStatus(code int) bool {
	return code == http.StatusTooManyRequests || code >= 500
}

// statusError turns a non-2xx answer into the attempt's error: 429 and 5xx
// are retried (after Retry-After when the target sent one), 3xx (never
// followed) and other 4xx are permanent.
func statusError(r reply, now time.Time) error {
	msg := fmt.Sprintf("%d %s", r.status, http.StatusText(r.status))
	if loc := r.header.Get("Location"); r.status >= 300 && r.status < 400 {
		msg += ": redirect to " + strconv.Quote(loc) + " not followed"
	} else if s := snippet(r.body); s != "" {
		msg += ": " + s
	}
	err := errors.New(msg)
	if !retryableStatus(r.status) {
		return engine.Permanent(err)
	}
	return &engine.ActionError{Err: err, RetryAfter: retryAfter(r.header.Get("Retry-After"), now)}
}

// retryAfter parses a Retry-After header: seconds or an HTTP date.
func retryAfter(v string, now time.Time) time.Duration {
	if v == "" {
		return 0
	}
	if s, err := strconv.Atoi(strings.TrimSpace(v)); err == nil && s >= 0 {
		return time.Duration(s) * time.Second
	}
	if t, err := http.ParseTime(v); err == nil && t.After(now) {
		return t.Sub(now)
	}
	return 0
}

// snippet is the start of an answer body, for error messages.
func snippet(b []byte) string {
	s := strings.Join(strings.Fields(string(b)), " ")
	if len(s) > 200 {
		s = s[:200] + "…"
	}
	return s
}

// restyLogger sends resty's log lines to slog.
type restyLogger struct{ l *slog.Logger }

func (r restyLogger) Errorf(f string, v ...any) { r.l.Error("resty: " + fmt.Sprintf(f, v...)) }
func (r restyLogger) Warnf(f string, v ...any)  { r.l.Warn("resty: " + fmt.Sprintf(f, v...)) }
func (r restyLogger) Debugf(f string, v ...any) { r.l.Debug("resty: " + fmt.Sprintf(f, v...)) }
