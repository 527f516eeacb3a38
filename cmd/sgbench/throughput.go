package main

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/stagegate/stagegate/internal/stdwebhooks"
)

type throughputOpts struct {
	url, path, secret, token string
	pipeline, typ, backType  string
	items, events, clients   int
	maxTime, applyTimeout    time.Duration
	ceiling, randomIDs       bool
	store, out               string
	redisAddr                string
}

// cmdThroughput creates items, then sends signed webhooks with a fixed
// number of keep-alive clients, each event distinct and naming one item, and
// measures accepted/s (2xx per second of the send window) and applied/s
// (events applied by the engine per second, from the first send until the
// engine's applied counter covers every accepted event).
//
// With -ceiling it sends the same requests signed with a wrong secret: the
// gateway verifies the HMAC and answers 401 without touching the store, so
// the rate is the ceiling of HTTP + client + signature check on this
// machine at this moment, a same-run reference for the real numbers.
func cmdThroughput(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	var o throughputOpts
	fs := flag.NewFlagSet("throughput", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.StringVar(&o.url, "url", "http://127.0.0.1:8080", "gateway base URL")
	fs.StringVar(&o.path, "path", "/in/hooks", "path of the webhook connector")
	fs.StringVar(&o.secret, "secret", "", "the webhook connector's secret (whsec_…)")
	fs.StringVar(&o.token, "token", "", "API bearer token (to create items)")
	fs.StringVar(&o.pipeline, "pipeline", "bench", "pipeline of the items")
	fs.StringVar(&o.typ, "type", "crm.bench", "event type that moves an item forward")
	fs.StringVar(&o.backType, "back-type", "crm.bench_back", `event type that moves it back (allow_back trigger); events alternate between the two per item so that each one moves; "" sends only -type`)
	fs.IntVar(&o.items, "items", 1000, "items to create, one contact each")
	fs.IntVar(&o.events, "events", 50000, "events to send")
	fs.IntVar(&o.clients, "clients", 64, "concurrent clients (keep-alive connections)")
	fs.DurationVar(&o.maxTime, "max-time", 2*time.Minute, "bound on the send window; sending stops there")
	fs.DurationVar(&o.applyTimeout, "apply-timeout", 2*time.Minute, "bound on waiting for the engine after sending")
	fs.BoolVar(&o.ceiling, "ceiling", false, "sign with a wrong secret and expect 401: the HTTP ceiling, no store work")
	fs.StringVar(&o.store, "store", "", "label of the store under test, for the report (bolt, redis)")
	fs.StringVar(&o.out, "out", "", "append the result as a JSON line to this file")
	fs.BoolVar(&o.randomIDs, "random-ids", false, "webhook ids that scatter over the key space (hashes, as message and provider ids do) instead of near-sequential ones")
	fs.StringVar(&o.redisAddr, "redis", "", "host:port of the gateway's Redis, to report its CPU time per event (optional)")
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	if o.secret == "" || (!o.ceiling && o.token == "") {
		return errors.New("-secret and -token are required (-token not with -ceiling)")
	}
	if o.items < 1 || o.events < 1 || o.clients < 1 {
		return errors.New("-items, -events and -clients must be positive")
	}
	res, err := throughput(ctx, o, stderr)
	if err != nil {
		return err
	}
	printRows(stdout, res)
	return appendResult(o.out, res)
}

// prepared is one signed webhook request, built before the send window so
// that the clients spend their time on HTTP only.
type prepared struct {
	id, sig string
	body    []byte
}

func throughput(ctx context.Context, o throughputOpts, logw io.Writer) (Result, error) {
	hc := newClient(o.clients, 30*time.Second)
	a := &api{base: o.url, token: o.token, hc: hc}
	run := nonce()
	domain := "tp" + run + ".bench.test"
	kind := "throughput"
	if o.ceiling {
		kind = "ceiling"
	}

	if !o.ceiling {
		t := time.Now()
		if _, err := createItems(ctx, a, o.pipeline, domain, o.items, o.clients); err != nil {
			return Result{}, fmt.Errorf("create items: %w", err)
		}
		fmt.Fprintf(logw, "sgbench: created %d items in %s\n", o.items, time.Since(t).Round(time.Millisecond))
	}

	// Sign everything up front with one timestamp (valid for the default
	// 5 minute tolerance; the send window is bounded well below that).
	secret := o.secret
	if o.ceiling {
		secret = "whsec_" + "d3Jvbmctc2VjcmV0LWZvci10aGUtY2VpbGluZw==" // "wrong-secret-for-the-ceiling"
	}
	ts := time.Now()
	tsText := strconv.FormatInt(ts.Unix(), 10)
	reqs := make([]prepared, o.events)
	for j := range reqs {
		typ := o.typ
		if o.backType != "" && (j/o.items)%2 == 1 {
			typ = o.backType
		}
		body := []byte(`{"type":"` + typ + `","subject":{"email":"` + itemEmail(j%o.items, domain) + `"},"attrs":{"n":"` + strconv.Itoa(j) + `"}}`)
		id := "b" + run + "-" + strconv.Itoa(j)
		if o.randomIDs {
			h := sha256.Sum256([]byte(id))
			id = "b" + hex.EncodeToString(h[:12])
		}
		reqs[j] = prepared{id: id, sig: stdwebhooks.Sign(secret, id, ts, body), body: body}
	}

	if err := waitIdle(ctx, hc, o.url, o.applyTimeout, logw); err != nil {
		return Result{}, err
	}
	before, err := scrape(ctx, hc, o.url)
	if err != nil {
		return Result{}, err
	}
	var rdb *redis.Client
	var redisBefore float64
	if o.redisAddr != "" {
		rdb = redis.NewClient(&redis.Options{Addr: o.redisAddr})
		defer rdb.Close()
		if redisBefore, err = redisCPU(ctx, rdb); err != nil {
			return Result{}, fmt.Errorf("redis %s: %w", o.redisAddr, err)
		}
	}
	cpuBefore := selfCPU()

	want := http.StatusOK
	if o.ceiling {
		want = http.StatusUnauthorized
	}
	var (
		next     atomic.Int64
		ok, bad  atomic.Int64
		errMu    sync.Mutex
		firstErr string
		lastID   atomic.Value // event_id of the last request, for a spot check
	)
	sendCtx, cancel := context.WithTimeout(ctx, o.maxTime)
	defer cancel()
	target := o.url + o.path
	start := time.Now()
	var wg sync.WaitGroup
	for range o.clients {
		wg.Go(func() {
			for sendCtx.Err() == nil {
				j := int(next.Add(1) - 1)
				if j >= len(reqs) {
					return
				}
				p := &reqs[j]
				req, err := http.NewRequestWithContext(sendCtx, http.MethodPost, target, bytes.NewReader(p.body))
				if err != nil {
					bad.Add(1)
					continue
				}
				req.Header.Set("Content-Type", "application/json")
				req.Header.Set(stdwebhooks.HeaderID, p.id)
				req.Header.Set(stdwebhooks.HeaderTimestamp, tsText)
				req.Header.Set(stdwebhooks.HeaderSignature, p.sig)
				resp, err := hc.Do(req)
				var status int
				var body []byte
				if err == nil {
					status = resp.StatusCode
					if j == len(reqs)-1 || status != want {
						body, _ = io.ReadAll(io.LimitReader(resp.Body, 4096))
					} else {
						_, _ = io.Copy(io.Discard, resp.Body)
					}
					resp.Body.Close()
				}
				if err == nil && status == want {
					ok.Add(1)
					if j == len(reqs)-1 && !o.ceiling {
						var r struct {
							EventID string `json:"event_id"`
						}
						if json.Unmarshal(body, &r) == nil {
							lastID.Store(r.EventID)
						}
					}
					continue
				}
				bad.Add(1)
				errMu.Lock()
				if firstErr == "" {
					if err != nil {
						firstErr = err.Error()
					} else {
						firstErr = fmt.Sprintf("%d %s", status, bytes.TrimSpace(body))
					}
				}
				errMu.Unlock()
			}
		})
	}
	wg.Wait()
	sendDur := time.Since(start)
	if err := ctx.Err(); err != nil {
		return Result{}, err
	}

	res := Result{Kind: kind, Store: o.store, At: start.UTC(), Values: map[string]float64{
		"events": float64(o.events), "clients": float64(o.clients), "items": float64(o.items),
		"ok": float64(ok.Load()), "failed": float64(bad.Load()), "send_s": sendDur.Seconds(),
		"accepted_per_s": float64(ok.Load()) / sendDur.Seconds(),
	}}
	if firstErr != "" {
		res.Notes = append(res.Notes, fmt.Sprintf("%d requests failed; first: %s", bad.Load(), firstErr))
	}
	if sent := ok.Load() + bad.Load(); sent < int64(o.events) {
		res.Notes = append(res.Notes, fmt.Sprintf("send window hit -max-time %s after %d of %d events", o.maxTime, sent, o.events))
	}
	// CPU time per request of each process (robust to a busy machine,
	// unlike rates): the gateway's from its own metrics, ours from rusage.
	cpu := func(r *Result, gw gatewayCounters, n float64) {
		if n <= 0 {
			return
		}
		r.Values["gateway_cpu_us_per_event"] = (gw.CPU - before.CPU) / n * 1e6
		r.Values["client_cpu_us_per_event"] = float64(selfCPU()-cpuBefore) / float64(time.Microsecond) / n
		if rdb != nil {
			if v, err := redisCPU(ctx, rdb); err == nil {
				r.Values["redis_cpu_us_per_event"] = (v - redisBefore) / n * 1e6
			}
		}
	}
	if o.ceiling {
		after, err := scrape(ctx, hc, o.url)
		if err != nil {
			return Result{}, err
		}
		cpu(&res, after, float64(ok.Load()))
		return res, nil
	}

	// Wait for the engine: the applied counter must grow by as many events
	// as the intake accepted as new.
	after, err := scrape(ctx, hc, o.url)
	if err != nil {
		return Result{}, err
	}
	newEvents := after.Received - before.Received
	wantApplied := before.Applied + newEvents
	deadline := time.Now().Add(o.applyTimeout)
	cur := after
	for cur.Applied < wantApplied && time.Now().Before(deadline) {
		select {
		case <-ctx.Done():
			return Result{}, ctx.Err()
		case <-time.After(20 * time.Millisecond):
		}
		if cur, err = scrape(ctx, hc, o.url); err != nil {
			return Result{}, err
		}
	}
	applyDur := time.Since(start)
	cpu(&res, cur, newEvents)
	applied := cur.Applied - before.Applied
	res.Values["new_events"] = newEvents
	res.Values["applied"] = applied
	res.Values["moves"] = cur.Moves - before.Moves
	res.Values["applied_s"] = applyDur.Seconds()
	res.Values["applied_per_s"] = applied / applyDur.Seconds()
	if applied < newEvents {
		res.Notes = append(res.Notes, fmt.Sprintf("engine applied %.0f of %.0f events within -apply-timeout %s", applied, newEvents, o.applyTimeout))
	}
	// Spot check through the API: the last event is applied and explained.
	if id, _ := lastID.Load().(string); id != "" {
		var ev struct {
			Applied bool `json:"applied"`
			Items   []struct {
				Moved bool `json:"moved"`
			} `json:"items"`
		}
		if _, err := a.do(ctx, "GET", "/api/v1/events/"+id, nil, &ev); err != nil {
			res.Notes = append(res.Notes, "spot check: "+err.Error())
		} else if !ev.Applied || len(ev.Items) != 1 {
			res.Notes = append(res.Notes, fmt.Sprintf("spot check: event %s applied=%v items=%d", id, ev.Applied, len(ev.Items)))
		}
	}
	return res, nil
}

// printRows prints a result as Markdown table rows.
func printRows(w io.Writer, r Result) {
	v := r.Values
	label := r.Store
	if label == "" {
		label = "-"
	}
	switch r.Kind {
	case "throughput":
		fmt.Fprintf(w, "| %s webhook accepted/s (%.0f clients, %s events) | %s |\n", label, v["clients"], fmtInt(int64(v["events"])), fmtRate(v["accepted_per_s"]))
		fmt.Fprintf(w, "| %s applied/s end-to-end (%s moves) | %s |\n", label, fmtInt(int64(v["moves"])), fmtRate(v["applied_per_s"]))
	case "ceiling":
		fmt.Fprintf(w, "| %s HTTP ceiling: 401 answers/s (%.0f clients, no store) | %s |\n", label, v["clients"], fmtRate(v["accepted_per_s"]))
	case "latency":
		fmt.Fprintf(w, "| %s event→move latency @ %.0f/s: p50 / p99 / max | %.1f / %.1f / %.1f ms |\n", label, v["rate"], v["p50_ms"], v["p99_ms"], v["max_ms"])
	case "redis-compare":
		fmt.Fprintf(w, "| redis-benchmark EVALSHA %s script (-c %.0f -P %.0f, %s requests) | %s req/s |\n", r.Variant, v["clients"], v["pipeline"], fmtInt(int64(v["requests"])), fmtRate(v["rps"]))
	}
	for _, n := range r.Notes {
		fmt.Fprintf(w, "| note | %s |\n", n)
	}
}
