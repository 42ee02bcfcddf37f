# Helpers the benchmark scripts share; sourced, not run.

# wait_for LOG PATTERN WHAT [SECONDS]: prints the first capture of sed PATTERN in LOG, waiting
# up to SECONDS (10); exits with LOG on stderr when WHAT never wrote it.
wait_for() {
    local log=$1 pattern=$2 what=$3 tries=$((${4:-10} * 10)) found
    for _ in $(seq "$tries"); do
        found=$(sed -n "$pattern" "$log" | head -1)
        [ -n "$found" ] && { echo "$found"; return 0; }
        sleep 0.1
    done
    echo "$what did not start:" >&2
    cat "$log" >&2
    exit 1
}

# spawn LOG CMD...: starts CMD in the background, logging to LOG; sets SPAWNED to its pid and
# adds it to PIDS (the caller's cleanup kills them).
spawn() {
    local log=$1
    shift
    "$@" >"$log" 2>&1 &
    SPAWNED=$!
    PIDS+=("$SPAWNED")
}
