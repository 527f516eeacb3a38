#!/usr/bin/env bash
# scripts/bench.sh — Stagegate's throughput and latency benchmarks (`make bench`;
# not part of CI). Writes bench/RESULTS.md and prints it.
#
# For each store (bolt in a temp dir; Redis: its own redis-server on a free
# loopback port with appendonly yes, appendfsync everysec) it writes a temp
# config, starts bin/stagegate serve, waits for /readyz and runs cmd/sgbench:
#   1. throughput -ceiling : the same signed webhooks with a wrong secret (401, no
#                            store): the HTTP ceiling of this machine, right now
#   2. throughput          : N items, then EVENTS signed webhooks from CLIENTS
#                            keep-alive clients: accepted/s and applied/s
#   3. latency             : RATE events/s open loop for LAT_DURATION through
#                            POST /api/v1/events?wait=5s: event → move p50/p99/max
# then stops the gateway (SIGTERM). For Redis it then runs redis-benchmark on the
# same redis-server doing the intake's per-event work (sgbench redis-compare).
# Before all that it runs the store and webhook Go benchmarks.
#
# Only loopback traffic; every load is bounded in count and in time; everything
# started here is stopped on exit. Knobs (environment):
#   EVENTS=50000 CEILING_EVENTS=30000 ITEMS=1000 CLIENTS=64 BATCH_SIZE=256
#   RATE=1000 LAT_DURATION=10s LAT_SAMPLE=1 (every Nth event waits and is measured)
#   LOW_RATE=200 (a context latency run, 5 s, at a rate the machine sustains; 0 = skip)
#   HIGH_RATE=5000 (a second latency run, LAT_DURATION long, at this rate; 0 = skip)
#   REDIS_REQUESTS=100000 BENCHTIME=1s
#   STORES="bolt redis"  SKIP_GOBENCH=0  SKIP_CHANNELS=0
#   PROFILE=1  run the gateway as `sgbench serve` (same code, in-process) and keep
#              CPU and mutex profiles in PROFILE_DIR (default /tmp/sgbench-profiles);
#              the tracking/telephony rows' gateway too (cpu-channels-<store>.out)
#   REDIS_URL_QUERY    appended to the gateway's Redis URL, e.g. "?pool_size=128"
#   RANDOM_IDS=1  webhook ids of the throughput run scatter over the key space
#                 (hashes, as message and provider ids do); default near-sequential
#   SKIP_CORE=1   skip the webhook/engine runs (1-3 above, redis-compare)
#   SKIP_NGINX=1  skip the tracking pixel/click and telephony rows beside nginx; they
#                 need nginx, wrk and jq (as root: apt-get install -y nginx-light wrk jq),
#                 else they are skipped with a log line. CH_DURATION=10s (each wrk run)
#                 CH_MESSAGES=300 (tracked messages the pixel/click load rotates over)
#                 CH_MAX_HITS=1000000 (so every hit is stored) CH_CALLBACKS=300000
#                 CH_PENDING_HITS=1024 (hits answered before they are stored; 0 = each
#                 hit stored before its answer) CH_ROUTES="pixel click telephony" (which
#                 of those rows to run)
set -euo pipefail

cd "$(dirname "$0")/.."
ROOT=$(pwd)

EVENTS=${EVENTS:-50000}
CEILING_EVENTS=${CEILING_EVENTS:-30000}
ITEMS=${ITEMS:-1000}
CLIENTS=${CLIENTS:-64}
BATCH_SIZE=${BATCH_SIZE:-256}
RATE=${RATE:-1000}
LAT_DURATION=${LAT_DURATION:-10s}
LAT_SAMPLE=${LAT_SAMPLE:-1}
REDIS_REQUESTS=${REDIS_REQUESTS:-100000}
LOW_RATE=${LOW_RATE:-200}
HIGH_RATE=${HIGH_RATE:-5000}
BENCHTIME=${BENCHTIME:-1s}
STORES=${STORES:-bolt redis}
SKIP_GOBENCH=${SKIP_GOBENCH:-0}
PROFILE=${PROFILE:-0}
PROFILE_DIR=${PROFILE_DIR:-/tmp/sgbench-profiles}
REDIS_URL_QUERY=${REDIS_URL_QUERY:-}
GO=${GO:-go}
SKIP_CORE=${SKIP_CORE:-0}
SKIP_NGINX=${SKIP_NGINX:-0}
CH_DURATION=${CH_DURATION:-10s}
CH_MESSAGES=${CH_MESSAGES:-300}
CH_MAX_HITS=${CH_MAX_HITS:-1000000}
CH_PENDING_HITS=${CH_PENDING_HITS:-1024}
CH_CALLBACKS=${CH_CALLBACKS:-300000}
CH_ROUTES=${CH_ROUTES:-pixel click telephony}
TEL_TOKEN="sgbench-twilio-token-0123456789"

TOKEN="sgbench-token-$RANDOM$RANDOM"
SECRET="whsec_c2diZW5jaC13ZWJob29rLXNlY3JldC0wMTIzNDU2Nzg5"   # "sgbench-webhook-secret-0123456789"

log() { printf '[bench %s] %s\n' "$(date +%H:%M:%S)" "$*" >&2; }
die() { log "error: $*"; exit 1; }

# --- cleanup: everything started here is stopped on exit --------------------
TMP=$(mktemp -d "${TMPDIR:-/tmp}/sgbench.XXXXXX")
GW_PID=""
REDIS_PID=""
NGINX_PID=""

stop_pid() { # pid name seconds: SIGTERM, wait, then SIGKILL
	local pid=$1 name=$2 secs=${3:-20} i
	[ -n "$pid" ] || return 0
	kill -0 "$pid" 2>/dev/null || { wait "$pid" 2>/dev/null || true; return 0; }
	kill -TERM "$pid" 2>/dev/null || true
	for ((i = 0; i < secs * 10; i++)); do
		kill -0 "$pid" 2>/dev/null || break
		sleep 0.1
	done
	if kill -0 "$pid" 2>/dev/null; then
		log "$name (pid $pid) did not stop within ${secs}s: SIGKILL"
		kill -KILL "$pid" 2>/dev/null || true
	fi
	wait "$pid" 2>/dev/null || true
}

cleanup() {
	local rc=$?
	trap - EXIT INT TERM
	stop_pid "$GW_PID" gateway 20
	stop_pid "$REDIS_PID" redis-server 10
	stop_pid "$NGINX_PID" nginx 10
	if [ "$rc" -ne 0 ]; then
		for f in "$TMP"/*.log; do
			[ -f "$f" ] || continue
			log "last lines of $(basename "$f"):"
			tail -n 15 "$f" >&2 || true
		done
	fi
	rm -rf "$TMP"
	exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

# --- tools ---------------------------------------------------------------------
need=()
for t in curl redis-server redis-benchmark redis-cli; do
	command -v "$t" >/dev/null 2>&1 || need+=("$t")
done
if [ ${#need[@]} -gt 0 ]; then
	if [ "$(id -u)" -eq 0 ] && command -v apt-get >/dev/null 2>&1; then
		log "installing ${need[*]} (apt-get: curl redis-server redis-tools)"
		timeout 300 apt-get install -y curl redis-server redis-tools >&2 || die "apt-get install failed"
	else
		log "missing: ${need[*]}. Install them, e.g. as root: apt-get install -y curl redis-server redis-tools"
	fi
fi
command -v curl >/dev/null 2>&1 || die "curl is required"
command -v "$GO" >/dev/null 2>&1 || die "go is required"
if ! command -v redis-server >/dev/null 2>&1 || ! command -v redis-benchmark >/dev/null 2>&1 || ! command -v redis-cli >/dev/null 2>&1; then
	log "redis-server/redis-benchmark/redis-cli not found: skipping the Redis store"
	STORES=${STORES//redis/}
fi

# --- build -----------------------------------------------------------------------
mkdir -p bin bench
if [ ! -x bin/stagegate ]; then
	log "building bin/stagegate"
	timeout 300 make -s build >&2
fi
log "building bin/sgbench"
timeout 300 "$GO" build -trimpath -o bin/sgbench ./cmd/sgbench
SGBENCH="$ROOT/bin/sgbench"
RESULTS="$TMP/results.jsonl"
: >"$RESULTS"

# --- header ------------------------------------------------------------------------
git_commit() { # read the checkout's HEAD without running git
	local gitdir=.git ref
	if [ -f .git ]; then gitdir=$(sed -n 's/^gitdir: //p' .git); fi
	[ -f "$gitdir/HEAD" ] || { echo "unknown"; return; }
	ref=$(cat "$gitdir/HEAD")
	case "$ref" in
	ref:*)
		ref=${ref#ref: }
		if [ -f "$gitdir/$ref" ]; then
			echo "$(cut -c1-12 "$gitdir/$ref") ($ref)"
		elif [ -f "$gitdir/packed-refs" ] && grep -q " $ref\$" "$gitdir/packed-refs"; then
			echo "$(grep " $ref\$" "$gitdir/packed-refs" | cut -c1-12) ($ref)"
		else
			echo "none yet ($ref has no commit)"
		fi
		;;
	*) echo "${ref:0:12} (detached)" ;;
	esac
}
CPU_MODEL=$(sed -n 's/^model name[[:space:]]*: //p' /proc/cpuinfo | head -n1)
{
	echo "# Stagegate benchmark results"
	echo
	echo "Written by \`make bench\` (scripts/bench.sh + cmd/sgbench). Not part of CI."
	echo
	echo "- Date: $(date -u '+%Y-%m-%d %H:%M:%S UTC')"
	echo "- CPU: ${CPU_MODEL:-unknown}, $(nproc) cores available to this run (shared with other work: numbers are noisy; compare the ratios, measured side by side)"
	echo "- Load average at start: $(cut -d' ' -f1-3 /proc/loadavg)"
	echo "- Go: $("$GO" version | sed 's/^go version //')"
	echo "- Commit: $(git_commit) — working tree state not checked"
	echo "- Kernel: $(uname -sr); temp dir filesystem: $(df -PT "$TMP" | awk 'NR==2 {print $2}')"
	if command -v redis-server >/dev/null 2>&1; then
		echo "- Redis: $(redis-server --version | sed 's/ sha=.*//')"
	fi
	echo "- Load: ${CLIENTS} clients, ${EVENTS} events over ${ITEMS} items; latency ${RATE}/s for ${LAT_DURATION}; engine.batch_size ${BATCH_SIZE}"
} >"$TMP/header.md"

# --- Go benchmarks (alone on the machine, one package at a time) ------------------
if [ "$SKIP_GOBENCH" != 1 ]; then
	log "go test -bench (store/bolt, store/redis, engine, connectors/webhook; benchtime $BENCHTIME)"
	if ! timeout 300 "$GO" test -p 1 -run '^$' -bench . -benchmem -benchtime "$BENCHTIME" -timeout 260s \
		./store/bolt ./store/redis ./engine ./connectors/webhook >"$TMP/gotest.txt" 2>&1; then
		log "go test -bench failed (its lines are kept in the report):"
		tail -n 20 "$TMP/gotest.txt" >&2
	fi
	grep -E '^(Benchmark|pkg:)' "$TMP/gotest.txt" >&2 || true
else
	: >"$TMP/gotest.txt"
fi

# --- one gateway per store -----------------------------------------------------------
write_config() { # store port file [redis-port]
	local st=$1 port=$2 file=$3 rport=${4:-} storeyaml
	case "$st" in
	bolt) storeyaml="{driver: bolt, path: \"$TMP/bolt/stagegate.db\"}" ;;
	redis) storeyaml="{driver: redis, url: \"redis://127.0.0.1:$rport/0$REDIS_URL_QUERY\", prefix: sgbench}" ;;
	esac
	cat >"$file" <<EOF
# Written by scripts/bench.sh for one benchmark run.
listen: 127.0.0.1:$port
store: $storeyaml
api:
  tokens: ["\${SGBENCH_API_TOKEN}"]
log:
  level: warn
  format: json
engine:
  batch_size: $BATCH_SIZE
pipelines:
  - id: bench
    stages:
      - id: new
        triggers:
          - {type: crm.bench_back, name: back, allow_back: true}
      - id: engaged
        triggers:
          - {type: crm.bench, name: forward}
connectors:
  - name: hooks
    type: webhook
    secret: "\${SGBENCH_WEBHOOK_SECRET}"
EOF
}

# start_gateway CONFIG NAME: starts the gateway on CONFIG in the background,
# logging to $TMP/gateway-NAME.log, and sets GW_PID. With PROFILE=1 it runs
# as `sgbench serve`, writing cpu-NAME.out and mutex-NAME.out in PROFILE_DIR.
start_gateway() {
	local cfg=$1 name=$2
	if [ "$PROFILE" = 1 ]; then
		mkdir -p "$PROFILE_DIR"
		"$SGBENCH" serve -config "$cfg" -log-level warn \
			-cpuprofile "$PROFILE_DIR/cpu-$name.out" -mutexprofile "$PROFILE_DIR/mutex-$name.out" \
			>"$TMP/gateway-$name.log" 2>&1 &
	else
		"bin/stagegate" serve -config "$cfg" >"$TMP/gateway-$name.log" 2>&1 &
	fi
	GW_PID=$!
}

wait_ready() { # base-url seconds
	local base=$1 secs=$2 i
	for ((i = 0; i < secs * 10; i++)); do
		if curl -fsS -m 2 "$base/readyz" >/dev/null 2>&1; then return 0; fi
		kill -0 "$GW_PID" 2>/dev/null || die "the gateway exited during start"
		sleep 0.1
	done
	die "the gateway was not ready within ${secs}s"
}

start_redis() {
	local port
	port=$("$SGBENCH" freeport)
	mkdir -p "$TMP/redis"
	# Persistence as recommended for the store: AOF, fsync every second. RDB
	# snapshots and automatic AOF rewrites are off so that no fork lands in one
	# measurement and not the other (both share this server).
	redis-server --port "$port" --bind 127.0.0.1 --dir "$TMP/redis" \
		--appendonly yes --appendfsync everysec --save '' --auto-aof-rewrite-percentage 0 \
		--daemonize no --logfile "$TMP/redis.log" &
	REDIS_PID=$!
	local i
	for ((i = 0; i < 100; i++)); do
		[ "$(redis-cli -p "$port" ping 2>/dev/null || true)" = PONG ] && { REDIS_PORT=$port; return 0; }
		kill -0 "$REDIS_PID" 2>/dev/null || die "redis-server exited during start"
		sleep 0.1
	done
	die "redis-server did not answer PING within 10s"
}

redis_compare() { # tag: redis-benchmark on the gateway's redis-server, gateway idle
	log "redis: redis-benchmark on the same server (-c $CLIENTS -P 1, $REDIS_REQUESTS requests per script, $1 the throughput run)"
	timeout 200 "$SGBENCH" redis-compare -redis "127.0.0.1:$REDIS_PORT" -clients "$CLIENTS" -pipeline 1 \
		-requests "$REDIS_REQUESTS" -tag "$1" -timeout 90s -store redis -out "$RESULTS"
}

bench_store() { # store
	local st=$1 port cfg base
	REDIS_PORT=""
	if [ "$st" = redis ]; then
		start_redis
		log "redis-server on 127.0.0.1:$REDIS_PORT (appendonly yes, appendfsync everysec)"
	fi
	port=$("$SGBENCH" freeport)
	cfg="$TMP/stagegate-$st.yaml"
	mkdir -p "$TMP/bolt"
	write_config "$st" "$port" "$cfg" "$REDIS_PORT"
	base="http://127.0.0.1:$port"
	export SGBENCH_API_TOKEN=$TOKEN SGBENCH_WEBHOOK_SECRET=$SECRET
	"bin/stagegate" check -config "$cfg" >&2
	start_gateway "$cfg" "$st"
	wait_ready "$base" 30
	log "$st: gateway pid $GW_PID on $base"

	if [ "$st" = bolt ]; then
		"$SGBENCH" fsync -dir "$TMP/bolt" -n 300 -store bolt -out "$RESULTS" >&2
	fi
	if command -v wrk >/dev/null 2>&1; then
		log "$st: wrk GET /healthz (-c $CLIENTS, 5 s): net/http's answer rate on this machine now"
		local rps
		rps=$(timeout 30 wrk -t 2 -c "$CLIENTS" -d 5s "$base/healthz" 2>/dev/null | awk '/^Requests\/sec:/ {print $2}' || true)
		if [ -n "$rps" ]; then
			printf '{"kind":"wrk","store":"","at":"%s","values":{"rps":%s,"clients":%s}}\n' \
				"$(date -u +%Y-%m-%dT%H:%M:%SZ)" "$rps" "$CLIENTS" >>"$RESULTS"
			log "$st: wrk: $rps requests/s"
		fi
	fi
	if [ "$st" = redis ]; then
		redis_compare before
	fi
	log "$st: HTTP ceiling ($CEILING_EVENTS webhooks with a wrong signature)"
	timeout 180 "$SGBENCH" throughput -ceiling -url "$base" -secret "$SECRET" \
		-events "$CEILING_EVENTS" -clients "$CLIENTS" -items "$ITEMS" -store "$st" -out "$RESULTS"
	log "$st: throughput ($EVENTS signed webhooks, $CLIENTS clients, $ITEMS items)"
	local redisflag=()
	[ -n "$REDIS_PORT" ] && redisflag=(-redis "127.0.0.1:$REDIS_PORT")
	[ -n "$REDIS_PORT" ] && redis-cli -p "$REDIS_PORT" CONFIG RESETSTAT >/dev/null
	local idflag=()
	[ "${RANDOM_IDS:-0}" = 1 ] && idflag=(-random-ids)
	timeout 300 "$SGBENCH" throughput -url "$base" -token "$TOKEN" -secret "$SECRET" \
		-events "$EVENTS" -clients "$CLIENTS" -items "$ITEMS" -max-time 60s -apply-timeout 60s \
		${redisflag[@]+"${redisflag[@]}"} ${idflag[@]+"${idflag[@]}"} -store "$st" -out "$RESULTS"
	if [ -n "$REDIS_PORT" ]; then
		# Where redis-server's time went during the throughput run (usec per call, calls).
		redis-cli -p "$REDIS_PORT" INFO commandstats | tr -d '\r' | grep '^cmdstat_' >"$TMP/commandstats-$st.txt" || true
		log "$st: redis commandstats of the throughput run:"
		cat "$TMP/commandstats-$st.txt" >&2
	fi
	if [ "$st" = redis ]; then
		redis_compare after
	fi
	if [ "$LOW_RATE" != 0 ]; then
		log "$st: latency at $LOW_RATE events/s for 5s (context)"
		timeout 120 "$SGBENCH" latency -url "$base" -token "$TOKEN" -rate "$LOW_RATE" -duration 5s \
			-items "$ITEMS" -variant low -store "$st" -out "$RESULTS"
	fi
	log "$st: latency ($RATE events/s for $LAT_DURATION, open loop, ?wait=5s)"
	timeout 150 "$SGBENCH" latency -url "$base" -token "$TOKEN" -rate "$RATE" -duration "$LAT_DURATION" \
		-items "$ITEMS" -sample "$LAT_SAMPLE" -store "$st" -out "$RESULTS"
	if [ "$HIGH_RATE" != 0 ]; then
		log "$st: latency ($HIGH_RATE events/s for $LAT_DURATION, open loop, ?wait=5s)"
		timeout 150 "$SGBENCH" latency -url "$base" -token "$TOKEN" -rate "$HIGH_RATE" -duration "$LAT_DURATION" \
			-items "$ITEMS" -sample "$LAT_SAMPLE" -variant high -store "$st" -out "$RESULTS"
	fi

	log "$st: stopping the gateway"
	stop_pid "$GW_PID" gateway 30
	GW_PID=""
	if [ "$PROFILE" = 1 ]; then
		log "$st: profiles in $PROFILE_DIR (go tool pprof -top bin/sgbench $PROFILE_DIR/cpu-$st.out)"
	fi

	if [ "$st" = redis ]; then
		stop_pid "$REDIS_PID" redis-server 10
		REDIS_PID=""
	fi
	rm -rf "$TMP/bolt"
}

if [ "$SKIP_CORE" != 1 ]; then
	for st in $STORES; do
		bench_store "$st"
	done
fi

# --- tracking and telephony beside nginx (same run, same machine) --------------------
# nginx answers the same routes with no work behind them (empty_gif, return 302,
# return 204); wrk drives both with the same load. Rows go to the report.
nginx_start() { # port
	local port=$1
	mkdir -p "$TMP/nginx/logs"
	cat >"$TMP/nginx/nginx.conf" <<NGX
# Written by scripts/bench.sh: the tracking and telephony answers, no work behind them.
worker_processes 1; daemon off; pid $TMP/nginx/nginx.pid; error_log $TMP/nginx.log;
events { worker_connections 1024; }
http { access_log off;
  client_body_temp_path $TMP/nginx/body; proxy_temp_path $TMP/nginx/proxy;
  fastcgi_temp_path $TMP/nginx/fastcgi; uwsgi_temp_path $TMP/nginx/uwsgi; scgi_temp_path $TMP/nginx/scgi;
  server { listen 127.0.0.1:$port;
    location /t/o/ { empty_gif; add_header Cache-Control no-store; }
    location /t/c/ { return 302 https://example.com/pricing; }
    location /in/ { return 204; } } }
NGX
	"$NGINX" -p "$TMP/nginx" -c "$TMP/nginx/nginx.conf" 2>>"$TMP/nginx.log" &
	NGINX_PID=$!
	local i
	for ((i = 0; i < 50; i++)); do
		curl -fsS -o /dev/null -m 1 "http://127.0.0.1:$port/in/x" -X POST 2>/dev/null && return 0
		kill -0 "$NGINX_PID" 2>/dev/null || die "nginx exited during start"
		sleep 0.1
	done
	die "nginx did not answer within 5s"
}

wrk_run() { # label url [lua] -> "rps p99ms non2xx" on stdout
	local label=$1 url=$2 lua=${3:-} out
	local args=(-t 2 -c "$CLIENTS" -d "$CH_DURATION" --latency)
	[ -n "$lua" ] && args+=(-s "$lua")
	out=$(WRK_THREADS=2 timeout 120 wrk "${args[@]}" "$url" 2>&1 || true)
	printf '%s\n' "$out" >"$TMP/wrk-$label.txt"
	printf '%s\n' "$out" | awk '
		function ms(v) { if (v ~ /us$/) return v / 1000; if (v ~ /ms$/) return v + 0; if (v ~ /m$/) return v * 60000; if (v ~ /s$/) return v * 1000; return v }
		/^Requests\/sec:/ { rps = $2 }
		/^ +99%/ { p99 = ms($2) }
		/Non-2xx or 3xx responses:/ { bad = $NF }
		END { printf "%s %s %s\n", rps == "" ? 0 : rps, p99 == "" ? 0 : p99, bad == "" ? 0 : bad }'
}

# paths_lua file: a wrk script sending GET to the paths of file in turn.
paths_lua() {
	cat <<LUA
local paths, i = {}, 0
function init(args)
  for line in io.lines("$1") do paths[#paths + 1] = line end
  i = math.random(#paths)
end
function request()
  i = i % #paths + 1
  return wrk.format("GET", paths[i])
end
LUA
}

write_channel_config() { # store port file [redis-port]
	local st=$1 port=$2 file=$3 rport=${4:-} storeyaml
	case "$st" in
	bolt) storeyaml="{driver: bolt, path: \"$TMP/bolt/stagegate.db\"}" ;;
	redis) storeyaml="{driver: redis, url: \"redis://127.0.0.1:$rport/0$REDIS_URL_QUERY\", prefix: sgchan}" ;;
	esac
	cat >"$file" <<YML
# Written by scripts/bench.sh for the tracking and telephony rows.
listen: 127.0.0.1:$port
public_url: http://127.0.0.1:$port
store: $storeyaml
api:
  tokens: ["\${SGBENCH_API_TOKEN}"]
log:
  level: warn
  format: json
pipelines:
  - id: bench
    stages:
      - id: new
      - id: engaged
        triggers:
          - {type: call.inbound, name: called}
connectors:
  - name: track
    type: tracking
    keys: ["sgbench-tracking-key-0123456789"]
    max_hits: $CH_MAX_HITS
    pending_hits: $CH_PENDING_HITS
  - name: tel
    type: telephony
    provider: twilio
    auth_token: "$TEL_TOKEN"
YML
}

# channel_rows store base: prepares CH_MESSAGES messages through the API, then wrk on
# the pixel, the click and signed telephony callbacks, each beside nginx's answer.
channel_rows() {
	local st=$1 base=$2 i item ans
	: >"$TMP/pixels.txt"
	: >"$TMP/clicks.txt"
	log "$st: preparing $CH_MESSAGES tracked messages through POST /api/v1/messages"
	for ((i = 0; i < CH_MESSAGES; i++)); do
		item=$(curl -fsS -m 5 -H "Authorization: Bearer $TOKEN" -H 'Content-Type: application/json' \
			-d "{\"pipeline\":\"bench\",\"responsible\":\"bench\",\"contact\":{\"email\":\"c$i@bench.test\"}}" \
			"$base/api/v1/items" | jq -r .id)
		ans=$(curl -fsS -m 5 -H "Authorization: Bearer $TOKEN" -H 'Content-Type: application/json' \
			-d "{\"item_id\":\"$item\",\"from\":\"bob@seller.test\",\"to\":\"c$i@bench.test\",\"subject\":\"Offer $i\",\"html\":\"<p>Hi <a href=\\\"https://example.com/pricing\\\">pricing</a>\"}" \
			"$base/api/v1/messages")
		jq -r .pixel_url <<<"$ans" | sed "s#^$base##" >>"$TMP/pixels.txt"
		jq -r '.links[0].click_url' <<<"$ans" | sed "s#^$base##" >>"$TMP/clicks.txt"
	done
	paths_lua "$TMP/pixels.txt" >"$TMP/pixels.lua"
	paths_lua "$TMP/clicks.txt" >"$TMP/clicks.lua"
	log "$st: signing $CH_CALLBACKS telephony callbacks for wrk"
	TELEPHONY_WRK_OUT="$TMP/tel.lua" TELEPHONY_WRK_URL="$base/in/tel" TELEPHONY_WRK_TOKEN="$TEL_TOKEN" \
		TELEPHONY_WRK_N="$CH_CALLBACKS" timeout 300 "$GO" test -count=1 -run TestWriteWrkScript ./connectors/telephony/ >&2

	local route nurl gurl lua g n
	for route in $CH_ROUTES; do
		case "$route" in
		pixel) nurl="http://127.0.0.1:$NGINX_PORT/t/o/x" gurl="$base/t/o/x" lua="$TMP/pixels.lua" ;;
		click) nurl="http://127.0.0.1:$NGINX_PORT/t/c/x" gurl="$base/t/c/x" lua="$TMP/clicks.lua" ;;
		telephony) nurl="http://127.0.0.1:$NGINX_PORT/in/tel" gurl="$base/in/tel" lua="$TMP/tel.lua" ;;
		esac
		# nginx right before the gateway, the same load: the ratio is of one moment.
		n=$(wrk_run "nginx-$route-$st" "$nurl" "$lua")
		g=$(wrk_run "$route-$st" "$gurl" "$lua")
		log "$st: $route: gateway (rps p99ms non-2xx) $g; nginx $n"
		printf '%s %s %s %s\n' "$st" "$route" "$g" "$n" >>"$TMP/channel-rows.txt"
	done
	curl -fsS -m 5 -H "Authorization: Bearer $TOKEN" "$base/api/v1/tracking/stats" >"$TMP/trackstats-$st.json" || true
	log "$st: tracking stats: $(cat "$TMP/trackstats-$st.json")"
}

bench_channels() { # store
	local st=$1 port cfg base
	REDIS_PORT=""
	if [ "$st" = redis ]; then
		start_redis
	fi
	port=$("$SGBENCH" freeport)
	cfg="$TMP/channels-$st.yaml"
	mkdir -p "$TMP/bolt"
	write_channel_config "$st" "$port" "$cfg" "$REDIS_PORT"
	base="http://127.0.0.1:$port"
	export SGBENCH_API_TOKEN=$TOKEN
	"bin/stagegate" check -config "$cfg" >&2
	start_gateway "$cfg" "channels-$st"
	wait_ready "$base" 30
	log "$st: channel gateway pid $GW_PID on $base"
	channel_rows "$st" "$base"
	stop_pid "$GW_PID" gateway 30
	GW_PID=""
	if [ "$PROFILE" = 1 ]; then
		log "$st: channel profiles in $PROFILE_DIR (go tool pprof -top bin/sgbench $PROFILE_DIR/cpu-channels-$st.out)"
	fi
	if [ "$st" = redis ]; then
		stop_pid "$REDIS_PID" redis-server 10
		REDIS_PID=""
	fi
	rm -rf "$TMP/bolt"
}

: >"$TMP/nginx.md"
if [ "$SKIP_NGINX" != 1 ]; then
	NGINX=$(command -v nginx || { [ -x /usr/sbin/nginx ] && echo /usr/sbin/nginx; } || true)
	if [ -z "$NGINX" ] || ! command -v wrk >/dev/null 2>&1 || ! command -v jq >/dev/null 2>&1; then
		log "nginx, wrk or jq not found: skipping the tracking/telephony vs nginx rows (as root: apt-get install -y nginx-light wrk jq)"
	else
		NGINX_PORT=$("$SGBENCH" freeport)
		nginx_start "$NGINX_PORT"
		log "nginx pid $NGINX_PID on 127.0.0.1:$NGINX_PORT (empty_gif, return 302, return 204)"
		: >"$TMP/channel-rows.txt"
		for st in $STORES; do
			bench_channels "$st"
		done
		stop_pid "$NGINX_PID" nginx 10
		NGINX_PID=""
		{
			echo
			echo "## Tracking and telephony vs nginx (same machine, same run)"
			echo
			echo "wrk -t2 -c$CLIENTS -d$CH_DURATION --latency on each route; nginx answers the same paths with no work"
			echo "(\`empty_gif\`, \`return 302\`, \`return 204\`), measured right before the gateway with the same wrk script."
			echo "Pixel and click rotate over $CH_MESSAGES messages prepared through \`POST /api/v1/messages\` (max_hits"
			echo "$CH_MAX_HITS: every hit is stored; pending_hits $CH_PENDING_HITS: up to that many answered before they are"
			echo "stored, 0 = each before its answer); telephony posts distinct signed Twilio callbacks"
			echo "(3 per call). Targets: pixel and click ≥ 0.5× nginx with p99 ≤ 5 ms; telephony ≥ 0.4× nginx."
			echo
			echo "| store | route | gateway/s | p99 ms | non-2xx/3xx | nginx/s | nginx p99 ms | ratio |"
			echo "|---|---|---:|---:|---:|---:|---:|---:|"
			awk '{ r = ($6 > 0) ? $3 / $6 : 0; printf "| %s | %s | %.0f | %.2f | %s | %.0f | %.2f | **%.2f×** |\n", $1, $2, $3, $4, $5, $6, $7, r }' "$TMP/channel-rows.txt"
		} >"$TMP/nginx.md"
	fi
fi

# --- report ---------------------------------------------------------------------------------
cat >"$TMP/footer.md" <<EOF
## How this was measured

- \`sgbench throughput\`: creates $ITEMS items (pipeline \`bench\`: \`new\` ⇄ \`engaged\`), each with its own
  contact email, then sends $EVENTS signed webhooks (\`POST /in/hooks\`, Standard Webhooks signature, each with a
  distinct \`webhook-id\`) from $CLIENTS keep-alive clients. Events of an item alternate between \`crm.bench\`
  (trigger on \`engaged\`) and \`crm.bench_back\` (\`allow_back\` trigger on \`new\`), so each applied event moves its
  item. **accepted/s** = 2xx answers / send window (a 2xx means the event is durable: bolt fsync'd by group
  commit, Redis executed the append script). **applied/s** = events / (first send → the gateway's
  \`stagegate_events_applied_total\` covers every accepted event), polled on \`/metrics\` every 20 ms.
- HTTP ceiling: the same requests signed with a wrong secret, answered 401 after the HMAC check, so no store work.
- \`sgbench latency\`: $RATE events/s open loop (request *j* is sent at start + *j*/rate whatever the earlier ones
  did) for $LAT_DURATION after 1 s of warm-up, each \`POST /api/v1/events?wait=5s\`; latency is from the scheduled
  send time to the 200 with \`applied: true\` (the engine notifies the waiting request in-process), so it covers
  HTTP, intake (durable write), log read, apply + move (another durable write), ack. A rate the machine cannot
  sustain end to end makes the ?wait requests pile up (each also polls the store, every 250 ms growing to 2 s, in case another instance applied it), so the context row
  at $LOW_RATE/s shows the latency floor without overload.
- CPU per event: the gateway's \`process_cpu_seconds_total\`, the load generator's rusage and redis-server's
  \`INFO cpu\`, over the throughput run, divided by the events. Less sensitive to other work on the machine than
  rates; the ratio of the gateway's CPU per event to its CPU per 401 answer is the most stable number here.
- \`sgbench redis-compare\`: \`redis-benchmark -c $CLIENTS -P 1 -n $REDIS_REQUESTS -r 100000000\` against the same
  redis-server, \`EVALSHA\` of (a) the store's own append script (SET NX PX + XADD + DEL + HSET + PEXPIRE) — the
  same work per event as the intake, in one round trip like the gateway's one EVALSHA — and (b) only SET NX PX +
  XADD, a stricter reference. Random dedup keys, event keys and ids; the payload is the JSON of a real webhook
  event. Run twice with the gateway idle, right before the HTTP ceiling and right after the throughput run; the
  higher rate of the two is the reference (the stricter one).
- Redis server: started by the script on a free loopback port, \`appendonly yes\`, \`appendfsync everysec\`, no RDB
  snapshots, automatic AOF rewrite off. Gateway Redis URL: \`redis://127.0.0.1:PORT/0$REDIS_URL_QUERY\`.
- bolt: the database file in a temp dir (filesystem above).
- Everything runs on the same $(nproc) cores: the load generator, the gateway and redis-server compete for CPU,
  which the ratios to same-run references partly cancel.
EOF

# --- channel connectors and actions: their own Go benchmarks, raw lines ---------------
if [ "${SKIP_CHANNELS:-0}" != 1 ]; then
	log "channel benchmarks: actions, tracking, telephony, imap (Dovecot), live chat idle memory and message → move latency"
	{
		echo
		echo "## Channel connectors and actions (same machine, same run)"
		echo
		echo "Raw output of each connector's own benchmarks; the README section of each connector says how to read"
		echo "them and how to run the comparisons that need nginx (tracking, telephony)."
		echo
		echo '```'
		echo "# actions: delivered/s and move→delivery latency, 64 workers, local target (bolt and Redis)"
		timeout 300 "$GO" test -p 1 -run '^$' -bench 'Action(Throughput|Latency)' -benchtime 2000x -timeout 280s ./actions/ 2>&1 |
			grep -E '^(Benchmark|FAIL|---)' || true
		echo "# tracking and telephony handlers (allocs per request; Redis rows use a real redis-server)"
		timeout 300 "$GO" test -p 1 -run '^$' -bench 'Pixel|Click|Twilio' -benchmem -benchtime 2s -timeout 280s \
			./connectors/tracking/ ./connectors/telephony/ 2>&1 | grep -E '^(Benchmark|FAIL|---)' || true
		if command -v dovecot >/dev/null 2>&1 || [ -x /usr/sbin/dovecot ]; then
			echo "# imap against a real Dovecot: IDLE delivery→event, 10,000-mail catch-up vs doveadm fetch, poll round trips"
			PATH="$PATH:/usr/sbin" timeout 600 "$GO" test -p 1 -run '^$' -bench Dovecot -benchtime 1x -timeout 580s ./connectors/imap/ 2>&1 |
				grep -E '^(Benchmark|FAIL|---)' || true
		else
			echo "# imap: dovecot not installed (apt-get install dovecot-imapd), skipped"
		fi
		echo "# live chat: memory per idle visitor connection vs a bare gorilla echo server, 10,000 connections"
		timeout 300 "$GO" run ./cmd/chatbench idle -n 10000 -sources 4 2>&1 | tail -n 5 || true
		echo "# live chat: visitor message → item moved at 1,000 msg/s over 1,000 connections, whole gateway (bolt, then Redis)"
		timeout 300 "$GO" run ./cmd/chatbench latency -conns 1000 -rate 1000 -duration 20s 2>&1 | tail -n 4 || true
		if [[ " $STORES " == *" redis "* ]]; then
			start_redis
			timeout 300 "$GO" run ./cmd/chatbench latency -conns 1000 -rate 1000 -duration 20s -store redis \
				-redis-url "redis://127.0.0.1:$REDIS_PORT/0" 2>&1 | tail -n 4 || true
			stop_pid "$REDIS_PID" redis-server 10
			REDIS_PID=""
		fi
		echo '```'
	} >"$TMP/channels.md"
else
	: >"$TMP/channels.md"
fi

echo "- Load average at end: $(cut -d' ' -f1-3 /proc/loadavg) (above ~$(nproc) the cores were oversubscribed: rates are depressed, CPU per event less so)" >>"$TMP/header.md"
"$SGBENCH" report -cores "$(nproc)" -in "$RESULTS" -gotest "$TMP/gotest.txt" -header "$TMP/header.md" -footer "$TMP/footer.md" >bench/RESULTS.md
cat "$TMP/nginx.md" "$TMP/channels.md" >>bench/RESULTS.md
log "wrote bench/RESULTS.md"
cat bench/RESULTS.md
