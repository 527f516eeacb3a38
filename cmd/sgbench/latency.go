package main

import (
	"bytes"
	"context"
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
)

type latencyOpts struct {
	url, token              string
	pipeline, typ, backType string
	items                   int
	rate                    float64
	duration, warmup, wait  time.Duration
	maxInFlight, sample     int
	idleTimeout             time.Duration
	store, out, variant     string
}

// cmdLatency sends API events at a fixed rate, open loop: request j is sent
// at start + j/rate whatever became of the earlier ones, each as
// POST /api/v1/events?wait=…, which answers 200 with applied:true once the
// engine has applied (and, here, moved) the event. The latency of one event
// is from its scheduled send time to that answer, so a stalled gateway or a
// late client shows up in the numbers (no coordinated omission). Events of
// one item alternate between -type and -back-type so that each one moves
// its item; with -items 1000 at 1,000/s an item gets one event a second.
func cmdLatency(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	var o latencyOpts
	fs := flag.NewFlagSet("latency", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.StringVar(&o.url, "url", "http://127.0.0.1:8080", "gateway base URL")
	fs.StringVar(&o.token, "token", "", "API bearer token")
	fs.StringVar(&o.pipeline, "pipeline", "bench", "pipeline of the items")
	fs.StringVar(&o.typ, "type", "crm.bench", "event type that moves an item forward")
	fs.StringVar(&o.backType, "back-type", "crm.bench_back", `event type that moves it back; "" sends only -type`)
	fs.IntVar(&o.items, "items", 1000, "items to create, one contact each")
	fs.Float64Var(&o.rate, "rate", 1000, "events per second")
	fs.DurationVar(&o.duration, "duration", 10*time.Second, "how long to send (measured part)")
	fs.DurationVar(&o.warmup, "warmup", time.Second, "sent at the same rate before the measured part, not counted")
	fs.DurationVar(&o.wait, "wait", 5*time.Second, "the ?wait= of each request")
	fs.IntVar(&o.maxInFlight, "max-inflight", 5000, "bound on requests in flight; a send that finds it full counts as failed")
	fs.IntVar(&o.sample, "sample", 1, "measure every Nth event (sent with ?wait); the others are sent without wait, at the same rate")
	fs.DurationVar(&o.idleTimeout, "idle-timeout", time.Minute, "before sending, wait up to this long for the engine to finish earlier work")
	fs.StringVar(&o.store, "store", "", "label of the store under test, for the report (bolt, redis)")
	fs.StringVar(&o.out, "out", "", "append the result as a JSON line to this file")
	fs.StringVar(&o.variant, "variant", "", `label of this run among latency runs of one store ("low" for the context run at a lower rate)`)
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	if o.token == "" {
		return errors.New("-token is required")
	}
	if o.rate <= 0 || o.rate > 100000 || o.duration <= 0 || o.duration > 10*time.Minute || o.items < 1 || o.sample < 1 {
		return errors.New("-rate must be in (0, 100000], -duration in (0, 10m], -items and -sample positive")
	}
	res, err := latency(ctx, o, stderr)
	if err != nil {
		return err
	}
	printRows(stdout, res)
	return appendResult(o.out, res)
}

// sample is the outcome of one request.
type sample struct {
	lat     time.Duration // scheduled send → answer
	service time.Duration // actual send → answer
	ok      bool          // 200 with applied:true
	moved   bool
	err     string
}

func latency(ctx context.Context, o latencyOpts, logw io.Writer) (Result, error) {
	hc := newClient(256, o.wait+10*time.Second)
	a := &api{base: o.url, token: o.token, hc: hc}
	run := nonce()
	domain := "lat" + run + ".bench.test"
	t := time.Now()
	if _, err := createItems(ctx, a, o.pipeline, domain, o.items, 64); err != nil {
		return Result{}, fmt.Errorf("create items: %w", err)
	}
	fmt.Fprintf(logw, "sgbench: created %d items in %s\n", o.items, time.Since(t).Round(time.Millisecond))
	if err := waitIdle(ctx, hc, o.url, o.idleTimeout, logw); err != nil {
		return Result{}, err
	}

	warm := int(o.rate * o.warmup.Seconds())
	total := warm + int(o.rate*o.duration.Seconds())
	interval := time.Duration(float64(time.Second) / o.rate)
	bodies := make([][]byte, total)
	for j := range bodies {
		typ := o.typ
		if o.backType != "" && (j/o.items)%2 == 1 {
			typ = o.backType
		}
		b, _ := json.Marshal(map[string]any{
			"id": "lat" + run + "-" + strconv.Itoa(j), "type": typ,
			"subject": map[string]string{"email": itemEmail(j%o.items, domain)},
		})
		bodies[j] = b
	}
	waitURL := o.url + "/api/v1/events?wait=" + o.wait.String()
	noWaitURL := o.url + "/api/v1/events"
	samples := make([]sample, total)
	var inflight atomic.Int64
	var maxLag time.Duration
	var wg sync.WaitGroup
	start := time.Now().Add(50 * time.Millisecond)
	for j := range total {
		if ctx.Err() != nil {
			break
		}
		sched := start.Add(time.Duration(j) * interval)
		if d := time.Until(sched); d > 0 {
			time.Sleep(d)
		}
		if lag := time.Since(sched); lag > maxLag {
			maxLag = lag
		}
		if inflight.Load() >= int64(o.maxInFlight) {
			samples[j] = sample{err: "client: too many requests in flight", lat: o.wait}
			continue
		}
		inflight.Add(1)
		wg.Go(func() {
			defer inflight.Add(-1)
			if j%o.sample == 0 {
				samples[j] = send(ctx, hc, waitURL, o.token, bodies[j], sched, true)
			} else {
				samples[j] = send(ctx, hc, noWaitURL, o.token, bodies[j], sched, false)
			}
		})
	}
	wg.Wait()
	if err := ctx.Err(); err != nil {
		return Result{}, err
	}

	var lats, all, svc []time.Duration // applied; every measured event; applied, from the actual send
	var failed, moved, unsampledFailed int
	var firstErr string
	for j, s := range samples {
		if j < warm {
			continue
		}
		if j%o.sample != 0 {
			if !s.ok {
				unsampledFailed++
				if firstErr == "" {
					firstErr = s.err
				}
			}
			continue
		}
		if !s.ok {
			failed++
			if firstErr == "" {
				firstErr = s.err
			}
			// Not applied in time: its latency is at least what we saw
			// (the 202 after the wait, or the error), and at least wait.
			all = append(all, max(s.lat, o.wait))
			continue
		}
		lats = append(lats, s.lat)
		all = append(all, s.lat)
		svc = append(svc, s.service)
		if s.moved {
			moved++
		}
	}
	sortDurations(lats)
	sortDurations(all)
	sortDurations(svc)
	n := total - warm
	measured := 0
	for j := warm; j < total; j++ {
		if j%o.sample == 0 {
			measured++
		}
	}
	res := Result{Kind: "latency", Store: o.store, Variant: o.variant, At: start.UTC(), Values: map[string]float64{
		"rate": o.rate, "events": float64(n), "measured": float64(measured), "warmup_events": float64(warm),
		"unsampled_failed": float64(unsampledFailed), "ok": float64(len(lats)), "failed": float64(failed),
		"moved": float64(moved), "items": float64(o.items), "sample_every": float64(o.sample),
		"max_send_lag_ms": ms(maxLag), "wait_ms": ms(o.wait),
	}}
	// Percentiles over every measured event; an event not applied in time
	// counts with a lower bound of its latency, so with failures the
	// numbers are lower bounds ("at least").
	if len(all) > 0 {
		res.Values["p50_ms"] = ms(percentile(all, 50))
		res.Values["p90_ms"] = ms(percentile(all, 90))
		res.Values["p99_ms"] = ms(percentile(all, 99))
		res.Values["p999_ms"] = ms(percentile(all, 99.9))
		res.Values["max_ms"] = ms(percentile(all, 100))
	}
	if len(svc) > 0 {
		res.Values["applied_p99_ms"] = ms(percentile(lats, 99))
		res.Values["service_p99_ms"] = ms(percentile(svc, 99))
	}
	if failed > 0 {
		res.Notes = append(res.Notes, fmt.Sprintf("%d of %d measured events were not applied within %s or failed; their latency counts as a lower bound (≥ %s), so the percentiles are lower bounds; first: %s", failed, measured, o.wait, o.wait, firstErr))
	}
	if unsampledFailed > 0 {
		res.Notes = append(res.Notes, fmt.Sprintf("%d of %d events sent without wait failed", unsampledFailed, n-measured))
	}
	if moved < len(lats) {
		res.Notes = append(res.Notes, fmt.Sprintf("%d of %d applied events moved their item", moved, len(lats)))
	}
	if maxLag > 5*time.Millisecond {
		res.Notes = append(res.Notes, fmt.Sprintf("the sender ran up to %s behind schedule (machine busy); latency is counted from the schedule", maxLag.Round(time.Millisecond)))
	}
	return res, nil
}

// send posts one event and reports its outcome; with wait, the answer must
// be 200 with applied:true, else 202.
func send(ctx context.Context, hc *http.Client, target, token string, body []byte, sched time.Time, wait bool) sample {
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, target, bytes.NewReader(body))
	if err != nil {
		return sample{err: err.Error()}
	}
	req.Header.Set("Authorization", "Bearer "+token)
	req.Header.Set("Content-Type", "application/json")
	sent := time.Now()
	fail := func(msg string) sample { return sample{err: msg, lat: time.Since(sched), service: time.Since(sent)} }
	resp, err := hc.Do(req)
	if err != nil {
		return fail(err.Error())
	}
	data, err := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	resp.Body.Close()
	done := time.Now()
	if err != nil {
		return fail(err.Error())
	}
	if !wait {
		if resp.StatusCode != http.StatusAccepted {
			return fail(fmt.Sprintf("%d %s", resp.StatusCode, bytes.TrimSpace(data)))
		}
		return sample{lat: done.Sub(sched), service: done.Sub(sent), ok: true}
	}
	if resp.StatusCode != http.StatusOK {
		return fail(fmt.Sprintf("%d %s", resp.StatusCode, bytes.TrimSpace(data)))
	}
	var r struct {
		Applied   *bool `json:"applied"`
		Decisions []struct {
			Moved bool `json:"moved"`
		} `json:"decisions"`
	}
	if err := json.Unmarshal(data, &r); err != nil {
		return fail(err.Error())
	}
	if r.Applied == nil || !*r.Applied {
		return fail("not applied: " + string(bytes.TrimSpace(data)))
	}
	s := sample{lat: done.Sub(sched), service: done.Sub(sent), ok: true}
	for _, d := range r.Decisions {
		s.moved = s.moved || d.Moved
	}
	return s
}
