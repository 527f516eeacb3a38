package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"math"
	"net"
	"net/http"
	"os"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/redis/go-redis/v9"
)

// errUsage is returned after a flag set printed its own message.
var errUsage = errors.New("usage")

// parseFlags parses args, mapping -h and bad flags to errUsage.
func parseFlags(fs *flag.FlagSet, args []string) error {
	if err := fs.Parse(args); err != nil {
		return errUsage
	}
	if fs.NArg() > 0 {
		fmt.Fprintf(fs.Output(), "unexpected arguments: %q\n", fs.Args())
		return errUsage
	}
	return nil
}

// newClient returns a keep-alive HTTP client for conns concurrent callers on
// one host, so no request pays for a new connection after warm-up.
func newClient(conns int, timeout time.Duration) *http.Client {
	tr := &http.Transport{
		Proxy:               nil, // loopback only; never a proxy from the environment
		DialContext:         (&net.Dialer{Timeout: 5 * time.Second, KeepAlive: 30 * time.Second}).DialContext,
		MaxIdleConns:        conns * 2,
		MaxIdleConnsPerHost: conns * 2,
		IdleConnTimeout:     90 * time.Second,
		DisableCompression:  true,
		ForceAttemptHTTP2:   false,
	}
	return &http.Client{Transport: tr, Timeout: timeout}
}

// Result is one measurement, as a JSON line in the -out file.
type Result struct {
	Kind  string `json:"kind"`  // throughput | ceiling | latency | redis-compare
	Store string `json:"store"` // bolt | redis | "" (label from -store)
	// Variant tells apart results of one kind and store (redis-compare: full | minimal).
	Variant string             `json:"variant,omitempty"`
	At      time.Time          `json:"at"`
	Values  map[string]float64 `json:"values"`
	Notes   []string           `json:"notes,omitempty"`
}

// appendResult appends r to path as one JSON line (nothing when path is "").
func appendResult(path string, r Result) error {
	if path == "" {
		return nil
	}
	data, err := json.Marshal(r)
	if err != nil {
		return err
	}
	f, err := os.OpenFile(path, os.O_CREATE|os.O_APPEND|os.O_WRONLY, 0o644)
	if err != nil {
		return err
	}
	if _, err := f.Write(append(data, '\n')); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}

// readResults reads the JSON lines written by appendResult.
func readResults(path string) ([]Result, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	var out []Result
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 0, 64<<10), 1<<20)
	for n := 1; sc.Scan(); n++ {
		line := bytes.TrimSpace(sc.Bytes())
		if len(line) == 0 {
			continue
		}
		var r Result
		if err := json.Unmarshal(line, &r); err != nil {
			return nil, fmt.Errorf("%s:%d: %w", path, n, err)
		}
		out = append(out, r)
	}
	return out, sc.Err()
}

// api is a small client of the gateway's REST API.
type api struct {
	base  string
	token string
	hc    *http.Client
}

// do sends a JSON request and decodes a JSON answer into out (when not nil).
// A status outside 2xx is an error carrying the body.
func (a *api) do(ctx context.Context, method, path string, in, out any) (int, error) {
	var body io.Reader
	if in != nil {
		data, err := json.Marshal(in)
		if err != nil {
			return 0, err
		}
		body = bytes.NewReader(data)
	}
	req, err := http.NewRequestWithContext(ctx, method, a.base+path, body)
	if err != nil {
		return 0, err
	}
	req.Header.Set("Authorization", "Bearer "+a.token)
	req.Header.Set("Content-Type", "application/json")
	resp, err := a.hc.Do(req)
	if err != nil {
		return 0, err
	}
	defer resp.Body.Close()
	data, err := io.ReadAll(io.LimitReader(resp.Body, 4<<20))
	if err != nil {
		return resp.StatusCode, err
	}
	if resp.StatusCode/100 != 2 {
		return resp.StatusCode, fmt.Errorf("%s %s: %d %s", method, path, resp.StatusCode, bytes.TrimSpace(data))
	}
	if out != nil {
		if err := json.Unmarshal(data, out); err != nil {
			return resp.StatusCode, fmt.Errorf("%s %s: %w", method, path, err)
		}
	}
	return resp.StatusCode, nil
}

// itemEmail is the contact email of bench item i in a run's domain.
func itemEmail(i int, domain string) string {
	return "u" + strconv.Itoa(i) + "@" + domain
}

// createItems creates n items in pipeline, item i with its own contact
// itemEmail(i, domain), using conc concurrent requests. It returns the
// item ids in order.
func createItems(ctx context.Context, a *api, pipeline, domain string, n, conc int) ([]string, error) {
	ids := make([]string, n)
	var next atomic.Int64
	var firstErr error
	var once sync.Once
	var wg sync.WaitGroup
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	for range min(conc, n) {
		wg.Go(func() {
			for ctx.Err() == nil {
				i := int(next.Add(1) - 1)
				if i >= n {
					return
				}
				var it struct {
					ID string `json:"id"`
				}
				_, err := a.do(ctx, "POST", "/api/v1/items", map[string]any{
					"pipeline": pipeline, "responsible": "bench",
					"contact": map[string]string{"email": itemEmail(i, domain), "name": "Bench " + strconv.Itoa(i)},
				}, &it)
				if err == nil && it.ID == "" {
					err = errors.New("POST /api/v1/items: no id in the answer")
				}
				if err != nil {
					once.Do(func() { firstErr = err; cancel() })
					return
				}
				ids[i] = it.ID
			}
		})
	}
	wg.Wait()
	if firstErr != nil {
		return nil, firstErr
	}
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	return ids, nil
}

// gatewayCounters are the Prometheus counters sgbench follows.
type gatewayCounters struct {
	Applied  float64 // stagegate_events_applied_total, every result
	Moves    float64 // stagegate_moves_total, every pipeline and stage
	Received float64 // stagegate_events_received_total, every connector
	Rejected float64 // stagegate_events_rejected_total
	CPU      float64 // process_cpu_seconds_total of the gateway process
}

// scrape reads the gateway's /metrics.
func scrape(ctx context.Context, hc *http.Client, base string) (gatewayCounters, error) {
	req, err := http.NewRequestWithContext(ctx, "GET", base+"/metrics", nil)
	if err != nil {
		return gatewayCounters{}, err
	}
	resp, err := hc.Do(req)
	if err != nil {
		return gatewayCounters{}, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != 200 {
		return gatewayCounters{}, fmt.Errorf("GET /metrics: %d", resp.StatusCode)
	}
	return parseCounters(resp.Body)
}

// parseCounters sums the followed counters over their labels in the
// Prometheus text format.
func parseCounters(r io.Reader) (gatewayCounters, error) {
	var c gatewayCounters
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 0, 64<<10), 1<<20)
	for sc.Scan() {
		line := sc.Text()
		if line == "" || line[0] == '#' {
			continue
		}
		name, rest, ok := strings.Cut(line, " ")
		if !ok {
			continue
		}
		if i := strings.IndexByte(name, '{'); i >= 0 {
			// Labels may hold spaces: the value follows the closing brace.
			end := strings.LastIndexByte(line, '}')
			if end < 0 {
				continue
			}
			name, rest = line[:i], strings.TrimSpace(line[end+1:])
		}
		var dst *float64
		switch name {
		case "stagegate_events_applied_total":
			dst = &c.Applied
		case "stagegate_moves_total":
			dst = &c.Moves
		case "stagegate_events_received_total":
			dst = &c.Received
		case "stagegate_events_rejected_total":
			dst = &c.Rejected
		case "process_cpu_seconds_total":
			dst = &c.CPU
		default:
			continue
		}
		val, _, _ := strings.Cut(strings.TrimSpace(rest), " ") // drop an optional timestamp
		v, err := strconv.ParseFloat(val, 64)
		if err != nil {
			return c, fmt.Errorf("metrics line %q: %w", line, err)
		}
		*dst += v
	}
	return c, sc.Err()
}

// waitIdle waits until the gateway has applied every event it accepted
// (applied total = received total), so that a measurement does not start
// on the backlog of the previous one.
func waitIdle(ctx context.Context, hc *http.Client, base string, timeout time.Duration, logw io.Writer) error {
	deadline := time.Now().Add(timeout)
	start := time.Now()
	for {
		c, err := scrape(ctx, hc, base)
		if err != nil {
			return err
		}
		if c.Applied >= c.Received {
			if d := time.Since(start); d > time.Second {
				fmt.Fprintf(logw, "sgbench: waited %s for the engine to finish earlier events\n", d.Round(time.Millisecond))
			}
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("the engine still has %.0f earlier events to apply after %s", c.Received-c.Applied, timeout)
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(50 * time.Millisecond):
		}
	}
}

// percentile returns the p-th percentile (0..100) of sorted values, nearest
// rank; 0 for none.
func percentile(sorted []time.Duration, p float64) time.Duration {
	if len(sorted) == 0 {
		return 0
	}
	rank := int(math.Ceil(p / 100 * float64(len(sorted))))
	rank = min(max(rank, 1), len(sorted))
	return sorted[rank-1]
}

// ms is d in milliseconds.
func ms(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }

// sortDurations sorts in place and returns d.
func sortDurations(d []time.Duration) []time.Duration {
	slices.Sort(d)
	return d
}

// selfCPU returns the CPU time (user + system) this process has used.
func selfCPU() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// redisCPU returns used_cpu_user + used_cpu_sys of a Redis server in
// seconds, from INFO cpu.
func redisCPU(ctx context.Context, rdb *redis.Client) (float64, error) {
	info, err := rdb.Info(ctx, "cpu").Result()
	if err != nil {
		return 0, err
	}
	var total float64
	for _, line := range strings.Split(info, "\n") {
		k, v, ok := strings.Cut(strings.TrimSpace(line), ":")
		if ok && (k == "used_cpu_user" || k == "used_cpu_sys") {
			f, err := strconv.ParseFloat(v, 64)
			if err != nil {
				return 0, fmt.Errorf("INFO cpu %s: %w", k, err)
			}
			total += f
		}
	}
	return total, nil
}

// nonce is a run-unique token for ids and email domains.
func nonce() string {
	return strconv.FormatInt(time.Now().UnixNano()/1e6%1e10, 36)
}

// fmtRate formats a per-second rate with thousands separators.
func fmtRate(v float64) string {
	if math.IsNaN(v) || math.IsInf(v, 0) {
		return "n/a"
	}
	return fmtInt(int64(math.Round(v)))
}

// fmtInt formats n with thousands separators.
func fmtInt(n int64) string {
	s := strconv.FormatInt(n, 10)
	neg := strings.HasPrefix(s, "-")
	s = strings.TrimPrefix(s, "-")
	var b strings.Builder
	for i, r := range s {
		if i > 0 && (len(s)-i)%3 == 0 {
			b.WriteByte(',')
		}
		b.WriteRune(r)
	}
	if neg {
		return "-" + b.String()
	}
	return b.String()
}
