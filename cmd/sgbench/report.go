package main

import (
	"bufio"
	"bytes"
	"errors"
	"flag"
	"fmt"
	"io"
	"math"
	"os"
	"runtime"
	"slices"
	"strconv"
	"strings"
)

// Targets from the issue.
const (
	targetBoltEventsPerS = 20000 // durable accepted+applied, 64 clients
	targetRedisRatio     = 0.7   // × redis-benchmark doing the same work
	targetP99Ms          = 20    // event→move p99 at 1,000 events/s
	targetHighP99Ms      = 50    // event→move p99 at 5,000 events/s
	targetBoltCPURatio   = 2     // gateway CPU per applied event ÷ its CPU per 401 answer
	targetRedisCPURatio  = 3     // the same, counting redis-server's CPU too
	targetKeepUp         = 0.95  // applied/s ÷ accepted/s of the closed loop
)

// cmdReport turns the JSON lines of the measuring commands (and the output
// of go test -bench) into the Markdown of bench/RESULTS.md.
func cmdReport(args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("report", flag.ContinueOnError)
	fs.SetOutput(stderr)
	in := fs.String("in", "", "results file (JSON lines from -out)")
	gotest := fs.String("gotest", "", "output of go test -bench (optional)")
	header := fs.String("header", "", "Markdown to put first (optional)")
	footer := fs.String("footer", "", "Markdown to put last (optional)")
	cores := fs.Int("cores", runtime.NumCPU(), "cores of the machine, for the CPU budget rows")
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	if *in == "" {
		return errors.New("-in is required")
	}
	results, err := readResults(*in)
	if err != nil {
		return err
	}
	var benches []goBench
	var benchLines []string
	if *gotest != "" {
		data, err := os.ReadFile(*gotest)
		if err != nil {
			return err
		}
		benches, benchLines = parseGoBench(data)
	}
	var b bytes.Buffer
	if *header != "" {
		data, err := os.ReadFile(*header)
		if err != nil {
			return err
		}
		b.Write(bytes.TrimRight(data, "\n"))
		b.WriteString("\n\n")
	}
	writeReport(&b, results, benches, benchLines, *cores)
	if *footer != "" {
		data, err := os.ReadFile(*footer)
		if err != nil {
			return err
		}
		b.WriteString("\n")
		b.Write(bytes.TrimRight(data, "\n"))
		b.WriteString("\n")
	}
	_, err = stdout.Write(b.Bytes())
	return err
}

// find returns the last result of a kind, store and variant.
func find(rs []Result, kind, store, variant string) *Result {
	for i := len(rs) - 1; i >= 0; i-- {
		r := &rs[i]
		if r.Kind == kind && r.Store == store && r.Variant == variant {
			return r
		}
	}
	return nil
}

// best returns, among the results of a kind and store whose variant is
// variant or starts with variant+"@", the one with the highest value of key:
// a reference measured more than once counts at its best (the strictest).
func best(rs []Result, kind, store, variant, key string) *Result {
	var b *Result
	for i := range rs {
		r := &rs[i]
		if r.Kind != kind || r.Store != store || (r.Variant != variant && !strings.HasPrefix(r.Variant, variant+"@")) {
			continue
		}
		if b == nil || val(r, key) > val(b, key) {
			b = r
		}
	}
	return b
}

// runsNote lists the rates of every redis-compare run of a variant when
// there was more than one.
func runsNote(rs []Result, variant string) string {
	var runs []string
	for i := range rs {
		r := &rs[i]
		if r.Kind == "redis-compare" && (r.Variant == variant || strings.HasPrefix(r.Variant, variant+"@")) {
			runs = append(runs, fmtRate(val(r, "rps")))
		}
	}
	if len(runs) < 2 {
		return ""
	}
	return " (best of " + strings.Join(runs, ", ") + ", before and after the gateway runs)"
}

// val returns a value of r, NaN when r is nil or lacks it.
func val(r *Result, key string) float64 {
	if r == nil {
		return math.NaN()
	}
	v, ok := r.Values[key]
	if !ok {
		return math.NaN()
	}
	return v
}

func verdict(ok bool, measured float64) string {
	switch {
	case math.IsNaN(measured):
		return "**not measured**"
	case ok:
		return "**meets**"
	default:
		return "**misses**"
	}
}

func ratio(a, b float64) string {
	if math.IsNaN(a) || math.IsNaN(b) || b == 0 {
		return "—"
	}
	return fmt.Sprintf("%.2f×", a/b)
}

func perS(v float64) string {
	if math.IsNaN(v) {
		return "not measured"
	}
	return fmtRate(v) + "/s"
}

func msText(v float64) string {
	if math.IsNaN(v) {
		return "not measured"
	}
	return fmt.Sprintf("%.1f ms", v)
}

// fmtCount formats a count, "n/a" for NaN.
func fmtCount(v float64) string {
	if math.IsNaN(v) {
		return "n/a"
	}
	return fmtInt(int64(v))
}

// us formats microseconds.
func us(v float64) string {
	if math.IsNaN(v) {
		return "n/a"
	}
	return fmt.Sprintf("%.0f µs", v)
}

func writeReport(w io.Writer, rs []Result, benches []goBench, benchLines []string, cores int) {
	row := func(cells ...string) { fmt.Fprintf(w, "| %s |\n", strings.Join(cells, " | ")) }
	row("row", "measured", "reference (same run)", "ratio", "target")
	row("---", "---:", "---:", "---:", "---")

	for _, st := range []string{"bolt", "redis"} {
		tp := find(rs, "throughput", st, "")
		ceil := find(rs, "ceiling", st, "")
		lat := find(rs, "latency", st, "")
		acc, app := val(tp, "accepted_per_s"), val(tp, "applied_per_s")
		ceilRate := val(ceil, "accepted_per_s")
		clients := val(tp, "clients")
		events := val(tp, "events")
		desc := fmt.Sprintf("%.0f clients, %s signed webhooks", clients, fmtCount(events))
		ceilRef := "HTTP ceiling " + perS(ceilRate) + " (same gateway, 401 path: HMAC check, no store)"
		switch st {
		case "bolt":
			row("bolt: accepted/s ("+desc+", each fsync'd before the 2xx)", perS(acc), ceilRef, ratio(acc, ceilRate),
				fmt.Sprintf("≥ %s/s accepted+applied: %s", fmtInt(targetBoltEventsPerS), verdict(acc >= targetBoltEventsPerS, acc)))
			row(fmt.Sprintf("bolt: applied/s end-to-end (first send → engine applied all; %s moves)", fmtCount(val(tp, "moves"))),
				perS(app), ceilRef, ratio(app, ceilRate),
				fmt.Sprintf("≥ %s/s accepted+applied: %s", fmtInt(targetBoltEventsPerS), verdict(app >= targetBoltEventsPerS, app)))
		case "redis":
			full := best(rs, "redis-compare", "redis", "full", "rps")
			minimal := best(rs, "redis-compare", "redis", "minimal", "rps")
			fullRate, minRate := val(full, "rps"), val(minimal, "rps")
			fullRef := "redis-benchmark EVALSHA of the store's append script (SET NX PX, XADD, DEL, HSET, PEXPIRE), -c 64 -P 1: " + perS(fullRate) + runsNote(rs, "full")
			row("redis: accepted/s ("+desc+")", perS(acc), fullRef, ratio(acc, fullRate),
				fmt.Sprintf("≥ %.1f× redis-benchmark: %s", targetRedisRatio, verdict(acc >= targetRedisRatio*fullRate, acc/fullRate)))
			row(fmt.Sprintf("redis: applied/s end-to-end (%s moves)", fmtCount(val(tp, "moves"))), perS(app), "same: "+perS(fullRate), ratio(app, fullRate),
				fmt.Sprintf("≥ %.1f× redis-benchmark: %s", targetRedisRatio, verdict(app >= targetRedisRatio*fullRate, app/fullRate)))
			row("redis: accepted/s vs the bare minimum", perS(acc), "redis-benchmark EVALSHA SET NX PX + XADD only, -c 64 -P 1: "+perS(minRate)+runsNote(rs, "minimal"), ratio(acc, minRate),
				fmt.Sprintf("≥ %.1f× (stricter reference): %s", targetRedisRatio, verdict(acc >= targetRedisRatio*minRate, acc/minRate)))
			row("redis: accepted/s vs HTTP ceiling", perS(acc), ceilRef, ratio(acc, ceilRate), "— (context)")
		}
		// CPU per event: robust to a busy machine, and it says what the
		// rate would be with the cores to ourselves.
		gwCPU, clCPU, rdCPU := val(tp, "gateway_cpu_us_per_event"), val(tp, "client_cpu_us_per_event"), val(tp, "redis_cpu_us_per_event")
		ceilGw, ceilCl := val(ceil, "gateway_cpu_us_per_event"), val(ceil, "client_cpu_us_per_event")
		total := gwCPU + clCPU
		parts := fmt.Sprintf("gateway %s + load generator %s", us(gwCPU), us(clCPU))
		if st == "redis" {
			total += rdCPU
			parts += " + redis-server " + us(rdCPU)
		}
		budget := float64(cores) * 1e6 / targetBoltEventsPerS
		target := fmt.Sprintf("— (%d cores ÷ 20,000/s = %s per event for everything)", cores, us(budget))
		if st == "bolt" {
			target = fmt.Sprintf("≤ %s for 20,000/s on these %d cores: %s", us(budget), cores, verdict(total <= budget, total))
		}
		row(fmt.Sprintf("%s: CPU per applied event (%s) → %s/s if these %d cores were ours alone", st, parts, fmtRate(float64(cores)*1e6/total), cores),
			us(total), fmt.Sprintf("HTTP ceiling: gateway %s + load generator %s = %s", us(ceilGw), us(ceilCl), us(ceilGw+ceilCl)),
			ratio(gwCPU, ceilGw)+" (gateway)", target)
		if st == "redis" {
			full := best(rs, "redis-compare", "redis", "full", "rps")
			row("redis: redis-server CPU per event (append, resolve reads, move, ack)", us(rdCPU),
				"redis-benchmark full append script: "+us(val(full, "redis_cpu_us_per_request"))+" per request", ratio(rdCPU, val(full, "redis_cpu_us_per_request")), "— (Redis work per event vs the intake's share)")
		}

		// The engine's targets: CPU per applied event against the same
		// gateway's 401 answer, and a closed loop that keeps up.
		if ceilGw > 0 {
			cpu, limit, what := gwCPU, float64(targetBoltCPURatio), "gateway"
			if st == "redis" {
				cpu, limit, what = gwCPU+rdCPU, targetRedisCPURatio, "gateway + redis-server"
			}
			row(fmt.Sprintf("%s: CPU per applied event (%s) vs the same gateway's 401 answer", st, what), us(cpu),
				"401 answer: "+us(ceilGw)+" gateway CPU", ratio(cpu, ceilGw),
				fmt.Sprintf("≤ %.0f×: %s", limit, verdict(cpu <= limit*ceilGw, cpu/ceilGw)))
		}
		if acc > 0 {
			row(fmt.Sprintf("%s: closed loop (%.0f clients) keeps up: applied/s vs accepted/s", st, clients), perS(app),
				"accepted "+perS(acc), ratio(app, acc),
				fmt.Sprintf("≥ %.2f× (no growing backlog): %s", targetKeepUp, verdict(app >= targetKeepUp*acc, app/acc)))
		}

		if low := find(rs, "latency", st, "low"); low != nil {
			lb := ""
			if val(low, "failed") > 0 {
				lb = "≥ "
			}
			row(fmt.Sprintf("%s: event→move latency p99 @ %s/s (context: a rate this machine sustains now), %s events", st, fmtRate(val(low, "rate")), fmtCount(val(low, "events"))),
				lb+msText(val(low, "p99_ms")), fmt.Sprintf("p50 %s%s, max %s%s", lb, msText(val(low, "p50_ms")), lb, msText(val(low, "max_ms"))), "—", "— (floor of the latency without overload)")
		}
		latencyRow(row, st, lat, targetP99Ms)
		if high := find(rs, "latency", st, "high"); high != nil {
			latencyRow(row, st, high, targetHighP99Ms)
		}
	}

	if eb := benchFind(benches, "engine", "ApplyBolt/drain"); eb != nil {
		row(fmt.Sprintf("go bench engine alone on a real bolt file (log filled ahead, every event a move; batch size p50 %.0f, p90 %.0f, max %.0f, mean %.0f)",
			eb.metric("batch-p50"), eb.metric("batch-p90"), eb.metric("batch-max"), eb.metric("batch-mean")),
			perS(eb.metric("events/s")), us(eb.metric("cpu-µs/event"))+" CPU per event", "—", "— (the engine's share of an applied event)")
	}
	if eb := benchFind(benches, "engine", "ApplyBolt/concurrent"); eb != nil {
		row(fmt.Sprintf("go bench engine beside 64 appenders, bolt (batch size p50 %.0f, p90 %.0f, max %.0f, mean %.0f)",
			eb.metric("batch-p50"), eb.metric("batch-p90"), eb.metric("batch-max"), eb.metric("batch-mean")),
			perS(eb.metric("events/s")), us(eb.metric("cpu-µs/event"))+" CPU per event (intake + engine)", "—", "— (context)")
	}

	if f := find(rs, "fsync", "bolt", ""); f != nil {
		row("machine: disk of the bolt file, 4 KiB write + fdatasync p99 (bolt commits once per intake group and once per engine batch)",
			msText(val(f, "p99_ms")), fmt.Sprintf("p50 %s, p90 %s, max %s", msText(val(f, "p50_ms")), msText(val(f, "p90_ms")), msText(val(f, "max_ms"))), "—", "— (the disk's share of bolt latency)")
	}
	if w := find(rs, "wrk", "", ""); w != nil {
		row(fmt.Sprintf("machine: wrk GET /healthz (-c %.0f, 5 s; a C client, no store, no JSON)", val(w, "clients")), perS(val(w, "rps")), "—", "—",
			"— (what net/http answers on this machine right now)")
	}

	// Store-only numbers from go test -bench (same machine, same run).
	if bp, bs := benchFind(benches, "store/bolt", "AppendParallel"), benchFind(benches, "store/bolt", "AppendSerial"); bp != nil {
		row(fmt.Sprintf("go bench bolt AppendParallel (store alone, ~64 goroutines; %.0f events/commit)", bp.metric("events/commit")),
			perS(bp.metric("events/s")), "AppendSerial (one fsync per event): "+perS(bs.metric("events/s")),
			ratio(bp.metric("events/s"), bs.metric("events/s")), "— (group commit gain)")
	}
	if rp := benchFind(benches, "store/redis", "AppendParallel"); rp != nil {
		full := best(rs, "redis-compare", "redis", "full", "rps")
		row("go bench redis AppendParallel (store alone, ~64 goroutines, test helper's redis-server)", perS(rp.metric("events/s")),
			"redis-benchmark full script (bench server): "+perS(val(full, "rps")), ratio(rp.metric("events/s"), val(full, "rps")), "— (driver alone)")
	}
	if wh := benchFind(benches, "connectors/webhook", "WebhookHandler"); wh != nil {
		row("go bench webhook handler (verify + normalize, no store)", fmt.Sprintf("%s ns/op, %.0f allocs/op", fmtCount(wh.metric("ns/op")), wh.metric("allocs/op")),
			"—", "—", "— (CPU per request in the connector)")
	}

	var notes []string
	for _, r := range rs {
		for _, n := range r.Notes {
			label := r.Kind
			if r.Store != "" {
				label = r.Store + " " + label
			}
			if r.Variant != "" {
				label += " " + r.Variant
			}
			notes = append(notes, fmt.Sprintf("- %s: %s", label, n))
		}
	}
	if len(notes) > 0 {
		fmt.Fprintf(w, "\nNotes from the run:\n\n%s\n", strings.Join(notes, "\n"))
	}
	if len(benchLines) > 0 {
		fmt.Fprintf(w, "\n`go test -run '^$' -bench . -benchmem` (key lines):\n\n```\n%s\n```\n", strings.Join(benchLines, "\n"))
	}
	fmt.Fprintf(w, "\nAll measurements:\n\n```\n")
	for _, r := range rs {
		label := r.Kind
		if r.Store != "" {
			label = r.Store + " " + label
		}
		if r.Variant != "" {
			label += " " + r.Variant
		}
		fmt.Fprintf(w, "%-28s %s\n", label, formatValues(r.Values))
	}
	fmt.Fprintf(w, "```\n")
}

// latencyRow writes the row of one open-loop latency run against its p99 target.
func latencyRow(row func(...string), st string, lat *Result, targetMs float64) {
	p99, p50, mx := val(lat, "p99_ms"), val(lat, "p50_ms"), val(lat, "max_ms")
	how := "each POST /api/v1/events?wait=5s"
	if se := val(lat, "sample_every"); se > 1 {
		how = fmt.Sprintf("every %.0fth with ?wait=5s, %s measured", se, fmtCount(val(lat, "measured")))
	}
	latDesc := fmt.Sprintf("%s: event→move latency p99 @ %s/s open loop, %s events, %s",
		st, fmtRate(val(lat, "rate")), fmtCount(val(lat, "events")), how)
	if f := val(lat, "failed"); f > 0 {
		latDesc += fmt.Sprintf("; %s not applied within 5 s", fmtCount(f))
	}
	if m := val(lat, "moved"); !math.IsNaN(m) {
		latDesc += fmt.Sprintf(" (%s moved)", fmtCount(m))
	}
	bound := ""
	if val(lat, "failed") > 0 {
		bound = "≥ " // some events were not applied in time: lower bounds
	}
	row(latDesc, bound+msText(p99), fmt.Sprintf("p50 %s%s, p90 %s%s, max %s%s", bound, msText(p50), bound, msText(val(lat, "p90_ms")), bound, msText(mx)), "—",
		fmt.Sprintf("p99 ≤ %.0f ms: %s", targetMs, verdict(p99 <= targetMs, p99)))
}

// formatValues prints a result's values sorted by key.
func formatValues(v map[string]float64) string {
	keys := make([]string, 0, len(v))
	for k := range v {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	parts := make([]string, len(keys))
	for i, k := range keys {
		parts[i] = k + "=" + strconv.FormatFloat(v[k], 'f', -1, 64)
		if f := v[k]; f != math.Trunc(f) {
			parts[i] = k + "=" + strconv.FormatFloat(f, 'f', 2, 64)
		}
	}
	return strings.Join(parts, " ")
}

// goBench is one line of go test -bench output.
type goBench struct {
	pkg, name string
	metrics   map[string]float64 // unit → value
}

func (b *goBench) metric(unit string) float64 {
	if b == nil {
		return math.NaN()
	}
	v, ok := b.metrics[unit]
	if !ok {
		return math.NaN()
	}
	return v
}

// parseGoBench reads go test -bench output: each Benchmark line with the
// package named by the "pkg:" line before it. It also returns the lines
// worth quoting (pkg, cpu and Benchmark lines).
func parseGoBench(data []byte) ([]goBench, []string) {
	var out []goBench
	var lines []string
	pkg := ""
	sc := bufio.NewScanner(bytes.NewReader(data))
	for sc.Scan() {
		line := strings.TrimRight(sc.Text(), " \t")
		switch {
		case strings.HasPrefix(line, "pkg: "):
			pkg = strings.TrimPrefix(line, "pkg: ")
			lines = append(lines, line)
		case strings.HasPrefix(line, "cpu: ") && len(lines) == 1:
			lines = append(lines, line)
		case strings.HasPrefix(line, "Benchmark"):
			f := strings.Fields(line)
			if len(f) < 4 {
				continue
			}
			b := goBench{pkg: pkg, name: f[0], metrics: map[string]float64{}}
			for i := 2; i+1 < len(f); i += 2 {
				v, err := strconv.ParseFloat(f[i], 64)
				if err != nil {
					break
				}
				b.metrics[f[i+1]] = v
			}
			out = append(out, b)
			lines = append(lines, line)
		case strings.HasPrefix(line, "--- FAIL") || strings.HasPrefix(line, "FAIL"):
			lines = append(lines, line)
		}
	}
	return out, lines
}

// benchFind returns the last benchmark of a package (suffix) whose name
// (without "Benchmark" and the -GOMAXPROCS suffix) is name.
func benchFind(bs []goBench, pkgSuffix, name string) *goBench {
	for i := len(bs) - 1; i >= 0; i-- {
		b := &bs[i]
		n := strings.TrimPrefix(b.name, "Benchmark")
		if j := strings.LastIndexByte(n, '-'); j >= 0 {
			n = n[:j]
		}
		if n == name && strings.HasSuffix(b.pkg, pkgSuffix) {
			return b
		}
	}
	return nil
}
