#!/usr/bin/env bash
# WaaS beside its peers in one run: each scenario against WaaS (native protocol, and its Pusher
# front), Sockudo, Soketi and Socket.IO, each on a fresh process bound to 127.0.0.1, loaded by the
# same client, then one table per scenario with every server's ratio to WaaS native.
#
#   loadtest/compare.sh
#   SCENARIOS="storm idle" TARGETS="waas soketi" loadtest/compare.sh
#   SCENARIOS="5000:100" TARGETS="waas waas-pusher" loadtest/compare.sh     # fan-out sizes only
#
# Scenarios (SCENARIOS, default all five, in this order):
#   fanout         one channel, SUBSCRIBERS:RATE for each of $FANOUT ("5000:100 1000:30")
#   many-channels  $CHANNELS (10000) channels × $CHANNEL_SUBSCRIBERS (10) subscribers each, from
#                  $CHANNEL_CONNECTIONS (10000) connections (so each joins CHANNELS ×
#                  CHANNEL_SUBSCRIBERS / CHANNEL_CONNECTIONS channels), $CHANNEL_RATE (2000)
#                  publishes/s round robin over the channels; WaaS's subscribers with an HS256
#                  JWT each (end users), its publisher with the API key
#   storm          $STORM_CLIENTS (10000) clients connecting and subscribing at once; WaaS twice,
#                  with a distinct JWT per client, HS256 then RS256 (an app with an RSA public key
#                  made here with openssl); the Pusher peers and Socket.IO on a public channel
#   idle           $IDLE_CONNECTIONS (19000; the open-file limit per process here is 20000)
#                  subscribed connections, then $IDLE_SECS (30) s with nothing published
#   reconnect      WaaS only, in a cluster on the machine's NATS ($NATS, nats://127.0.0.1:4222)
#                  and PostgreSQL ($PG, postgres://postgres@127.0.0.1:5432): a control-plane, an
#                  app with history, gateways A and B. $RECONNECT_CLIENTS (10000) HS256 clients
#                  on A over $RECONNECT_CHANNELS (1000) channels, $RECONNECT_RATE (500) msg/s
#                  published through B for $RECONNECT_DURATION (10) s; A is killed (SIGKILL) and
#                  started again on the same port after $DOWN_SECS (1) s; the clients come back
#                  after up to $RECONNECT_JITTER_MS (1000) ms each and resubscribe with `since`.
#                  The scratch database, the app and its stream are removed at the end.
#
# Targets (TARGETS, default "waas waas-pusher sockudo soketi socketio"; a peer that is not
# installed is skipped with a note):
#   waas         `waas dev`, native protocol, publisher over WebSocket (the reference)
#   waas-pusher  `waas dev`, Pusher front (`/app/demo`, secret `demo-pusher-secret`), publishing
#                through the Pusher HTTP API
#   sockudo      $SOCKUDO (default /tmp/peers/sockudo/bin/sockudo), app demo / demo-key / demo-secret
#   soketi       Soketi 1.6.1 installed in $SOKETI_DIR (default /tmp/peers/soketi, see
#                /work/shared/peers.md), same app
#   socketio     loadtest/peers/socketio (`npm ci` there first)
#
# Environment (defaults): DURATION (10) s of publishing per run, PAYLOAD (100) B, SOURCE_IPS
# (127.0.0.1-8: client sockets spread over several source addresses, so that the many
# short-lived connections of a whole comparison do not run out of ephemeral ports), SOCKUDO_PORT
# (6201), SOKETI_PORT (6101), OUT (target/loadtest-results/compare-DATE), WAAS and LOADTEST
# (the release binaries of CARGO_TARGET_DIR), NO_BUILD=1 (use the binaries as they are).
#
# Not part of CI: it measures, it does not assert.
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
SCENARIOS=${SCENARIOS:-"fanout many-channels storm idle reconnect"}
FANOUT=${FANOUT:-"5000:100 1000:30"}
# Before the other scenarios, SCENARIOS held the fan-out sizes: still accepted.
if [[ $SCENARIOS == *:* ]]; then
    FANOUT=$SCENARIOS
    SCENARIOS=fanout
fi
TARGETS=${TARGETS:-"waas waas-pusher sockudo soketi socketio"}
DURATION=${DURATION:-10}
PAYLOAD=${PAYLOAD:-100}
CHANNELS=${CHANNELS:-10000}
CHANNEL_SUBSCRIBERS=${CHANNEL_SUBSCRIBERS:-10}
CHANNEL_CONNECTIONS=${CHANNEL_CONNECTIONS:-10000}
CHANNEL_RATE=${CHANNEL_RATE:-2000}
STORM_CLIENTS=${STORM_CLIENTS:-10000}
IDLE_CONNECTIONS=${IDLE_CONNECTIONS:-19000}
IDLE_SECS=${IDLE_SECS:-30}
RECONNECT_CLIENTS=${RECONNECT_CLIENTS:-10000}
RECONNECT_CHANNELS=${RECONNECT_CHANNELS:-1000}
RECONNECT_RATE=${RECONNECT_RATE:-500}
RECONNECT_DURATION=${RECONNECT_DURATION:-10}
RECONNECT_JITTER_MS=${RECONNECT_JITTER_MS:-1000}
DOWN_SECS=${DOWN_SECS:-1}
NATS=${NATS:-nats://127.0.0.1:4222}
PG=${PG:-postgres://postgres@127.0.0.1:5432}
SOURCE_IPS=${SOURCE_IPS:-127.0.0.1,127.0.0.2,127.0.0.3,127.0.0.4,127.0.0.5,127.0.0.6,127.0.0.7,127.0.0.8}
SOCKUDO=${SOCKUDO:-/tmp/peers/sockudo/bin/sockudo}
SOKETI_DIR=${SOKETI_DIR:-/tmp/peers/soketi}
SOCKUDO_PORT=${SOCKUDO_PORT:-6201}
SOKETI_PORT=${SOKETI_PORT:-6101}
TARGET_DIR=${CARGO_TARGET_DIR:-$ROOT/target}
OUT=${OUT:-$TARGET_DIR/loadtest-results/compare-$(date +%Y%m%d-%H%M%S)}
mkdir -p "$OUT"
OUT=$(cd "$OUT" && pwd)
ulimit -n 65536 2>/dev/null || ulimit -n "$(ulimit -Hn)"

if [ -z "${NO_BUILD:-}" ]; then
    cargo build --release -p waas -p loadtest
fi
LOADTEST=${LOADTEST:-$TARGET_DIR/release/loadtest}
WAAS=${WAAS:-$TARGET_DIR/release/waas}

SERVER_PID=
CLUSTER_PIDS=()
CLUSTER_DB=
CLUSTER_APP=
stop_server() {
    if [ -n "$SERVER_PID" ]; then
        kill "$SERVER_PID" 2>/dev/null || true
        wait "$SERVER_PID" 2>/dev/null || true
        SERVER_PID=
    fi
}
stop_cluster() {
    if [ -n "$CLUSTER_APP" ]; then
        # Deleting the app removes its history stream from the machine's NATS.
        curl -s -o /dev/null -X DELETE -H "Authorization: Bearer $OPERATOR_TOKEN" \
            "http://$CP_ADDR/v1/admin/apps/$CLUSTER_APP" || true
        CLUSTER_APP=
    fi
    for pid in "${CLUSTER_PIDS[@]}"; do
        kill "$pid" 2>/dev/null || true
        wait "$pid" 2>/dev/null || true
    done
    CLUSTER_PIDS=()
    if [ -n "$CLUSTER_DB" ]; then
        psql "$PG/postgres" -q -c "DROP DATABASE IF EXISTS $CLUSTER_DB" >/dev/null 2>&1 || true
        CLUSTER_DB=
    fi
}
cleanup() {
    stop_server
    stop_cluster
}
trap cleanup EXIT

. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

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

# The storm's RS256 app: a fresh key pair, the public half in `waas dev`'s config.
openssl genpkey -algorithm RSA -pkeyopt rsa_keygen_bits:2048 -out "$OUT/rsa_private.pem" 2>/dev/null
openssl pkey -in "$OUT/rsa_private.pem" -pubout -out "$OUT/rsa_public.pem"
cat >"$OUT/waas.toml" <<EOF
[[apps]]
id = "rsa"
api_keys = ["rsa-key"]
jwt_rsa_public_key_file = "$OUT/rsa_public.pem"
EOF

start_waas() {
    local log=$1
    env WAAS_MAX_CONNECTIONS_PER_APP=0 WAAS_MAX_CONNECTIONS_PER_ADDRESS=0 WAAS_PUBLISH_RATE=0 \
        WAAS_STORE=:memory: "$WAAS" dev --config "$OUT/waas.toml" --listen 127.0.0.1:0 >"$log" 2>&1 &
    SERVER_PID=$!
    ADDR=$(wait_for "$log" 's/^listening on //p' "waas dev" 30)
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
        LOADTEST_ARGS=(--target pusher --name waas-pusher --addr "$ADDR" --publish-via pusher-http
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
        # The configuration of /work/shared/peers.md.
        cat >"$OUT/soketi.json" <<EOF
{"debug": false, "host": "127.0.0.1", "port": $SOKETI_PORT,
 "cluster.address": "127.0.0.1", "cluster.unicast": "127.0.0.1", "cluster.broadcast": "127.0.0.1",
 "metrics.enabled": false, "metrics.host": "127.0.0.1", "metrics.port": 9611,
 "appManager.array.apps": [{"id": "demo", "key": "demo-key", "secret": "demo-secret",
   "enableClientMessages": true, "enabled": true, "maxConnections": -1,
   "maxBackendEventsPerSecond": -1, "maxClientEventsPerSecond": -1, "maxReadRequestsPerSecond": -1}]}
EOF
        node "$SOKETI_DIR/node_modules/@soketi/soketi/bin/server.js" start \
            --config="$OUT/soketi.json" >"$log" 2>&1 &
        SERVER_PID=$!
        wait_port "$SOKETI_PORT" soketi
        LOADTEST_ARGS=(--target pusher --name soketi --addr "127.0.0.1:$SOKETI_PORT"
            --publish-via pusher-http --pusher-key demo-key --pusher-secret demo-secret)
        ;;
    socketio)
        [ -d loadtest/peers/socketio/node_modules ] ||
            { echo "skipping socketio: run npm ci in loadtest/peers/socketio" >&2; return 1; }
        node loadtest/peers/socketio/server.js 0 >"$log" 2>&1 &
        SERVER_PID=$!
        ADDR=$(wait_for "$log" 's/^listening on //p' "socket.io peer" 30)
        LOADTEST_ARGS=(--target socketio --addr "$ADDR")
        ;;
    *)
        echo "unknown target $target" >&2
        exit 2
        ;;
    esac
}

REPORTS=()
# run NAME TARGET LOADTEST-ARGS...: a fresh TARGET, one loadtest run; a failed run is reported
# and skipped, so that one peer's failure does not end the comparison.
run() {
    local name=$1 target=$2
    shift 2
    start_target "$target" "$OUT/$name.server.log" || return 0
    echo "== $name (${LOADTEST_ARGS[*]} $*)" >&2
    if "$LOADTEST" "${LOADTEST_ARGS[@]}" --server-pid "$SERVER_PID" --source-ips "$SOURCE_IPS" \
        --payload "$PAYLOAD" --json "$OUT/$name.json" "$@" >&2; then
        REPORTS+=("$OUT/$name.json")
    else
        echo "!! $name failed (see $OUT/$name.server.log)" >&2
    fi
    stop_server
}

# The reconnect storm in a cluster on the machine's NATS and PostgreSQL.
run_reconnect() {
    local prefix=cmp$$ cp_log=$OUT/reconnect.control-plane.log
    CLUSTER_DB=waas_compare_$$
    OPERATOR_TOKEN=compare-$$-$RANDOM$RANDOM
    psql "$PG/postgres" -q -c "CREATE DATABASE $CLUSTER_DB" >/dev/null
    local common=(--nats "$NATS" --subject-prefix "$prefix")
    env WAAS_OPERATOR_TOKEN="$OPERATOR_TOKEN" "$WAAS" control-plane --listen 127.0.0.1:0 \
        --database-url "$PG/$CLUSTER_DB" "${common[@]}" >"$cp_log" 2>&1 &
    CLUSTER_PIDS+=($!)
    CP_ADDR=$(wait_for "$cp_log" 's/^listening on //p' "control-plane" 30)
    local created
    curl -s -o /dev/null -X POST "http://$CP_ADDR/v1/admin/tenants" \
        -H "Authorization: Bearer $OPERATOR_TOKEN" -H 'Content-Type: application/json' \
        -d '{"id":"compare","name":"compare"}'
    created=$(curl -sf -X POST "http://$CP_ADDR/v1/admin/apps" \
        -H "Authorization: Bearer $OPERATOR_TOKEN" -H 'Content-Type: application/json' \
        -d '{"id":"reconnect","tenant_id":"compare","name":"reconnect","limits":{"history_size":1000,"history_ttl_secs":600}}')
    CLUSTER_APP=reconnect
    local api_key jwt_secret
    api_key=$(jq -r .api_key <<<"$created")
    jwt_secret=$(jq -r .jwt_secret <<<"$created")
    local gw_env=(env WAAS_MAX_CONNECTIONS_PER_APP=0 WAAS_MAX_CONNECTIONS_PER_ADDRESS=0 WAAS_PUBLISH_RATE=0)
    "${gw_env[@]}" "$WAAS" gateway --listen 127.0.0.1:0 "${common[@]}" >"$OUT/reconnect.gateway-a.log" 2>&1 &
    local a_pid=$!
    CLUSTER_PIDS+=($a_pid)
    local a_addr b_addr
    a_addr=$(wait_for "$OUT/reconnect.gateway-a.log" 's/^listening on //p' "gateway A" 30)
    "${gw_env[@]}" "$WAAS" gateway --listen 127.0.0.1:0 "${common[@]}" >"$OUT/reconnect.gateway-b.log" 2>&1 &
    CLUSTER_PIDS+=($!)
    b_addr=$(wait_for "$OUT/reconnect.gateway-b.log" 's/^listening on //p' "gateway B" 30)

    local ready=$OUT/reconnect.ready pidfile=$OUT/reconnect.restarted-pid
    rm -f "$ready" "$pidfile"
    echo "== reconnect: $RECONNECT_CLIENTS clients on gateway A ($a_addr), publishing through B ($b_addr)" >&2
    LOADTEST_JWT_SECRET=$jwt_secret "$LOADTEST" --target waas --scenario reconnect --app reconnect \
        --api-key "$api_key" --auth hs256 --addr "$a_addr" --publish-addr "$b_addr" --publish-via rest \
        --subscribers "$RECONNECT_CLIENTS" --channels "$RECONNECT_CHANNELS" --rate "$RECONNECT_RATE" \
        --duration "$RECONNECT_DURATION" --payload "$PAYLOAD" --reconnect-jitter-ms "$RECONNECT_JITTER_MS" \
        --source-ips "$SOURCE_IPS" --ready-file "$ready" --restarted-pid-file "$pidfile" \
        --json "$OUT/reconnect.json" >&2 &
    local load_pid=$!
    while [ ! -e "$ready" ] && kill -0 "$load_pid" 2>/dev/null; do sleep 0.1; done
    if [ -e "$ready" ]; then
        echo "   killing gateway A (pid $a_pid), restarting it in $DOWN_SECS s on $a_addr" >&2
        kill -9 "$a_pid"
        wait "$a_pid" 2>/dev/null || true
        sleep "$DOWN_SECS"
        "${gw_env[@]}" "$WAAS" gateway --listen "$a_addr" "${common[@]}" >"$OUT/reconnect.gateway-a2.log" 2>&1 &
        CLUSTER_PIDS+=($!)
        echo $! >"$pidfile"
    fi
    if wait "$load_pid"; then
        REPORTS+=("$OUT/reconnect.json")
    else
        echo "!! reconnect failed" >&2
    fi
    stop_cluster
}

for scenario in $SCENARIOS; do
    case $scenario in
    fanout)
        for size in $FANOUT; do
            subs=${size%%:*}
            rate=${size##*:}
            for target in $TARGETS; do
                run "fanout-$target-$subs-$rate" "$target" --subscribers "$subs" --rate "$rate" \
                    --duration "$DURATION"
            done
        done
        ;;
    many-channels)
        per=$((CHANNELS * CHANNEL_SUBSCRIBERS / CHANNEL_CONNECTIONS))
        for target in $TARGETS; do
            # WaaS's subscribers are end users with a JWT each, as the peers' are anonymous
            # clients: with the API key every one would be a server connection, timed by pings
            # and listed for the dashboard's Servers page.
            auth=()
            if [ "$target" = waas ]; then auth=(--auth hs256); fi
            run "channels-$target" "$target" --subscribers "$CHANNEL_CONNECTIONS" \
                --channels "$CHANNELS" --channels-per-subscriber "$per" --rate "$CHANNEL_RATE" \
                --duration "$DURATION" "${auth[@]}"
        done
        ;;
    storm)
        for target in $TARGETS; do
            if [ "$target" = waas ]; then
                run "storm-waas-hs256" waas --scenario storm --subscribers "$STORM_CLIENTS" --auth hs256
                run "storm-waas-rs256" waas --scenario storm --subscribers "$STORM_CLIENTS" \
                    --app rsa --api-key rsa-key --auth rs256 --jwt-rsa-key "$OUT/rsa_private.pem"
            else
                run "storm-$target" "$target" --scenario storm --subscribers "$STORM_CLIENTS"
            fi
        done
        ;;
    idle)
        for target in $TARGETS; do
            run "idle-$target" "$target" --scenario idle --subscribers "$IDLE_CONNECTIONS" \
                --idle-secs "$IDLE_SECS"
        done
        ;;
    reconnect)
        case " $TARGETS " in
        *" waas "*) run_reconnect ;;
        *) echo "skipping reconnect: WaaS only" >&2 ;;
        esac
        ;;
    *)
        echo "unknown scenario $scenario" >&2
        exit 2
        ;;
    esac
done

echo
echo "Commit $(git describe --always --dirty 2>/dev/null || echo unknown); load average $(cut -d' ' -f1-3 /proc/loadavg); reports in $OUT"
echo
"$LOADTEST" table "${REPORTS[@]}"
