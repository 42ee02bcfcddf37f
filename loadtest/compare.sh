#!/usr/bin/env bash
# Fan-out through the Pusher protocol, side by side: WaaS's native protocol, WaaS's Pusher front,
# Sockudo and Soketi, each on a fresh process bound to 127.0.0.1, loaded by the same client
# (`loadtest --target pusher`), then one table with each one's ratio to WaaS native.
#
#   loadtest/compare.sh
#   SCENARIOS="5000:100" TARGETS="waas waas-pusher" loadtest/compare.sh
#
# Targets (a peer that is not installed is skipped with a note):
#   waas         `waas dev`, native protocol, publisher over WebSocket (the reference)
#   waas-pusher  `waas dev`, Pusher front (`/app/demo`, key = app id, secret
#                `demo-pusher-secret`); publishes through the Pusher HTTP API when the server
#                has it (`POST /apps/demo/events`), else through native REST into the same
#                channel (the table then says "(REST)")
#   sockudo      $SOCKUDO (default /tmp/peers/sockudo/bin/sockudo; `cargo install sockudo
#                --root /tmp/peers/sockudo`), app demo / key demo-key / secret demo-secret
#   soketi       Soketi 1.6.1 installed in $SOKETI_DIR (default /tmp/peers/soketi, see
#                /work/shared/peers.md for its package.json), same app
#
# Environment (defaults):
#   SCENARIOS   "SUBSCRIBERS:RATE ..." ("5000:100 1000:30": 5,000 subscribers offered 500k
#               deliveries/s, saturating every server here; 1,000 at 30 msg/s for latency)
#   TARGETS     "waas waas-pusher sockudo soketi"
#   DURATION    seconds of publishing per run (10)
#   PAYLOAD     bytes of padding per message (100)
#   SOCKUDO_PORT, SOKETI_PORT   6201, 6101
#   OUT         directory for the JSON reports and server logs (target/loadtest-results/pusher-DATE)
#   NO_BUILD=1  use the release binaries already built
#
# Not part of CI: it measures, it does not assert.
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
SCENARIOS=${SCENARIOS:-"5000:100 1000:30"}
TARGETS=${TARGETS:-"waas waas-pusher sockudo soketi"}
DURATION=${DURATION:-10}
PAYLOAD=${PAYLOAD:-100}
SOCKUDO=${SOCKUDO:-/tmp/peers/sockudo/bin/sockudo}
SOKETI_DIR=${SOKETI_DIR:-/tmp/peers/soketi}
SOCKUDO_PORT=${SOCKUDO_PORT:-6201}
SOKETI_PORT=${SOKETI_PORT:-6101}
TARGET_DIR=${CARGO_TARGET_DIR:-$ROOT/target}
OUT=${OUT:-$TARGET_DIR/loadtest-results/pusher-$(date +%Y%m%d-%H%M%S)}
mkdir -p "$OUT"
ulimit -n 65536 2>/dev/null || ulimit -n "$(ulimit -Hn)"

if [ -z "${NO_BUILD:-}" ]; then
    cargo build --release -p waas -p loadtest
fi
LOADTEST=$TARGET_DIR/release/loadtest
WAAS=$TARGET_DIR/release/waas

SERVER_PID=
stop_server() {
    if [ -n "$SERVER_PID" ]; then
        kill "$SERVER_PID" 2>/dev/null || true
        wait "$SERVER_PID" 2>/dev/null || true
        SERVER_PID=
    fi
}
trap stop_server EXIT

# wait_for LOG PATTERN WHAT: the first capture of sed PATTERN in LOG, waiting up to 10 s.
wait_for() {
    local log=$1 pattern=$2 what=$3 found
    for _ in $(seq 100); do
        found=$(sed -n "$pattern" "$log" | head -1)
        if [ -n "$found" ]; then
            echo "$found"
            return 0
        fi
        sleep 0.1
    done
    echo "$what did not start:" >&2
    cat "$log" >&2
    exit 1
}

# wait_port PORT WHAT: until something accepts connections on 127.0.0.1:PORT (up to 30 s).
wait_port() {
    for _ in $(seq 300); do
        if (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; then
            return 0
        fi
        sleep 0.1
    done
    echo "$2 is not listening on port $1" >&2
    exit 1
}

start_waas() {
    local log=$1
    env WAAS_MAX_CONNECTIONS_PER_APP=0 WAAS_MAX_CONNECTIONS_PER_ADDRESS=0 WAAS_PUBLISH_RATE=0 \
        WAAS_STORE=:memory: "$WAAS" dev --listen 127.0.0.1:0 >"$log" 2>&1 &
    SERVER_PID=$!
    ADDR=$(wait_for "$log" 's/^listening on //p' "waas dev")
}

# start_target TARGET LOG: a fresh server; sets SERVER_PID and LOADTEST_ARGS, or returns 1 when
# the peer is not installed.
start_target() {
    local target=$1 log=$2
    case $target in
    waas)
        start_waas "$log"
        LOADTEST_ARGS=(--target waas --addr "$ADDR")
        ;;
    waas-pusher)
        start_waas "$log"
        local via=pusher-http status
        # 404: no Pusher HTTP API in this build (an unsigned call to one answers 401).
        status=$(curl -s -o /dev/null -w '%{http_code}' -X POST "http://$ADDR/apps/demo/events")
        [ "$status" = 404 ] && via=rest
        LOADTEST_ARGS=(--target pusher --name waas-pusher --addr "$ADDR" --publish-via "$via"
            --pusher-secret demo-pusher-secret)
        ;;
    sockudo)
        [ -x "$SOCKUDO" ] || { echo "skipping sockudo: $SOCKUDO not installed" >&2; return 1; }
        env HOST=127.0.0.1 PORT="$SOCKUDO_PORT" \
            SOCKUDO_DEFAULT_APP_ID=demo SOCKUDO_DEFAULT_APP_KEY=demo-key SOCKUDO_DEFAULT_APP_SECRET=demo-secret \
            RATE_LIMITER_ENABLED=false METRICS_ENABLED=false \
            SOCKUDO_DEFAULT_APP_MAX_CONNECTIONS=1000000 SOCKUDO_DEFAULT_APP_MAX_BACKEND_EVENTS_PER_SECOND=1000000 \
            SOCKUDO_DEFAULT_APP_MAX_CLIENT_EVENTS_PER_SECOND=100000 SOCKUDO_DEFAULT_APP_MAX_READ_REQUESTS_PER_SECOND=100000 \
            SOCKUDO_DEFAULT_APP_ENABLE_CLIENT_MESSAGES=true "$SOCKUDO" >"$log" 2>&1 &
        SERVER_PID=$!
        wait_port "$SOCKUDO_PORT" sockudo
        LOADTEST_ARGS=(--target pusher --name sockudo --addr "127.0.0.1:$SOCKUDO_PORT"
            --publish-via pusher-http --pusher-key demo-key --pusher-secret demo-secret)
        ;;
    soketi)
        [ -d "$SOKETI_DIR/node_modules/@soketi/soketi" ] ||
            { echo "skipping soketi: not installed in $SOKETI_DIR" >&2; return 1; }
        sed "s/\"port\": [0-9]*/\"port\": $SOKETI_PORT/" "$SOKETI_DIR/soketi.json" >"$OUT/soketi.json"
        node "$SOKETI_DIR/node_modules/@soketi/soketi/bin/server.js" start \
            --config="$OUT/soketi.json" >"$log" 2>&1 &
        SERVER_PID=$!
        wait_port "$SOKETI_PORT" soketi
        LOADTEST_ARGS=(--target pusher --name soketi --addr "127.0.0.1:$SOKETI_PORT"
            --publish-via pusher-http --pusher-key demo-key --pusher-secret demo-secret)
        ;;
    *)
        echo "unknown target $target" >&2
        exit 2
        ;;
    esac
}

REPORTS=()
for scenario in $SCENARIOS; do
    subs=${scenario%%:*}
    rate=${scenario##*:}
    for target in $TARGETS; do
        name=$target-$subs-$rate
        start_target "$target" "$OUT/$name.server.log" || continue
        echo "== $target: $subs subscribers, $rate msg/s, $DURATION s, $PAYLOAD B (${LOADTEST_ARGS[*]})" >&2
        "$LOADTEST" "${LOADTEST_ARGS[@]}" --server-pid "$SERVER_PID" \
            --subscribers "$subs" --rate "$rate" --duration "$DURATION" --payload "$PAYLOAD" \
            --json "$OUT/$name.json" >&2
        stop_server
        REPORTS+=("$OUT/$name.json")
    done
done

echo
echo "Commit $(git describe --always --dirty 2>/dev/null || echo unknown); reports in $OUT"
echo
"$LOADTEST" table "${REPORTS[@]}"
