package main

import (
	"strings"
	"testing"
	"time"
)

func TestParseCounters(t *testing.T) {
	in := `# HELP stagegate_events_applied_total Events applied.
# TYPE stagegate_events_applied_total counter
stagegate_events_applied_total{result="matched"} 1200
stagegate_events_applied_total{result="unmatched"} 3
stagegate_moves_total{pipeline="bench",stage="engaged"} 600
stagegate_moves_total{pipeline="bench",stage="new"} 599
stagegate_events_received_total{connector="hooks"} 1.5e+03
stagegate_events_rejected_total{connector="hooks",reason="bad signature"} 7 1700000000000
process_cpu_seconds_total 12.25
stagegate_intake_lag_seconds_bucket{le="0.001"} 9
`
	c, err := parseCounters(strings.NewReader(in))
	if err != nil {
		t.Fatal(err)
	}
	want := gatewayCounters{Applied: 1203, Moves: 1199, Received: 1500, Rejected: 7, CPU: 12.25}
	if c != want {
		t.Fatalf("got %+v, want %+v", c, want)
	}
}

func TestParseBenchmarkCSV(t *testing.T) {
	out := `"test","rps","avg_latency_ms","min_latency_ms","p50_latency_ms","p95_latency_ms","p99_latency_ms","max_latency_ms"
"EVALSHA abc 3 k:__rand_int__ e l 1000 id {"id":"hooks:x","raw":"a,b"}","28498.15","2.1","0.1","2.0","3.0","4.0","9.0"
`
	rps, err := parseBenchmarkCSV([]byte(out))
	if err != nil || rps != 28498.15 {
		t.Fatalf("got %v, %v", rps, err)
	}
	if _, err := parseBenchmarkCSV([]byte("ERR unknown command\n")); err == nil {
		t.Fatal("no error for output without a result row")
	}
}

func TestPercentile(t *testing.T) {
	var d []time.Duration
	for i := 100; i >= 1; i-- {
		d = append(d, time.Duration(i)*time.Millisecond)
	}
	sortDurations(d)
	for p, want := range map[float64]time.Duration{50: 50 * time.Millisecond, 99: 99 * time.Millisecond, 100: 100 * time.Millisecond, 0: time.Millisecond} {
		if got := percentile(d, p); got != want {
			t.Errorf("p%v = %v, want %v", p, got, want)
		}
	}
	if got := percentile(nil, 99); got != 0 {
		t.Errorf("empty: %v", got)
	}
}

func TestParseGoBench(t *testing.T) {
	out := `goos: linux
pkg: github.com/stagegate/stagegate/store/bolt
cpu: Intel(R) Xeon(R) Processor @ 2.50GHz
BenchmarkAppendParallel-2   	   20000	     95000 ns/op	     10500 events/s	        25.00 events/commit	    4100 B/op	      60 allocs/op
BenchmarkAppendSerial-2     	     800	   1500000 ns/op	       666.0 events/s	    3900 B/op	      55 allocs/op
PASS
pkg: github.com/stagegate/stagegate/connectors/webhook
BenchmarkWebhookHandler-2   	  100000	     12000 ns/op	  10.5 MB/s	    6000 B/op	      80 allocs/op
`
	bs, lines := parseGoBench([]byte(out))
	if len(bs) != 3 || len(lines) != 6 {
		t.Fatalf("%d benchmarks, %d lines: %q", len(bs), len(lines), lines)
	}
	p := benchFind(bs, "store/bolt", "AppendParallel")
	if p == nil || p.metric("events/s") != 10500 || p.metric("events/commit") != 25 {
		t.Fatalf("AppendParallel: %+v", p)
	}
	if w := benchFind(bs, "connectors/webhook", "WebhookHandler"); w == nil || w.metric("allocs/op") != 80 {
		t.Fatalf("WebhookHandler: %+v", w)
	}
	if benchFind(bs, "store/redis", "AppendParallel") != nil {
		t.Fatal("found a benchmark of another package")
	}
}

func TestFmtInt(t *testing.T) {
	for n, want := range map[int64]string{0: "0", 999: "999", 1000: "1,000", 1234567: "1,234,567", -20000: "-20,000"} {
		if got := fmtInt(n); got != want {
			t.Errorf("fmtInt(%d) = %q, want %q", n, got, want)
		}
	}
}
