package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"os/exec"
	"strconv"
	"strings"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/stagegate/stagegate/connectors/webhook"
	storeredis "github.com/stagegate/stagegate/store/redis"
)

// minimalAppendScript is the least any Redis intake must do per event:
// the dedup key and the log entry, in one round trip.
const minimalAppendScript = `
if not redis.call('SET', KEYS[1], '1', 'NX', 'PX', ARGV[1]) then
  return false
end
return redis.call('XADD', KEYS[3], '*', 'id', ARGV[2], 'e', ARGV[3])
`

type redisCompareOpts struct {
	addr, db                string
	clients, requests, pipe int
	keyspace                int64
	payloadBytes            int
	variants                string
	bin                     string
	timeout                 time.Duration
	keepKeys                bool
	windowMs                int64
	store, out, tag         string
	prefix                  string
}

// cmdRedisCompare runs redis-benchmark against a Redis doing the intake's
// per-event work, at the gateway's concurrency (-c) and pipeline depth
// (-P 1: one request in flight per connection, as each HTTP request is one
// EVALSHA). The scripts are loaded first and called with EVALSHA, like
// go-redis does; every dedup key, event key and event id is random
// (-r, __rand_int__), the payload is the JSON of a real webhook event.
//
// Variant "full" is the store's own append script (SET NX PX, XADD, DEL,
// HSET, PEXPIRE): the same work. Variant "minimal" is SET NX PX + XADD only,
// a stricter reference. Keys go under a run-unique prefix and are deleted
// afterwards (SCAN + UNLINK) unless -keep-keys.
func cmdRedisCompare(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	var o redisCompareOpts
	fs := flag.NewFlagSet("redis-compare", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.StringVar(&o.addr, "redis", "127.0.0.1:6379", "Redis host:port")
	fs.StringVar(&o.db, "db", "0", "Redis database number")
	fs.IntVar(&o.clients, "clients", 64, "redis-benchmark -c: concurrent connections")
	fs.IntVar(&o.requests, "requests", 200000, "redis-benchmark -n: requests per variant")
	fs.IntVar(&o.pipe, "pipeline", 1, "redis-benchmark -P: requests in flight per connection")
	fs.Int64Var(&o.keyspace, "keyspace", 100000000, "redis-benchmark -r: random key space")
	fs.IntVar(&o.payloadBytes, "payload-bytes", 0, "event payload size; 0 = the JSON of a real webhook event")
	fs.StringVar(&o.variants, "variants", "full,minimal", "scripts to run: full (the store's append script), minimal (SET NX + XADD)")
	fs.StringVar(&o.bin, "redis-benchmark", "redis-benchmark", "redis-benchmark binary")
	fs.DurationVar(&o.timeout, "timeout", 90*time.Second, "bound on each redis-benchmark run")
	fs.BoolVar(&o.keepKeys, "keep-keys", false, "leave the benchmark's keys in Redis")
	fs.Int64Var(&o.windowMs, "window-ms", 30*24*3600*1000, "dedup TTL in ms (the store's dedup window)")
	fs.StringVar(&o.store, "store", "redis", "label for the report")
	fs.StringVar(&o.out, "out", "", "append each result as a JSON line to this file")
	fs.StringVar(&o.tag, "tag", "", `appended to the variant as "@tag" (e.g. before, after) when the comparison runs more than once`)
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	if o.clients < 1 || o.requests < 1 || o.pipe < 1 || o.keyspace < 1 {
		return errors.New("-clients, -requests, -pipeline and -keyspace must be positive")
	}
	db, err := strconv.Atoi(o.db)
	if err != nil {
		return fmt.Errorf("-db: %w", err)
	}
	host, port, ok := strings.Cut(o.addr, ":")
	if !ok {
		return errors.New("-redis must be host:port")
	}
	rdb := redis.NewClient(&redis.Options{Addr: o.addr, DB: db})
	defer rdb.Close()
	pctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	err = rdb.Ping(pctx).Err()
	cancel()
	if err != nil {
		return fmt.Errorf("redis %s: %w", o.addr, err)
	}
	o.prefix = "sgbench:" + nonce() + ":"
	payload, err := eventPayload(o.payloadBytes)
	if err != nil {
		return err
	}
	if !o.keepKeys {
		defer func() {
			n, err := unlinkPrefix(context.WithoutCancel(ctx), rdb, o.prefix)
			if err != nil {
				fmt.Fprintf(stderr, "sgbench: cleanup of %s*: %v\n", o.prefix, err)
				return
			}
			fmt.Fprintf(stderr, "sgbench: deleted %d benchmark keys (%s*)\n", n, o.prefix)
		}()
	}
	for _, variant := range strings.Split(o.variants, ",") {
		var sha string
		switch strings.TrimSpace(variant) {
		case "full": // the store's own script, loaded by the store's code
			sha, err = storeredis.LoadAppendScript(ctx, rdb)
		case "minimal":
			sha, err = rdb.ScriptLoad(ctx, minimalAppendScript).Result()
		default:
			return fmt.Errorf("-variants: unknown %q", variant)
		}
		if err != nil {
			return fmt.Errorf("script load: %w", err)
		}
		args := []string{
			"-h", host, "-p", port, "--dbnum", o.db,
			"-c", strconv.Itoa(o.clients), "-n", strconv.Itoa(o.requests), "-P", strconv.Itoa(o.pipe),
			"-r", strconv.FormatInt(o.keyspace, 10), "--csv",
			"EVALSHA", sha, "3", o.prefix + "dedup:__rand_int__", o.prefix + "event:__rand_int__", o.prefix + "log",
			strconv.FormatInt(o.windowMs, 10), o.prefix + "id:__rand_int__", payload,
		}
		cpuBefore, err := redisCPU(ctx, rdb)
		if err != nil {
			return fmt.Errorf("redis %s: %w", o.addr, err)
		}
		rctx, cancel := context.WithTimeout(ctx, o.timeout)
		start := time.Now()
		cmd := exec.CommandContext(rctx, o.bin, args...)
		out, err := cmd.CombinedOutput()
		cancel()
		if err != nil {
			return fmt.Errorf("%s: %w\n%s", o.bin, err, out)
		}
		rps, err := parseBenchmarkCSV(out)
		if err != nil {
			return err
		}
		label := variant
		if o.tag != "" {
			label += "@" + o.tag
		}
		res := Result{Kind: "redis-compare", Store: o.store, Variant: label, At: start.UTC(), Values: map[string]float64{
			"rps": rps, "clients": float64(o.clients), "pipeline": float64(o.pipe), "requests": float64(o.requests),
			"payload_bytes": float64(len(payload)), "wall_s": time.Since(start).Seconds(),
		}}
		if cpuAfter, err := redisCPU(ctx, rdb); err == nil {
			res.Values["redis_cpu_us_per_request"] = (cpuAfter - cpuBefore) / float64(o.requests) * 1e6
		}
		if ps := cmd.ProcessState; ps != nil {
			res.Values["client_cpu_us_per_request"] = float64(ps.UserTime()+ps.SystemTime()) / float64(time.Microsecond) / float64(o.requests)
		}
		printRows(stdout, res)
		if err := appendResult(o.out, res); err != nil {
			return err
		}
	}
	return nil
}

// eventPayload returns the JSON the gateway stores for a typical bench
// webhook event (built with the connector's own normalizer), or n bytes of
// filler when n > 0. It never contains "__rand_int__" other than the one
// placeholder redis-benchmark replaces.
func eventPayload(n int) (string, error) {
	if n > 0 {
		return strings.Repeat("x", n), nil
	}
	body := []byte(`{"type":"crm.bench","subject":{"email":"u123@tp1a2b3c.bench.test"},"attrs":{"n":"12345"}}`)
	ev, err := webhook.NormalizeWebhook("hooks", "b1a2b3c-12345", body, time.Now(), "US")
	if err != nil {
		return "", fmt.Errorf("build a sample event: %w", err)
	}
	data, err := json.Marshal(ev)
	if err != nil {
		return "", err
	}
	return string(data), nil
}

// parseBenchmarkCSV returns the rps of the last row of redis-benchmark
// --csv output. The test name holds the command's arguments (the payload,
// with its quotes and commas unescaped), so the numbers are taken from the
// right: the row ends with rps and six latency columns.
func parseBenchmarkCSV(out []byte) (float64, error) {
	lines := strings.Split(strings.TrimSpace(string(out)), "\n")
	for i := len(lines) - 1; i >= 0; i-- {
		line := strings.TrimSpace(lines[i])
		if !strings.HasPrefix(line, `"`) || strings.HasPrefix(line, `"test"`) {
			continue
		}
		fields := strings.Split(line, `","`)
		if len(fields) < 8 {
			continue
		}
		v, err := strconv.ParseFloat(strings.Trim(fields[len(fields)-7], `"`), 64)
		if err != nil {
			continue
		}
		return v, nil
	}
	return 0, fmt.Errorf("no result row in redis-benchmark output:\n%s", out)
}

// unlinkPrefix deletes every key starting with prefix.
func unlinkPrefix(ctx context.Context, rdb *redis.Client, prefix string) (int, error) {
	ctx, cancel := context.WithTimeout(ctx, time.Minute)
	defer cancel()
	var cursor uint64
	n := 0
	for {
		keys, next, err := rdb.Scan(ctx, cursor, prefix+"*", 10000).Result()
		if err != nil {
			return n, err
		}
		if len(keys) > 0 {
			if err := rdb.Unlink(ctx, keys...).Err(); err != nil {
				return n, err
			}
			n += len(keys)
		}
		if cursor = next; cursor == 0 {
			return n, nil
		}
	}
}
