package actions

import (
	"errors"
	"net"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/stagegate/stagegate/engine"
)

// Without allow_private, targets on loopback, private, link-local and
// other special addresses are refused at dial time, whatever the URL looks
// like (an IPv6 literal, a hex number, a name resolving there), for good
// (no retry). A redirect to such a target is not followed either.
func TestPrivateTargetsRefused(t *testing.T) {
	inner := newRecorder(t) // on 127.0.0.1: must never be reached
	// A "public" target on 127.0.0.2, allowed by allow_networks, redirecting
	// to the inner one.
	ln, err := net.Listen("tcp", "127.0.0.2:0")
	if err != nil {
		t.Skipf("cannot listen on 127.0.0.2: %v", err)
	}
	outer := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		http.Redirect(w, r, inner.srv.URL+"/admin", http.StatusFound)
	}))
	outer.Listener.Close()
	outer.Listener = ln
	outer.Start()
	defer outer.Close()
	innerPort := inner.srv.Listener.Addr().(*net.TCPAddr).Port

	r := newRunner(t, Config{AllowNetworks: []string{"127.0.0.2/32"}, ActionPolicy: engine.ActionPolicy{Timeout: 2 * time.Second}}, nil)
	for _, tc := range []struct{ name, url, want string }{
		{"metadata", "http://169.254.169.254/latest/meta-data/", "prohibited IP address"},
		{"ipv6 loopback", "http://[::1]:" + strconv.Itoa(innerPort) + "/", "prohibited IP address"},
		{"hex loopback", "http://0x7f000001:" + strconv.Itoa(innerPort) + "/", "not a plain dotted-decimal address"},
		{"short loopback", "http://127.1:" + strconv.Itoa(innerPort) + "/", "not a plain dotted-decimal address"},
		{"loopback", inner.srv.URL, "prohibited IP address"},
		{"name to private", "http://internal.test/hook", "10.0.0.5 is not a permitted destination"},
		{"redirect to loopback", outer.URL + "/hook", `302 Found: redirect to "` + inner.srv.URL + `/admin" not followed`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			start := time.Now()
			err := r.RunAction(t.Context(), input(ann, engine.ActionSpec{Type: "webhook", Settings: &Webhook{URL: tc.url}}))
			if err == nil || !permanent(err) || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("error = %v, want a permanent refusal saying %q", err, tc.want)
			}
			if tc.name != "redirect to loopback" && !errors.Is(err, ErrRefused) {
				t.Fatalf("error %v is not ErrRefused", err)
			}
			if took := time.Since(start); took > time.Second {
				t.Fatalf("refusal took %v: a connection was attempted?", took)
			}
		})
	}
	if n := len(inner.requests()); n != 0 {
		t.Fatalf("the loopback target got %d requests", n)
	}
	// With allow_private the same loopback target is reached.
	open := newRunner(t, Config{AllowPrivate: true}, nil)
	if err := open.RunAction(t.Context(), input(ann, engine.ActionSpec{Type: "webhook", Settings: &Webhook{URL: inner.srv.URL}})); err != nil {
		t.Fatalf("allow_private: %v", err)
	}
}

func TestCheckTarget(t *testing.T) {
	for _, tc := range []struct {
		url string
		ok  bool
	}{
		{"https://crm.example.com/x", true}, {"http://10.0.0.5/", true}, {"http://[::1]/", true},
		{"https://deadbeef.example/", true}, {"http://123.example/", true},
		{"http://0x7f000001/", false}, {"http://017700000001/", false}, {"http://127.1/", false},
		{"http://2130706433/", false}, {"http://0x7f.0.0.1/", false}, {"http://127.0.0.1./", false},
	} {
		if err := checkTarget(tc.url); (err == nil) != tc.ok {
			t.Errorf("checkTarget(%s) = %v, want ok %v", tc.url, err, tc.ok)
		}
	}
}
