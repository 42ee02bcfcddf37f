#!/usr/bin/env bash
# Runs the benchmark scenarios against WaaS (`waas dev`), the Socket.IO peer and a 2-gateway WaaS
# cluster over NATS, each run on fresh server processes bound to 127.0.0.1, and prints the
# markdown tables with the ratios.
#
#   loadtest/run-benchmarks.sh                 # every scenario, single node, Socket.IO, cluster
#   SCENARIOS="10000:50" TARGETS="waas cluster" loadtest/run-benchmarks.sh
#
# Targets:
#   waas            `waas dev`: one process, in-process bus
#   socketio        the Socket.IO peer (loadtest/peers/socketio)
#   cluster         `waas control-plane` + gateways A and B (`waas gateway`) over a private
#                   nats-server, default settings (history on: publishes go through JetStream):
#                   the publisher on A, every subscriber on B, so each message crosses NATS
#                   (cross-node fan-out). CPU is A + B, NATS's reported apart.
#   cluster-spread  the same cluster, subscribers alternating between A and B
#   cluster-core    as cluster, gateways with `--history-size 0` (core NATS, no JetStream)
#
# Environment (defaults):
#   SCENARIOS   "SUBSCRIBERS:RATE ..." ("1000:20 10000:2 1000:200 10000:20 1000:500 10000:50":
#               20k, 200k and 500k deliveries/s offered, at 1k and 10k subscribers)
#   TARGETS     "waas socketio cluster cluster-spread cluster-core"
#   REPEAT      runs of every scenario and target, in passes over the whole set (1); `loadtest
#               table` then shows each one's median run and the spread
#   DURATION    seconds of publishing per run (10)
#   PAYLOAD     bytes of padding per message (100)
#   QUIET_BUSY  wait before each run until the box is less busy than this, in % of all cores (20)
#   QUIET_WAIT  ... but at most this many seconds (300)
#   MAX_OTHERS  rerun a run during which other processes used more than this % of a core (15)
#   RETRIES     ... at most this many times (3)
#   OUT         directory for the JSON reports and server logs (target/loadtest-results/DATE)
#   NO_BUILD=1  use the release binaries already built
# Cluster targets only:
#   NATS_URL     use this NATS instead of starting a private nats-server (its CPU is then not
#                measured unless NATS_PID names its process)
#   PG_URL       PostgreSQL server URL without a database (postgres://postgres@127.0.0.1:5432);
#                a scratch database waas_bench_<pid> is created there and dropped at the end
#
# Needs node and npm for the Socket.IO peer (`npm ci` runs in loadtest/peers/socketio if needed),
# nats-server, createdb/dropdb and curl for the cluster. Not part of CI.
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
SCENARIOS=${SCENARIOS:-"1000:20 10000:2 1000:200 10000:20 1000:500 10000:50"}
TARGETS=${TARGETS:-"waas socketio cluster cluster-spread cluster-core"}
REPEAT=${REPEAT:-1}
DURATION=${DURATION:-10}
PAYLOAD=${PAYLOAD:-100}
QUIET_BUSY=${QUIET_BUSY:-20}
QUIET_WAIT=${QUIET_WAIT:-300}
MAX_OTHERS=${MAX_OTHERS:-15}
RETRIES=${RETRIES:-3}
PG_URL=${PG_URL:-postgres://postgres@127.0.0.1:5432}
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

# Processes of one run (servers), and of the whole script (NATS, control-plane).
RUN_PIDS=()
INFRA_PIDS=()
BENCH_DB=
stop_pids() {
    local pid
    for pid in "$@"; do
        kill "$pid" 2>/dev/null || true
    done
    for pid in "$@"; do
        wait "$pid" 2>/dev/null || true
    done
}
stop_run() {
    stop_pids "${RUN_PIDS[@]}"
    RUN_PIDS=()
}
cleanup() {
    stop_run
    stop_pids "${INFRA_PIDS[@]}"
    if [ -n "$BENCH_DB" ]; then
        dropdb --if-exists --maintenance-db "$PG_URL/postgres" "$BENCH_DB" || true
    fi
}
trap cleanup EXIT

. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

# spawn LOG CMD...: starts CMD in the background, logging to LOG; sets SPAWNED to its pid.
spawn() {
    local log=$1
    shift
    : >"$log"
    "$@" >"$log" 2>&1 &
    SPAWNED=$!
}

# The cluster's shared parts, started by the first cluster run: NATS, a scratch database, the
# control-plane and an app. Sets NATS, NATS_PID, APP_KEY, PREFIX.
CLUSTER_UP=
start_cluster_infra() {
    [ -n "$CLUSTER_UP" ] && return 0
    PREFIX=bench$$
    if [ -n "${NATS_URL:-}" ]; then
        NATS=$NATS_URL
    else
        mkdir -p "$OUT/nats-store"
        spawn "$OUT/nats.log" nats-server -a 127.0.0.1 -p -1 -js -sd "$OUT/nats-store"
        INFRA_PIDS+=("$SPAWNED")
        NATS_PID=$SPAWNED
        NATS=nats://$(wait_for "$OUT/nats.log" \
            's/.*Listening for client connections on \([0-9.:]*\).*/\1/p' nats-server)
    fi
    BENCH_DB=waas_bench_$$
    createdb --maintenance-db "$PG_URL/postgres" "$BENCH_DB"
    local token cp
    token=bench-operator-$$-$RANDOM
    spawn "$OUT/control-plane.log" "$WAAS" control-plane --listen 127.0.0.1:0 --nats "$NATS" \
        --database-url "$PG_URL/$BENCH_DB" --operator-token "$token" --subject-prefix "$PREFIX"
    INFRA_PIDS+=("$SPAWNED")
    cp=$(wait_for "$OUT/control-plane.log" 's/^listening on //p' control-plane)
    # Through the admin API (POST /v1/admin/tenants, POST /v1/admin/apps).
    "$WAAS" app create --control-plane "http://$cp" --operator-token "$token" \
        --tenant bench --id bench >"$OUT/app.json"
    APP_KEY=$(sed -n 's/.*"api_key":"\([^"]*\)".*/\1/p' "$OUT/app.json")
    [ -n "$APP_KEY" ] || { echo "no api_key in $(cat "$OUT/app.json")" >&2; exit 1; }
    CLUSTER_UP=1
}

# start_gateway LOG [ARGS...]: one more gateway of the cluster; appends its pid to SERVER_PIDS
# and its address to GATEWAYS once it is ready (connected to NATS).
start_gateway() {
    local log=$1 addr
    shift
    # No per-app connection cap (10k subscribers + the publisher), no publish rate limit.
    spawn "$log" env WAAS_MAX_CONNECTIONS_PER_APP=0 WAAS_MAX_CONNECTIONS_PER_ADDRESS=0 WAAS_PUBLISH_RATE=0 \
        "$WAAS" gateway --listen 127.0.0.1:0 --nats "$NATS" --subject-prefix "$PREFIX" "$@"
    RUN_PIDS+=("$SPAWNED")
    SERVER_PIDS+=("$SPAWNED")
    addr=$(wait_for "$log" 's/^listening on //p' gateway)
    for _ in $(seq 100); do
        curl -sf "http://$addr/readyz" >/dev/null && break
        sleep 0.1
    done
    GATEWAYS+=("$addr")
}

# start_target TARGET NAME: fresh server processes for one run. Sets LOADTEST_ARGS (target,
# addresses, pids, app) for the load client.
start_target() {
    local target=$1 name=$2 addr
    SERVER_PIDS=()
    GATEWAYS=()
    case $target in
    waas)
        # Apps kept in memory rather than in .waas/dev.db.
        spawn "$OUT/$name.server.log" env WAAS_MAX_CONNECTIONS_PER_APP=0 WAAS_MAX_CONNECTIONS_PER_ADDRESS=0 WAAS_PUBLISH_RATE=0 \
            WAAS_STORE=:memory: "$WAAS" dev --listen 127.0.0.1:0
        RUN_PIDS+=("$SPAWNED")
        addr=$(wait_for "$OUT/$name.server.log" 's/^listening on //p' "waas dev")
        LOADTEST_ARGS=(--target waas --addr "$addr" --server-pid "$SPAWNED")
        ;;
    socketio)
        spawn "$OUT/$name.server.log" node loadtest/peers/socketio/server.js 0
        RUN_PIDS+=("$SPAWNED")
        addr=$(wait_for "$OUT/$name.server.log" 's/^listening on //p' "Socket.IO peer")
        LOADTEST_ARGS=(--target socketio --addr "$addr" --server-pid "$SPAWNED")
        ;;
    cluster | cluster-spread | cluster-core)
        start_cluster_infra
        local gateway_args=() subscribers_on label
        [ "$target" = cluster-core ] && gateway_args=(--history-size 0)
        start_gateway "$OUT/$name.gateway-a.log" "${gateway_args[@]}"
        start_gateway "$OUT/$name.gateway-b.log" "${gateway_args[@]}"
        case $target in
        cluster)
            subscribers_on=${GATEWAYS[1]}
            label="cluster, pub A → subs B"
            ;;
        cluster-spread)
            subscribers_on=${GATEWAYS[0]},${GATEWAYS[1]}
            label="cluster, pub A → subs A+B"
            ;;
        cluster-core)
            subscribers_on=${GATEWAYS[1]}
            label="cluster, no history, pub A → subs B"
            ;;
        esac
        LOADTEST_ARGS=(--target waas --app bench --api-key "$APP_KEY" --label "$label"
            --addr "$subscribers_on" --publish-addr "${GATEWAYS[0]}"
            --server-pid "$(IFS=,; echo "${SERVER_PIDS[*]}")")
        if [ -n "${NATS_PID:-}" ]; then
            LOADTEST_ARGS+=(--bus-pid "$NATS_PID")
        fi
        ;;
    *)
        echo "unknown target $target" >&2
        exit 2
        ;;
    esac
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
for pass in $(seq "$REPEAT"); do
    for scenario in $SCENARIOS; do
        subs=${scenario%%:*}
        rate=${scenario##*:}
        for target in $TARGETS; do
            name=$target-$subs-$rate
            [ "$REPEAT" -gt 1 ] && name=$name.$pass
            for try in $(seq 0 "$RETRIES"); do
                start_target "$target" "$name"
                wait_quiet
                echo "== $target: $subs subscribers, $rate msg/s, $DURATION s, $PAYLOAD B (${LOADTEST_ARGS[*]})" >&2
                "$LOADTEST" "${LOADTEST_ARGS[@]}" \
                    --subscribers "$subs" --rate "$rate" --duration "$DURATION" --payload "$PAYLOAD" \
                    --json "$OUT/$name.json" >&2
                stop_run
                others=$(sed -n 's/^ *"others_cpu_percent": \([0-9]*\).*/\1/p' "$OUT/$name.json")
                [ "${others:-0}" -le "$MAX_OTHERS" ] && break
                echo "other processes took ${others}% of a core during the run" \
                    "$([ "$try" -lt "$RETRIES" ] && echo "; running it again" || echo "; keeping it")" >&2
            done
            REPORTS+=("$OUT/$name.json")
        done
    done
done

echo
echo "Commit $(git describe --always --dirty 2>/dev/null || echo unknown); reports in $OUT"
echo
"$LOADTEST" table "${REPORTS[@]}"
