#!/usr/bin/env bash
# Ingest: publishes/s one gateway accepts and server CPU µs per publish, over REST single
# publishes, the batch endpoint and WebSocket publishes (loadtest/README.md#ingest).
#
#   loadtest/ingest.sh
#
# Against `waas dev` (history in memory) and a cluster with history on: `waas control-plane` and
# one `waas gateway` on the machine's NATS (NATS_URL, its pid measured apart as the bus) under a
# subject prefix of their own, apps in a fresh PostgreSQL database (dropped at the end, with the
# JetStream streams of the prefix).
#
# Environment (defaults): DURATION (10), PAYLOAD (100), REST_CONNS (8), WS_CONNS (100),
# IN_FLIGHT (32: unacknowledged WebSocket publishes per connection), REST_IN_FLIGHT (1: requests
# per REST or batch connection; above 1 they are pipelined), BATCH (100), SETUPS ("dev cluster"), VIAS ("rest batch ws"),
# NATS_URL (nats://127.0.0.1:4222), BUS_PID (the nats-server measured as the bus: default the
# oldest process named nats-server; set it with NATS_URL for another server), PG_URL
# (postgres://postgres@127.0.0.1:5432), OUT,
# NO_BUILD=1, WAAS and LOADTEST (the binaries; default: this tree's release build). Needs nats-server running at NATS_URL, createdb/dropdb, curl. Not part of CI.
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
DURATION=${DURATION:-10}
PAYLOAD=${PAYLOAD:-100}
REST_CONNS=${REST_CONNS:-8}
WS_CONNS=${WS_CONNS:-100}
IN_FLIGHT=${IN_FLIGHT:-32}
REST_IN_FLIGHT=${REST_IN_FLIGHT:-1}
BATCH=${BATCH:-100}
SETUPS=${SETUPS:-dev cluster}
VIAS=${VIAS:-rest batch ws}
NATS_URL=${NATS_URL:-nats://127.0.0.1:4222}
PG_URL=${PG_URL:-postgres://postgres@127.0.0.1:5432}
TARGET_DIR=${CARGO_TARGET_DIR:-$ROOT/target}
OUT=${OUT:-$TARGET_DIR/ingest/$(date +%Y%m%d-%H%M%S)}
mkdir -p "$OUT"
ulimit -n 65536 2>/dev/null || ulimit -n "$(ulimit -Hn)"
if [ -z "${NO_BUILD:-}" ]; then
    cargo build --release -p waas -p loadtest
fi
LOADTEST=${LOADTEST:-$TARGET_DIR/release/loadtest}
WAAS=${WAAS:-$TARGET_DIR/release/waas}

PIDS=()
DB=
PREFIX=ingest$$
cleanup() {
    for pid in "${PIDS[@]}"; do kill "$pid" 2>/dev/null || true; done
    for pid in "${PIDS[@]}"; do wait "$pid" 2>/dev/null || true; done
    [ -n "$DB" ] && dropdb --if-exists --maintenance-db "$PG_URL/postgres" "$DB" || true
    # The prefix's history streams, through the JetStream API (curl cannot speak NATS).
    "$LOADTEST" ingest-cleanup --nats "$NATS_URL" --prefix "$PREFIX" 2>/dev/null || true
}
trap cleanup EXIT
. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

REPORTS=()
# measure SETUP ADDR APP KEY PID [BUS_PID]: every path against one server.
measure() {
    local setup=$1 addr=$2 app=$3 key=$4 pid=$5 bus=${6:-}
    local busflag=()
    [ -n "$bus" ] && busflag=(--bus-pid "$bus")
    for via in $VIAS; do
        local conns=$REST_CONNS in_flight=$REST_IN_FLIGHT
        [ "$via" = ws ] && { conns=$WS_CONNS; in_flight=$IN_FLIGHT; }
        "$LOADTEST" ingest --via "$via" --addr "$addr" --app "$app" --api-key "$key" \
            --connections "$conns" --in-flight "$in_flight" --batch "$BATCH" --payload "$PAYLOAD" \
            --duration "$DURATION" --server-pid "$pid" "${busflag[@]}" --label "$setup" \
            --json "$OUT/$setup-$via.json" >"$OUT/$setup-$via.md"
        REPORTS+=("$OUT/$setup-$via.json")
    done
}

for setup in $SETUPS; do
    case $setup in
    dev)
        spawn "$OUT/dev.log" env WAAS_PUBLISH_RATE=0 WAAS_MAX_CONNECTIONS_PER_ADDRESS=0 \
            "$WAAS" dev --listen 127.0.0.1:0 --store :memory:
        pid=$SPAWNED
        addr=$(wait_for "$OUT/dev.log" 's/^listening on //p' "waas dev")
        measure dev "$addr" demo demo-key "$pid"
        kill "$pid"
        wait "$pid" 2>/dev/null || true
        ;;
    cluster)
        DB=waas_ingest_$$
        createdb --maintenance-db "$PG_URL/postgres" "$DB"
        TOKEN=ingest-operator-$$-$RANDOM
        spawn "$OUT/control-plane.log" "$WAAS" control-plane --listen 127.0.0.1:0 --nats "$NATS_URL" \
            --database-url "$PG_URL/$DB" --operator-token "$TOKEN" --subject-prefix "$PREFIX"
        CP=$(wait_for "$OUT/control-plane.log" 's/^listening on //p' control-plane)
        "$WAAS" app create --control-plane "http://$CP" --operator-token "$TOKEN" \
            --tenant bench --id bench >"$OUT/app.json"
        KEY=$(sed -n 's/.*"api_key":"\([^"]*\)".*/\1/p' "$OUT/app.json")
        spawn "$OUT/gateway.log" env WAAS_PUBLISH_RATE=0 WAAS_MAX_CONNECTIONS_PER_ADDRESS=0 \
            "$WAAS" gateway --listen 127.0.0.1:0 --nats "$NATS_URL" --subject-prefix "$PREFIX"
        gw=$SPAWNED
        addr=$(wait_for "$OUT/gateway.log" 's/^listening on //p' gateway)
        for _ in $(seq 100); do
            curl -sf "http://$addr/readyz" >/dev/null && break
            sleep 0.1
        done
        bus=${BUS_PID:-$(pgrep -o -x nats-server || true)}
        measure "cluster" "$addr" bench "$KEY" "$gw" "$bus"
        ;;
    *) echo "unknown setup $setup" >&2; exit 1 ;;
    esac
done

echo
echo "$(nproc) cores, $(sed -n 's/^model name\s*: //p' /proc/cpuinfo | head -1); release build; ${DURATION} s per run, ${PAYLOAD}-byte payloads; load before: $(cut -d' ' -f1-3 /proc/loadavg)"
echo
"$LOADTEST" ingest-table "${REPORTS[@]}"
echo
echo "reports: $OUT"
