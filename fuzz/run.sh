#!/usr/bin/env bash
# Runs every fuzz target (or the ones named) for a bounded time each; exits non-zero if any
# target crashed, after running the rest. See fuzz/README.md.
#
#   fuzz/run.sh [SECONDS_PER_TARGET] [TARGET...]     # default 60 s, every target
#
# Environment: CARGO_TARGET_DIR (default fuzz/target); FUZZ_SANITIZER: address (the default) or
# none, about twice as fast: our code is safe Rust, so the sanitizer guards only dependencies'
# unsafe code. Debug assertions (integer overflow checks) are always on.
set -euo pipefail
cd "$(dirname "$0")"

secs=${1:-60}
shift || true

command -v cargo-fuzz >/dev/null || cargo install cargo-fuzz --locked
# cargo-fuzz passes -Z flags (sanitizer, coverage); only nightly accepts them unless told
# otherwise. This machine has stable Rust only.
export RUSTC_BOOTSTRAP=1
export CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-$PWD/target}
flags=(--debug-assertions --sanitizer "${FUZZ_SANITIZER:-address}")

targets=("$@")
if [ ${#targets[@]} -eq 0 ]; then
  mapfile -t targets < <(cargo fuzz list)
fi

cargo fuzz build "${flags[@]}"

failed=()
for t in "${targets[@]}"; do
  printf '\n== %s: %s s\n' "$t" "$secs"
  # New inputs go to corpus/ (not committed); seeds/ is the committed starting point.
  mkdir -p "corpus/$t" "seeds/$t"
  if ! cargo fuzz run "${flags[@]}" "$t" "corpus/$t" "seeds/$t" -- \
      -max_total_time="$secs" -timeout=10 -rss_limit_mb=2048 -print_final_stats=1; then
    failed+=("$t")
  fi
done

if [ ${#failed[@]} -gt 0 ]; then
  echo "fuzz targets that crashed: ${failed[*]} (inputs in fuzz/artifacts/)" >&2
  exit 1
fi
echo "every fuzz target ran ${secs} s without a crash: ${targets[*]}"
