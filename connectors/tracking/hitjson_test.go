package tracking

import (
	"encoding/json"
	"testing"
	"time"
)

// TestAppendHit: the hand-written encoder writes what json.Marshal writes.
func TestAppendHit(t *testing.T) {
	hits := []scoredHit{
		{At: t0, Kind: kindOpen, Method: "GET"},
		{At: t0.Add(123456789 * time.Nanosecond).In(time.FixedZone("x", 3600)), Kind: kindClick, Link: 7, Method: "HEAD",
			UA: "Mozilla/5.0 \"quoted\" \\ <b>&amp; \x01\t\n\u2028 Grüße \xff\xfe 价格", IP: "2001:db8::1",
			SinceS: 1.5, Machine: true, Score: 100, Reasons: []string{"honeypot", "quick:1.5s"}},
		{At: t0, Kind: kindOpen, Method: "GET", SinceS: -3.25, Score: 25, Reasons: []string{"ua:google_image_proxy"}},
		{At: t0, Kind: kindOpen, Method: "GET", SinceS: 1e-9},
		{At: t0, Kind: kindOpen, Method: "GET", SinceS: 3e22},
		{At: t0, Kind: kindOpen, Method: "GET", SinceS: 15552000.001},
	}
	for i, h := range hits {
		want, err := json.Marshal(&h)
		if err != nil {
			t.Fatal(err)
		}
		if got := appendHit(nil, &h); string(got) != string(want) {
			t.Errorf("hit %d:\n got %s\nwant %s", i, got, want)
		}
	}
}

func FuzzAppendJSONString(f *testing.F) {
	f.Add("plain")
	f.Add("\xff<>&\"\\\u2029")
	f.Fuzz(func(t *testing.T, s string) {
		want, _ := json.Marshal(s)
		if got := appendJSONString(nil, s); string(got) != string(want) {
			t.Fatalf("%q: got %s want %s", s, got, want)
		}
	})
}
