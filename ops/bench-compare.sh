#!/usr/bin/env bash
# Runs the write and resync benchmarks of two revisions back to back on this machine, alternating the two in
# every round so that drift in a noisy machine hits both alike. Each revision is cloned from this repository
# into a temporary directory and built there; both use the same local stack (ports, schema), one at a time.
# Usage: ops/bench-compare.sh OLD_REV [NEW_REV (default HEAD)] [ROUNDS (default 2)]
# Results: bench-results/compare-<utc>/<label>-<workload>-<round>.json (the files `tm bench` and
# `tm bench-resync` write), where label is old or new. An old revision may need what its own ops/setup.sh
# installs (revisions before librdkafka.redist need Debian's librdkafka1).
# TM_BENCH_ONLY=<regex> runs only the workloads whose name matches (e.g. TM_BENCH_ONLY=resync, TM_BENCH_ONLY='resync|rebuild').
set -euo pipefail
. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

old_rev="${1:?usage: ops/bench-compare.sh OLD_REV [NEW_REV] [ROUNDS]}"
new_rev="${2:-HEAD}"
rounds="${3:-2}"
out="$TM_ROOT/bench-results/compare-$(date -u +%Y%m%dT%H%M%SZ)"
work="$(mktemp -d /tmp/tm-bench-compare.XXXXXX)"
mkdir -p "$out"
log "comparing $old_rev (old) with $new_rev (new), $rounds rounds; results in $out"

for label in old new; do
  rev=$([[ $label == old ]] && echo "$old_rev" || echo "$new_rev")
  git clone -q "$TM_ROOT" "$work/$label"
  git -C "$work/$label" checkout -q "$(git -C "$TM_ROOT" rev-parse "$rev")"
  log "$label = $(git -C "$work/$label" log --oneline -1)"
  (cd "$work/$label" && dotnet build TaggedMirror.sln -c Release -v q -nologo >"$out/$label-build.log" 2>&1) ||
    die "building $label failed (see $out/$label-build.log)"
done

# workload name | script | options
workloads=(
  "write-4k-c16|bench.sh|--writes 2000 --size 4096 --concurrency 16"
  "write-4k-c1|bench.sh|--writes 300 --size 4096 --concurrency 1"
  "write-64k-c16|bench.sh|--writes 500 --size 65536 --concurrency 16"
  "resync-256m-50|bench-resync.sh|--partial-writes 50 --volume-size 256MiB"
  "resync-1g-200|bench-resync.sh|--partial-writes 200 --volume-size 1GiB"
  "rebuild-1000|bench-rebuild.sh|--writes 1000 --size 4096"
)
for ((round = 1; round <= rounds; round++)); do
  for w in "${workloads[@]}"; do
    IFS='|' read -r name script options <<<"$w"
    [[ $name =~ ${TM_BENCH_ONLY:-.} ]] || continue
    # Alternate which revision goes first, so neither always runs on a warmer machine.
    order=(old new)
    ((round % 2 == 0)) && order=(new old)
    for label in "${order[@]}"; do
      dir="$work/$label"
      before=$(ls -t "$dir/bench-results" 2>/dev/null | head -n 1 || true)
      # shellcheck disable=SC2086 # options are words on purpose
      env -u TM_RUN_DIR TM_SKIP_SETUP=1 TM_SKIP_BUILD=1 "$dir/ops/$script" $options >"$out/$label-$name-$round.log" 2>&1 ||
        die "$label $name round $round failed (see $out/$label-$name-$round.log)"
      latest=$(ls -t "$dir/bench-results" | head -n 1)
      [[ $latest != "$before" ]] || die "$label $name round $round wrote no results file"
      cp "$dir/bench-results/$latest" "$out/$label-$name-$round.json"
      log "$label $name round $round: $latest"
    done
  done
done
rm -rf "$work"
log "done: $out"
