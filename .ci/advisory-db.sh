#!/usr/bin/env bash
# The RustSec advisories CI checks against, kept in the repository because CI here cannot reach
# GitHub, where cargo-deny would fetch them (docs/security.md, "Supply chain").
#
#   .ci/advisory-db.sh refresh <clone of github.com/rustsec/advisory-db, bare or not>
#       copies the advisories of every crate in Cargo.lock into .ci/advisory-db/crates/ and
#       records the clone's commit and date in .ci/advisory-db/SNAPSHOT. Run it after adding a
#       dependency, and whenever a newer clone is at hand.
#   .ci/advisory-db.sh check
#       runs `cargo deny check advisories` offline against that copy (deny.toml's ignore list
#       applies), as .ci/run does.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
db="$root/.ci/advisory-db"

refresh() {
  local src=$1 git_dir=$1
  if [ ! -d "$src/crates" ]; then
    # A bare clone (or mirror): read its tree out first.
    git -C "$git_dir" rev-parse HEAD >/dev/null || { echo "$src is no advisory-db clone" >&2; exit 1; }
    src=$(mktemp -d)
    trap 'rm -rf "$src"' RETURN
    git -C "$git_dir" archive HEAD crates | tar -x -C "$src"
  fi
  rm -rf "$db/crates" && mkdir -p "$db/crates"
  grep '^name = ' "$root/Cargo.lock" | sed 's/name = "\(.*\)"/\1/' | sort -u | while read -r c; do
    if [ -d "$src/crates/$c" ]; then cp -r "$src/crates/$c" "$db/crates/"; fi
  done
  printf 'commit %s\ndate %s\n' "$(git -C "$git_dir" rev-parse HEAD)" "$(git -C "$git_dir" log -1 --format=%cI)" \
    > "$db/SNAPSHOT"
  echo "source https://github.com/rustsec/advisory-db (CC0-1.0), crates in Cargo.lock only" >> "$db/SNAPSHOT"
  echo "advisories of $(ls "$db/crates" | wc -l) crates copied; $(cat "$db/SNAPSHOT" | tr '\n' ' ')"
}

check() {
  local date; date=$(sed -n 's/^date //p' "$db/SNAPSHOT")
  local tmp; tmp=$(mktemp -d)
  trap 'rm -rf "$tmp"' RETURN
  # cargo-deny opens a git checkout under db-path named after the database's URL, and judges
  # its age by the commit date: the snapshot's own date, not today's.
  local repo="$tmp/db/advisory-db-3157b0e258782691"
  mkdir -p "$repo" && cp -r "$db/crates" "$repo/"
  git -C "$repo" init -q
  git -C "$repo" add -A
  GIT_AUTHOR_DATE=$date GIT_COMMITTER_DATE=$date \
    git -C "$repo" -c user.name=ci -c user.email=ci@localhost commit -qm "advisory-db snapshot"
  # A copy of deny.toml that points at the snapshot. Its age is allowed up to a year: the
  # snapshot is refreshed by hand (see above), and SNAPSHOT says how old it is.
  sed "s|^\[advisories\]|[advisories]\ndb-path = \"$tmp/db\"\nmaximum-db-staleness = \"P365D\"|" \
    "$root/deny.toml" > "$tmp/deny.toml"
  echo "advisories from the RustSec snapshot of $date (.ci/advisory-db/SNAPSHOT)"
  (cd "$root" && cargo deny --offline --config "$tmp/deny.toml" check advisories)
}

case "${1:-}" in
  refresh) refresh "${2:?usage: $0 refresh <advisory-db clone>}" ;;
  check) check ;;
  *) echo "usage: $0 refresh <advisory-db clone> | check" >&2; exit 2 ;;
esac
