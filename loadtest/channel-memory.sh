#!/usr/bin/env bash
# Per-channel memory comes back (docs/history.md, "How long a channel is remembered").
#
#   loadtest/channel-memory.sh
#
# Starts `waas dev` (in-memory store, history_ttl_secs 2, history_sweep_ms 500) on a free port,
# publishes to COUNT unique channels over REST (CONCURRENCY at a time), and prints the process's
# resident memory and its `waas_history_channels` gauge: at start, right after the publishes,
# and once the history has expired and been swept. The gauge must return to 0; the RSS should
# come back near its start (the allocator may keep some pages).
#
# Environment (defaults): COUNT (20000), CONCURRENCY (16), NO_BUILD=1 (use the existing
# target/release/waas), BIN (another waas binary; implies NO_BUILD).
# Needs curl. Not part of CI.
set -euo pipefail
cd "$(dirname "$0")/.."
COUNT=${COUNT:-20000}
CONCURRENCY=${CONCURRENCY:-16}
[ -n "${NO_BUILD:-}${BIN:-}" ] || cargo build --release -p waas >/dev/null
BIN=${BIN:-${CARGO_TARGET_DIR:-target}/release/waas}
PORT=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
"$BIN" dev --listen "127.0.0.1:$PORT" --store :memory: --history-ttl-secs 2 --history-sweep-ms 500 \
  >/dev/null 2>&1 &
PID=$!
trap 'kill $PID 2>/dev/null || true' EXIT
URL=http://127.0.0.1:$PORT
until curl -sf "$URL/readyz" >/dev/null; do sleep 0.1; done

report() {
  local rss channels
  rss=$(awk '/VmRSS/ {print $2}' "/proc/$PID/status")
  channels=$(curl -s "$URL/metrics" | awk '$1 == "waas_history_channels" {print $2}')
  printf '| %-22s | %8s KiB | %8s |\n' "$1" "$rss" "$channels"
}

echo "| moment                 |      RSS     | channels |"
echo "|---|---|---|"
report "start"
seq 1 "$COUNT" | xargs -P "$CONCURRENCY" -I{} curl -s -o /dev/null "$URL/v1/apps/demo/publish" \
  -H 'Authorization: Bearer demo-key' -H 'Content-Type: application/json' \
  -d '{"channel":"mem.{}","event":"e","data":{"n":{}}}'
report "after $COUNT channels"
for _ in $(seq 1 100); do
  [ "$(curl -s "$URL/metrics" | awk '$1 == "waas_history_channels" {print $2}')" = "0" ] && break
  sleep 0.1
done
report "after expiry"
