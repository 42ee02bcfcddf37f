#!/usr/bin/env bash
# Runs the benchmark scenarios against WaaS (`waas dev`) and the Socket.IO peer, each run on a
# fresh server process bound to 127.0.0.1, and prints one markdown table with the ratios.
#
#   loadtest/run-benchmarks.sh                 # 1k and 10k subscribers, two loads, both targets
#   SCENARIOS="10000:20" TARGETS=waas loadtest/run-benchmarks.sh
#
# Environment (defaults):
#   SCENARIOS   "SUBSCRIBERS:RATE ..." ("1000:20 10000:2 1000:200 10000:20": 20k and 200k
#               deliveries/s at 1k and 10k subscribers)
#   TARGETS     "waas socketio"
#   DURATION    seconds of publishing per run (10)
#   PAYLOAD     bytes of padding per message (100)
#   QUIET_BUSY  wait before each run until the box is less busy than this, in % of all cores (20)
#   QUIET_WAIT  ... but at most this many seconds (300)
#   MAX_OTHERS  rerun a run during which other processes used more than this % of a core (15)
#   RETRIES     ... at most this many times (3)
#   OUT         directory for the JSON reports and server logs (target/loadtest-results/DATE)
#   NO_BUILD=1  use the release binaries already built
#
# Needs node and npm for the Socket.IO peer (`npm ci` runs in loadtest/peers/socketio if needed).
# Not part of CI.
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
SCENARIOS=${SCENARIOS:-"1000:20 10000:2 1000:200 10000:20"}
TARGETS=${TARGETS:-"waas socketio"}
DURATION=${DURATION:-10}
PAYLOAD=${PAYLOAD:-100}
QUIET_BUSY=${QUIET_BUSY:-20}
QUIET_WAIT=${QUIET_WAIT:-300}
MAX_OTHERS=${MAX_OTHERS:-15}
RETRIES=${RETRIES:-3}
TARGET_DIR=${CARGO_TARGET_DIR:-$ROOT/target}
OUT=${OUT:-$TARGET_DIR/loadtest-results/$(date +%Y%m%d-%H%M%S)}
mkdir -p "$OUT"

# 10k subscribers need 10k descriptors on each side.
ulimit -n 65536 2>/dev/null || ulimit -n "$(ulimit -Hn)"

if [ -z "${NO_BUILD:-}" ]; then
    cargo build --release -p waas -p loadtest
fi
LOADTEST=$TARGET_DIR/release/loadtest
WAAS=$TARGET_DIR/release/waas
if [[ " $TARGETS " == *" socketio "* && ! -d loadtest/peers/socketio/node_modules ]]; then
    (cd loadtest/peers/socketio && npm ci --no-audit --no-fund)
fi

SERVER_PID=
stop_server() {
    if [ -n "$SERVER_PID" ]; then
        kill "$SERVER_PID" 2>/dev/null || true
        wait "$SERVER_PID" 2>/dev/null || true
        SERVER_PID=
    fi
}
trap stop_server EXIT

# start_server TARGET LOG: starts a fresh server, sets SERVER_PID and ADDR.
start_server() {
    local target=$1 log=$2
    : >"$log"
    case $target in
    waas)
        # No per-app connection cap (10k subscribers + the publisher), no publish rate limit,
        # apps kept in memory rather than in .waas/dev.db.
        WAAS_MAX_CONNECTIONS_PER_APP=0 WAAS_PUBLISH_RATE=0 WAAS_STORE=:memory: \
            "$WAAS" dev --listen 127.0.0.1:0 >"$log" 2>&1 &
        ;;
    socketio)
        node loadtest/peers/socketio/server.js 0 >"$log" 2>&1 &
        ;;
    *)
        echo "unknown target $target" >&2
        exit 2
        ;;
    esac
    SERVER_PID=$!
    ADDR=
    for _ in $(seq 100); do
        ADDR=$(sed -n 's/^listening on //p' "$log" || true)
        [ -n "$ADDR" ] && return 0
        sleep 0.1
    done
    echo "$target did not start:" >&2
    cat "$log" >&2
    exit 1
}

# Percent of all cores busy over one second, from /proc/stat.
busy_percent() {
    local a b
    a=$(head -1 /proc/stat)
    sleep 1
    b=$(head -1 /proc/stat)
    awk -v a="$a" -v b="$b" 'BEGIN {
        n = split(a, x); split(b, y); total = 0
        for (i = 2; i <= n; i++) total += y[i] - x[i]
        idle = (y[5] - x[5]) + (y[6] - x[6])
        printf "%d", (total > 0 ? 100 * (total - idle) / total : 0) }'
}

# Others compile on this box: wait (bounded) for it to calm down before measuring.
wait_quiet() {
    local waited=0 busy
    while busy=$(busy_percent); [ "$busy" -gt "$QUIET_BUSY" ]; do
        if [ "$waited" -ge "$QUIET_WAIT" ]; then
            echo "warning: box still ${busy}% busy after ${QUIET_WAIT}s; measuring anyway" >&2
            return
        fi
        waited=$((waited + 1))
    done
}

REPORTS=()
for scenario in $SCENARIOS; do
    subs=${scenario%%:*}
    rate=${scenario##*:}
    for target in $TARGETS; do
        name=$target-$subs-$rate
        for try in $(seq 0 "$RETRIES"); do
            start_server "$target" "$OUT/$name.server.log"
            wait_quiet
            echo "== $target: $subs subscribers, $rate msg/s, $DURATION s, $PAYLOAD B (server $ADDR, pid $SERVER_PID)" >&2
            "$LOADTEST" --target "$target" --addr "$ADDR" --server-pid "$SERVER_PID" \
                --subscribers "$subs" --rate "$rate" --duration "$DURATION" --payload "$PAYLOAD" \
                --json "$OUT/$name.json" >&2
            stop_server
            others=$(sed -n 's/^ *"others_cpu_percent": \([0-9]*\).*/\1/p' "$OUT/$name.json")
            [ "${others:-0}" -le "$MAX_OTHERS" ] && break
            echo "other processes took ${others}% of a core during the run" \
                "$([ "$try" -lt "$RETRIES" ] && echo "; running it again" || echo "; keeping it")" >&2
        done
        REPORTS+=("$OUT/$name.json")
    done
done

echo
echo "Commit $(git rev-parse --short HEAD 2>/dev/null || cat COMMIT 2>/dev/null || echo unknown); reports in $OUT"
echo
"$LOADTEST" table "${REPORTS[@]}"
