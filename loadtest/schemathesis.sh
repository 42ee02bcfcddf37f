#!/usr/bin/env bash
# Fuzzes a fresh `waas dev` against its own OpenAPI document (GET /openapi.json) with
# Schemathesis: no answer may be a 5xx, and every status, content type and body must be what the
# document says. Exits 0 only when Schemathesis found nothing.
#
#   loadtest/schemathesis.sh                 # debug build, 30 examples per operation
#   PROFILE=release MAX_EXAMPLES=200 loadtest/schemathesis.sh
#   WAAS_BIN=/path/to/waas loadtest/schemathesis.sh
#
# Schemathesis is installed from PyPI into a venv (target/schemathesis-venv) when missing. It
# only ever targets 127.0.0.1: the server listens there, on a port it picks itself, and the base
# URL is given explicitly. Its data dir is a new temporary directory, removed at the end.
#
# Schemathesis creates webhook endpoints with arbitrary URLs, and the publishes it makes would
# be delivered to them. So that the server never connects outside loopback, the server and
# Schemathesis run in a network namespace of their own with nothing but `lo` (`unshare -n`,
# as root). Where that is impossible, the two operations that set an endpoint URL (POST and PATCH
# .../webhooks) are left out of the run instead, and the script says so.
set -euo pipefail

root=$(cd "$(dirname "$0")/.." && pwd)
venv=${SCHEMATHESIS_VENV:-$root/target/schemathesis-venv}
max_examples=${MAX_EXAMPLES:-30}
profile=${PROFILE:-debug}
api_key=demo-key
operator_token=dev-operator-token

if [ "${1:-}" != "--inside" ]; then
    if [ ! -x "$venv/bin/schemathesis" ]; then
        echo "installing schemathesis into $venv" >&2
        python3 -m venv "$venv"
        "$venv/bin/pip" install --quiet "schemathesis>=4,<5"
    fi
    if [ -z "${WAAS_BIN:-}" ]; then
        if [ "$profile" = release ]; then
            cargo build --release -p waas --manifest-path "$root/Cargo.toml" >&2
        else
            cargo build -p waas --manifest-path "$root/Cargo.toml" >&2
        fi
        target=$(cargo metadata --format-version 1 --no-deps --manifest-path "$root/Cargo.toml" |
            python3 -c 'import json,sys; print(json.load(sys.stdin)["target_directory"])')
        WAAS_BIN=$target/$profile/waas
    fi
    export WAAS_BIN SCHEMATHESIS_VENV=$venv MAX_EXAMPLES=$max_examples
    if [ "$(id -u)" = 0 ] && unshare -n true 2>/dev/null; then
        exec unshare -n -- "$0" --inside isolated
    fi
    exec "$0" --inside shared
fi

network=$2
if [ "$network" = isolated ]; then
    ip link set lo up
fi

data=$(mktemp -d)
server_pid=
cleanup() {
    if [ -n "$server_pid" ]; then
        kill "$server_pid" 2>/dev/null || true
        wait "$server_pid" 2>/dev/null || true
    fi
    rm -rf "$data"
}
trap cleanup EXIT

# Port 0: the server picks a free port and prints it.
WAAS_LOG=${WAAS_LOG:-warn} "$WAAS_BIN" dev --listen 127.0.0.1:0 --store "$data/dev.db" \
    >"$data/stdout" 2>"$data/stderr" &
server_pid=$!
addr=
for _ in $(seq 1 300); do
    addr=$(sed -n 's/^listening on \(127\.0\.0\.1:[0-9]*\)$/\1/p' "$data/stdout" 2>/dev/null || true)
    [ -n "$addr" ] && break
    kill -0 "$server_pid" 2>/dev/null || { cat "$data/stderr" >&2; exit 1; }
    sleep 0.1
done
[ -n "$addr" ] || { echo "waas dev did not start" >&2; exit 1; }
base=http://$addr
echo "waas dev on $base ($network network)" >&2

# Things for the operations on one resource to find: a tenant and an app of the admin API's own
# (so that deleting them does not take the dev app from the REST API's operations), a key, a
# recording of each app, a replay, and a webhook endpoint (on a loopback port nobody serves)
# with a delivery. Operations then get these ids as path parameters.
call() { # METHOD PATH TOKEN [BODY] -> the answer, which must be a 2xx
    curl -sS --fail-with-body -X "$1" "$base$2" -H "Authorization: Bearer $3" \
        -H 'Content-Type: application/json' ${4:+--data "$4"}
}
field() { python3 -c 'import json,sys; v=json.load(sys.stdin)
for k in sys.argv[1].split("."): v=v[int(k)] if k.isdigit() else v[k]
print(v)' "$1"; }
op=$operator_token
call POST /v1/admin/tenants "$op" '{"id":"fuzz","name":"Fuzz"}' >/dev/null
call POST /v1/admin/tenants "$op" '{"id":"spare","name":"Spare"}' >/dev/null
call POST /v1/admin/apps "$op" '{"id":"fuzz","tenant_id":"fuzz"}' >/dev/null
key_id=$(call POST /v1/admin/apps/fuzz/keys "$op" '{"label":"fuzz"}' | field key.id)
recording=$(call POST /v1/apps/demo/recordings "$api_key" '{"name":"fuzz","channels":["chat.>"]}' | field id)
admin_recording=$(call POST /v1/admin/apps/fuzz/recordings "$op" '{"name":"fuzz","channels":[">"]}' | field id)
replay=$(call POST "/v1/admin/apps/fuzz/recordings/$admin_recording/replays" "$op" '{}' | field id)
webhook=none delivery=none
if [ "$network" = isolated ]; then
    webhook=$(call POST /v1/admin/apps/fuzz/webhooks "$op" \
        '{"url":"http://127.0.0.1:9/hook","events":["message"]}' | field webhook.id)
    fuzz_key=$(call POST /v1/admin/apps/fuzz/keys "$op" '{}' | field api_key)
    call POST /v1/apps/fuzz/publish "$fuzz_key" '{"channel":"chat.a","event":"e","data":1}' >/dev/null
    # The delivery is made from the gateway's report, a moment after the publish.
    for _ in $(seq 1 100); do
        delivery=$(call GET /v1/admin/apps/fuzz/deliveries "$op" | field 0.id 2>/dev/null) && break
        sleep 0.1
    done
fi
call POST /v1/apps/demo/publish "$api_key" '{"channel":"chat.room-1","event":"e","data":{"n":1}}' >/dev/null

# Each operation gets the credential of its security scheme, and the ids above.
cat >"$data/schemathesis.toml" <<EOF
[auth.openapi.api_key]
bearer = "$api_key"

[auth.openapi.operator_token]
bearer = "$operator_token"

[[operations]]
include-path-regex = "^/v1/apps/"
parameters = { "path.app" = "demo", "path.id" = "$recording", "path.channel" = "presence.room-1" }

[[operations]]
include-path-regex = "^/v1/admin/apps/"
parameters = { "path.id" = "fuzz", "path.key_id" = "$key_id", "path.rid" = "$admin_recording", "path.pid" = "$replay", "path.webhook" = "$webhook", "path.delivery" = "$delivery" }

[[operations]]
include-path-regex = "^/v1/admin/tenants/"
parameters = { "path.id" = "spare" }
EOF

excluded=()
if [ "$network" != isolated ]; then
    echo "no network namespace (not root, or no unshare): POST/PATCH .../webhooks left out" >&2
    excluded=(--exclude-operation-id create_webhook --exclude-operation-id update_webhook)
fi

status=0
# From the data dir: Schemathesis keeps a cache (.schemathesis/) where it runs.
cd "$data"
"$SCHEMATHESIS_VENV/bin/schemathesis" --config-file "$data/schemathesis.toml" \
    run "$base/openapi.json" \
    --url "$base" \
    --checks not_a_server_error,response_schema_conformance,status_code_conformance,content_type_conformance \
    --max-examples "$MAX_EXAMPLES" \
    --seed "${SEED:-1}" \
    --generation-database none \
    --no-color \
    "${excluded[@]}" || status=$?
if ! kill -0 "$server_pid" 2>/dev/null; then
    echo "waas dev died during the run" >&2
    cat "$data/stderr" >&2
    status=1
fi
exit "$status"
