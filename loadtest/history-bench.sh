#!/usr/bin/env bash
# History on vs off, and recording write throughput (docs/history.md, docs/recordings.md).
#
#   loadtest/history-bench.sh
#
# In cluster mode (a gateway over a private JetStream nats-server, its control-plane on a scratch
# PostgreSQL database; publisher and subscribers on the gateway, so with history every message
# goes gateway -> JetStream -> gateway) and on `waas dev`, each with history on (`history_size`
# 100) and off (`--history-size 0`, a fresh gateway):
#   - delivery latency at a steady rate: loadtest, SUBS subscribers, RATE msg/s, WebSocket publisher;
#   - publish throughput: loadtest with one subscriber, REST publisher (concurrent requests),
#     offered more than the server takes (MAX_RATE msg/s): delivered/s to the one subscriber is
#     the rate at which publishes complete.
# Then, with history on, recording write throughput: a recording of every channel while the
# throughput run publishes; events stored per second from the first publish until the recording
# holds them all.
#
# Environment (defaults): SUBS (100), RATE (1000), DURATION (10), MAX_RATE (20000),
# PAYLOAD (100), PG_URL (postgres://postgres@127.0.0.1:5432), OUT, NO_BUILD=1,
# ONLY_RECORDING=1 (just the recording measurement).
# Needs nats-server, createdb/dropdb, curl. Not part of CI. Prints a markdown table.
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
SUBS=${SUBS:-100}
RATE=${RATE:-1000}
DURATION=${DURATION:-10}
MAX_RATE=${MAX_RATE:-20000}
PAYLOAD=${PAYLOAD:-100}
PG_URL=${PG_URL:-postgres://postgres@127.0.0.1:5432}
TARGET_DIR=${CARGO_TARGET_DIR:-$ROOT/target}
OUT=${OUT:-$TARGET_DIR/history-bench/$(date +%Y%m%d-%H%M%S)}
mkdir -p "$OUT"
ulimit -n 65536 2>/dev/null || ulimit -n "$(ulimit -Hn)"
if [ -z "${NO_BUILD:-}" ]; then
    cargo build --release -p waas -p loadtest
fi
LOADTEST=$TARGET_DIR/release/loadtest
WAAS=$TARGET_DIR/release/waas

PIDS=()
DB=
cleanup() {
    for pid in "${PIDS[@]}"; do kill "$pid" 2>/dev/null || true; done
    for pid in "${PIDS[@]}"; do wait "$pid" 2>/dev/null || true; done
    [ -n "$DB" ] && dropdb --if-exists --maintenance-db "$PG_URL/postgres" "$DB" || true
}
trap cleanup EXIT
. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

stop() {
    kill "$@" 2>/dev/null || true
    wait "$@" 2>/dev/null || true
}

# --- the cluster's shared parts ---
mkdir -p "$OUT/nats-store"
spawn "$OUT/nats.log" nats-server -a 127.0.0.1 -p -1 -js -sd "$OUT/nats-store"
NATS=nats://$(wait_for "$OUT/nats.log" 's/.*Listening for client connections on \([0-9.:]*\).*/\1/p' nats-server)
DB=waas_hbench_$$
createdb --maintenance-db "$PG_URL/postgres" "$DB"
PREFIX=hbench$$
TOKEN=hbench-operator-$$-$RANDOM
spawn "$OUT/control-plane.log" "$WAAS" control-plane --listen 127.0.0.1:0 --nats "$NATS" \
    --database-url "$PG_URL/$DB" --operator-token "$TOKEN" --subject-prefix "$PREFIX"
CP=$(wait_for "$OUT/control-plane.log" 's/^listening on //p' control-plane)
"$WAAS" app create --control-plane "http://$CP" --operator-token "$TOKEN" \
    --tenant bench --id bench >"$OUT/app.json"
KEY=$(sed -n 's/.*"api_key":"\([^"]*\)".*/\1/p' "$OUT/app.json")

# gateway LOG FLAGS...: starts a gateway and waits until it is ready; sets GW_ADDR and GW_PID.
gateway() {
    local log=$1
    shift
    spawn "$log" env WAAS_MAX_CONNECTIONS_PER_APP=0 WAAS_MAX_CONNECTIONS_PER_ADDRESS=0 WAAS_PUBLISH_RATE=0 \
        "$WAAS" gateway --listen 127.0.0.1:0 --nats "$NATS" --subject-prefix "$PREFIX" "$@"
    GW_PID=$SPAWNED
    GW_ADDR=$(wait_for "$log" 's/^listening on //p' gateway)
    for _ in $(seq 100); do
        curl -sf "http://$GW_ADDR/readyz" >/dev/null && break
        sleep 0.1
    done
}

# json FILE FIELD: a number from a loadtest JSON report.
json() { sed -n "s/.*\"$2\": *\([0-9.e+-]*\).*/\1/p" "$1" | head -1; }

ROWS=()
# run NAME APP KEY ADDR PID N RATE VIA: one loadtest run, its report in $OUT/NAME.json.
run() {
    local name=$1 app=$2 key=$3 addr=$4 pid=$5 n=$6 rate=$7 via=$8
    "$LOADTEST" --app "$app" --api-key "$key" --addr "$addr" --server-pid "$pid" -n "$n" \
        --rate "$rate" --duration "$DURATION" --payload "$PAYLOAD" --publish-via "$via" \
        --json "$OUT/$name.json" >"$OUT/$name.md" 2>&1
}

row() {
    local name=$1 f=$OUT/$1.json
    ROWS+=("| $name | $(json "$f" subscribers) | $(json "$f" rate | awk '{printf "%.0f", $1}') | $(json "$f" delivered_per_s | awk '{printf "%.0f", $1}') | $(json "$f" lost) | $(json "$f" latency_p50_us | awk '{printf "%.2f", $1/1000}') | $(json "$f" latency_p99_us | awk '{printf "%.2f", $1/1000}') | $(json "$f" server_cpu_us_per_delivery | awk '{printf "%.1f", $1}') |")
}

cluster() {
    local label=$1
    shift
    gateway "$OUT/$label.gateway.log" "$@"
    local a=$GW_ADDR pa=$GW_PID
    if [ -z "${ONLY_RECORDING:-}" ]; then
        run "cluster, history $label, latency" bench "$KEY" "$a" "$pa" "$SUBS" "$RATE" ws
        row "cluster, history $label, latency"
    fi
    if [ "$label" = on ]; then
        # Recording every channel while the throughput run publishes.
        curl -sf "http://$CP/v1/admin/apps/bench/recordings" -H "Authorization: Bearer $TOKEN" \
            -H 'Content-Type: application/json' -d '{"name":"bench","channels":[">"]}' >"$OUT/recording.json"
        REC=$(sed -n 's/.*"id":"\(rec_[0-9a-f]*\)".*/\1/p' "$OUT/recording.json")
        REC_START=$(date +%s.%N)
    fi
    run "cluster, history $label, throughput" bench "$KEY" "$a" "$pa" 1 "$MAX_RATE" rest
    row "cluster, history $label, throughput"
    if [ "$label" = on ]; then
        local want count=0
        want=$(json "$OUT/cluster, history on, throughput.json" accepted)
        for _ in $(seq 600); do
            count=$(curl -sf "http://$CP/v1/admin/apps/bench/recordings/$REC" \
                -H "Authorization: Bearer $TOKEN" | sed -n 's/.*"event_count":\([0-9]*\).*/\1/p')
            [ "${count:-0}" -ge "$want" ] && break
            sleep 0.1
        done
        REC_END=$(date +%s.%N)
        RECORDING="recording write throughput: $count of $want events stored in $(awk -v s="$REC_START" -v e="$REC_END" 'BEGIN{printf "%.1f", e-s}') s from the recording's start, publishing included = $(awk -v c="$count" -v s="$REC_START" -v e="$REC_END" 'BEGIN{printf "%.0f", c/(e-s)}') events/s"
        curl -sf -X POST "http://$CP/v1/admin/apps/bench/recordings/$REC/stop" \
            -H "Authorization: Bearer $TOKEN" >/dev/null
    fi
    stop "$pa"
}

cluster on
if [ -z "${ONLY_RECORDING:-}" ]; then
    cluster off --history-size 0
fi

dev() {
    local label=$1
    shift
    spawn "$OUT/dev-$label.log" env WAAS_MAX_CONNECTIONS_PER_APP=0 WAAS_MAX_CONNECTIONS_PER_ADDRESS=0 WAAS_PUBLISH_RATE=0 \
        "$WAAS" dev --listen 127.0.0.1:0 --store :memory: "$@"
    local pid=$SPAWNED addr
    addr=$(wait_for "$OUT/dev-$label.log" 's/^listening on //p' "waas dev")
    run "dev, history $label, latency" demo demo-key "$addr" "$pid" "$SUBS" "$RATE" ws
    row "dev, history $label, latency"
    run "dev, history $label, throughput" demo demo-key "$addr" "$pid" 1 "$MAX_RATE" rest
    row "dev, history $label, throughput"
    stop "$pid"
}

if [ -z "${ONLY_RECORDING:-}" ]; then
    dev on
    dev off --history-size 0
fi

echo
echo "$(uname -m), $(nproc) cores, $(sed -n 's/^model name\s*: //p' /proc/cpuinfo | head -1); release build; ${DURATION} s per run, ${PAYLOAD}-byte payloads"
echo
echo "| run | subscribers | offered msg/s | delivered/s | lost | p50 ms | p99 ms | server CPU µs/delivery |"
echo "|---|---|---|---|---|---|---|---|"
printf '%s\n' "${ROWS[@]}"
echo
echo "${RECORDING:-recording: not measured}"
echo
echo "reports: $OUT"
