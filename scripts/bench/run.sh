#!/usr/bin/env bash
# Side-by-side load benchmark of the canvas_scopes gate (issue 7).
#
#   scripts/bench/run.sh           # full run: 5 interleaved rounds × 10 s (~7 min)
#   scripts/bench/run.sh --quick   # smoke check: 1 round × 3 s (~1-2 min)
#
# One Caddy process serves seven sites on seven 127.0.0.1 ports in front of
# one upstream (a ~2 KB Canvas-like JSON page):
#   A plain reverse_proxy of B's GET     B gate, 25-scope key
#   C gate, all 1,311 catalogue scopes D gate, include filter on a JSON POST body
#   E gate, credential substitution   F forward_auth to an authz service (our matcher)
#   P plain reverse_proxy of D's POST (reference for D)
# A and P send exactly the requests B and D send (same Authorization
# header), so each ratio compares the same bytes with and without the gate.
# Rounds are interleaved (A B C D E F P, repeated); the table reports the
# median of each. Then a reload test: wrk on B while the keys file (1,000
# keys, 100,000 tokens) is atomically replaced several times.
#
# Environment: ROUNDS, DURATION (wrk -d), WARMUP, THREADS, CONNS, RELOAD_SECS,
# RELOADS; WORKDIR keeps the run's files (default: a temp dir, removed).
# Load goes to 127.0.0.1 only; every wrk run is bounded by -d.
set -euo pipefail

ROOT=$(cd "$(dirname "$0")/../.." && pwd)
QUICK=0
for a in "$@"; do
	case "$a" in
	--quick) QUICK=1 ;;
	-h | --help) sed -n 2,20p "$0"; exit 0 ;;
	*) echo "unknown argument: $a" >&2; exit 2 ;;
	esac
done
if [ "$QUICK" = 1 ]; then
	: "${ROUNDS:=1}" "${DURATION:=3}" "${WARMUP:=1}" "${RELOAD_SECS:=8}" "${RELOADS:=2}"
else
	: "${ROUNDS:=5}" "${DURATION:=10}" "${WARMUP:=3}" "${RELOAD_SECS:=20}" "${RELOADS:=6}"
fi
: "${THREADS:=2}" "${CONNS:=32}"

if ! command -v wrk >/dev/null 2>&1; then
	echo "== installing wrk from Debian's packages"
	SUDO=""
	[ "$(id -u)" = 0 ] || SUDO=sudo
	$SUDO apt-get update
	$SUDO apt-get install -y wrk
fi

KEEP=1
if [ -z "${WORKDIR:-}" ]; then
	WORKDIR=$(mktemp -d /tmp/canvas-scopes-bench.XXXXXX)
	KEEP=0
fi
mkdir -p "$WORKDIR/results" "$WORKDIR/bin"
rm -f "$WORKDIR"/results/*.txt
PIDS=()
cleanup() {
	for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done
	wait 2>/dev/null || true
	[ "$KEEP" = 1 ] || rm -rf "$WORKDIR"
}
trap cleanup EXIT

echo "== building (caddy with the module, upstream, authz, tool)"
(cd "$ROOT" && go build -o "$WORKDIR/bin/caddy" ./cmd/caddy &&
	go build -o "$WORKDIR/bin/upstream" ./scripts/bench/upstream &&
	go build -o "$WORKDIR/bin/authz" ./scripts/bench/authz &&
	go build -o "$WORKDIR/bin/tool" ./scripts/bench/tool)
BIN=$WORKDIR/bin

"$BIN/tool" keys -dir "$WORKDIR" -out keys.json
read -r P_UP P_AUTHZ P_ADMIN P_A P_B P_C P_D P_E P_F P_P <<<"$("$BIN/tool" ports 10 | tr '\n' ' ')"
BENCH_CANVAS_TOKEN=$(cat "$WORKDIR/canvas-token")
export BENCH_CANVAS_TOKEN
TOK_B=$(cat "$WORKDIR/token-25")
TOK_C=$(cat "$WORKDIR/token-all")
TOK_E=$(cat "$WORKDIR/token-substitute")

gate() {
	cat <<EOT
	canvas_scopes {
		keys_file $WORKDIR/keys.json
		reload_interval 1s
	}
EOT
}
cat >"$WORKDIR/Caddyfile" <<EOT
{
	admin 127.0.0.1:$P_ADMIN
	skip_install_trust
	persist_config off
	auto_https off
}
http://:$P_A {
	bind 127.0.0.1
	reverse_proxy 127.0.0.1:$P_UP
}
http://:$P_B {
	bind 127.0.0.1
$(gate)
	reverse_proxy 127.0.0.1:$P_UP
}
http://:$P_C {
	bind 127.0.0.1
$(gate)
	reverse_proxy 127.0.0.1:$P_UP
}
http://:$P_D {
	bind 127.0.0.1
$(gate)
	reverse_proxy 127.0.0.1:$P_UP
}
http://:$P_E {
	bind 127.0.0.1
$(gate)
	reverse_proxy 127.0.0.1:$P_UP
}
http://:$P_F {
	bind 127.0.0.1
	forward_auth 127.0.0.1:$P_AUTHZ {
		uri /authz
	}
	reverse_proxy 127.0.0.1:$P_UP
}
http://:$P_P {
	bind 127.0.0.1
	reverse_proxy 127.0.0.1:$P_UP
}
EOT

"$BIN/upstream" -listen "127.0.0.1:$P_UP" >"$WORKDIR/upstream.log" 2>&1 &
UP_PID=$!
PIDS+=($UP_PID)
"$BIN/authz" -listen "127.0.0.1:$P_AUTHZ" -keys "$WORKDIR/keys.json" >"$WORKDIR/authz.log" 2>&1 &
AUTHZ_PID=$!
PIDS+=($AUTHZ_PID)
HOME=$WORKDIR XDG_DATA_HOME=$WORKDIR XDG_CONFIG_HOME=$WORKDIR \
	"$BIN/caddy" run --config "$WORKDIR/Caddyfile" --adapter caddyfile >"$WORKDIR/caddy.log" 2>&1 &
CADDY_PID=$!
PIDS+=($CADDY_PID)

for _ in $(seq 100); do
	curl -fs -o /dev/null "http://127.0.0.1:$P_A/" 2>/dev/null && break
	sleep 0.1
done

GET_PATH="/api/v1/courses/12345/assignments?per_page=5"
POST_PATH="/api/v1/courses/12345/assignments"
POST_BODY='{"assignment":{"name":"Lab report","points_possible":10,"submission_types":["online_upload"]},"include":["submission","overrides"]}'

# id port token method
scenario() {
	case "$1" in
	A) echo "$P_A $TOK_B" ;; # the request B sends, without the gate
	B) echo "$P_B $TOK_B" ;;
	C) echo "$P_C $TOK_C" ;;
	D) echo "$P_D $TOK_B POST" ;;
	E) echo "$P_E $TOK_E" ;;
	F) echo "$P_F $TOK_B" ;;
	P) echo "$P_P $TOK_B POST" ;; # the request D sends, without the gate
	esac
}

# check ID EXPECT_HEADER: one request through the scenario; prints status
# and the upstream's verification headers (never a token).
check() {
	local id=$1 port tok method args
	read -r port tok method < <(scenario "$id")
	args=(-s -o /dev/null -D - --max-time 5 -H "X-Bench-Check: 1")
	[ "$tok" = "-" ] || args+=(-H "Authorization: Bearer $tok")
	if [ "${method:-}" = POST ]; then
		args+=(-X POST -H "Content-Type: application/json" --data "$POST_BODY" "http://127.0.0.1:$port$POST_PATH")
	else
		args+=("http://127.0.0.1:$port$GET_PATH")
	fi
	curl "${args[@]}" | tr -d '\r' | awk -v id="$id" '
		NR==1 {status=$2}
		tolower($1)=="x-bench-substituted:" {sub_=$2}
		tolower($1)=="x-bench-body-includes:" {inc=$2}
		tolower($1)=="content-length:" {len=$2}
		END {printf "  %s: HTTP %s, %s bytes, upstream saw substituted token: %s%s\n", id, status, len, sub_, (inc=="" ? "" : ", include values left in the JSON body: " inc)}'
}

echo "== correctness checks (one request each)"
for id in A B C D E F P; do check "$id"; done
# A denial through the gate and through forward_auth, to show both decide.
for port in $P_B $P_F; do
	printf '  deny check on :%s (GET outside the scopes): HTTP %s\n' "$port" \
		"$(curl -s -o /dev/null -w '%{http_code}' --max-time 5 -H "Authorization: Bearer $TOK_B" "http://127.0.0.1:$port/api/v1/accounts/1/users")"
done

# run ID SECONDS OUT
run_wrk() {
	local id=$1 secs=$2 out=$3 port tok method
	read -r port tok method < <(scenario "$id")
	local args=(-t"$THREADS" -c"$CONNS" -d"${secs}s" --timeout 5s -s "$ROOT/scripts/bench/bench.lua")
	[ "$tok" = "-" ] || args+=(-H "Authorization: Bearer $tok")
	local target="http://127.0.0.1:$port$GET_PATH"
	if [ "${method:-}" = POST ]; then
		target="http://127.0.0.1:$port$POST_PATH"
		BENCH_METHOD=POST BENCH_BODY=$POST_BODY wrk "${args[@]}" "$target" >"$out" 2>&1
	else
		BENCH_METHOD=GET BENCH_BODY= wrk "${args[@]}" "$target" >"$out" 2>&1
	fi
}

CPU=$(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2- | sed 's/^ *//')
echo "== machine: $CPU, $(nproc) cores, $(awk '/MemTotal/ {printf "%.0f GiB", $2/1048576}' /proc/meminfo), $(uname -sr), $(go version | awk '{print $3}'), load average at start: $(cut -d' ' -f1-3 /proc/loadavg)"
echo "   wrk -t$THREADS -c$CONNS, Caddy, the upstream and the authz service all share these $(nproc) cores (nothing pinned)."
echo "== warm-up (${WARMUP}s per scenario)"
for id in A B C D E F P; do run_wrk "$id" "$WARMUP" "$WORKDIR/warmup.$id.txt"; done
echo "== $ROUNDS interleaved rounds of ${DURATION}s per scenario"
# CPU time (user+sys, clock ticks) a process has used so far.
ticks() { awk '{print $14 + $15}' "/proc/$1/stat"; }
for r in $(seq "$ROUNDS"); do
	for id in A B C D E F P; do
		c0=$(ticks $CADDY_PID) z0=$(ticks $AUTHZ_PID) u0=$(ticks $UP_PID)
		run_wrk "$id" "$DURATION" "$WORKDIR/results/$id.$r.txt"
		# CPU each server spent on this run, for the per-request CPU view.
		echo "CPU hz=$(getconf CLK_TCK) caddy=$(($(ticks $CADDY_PID) - c0)) authz=$(($(ticks $AUTHZ_PID) - z0)) upstream=$(($(ticks $UP_PID) - u0))" \
			>"$WORKDIR/results/$id.$r.cpu"
	done
	echo "   round $r done"
done
echo "   load average at end: $(cut -d' ' -f1-3 /proc/loadavg)"
echo
"$BIN/tool" report -dir "$WORKDIR"

echo
echo "== the gate's share of Caddy's CPU under load (pprof from the admin API while wrk runs B)"
run_wrk B 20 "$WORKDIR/profile-wrk.txt" &
WRK=$!
sleep 4
curl -s -o "$WORKDIR/gate.prof" "http://127.0.0.1:$P_ADMIN/debug/pprof/profile?seconds=12"
wait $WRK
# cum of a function in seconds, from pprof's -top -cum table
cum() { go tool pprof -top -cum -nodecount=400 "$BIN/caddy" "$WORKDIR/gate.prof" 2>/dev/null |
	awk -v f="$1" 'index($6, f) == 1 { v = $4; sub(/s$/, "", v); if (v ~ /m$/) { sub(/m$/, "", v); v /= 1000 } print v; exit }'; }
total=$(go tool pprof -top -nodecount=1 "$BIN/caddy" "$WORKDIR/gate.prof" 2>/dev/null | awk '/Total samples/ { v = $6; sub(/s$/, "", v); if (v ~ /m$/) { sub(/m$/, "", v); v /= 1000 } print v }')
gate=$(cum 'github.com/caddy-canvas-scopes/caddy-canvas-scopes/caddymodule.(*Handler).ServeHTTP')
proxy=$(cum 'github.com/caddyserver/caddy/v2/modules/caddyhttp/reverseproxy.(*Handler).ServeHTTP')
reqs=$(awk '/^RESULT/ { for (i = 2; i <= NF; i++) { split($i, kv, "="); if (kv[1] == "requests") print kv[2] } }' "$WORKDIR/profile-wrk.txt")
awk -v t="$total" -v g="$gate" -v p="$proxy" -v n="$reqs" 'BEGIN {
	if (t == "" || g == "" || p == "" || t == 0) { print "   (profile could not be read)"; exit }
	own = g - p
	printf "   profile: %.2f s of CPU samples over 12 s; gate ServeHTTP cum %.2f s, reverse_proxy within it %.2f s\n", t, g, p
	printf "   the gate'"'"'s own frames (and Caddy'"'"'s call into the next handler): %.2f s = %.1f %% of Caddy'"'"'s CPU", own, 100 * own / t
	if (n > 0) printf ", about %.1f µs per request (%d requests in 20 s of wrk, 12 s profiled)", own / (n * 12 / 20) * 1e6, n
	printf "\n"
}'

echo
echo "== scale: reload of a 1,000-key / 100,000-token keys file under load"
rss() { awk -v f="$2" '$1==f":" {printf "%.1f MiB", $2/1024}' "/proc/$1/status"; }
echo "   caddy RSS with the small keys file: $(rss $CADDY_PID VmRSS)"
"$BIN/tool" keys -dir "$WORKDIR" -out scale1.json -scale-seed 1 | sed 's/^/   /'
"$BIN/tool" keys -dir "$WORKDIR" -out scale2.json -scale-seed 2 | sed 's/^/   /'
loaded() { grep -c '"keys file loaded"' "$WORKDIR/caddy.log" || true; }
before=$(loaded)
"$BIN/tool" rewrite -dst "$WORKDIR/keys.json" -n 1 -delay 0s "$WORKDIR/scale1.json" >/dev/null
t0=$(date +%s.%N)
for _ in $(seq 200); do
	[ "$(loaded)" -gt "$before" ] && break
	sleep 0.05
done
t1=$(date +%s.%N)
echo "   first load of the scale file seen in the log after $(awk -v a="$t0" -v b="$t1" 'BEGIN {printf "%.2f", b - a}') s (polling every 1 s; includes up to 1 s of waiting for the poll)"
grep '"keys file loaded"' "$WORKDIR/caddy.log" | tail -1 | grep -o '"developer_keys":[0-9]*,"tokens":[0-9]*,"load_time":[0-9.]*' | sed 's/^/   caddy: /; s/$/ s (read, parse, validate, compile)/'
echo "   caddy RSS after loading it: $(rss $CADDY_PID VmRSS) (peak so far, VmHWM: $(rss $CADDY_PID VmHWM))"
before=$(loaded)
"$BIN/tool" rewrite -dst "$WORKDIR/keys.json" -n "$RELOADS" -every "$(((RELOAD_SECS - 2) / RELOADS))s" -delay 1s \
	"$WORKDIR/scale2.json" "$WORKDIR/scale1.json" >"$WORKDIR/rewrite.log" &
RW=$!
run_wrk B "$RELOAD_SECS" "$WORKDIR/reload.txt"
wait $RW
sleep 2
after=$(loaded)
awk '/^RESULT/ {
	for (i = 2; i <= NF; i++) { split($i, kv, "="); v[kv[1]] = kv[2] }
	printf "   wrk on B for %d s: %d requests, %.0f RPS, p50 %d µs, p99 %d µs, non-2xx %d, socket errors %d\n",
		v["duration_us"]/1e6, v["requests"], v["requests"]/(v["duration_us"]/1e6), v["p50_us"], v["p99_us"], v["non2xx"], v["connect"]+v["read"]+v["write"]+v["timeout"]
}' "$WORKDIR/reload.txt"
echo "   keys file replaced $RELOADS times (atomic rename); reloads logged by caddy meanwhile: $((after - before)); reload errors logged: $(grep -c 'reload failed' "$WORKDIR/caddy.log" || true)"
echo "   caddy RSS at the end: $(rss $CADDY_PID VmRSS) (VmHWM: $(rss $CADDY_PID VmHWM))"
[ "$KEEP" = 1 ] && echo "== files kept in $WORKDIR"
exit 0
