#!/usr/bin/env bash
# Two regions, 40 ms round trip apart (docs/regions.md, issue 14's benchmark): publish→deliver
# latency for subscribers in the publisher's region and in the other one, the same in-region
# figure with one region only, and the connect time of the Rust SDK's `nearest` option.
#
#   sudo loadtest/regions-bench.sh                  # builds release binaries first
#   NO_BUILD=1 RTT_MS=40 DURATION=10 sudo -E loadtest/regions-bench.sh
#
# Set-ups, one after the other, each on fresh processes:
#   one region   region A alone: a nats-server (JetStream, no cluster, no gateway block), the
#                control-plane (the machine's PostgreSQL, a scratch database), `waas gateway
#                --region a`, all on 127.0.0.1 of this namespace.
#   two regions  region A as above but its nats-server in a one-server cluster with a `gateway {}`
#                connection to region B (a NATS supercluster, configs as waas/tests/regions.rs);
#                region B a network namespace of its own (`ip netns`) with its own nats-server
#                (JetStream) and `waas gateway --region b`. The two are joined by
#                loadtest/wan-link.py, which delays every packet RTT_MS / 2 each way; the
#                control-plane and PostgreSQL stay in A. A's gateway listens on A's end of the
#                link, so that clients in B can reach it (across the link).
# In each, two apps: `hist` (history_size 1000: publishes go through its JetStream stream, made
# in A by a first publish through A) and `live` (history_size 0: core NATS only).
#
# Measured, with `loadtest` (publisher on A's gateway over WebSocket, SUBSCRIBERS subscribers
# on one channel, RATE msg/s for DURATION s; one process, one clock):
#   - subscribers on A's gateway (in-region), in both set-ups;
#   - subscribers on B's gateway, their sockets opened in B's namespace (`--subscriber-netns`):
#     every delivery crosses the link once (A's NATS → B's NATS), as for a client in region B;
# and with `nearest-bench`, run inside B's namespace (a client in region B), CONNECTS connects
# of the Rust SDK each: given B's URL only, A's URL only, and both with `nearest(true)`.
#
# Environment (defaults):
#   RTT_MS       round trip between the regions, ms (40)
#   SUBSCRIBERS  subscribers per run (10)
#   RATE         messages per second (50)
#   DURATION     seconds of publishing per run (10)
#   PAYLOAD      bytes of padding per message (100)
#   REPEAT       passes over both set-ups (1); each pass runs every measurement once
#   CONNECTS     measured SDK connects per case (50)
#   QUIET_BUSY   wait before each run until the box is less busy than this, % of all cores (30)
#   QUIET_WAIT   ... but at most this many seconds (60)
#   PG_URL       PostgreSQL server URL without a database (postgres://postgres@127.0.0.1:5432);
#                scratch databases waas_rbench_<pid>_<n> are created there and dropped at the end
#   OUT          directory for the JSON reports and logs (target/loadtest-results/regions-DATE)
#   PROFILE      cargo profile of the binaries: release, or debug to try the set-up (release)
#   NO_BUILD=1   use the binaries already built
#
# Needs root (network namespaces, TUN devices), python3, nats-server (2.9+), createdb/dropdb and
# curl. Everything it starts is stopped, and its namespace and link removed, on exit, Ctrl-C and
# SIGTERM. Prints the figures; it asserts no timings and is not part of CI.
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
RTT_MS=${RTT_MS:-40}
SUBSCRIBERS=${SUBSCRIBERS:-10}
RATE=${RATE:-50}
DURATION=${DURATION:-10}
PAYLOAD=${PAYLOAD:-100}
REPEAT=${REPEAT:-1}
CONNECTS=${CONNECTS:-50}
QUIET_BUSY=${QUIET_BUSY:-30}
QUIET_WAIT=${QUIET_WAIT:-60}
PG_URL=${PG_URL:-postgres://postgres@127.0.0.1:5432}
PROFILE=${PROFILE:-release}
TARGET_DIR=${CARGO_TARGET_DIR:-$ROOT/target}
OUT=${OUT:-$TARGET_DIR/loadtest-results/regions-$(date +%Y%m%d-%H%M%S)}
mkdir -p "$OUT"
OUT=$(cd "$OUT" && pwd)

[ "$(id -u)" = 0 ] || { echo "regions-bench.sh needs root (ip netns, TUN devices)" >&2; exit 2; }

if [ -z "${NO_BUILD:-}" ]; then
    if [ "$PROFILE" = release ]; then
        cargo build --release -p waas -p loadtest
    else
        cargo build -p waas -p loadtest
    fi
fi
LOADTEST=$TARGET_DIR/$PROFILE/loadtest
NEAREST=$TARGET_DIR/$PROFILE/nearest-bench
WAAS=$TARGET_DIR/$PROFILE/waas

# Names of this run's namespace, TUN devices (at most 15 characters) and link addresses.
TAG=$(($$ % 100000))
NS=waas-rbench-$TAG
LINK_A=10.78.$(($$ % 250)).1
LINK_B=10.78.$(($$ % 250)).2
OPERATOR=rbench-operator-$$-$RANDOM
GATEWAY_ENV=(env WAAS_MAX_CONNECTIONS_PER_APP=0 WAAS_MAX_CONNECTIONS_PER_ADDRESS=0 WAAS_PUBLISH_RATE=0)

# Processes of the current set-up; the link and the databases of the whole script.
PIDS=()
LINK_PID=
DATABASES=()
stop_setup() {
    local pid
    for pid in "${PIDS[@]}"; do
        kill "$pid" 2>/dev/null || true
    done
    for pid in "${PIDS[@]}"; do
        wait "$pid" 2>/dev/null || true
    done
    PIDS=()
    if [ -n "$LINK_PID" ]; then
        # SIGTERM: wan-link.py deletes the namespace and its devices on the way out.
        kill -TERM "$LINK_PID" 2>/dev/null || true
        wait "$LINK_PID" 2>/dev/null || true
        LINK_PID=
    fi
    ip netns del "$NS" 2>/dev/null || true
}
cleanup() {
    stop_setup
    local db
    for db in "${DATABASES[@]}"; do
        dropdb --if-exists --maintenance-db "$PG_URL/postgres" "$db" || true
    done
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

# spawn LOG CMD...: starts CMD in the background, logging to LOG; sets SPAWNED to its pid.
spawn() {
    local log=$1
    shift
    : >"$log"
    "$@" >"$log" 2>&1 &
    SPAWNED=$!
    PIDS+=("$SPAWNED")
}

# wait_until WHAT SECONDS CMD...: runs CMD every 0.1 s until it succeeds.
wait_until() {
    local what=$1 seconds=$2
    shift 2
    local deadline=$((SECONDS + seconds))
    until "$@" >/dev/null 2>&1; do
        if [ "$SECONDS" -ge "$deadline" ]; then
            echo "$what not ready within ${seconds}s" >&2
            exit 1
        fi
        sleep 0.1
    done
}

# listening LOG: the address a waas server printed (`listening on ADDR`), waiting up to 30 s.
listening() {
    local log=$1 addr=
    wait_until "$log" 30 grep -q '^listening on ' "$log"
    addr=$(sed -n 's/^listening on //p' "$log" | head -1)
    echo "$addr"
}

free_port() {
    python3 -c 'import socket,sys; s=socket.socket(); s.bind((sys.argv[1], 0)); print(s.getsockname()[1])' "$1"
}

# JetStream's meta group has a leader and spans N servers (monitoring port given).
meta_ready() {
    curl -sf "http://127.0.0.1:$1/jsz" | python3 -c '
import json, sys
m = json.load(sys.stdin).get("meta_cluster", {})
sys.exit(0 if m.get("leader") and m.get("cluster_size") == int(sys.argv[1]) else 1)' "$2"
}

# nats_conf FILE NAME CLIENT MONITOR STORE [CLUSTER GATEWAY_LISTEN OTHER_NAME OTHER_URL]
nats_conf() {
    local file=$1 name=$2 client=$3 monitor=$4 store=$5
    {
        echo "server_name: ${name}1"
        echo "listen: 127.0.0.1:$client"
        echo "http: 127.0.0.1:$monitor"
        echo "jetstream { store_dir: \"$store\" }"
        if [ $# -gt 5 ]; then
            # nats-server 2.9 refuses JetStream in a cluster with a gateway block and no routes:
            # a one-server region routes to itself (docs/regions.md).
            echo "cluster { name: $name, listen: 127.0.0.1:$6, routes: [nats-route://127.0.0.1:$6] }"
            echo "gateway { name: $name, listen: \"$7\", gateways: [ { name: $8, url: \"$9\" } ] }"
        fi
    } >"$file"
}

# admin METHOD PATH JSON: the control-plane's admin API; prints the body.
admin() {
    curl -sS -X "$1" "http://$CONTROL_PLANE$2" -H "Authorization: Bearer $OPERATOR" \
        -H 'Content-Type: application/json' -d "$3"
}

# make_apps: the tenant and the two apps; sets KEY_hist and KEY_live. A first publish of each
# app through A's gateway (REST) makes the history stream there, in the home region.
make_apps() {
    admin POST /v1/admin/tenants '{"id":"rbench","name":"regions bench"}' >/dev/null
    local app size body
    for app in hist live; do
        size=1000
        [ "$app" = live ] && size=0
        body=$(admin POST /v1/admin/apps "{\"id\":\"$app\",\"tenant_id\":\"rbench\",\"limits\":{\"history_size\":$size}}")
        printf -v "KEY_$app" '%s' "$(python3 -c 'import json,sys; print(json.loads(sys.argv[1])["api_key"])' "$body")"
    done
}

warm_up() {
    local app key
    for app in hist live; do
        key=KEY_$app
        curl -sSf -X POST "http://$GATEWAY_A/v1/apps/$app/publish" -H "Authorization: Bearer ${!key}" \
            -H 'Content-Type: application/json' -d '{"channel":"warmup","event":"n","data":0}' >/dev/null
    done
}

# start_region_a SETUP [NATS GATEWAY ARGS]: PostgreSQL database, control-plane, gateway of A;
# NATS A must run (NATS_A set). Sets CONTROL_PLANE, GATEWAY_A, GATEWAY_A_PID.
DB_N=0
start_region_a() {
    local setup=$1 listen=$2
    DB_N=$((DB_N + 1))
    local db=waas_rbench_$$_$DB_N
    createdb --maintenance-db "$PG_URL/postgres" "$db"
    DATABASES+=("$db")
    PREFIX=rbench$$x$DB_N
    spawn "$OUT/$setup.control-plane.log" "$WAAS" control-plane --listen 127.0.0.1:0 --nats "$NATS_A" \
        --database-url "$PG_URL/$db" --operator-token "$OPERATOR" --subject-prefix "$PREFIX"
    CONTROL_PLANE=$(listening "$OUT/$setup.control-plane.log")
    make_apps
    spawn "$OUT/$setup.gateway-a.log" "${GATEWAY_ENV[@]}" "$WAAS" gateway --listen "$listen" \
        --nats "$NATS_A" --subject-prefix "$PREFIX" --region a
    GATEWAY_A_PID=$SPAWNED
    GATEWAY_A=$(listening "$OUT/$setup.gateway-a.log")
    wait_until "gateway A" 60 curl -sf "http://$GATEWAY_A/readyz"
}

start_one_region() {
    local dir=$OUT/one
    mkdir -p "$dir"
    local client monitor
    client=$(free_port 127.0.0.1)
    monitor=$(free_port 127.0.0.1)
    nats_conf "$dir/nats-a.conf" A "$client" "$monitor" "$dir/js-a"
    spawn "$OUT/one.nats-a.log" nats-server -c "$dir/nats-a.conf"
    NATS_A=nats://127.0.0.1:$client
    wait_until "NATS A" 60 curl -sf "http://127.0.0.1:$monitor/healthz"
    start_region_a one 127.0.0.1:0
    warm_up
    GATEWAY_B=
}

start_two_regions() {
    local dir=$OUT/two
    mkdir -p "$dir"
    : >"$OUT/two.link.log"
    python3 "$ROOT/loadtest/wan-link.py" --rtt-ms "$RTT_MS" --ns-a - --ns-b "$NS" \
        --addr-a "$LINK_A" --addr-b "$LINK_B" --dev-a "rba$TAG" --dev-b "rbb$TAG" \
        >"$OUT/two.link.log" 2>&1 &
    LINK_PID=$!
    wait_until "wan-link.py" 20 grep -q '^wan-link up' "$OUT/two.link.log"
    local client monitor cluster gateway
    client=$(free_port 127.0.0.1)
    monitor=$(free_port 127.0.0.1)
    cluster=$(free_port 127.0.0.1)
    gateway=$(free_port "$LINK_A")
    # B's namespace is fresh: every port is free there.
    nats_conf "$dir/nats-a.conf" A "$client" "$monitor" "$dir/js-a" "$cluster" "$LINK_A:$gateway" \
        B "nats://$LINK_B:7222"
    nats_conf "$dir/nats-b.conf" B 4222 8222 "$dir/js-b" 6222 "$LINK_B:7222" A "nats://$LINK_A:$gateway"
    spawn "$OUT/two.nats-a.log" nats-server -c "$dir/nats-a.conf"
    spawn "$OUT/two.nats-b.log" ip netns exec "$NS" nats-server -c "$dir/nats-b.conf"
    NATS_A=nats://127.0.0.1:$client
    # The meta leader of the supercluster took 5–14 s here: wait on it, not on time.
    wait_until "JetStream meta leader" 120 meta_ready "$monitor" 2
    start_region_a two "$LINK_A:0"
    spawn "$OUT/two.gateway-b.log" ip netns exec "$NS" "${GATEWAY_ENV[@]}" "$WAAS" gateway \
        --listen 127.0.0.1:8080 --nats nats://127.0.0.1:4222 --subject-prefix "$PREFIX" --region b
    GATEWAY_B_PID=$SPAWNED
    GATEWAY_B=127.0.0.1:8080
    listening "$OUT/two.gateway-b.log" >/dev/null
    wait_until "gateway B" 60 ip netns exec "$NS" curl -sf "http://$GATEWAY_B/readyz"
    warm_up
    # The link works as configured: a TCP connect from B to A's gateway costs one round trip.
    ip netns exec "$NS" curl -s -o /dev/null -w "link check: TCP connect B → A %{time_connect} s\n" \
        "http://$GATEWAY_A/readyz" | tee -a "$OUT/two.link.log" >&2
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

# latency SETUP APP WHERE NAME: one loadtest run, publisher on A's gateway, subscribers on
# A's gateway (WHERE=a) or on B's, from B's namespace (WHERE=b).
REPORTS=()
latency() {
    local setup=$1 app=$2 where=$3 name=$4 key=KEY_$2
    local args=(--app "$app" --api-key "${!key}" --publish-addr "$GATEWAY_A"
        --label "$setup, $app, subscribers in ${where^^}" --server-pid "$GATEWAY_A_PID")
    if [ "$where" = b ]; then
        args+=(--addr "$GATEWAY_B" --subscriber-netns "$NS" --server-pid "$GATEWAY_B_PID")
    else
        args+=(--addr "$GATEWAY_A")
    fi
    wait_quiet
    echo "== $setup, app $app, subscribers in region ${where^^} (load $(cut -d' ' -f1-3 /proc/loadavg))" >&2
    "$LOADTEST" "${args[@]}" --subscribers "$SUBSCRIBERS" --rate "$RATE" --duration "$DURATION" \
        --payload "$PAYLOAD" --connect-concurrency "$SUBSCRIBERS" --json "$OUT/$name.json" >&2
    REPORTS+=("$OUT/$name.json")
}

# connects NAME [--nearest] URLS: nearest-bench in B's namespace.
CONNECT_REPORTS=()
connects() {
    local name=$1
    shift
    wait_quiet
    echo "== SDK connects from region B: $*" >&2
    ip netns exec "$NS" "$NEAREST" --app live --token "$KEY_live" --count "$CONNECTS" "$@" \
        >"$OUT/$name.json"
    cat "$OUT/$name.json" >&2
    CONNECT_REPORTS+=("$OUT/$name.json")
}

for pass in $(seq "$REPEAT"); do
    start_one_region
    for app in hist live; do
        latency "one region" "$app" a "one-$app-a.$pass"
    done
    stop_setup

    start_two_regions
    for app in hist live; do
        latency "two regions" "$app" a "two-$app-a.$pass"
        latency "two regions" "$app" b "two-$app-b.$pass"
    done
    connects "connect-b.$pass" --urls "ws://$GATEWAY_B"
    connects "connect-a.$pass" --urls "ws://$GATEWAY_A"
    connects "connect-nearest.$pass" --nearest --urls "ws://$GATEWAY_A,ws://$GATEWAY_B"
    stop_setup
done

echo
echo "Commit $(git describe --always --dirty 2>/dev/null || echo unknown), $PROFILE build, RTT ${RTT_MS} ms" \
    "(one way $((RTT_MS / 2)) ms); reports in $OUT"
echo
python3 - "${REPORTS[@]}" -- "${CONNECT_REPORTS[@]}" <<'EOF'
import json, sys
args = sys.argv[1:]
cut = args.index("--")
runs, connects = args[:cut], args[cut + 1:]
print("| set-up | app | subscribers in | delivered / expected | p50 ms | p99 ms | others' CPU % | load avg |")
print("|---|---|---|--:|--:|--:|--:|--:|")
for f in runs:
    r = json.load(open(f))
    setup, app, where = r["label"].split(", ")
    print(f"| {setup} | {app} | {where.split()[-1]} | {r['delivered']} / {r['expected']} | "
          f"{r['latency_p50_us'] / 1000:.2f} | {r['latency_p99_us'] / 1000:.2f} | "
          f"{r['others_cpu_percent']:.0f} | {r['loadavg_before']:.2f} |")
print()
print("| SDK client in B | connects | median ms | p99 ms | min ms | max ms | connected to |")
print("|---|--:|--:|--:|--:|--:|---|")
for f in connects:
    c = json.load(open(f))
    how = ("nearest of " if c["nearest"] else "") + ", ".join(c["urls"])
    chosen = ", ".join(f"{u} × {n}" for u, n in c["chosen"].items())
    print(f"| {how} | {c['connects']} | {c['median_ms']} | {c['p99_ms']} | {c['min_ms']} | "
          f"{c['max_ms']} | {chosen} |")
EOF
