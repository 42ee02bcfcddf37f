#!/usr/bin/env bash
# Kills, in turn, a gateway, the control-plane, NATS and PostgreSQL of a private 2-gateway
# cluster under a steady publish load, and prints what was lost or duplicated of the
# acknowledged messages (per subscriber, and as webhooks) for each fault. See
# loadtest/README.md, "Faults". Exits non-zero if an acknowledged message was lost without its
# subscriber being told, or a webhook was lost.
#
#   loadtest/fault.sh                        # debug build
#   PROFILE=release loadtest/fault.sh
#   loadtest/fault.sh --rate 200 --down-secs 5   # flags go to the `fault` binary
#
# Everything it starts is private and on 127.0.0.1: a nats-server (nats-server on PATH or
# /usr/sbin) and a PostgreSQL (/usr/lib/postgresql/15/bin, or WAAS_PG_BIN) on free ports with
# temporary directories, a control-plane and two gateways. The machine's NATS (4222) and
# PostgreSQL (5432) are never touched. All of it is stopped and removed at the end, on Ctrl-C
# and on SIGTERM. Takes about two minutes; not run in CI.
set -euo pipefail

root=$(cd "$(dirname "$0")/.." && pwd)
profile=${PROFILE:-debug}
if [ "$profile" = release ]; then
    cargo build --release -p waas -p loadtest --bin waas --bin fault --manifest-path "$root/Cargo.toml" >&2
else
    cargo build -p waas -p loadtest --bin waas --bin fault --manifest-path "$root/Cargo.toml" >&2
fi
target=$(cargo metadata --format-version 1 --no-deps --manifest-path "$root/Cargo.toml" |
    python3 -c 'import json,sys; print(json.load(sys.stdin)["target_directory"])')
exec "$target/$profile/fault" --waas "$target/$profile/waas" "$@"
