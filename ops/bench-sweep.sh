#!/usr/bin/env bash
# The write path against the raw produce at 1, 4, 16 and 64 writes in flight (4 KiB) and 64 KiB at 16, on one
# stack: started fresh (ops/stack-start.sh), warmed up by an unmeasured run (a controller's first thousands of
# writes run code the JIT has not optimised yet), then one `tm bench` per workload, each with its raw baseline in
# the same run and the CPU each process used per write. Writes bench-results/sweep-<label>-<utc>/ with the result
# files, table.md and chart.svg (`tm bench-chart`), then stops the stack.
# Usage: ops/bench-sweep.sh [LABEL (default: the short commit)]
# TM_STACK_ROOT=<a built clone of another revision>: run that revision's stack, measured by this tree's benchmark
#   (how docs/benchmarks.md compares before and after with the same measuring code).
# TM_SWEEP_SCALE=<factor>: multiplies every workload's write count (default 1).
set -euo pipefail
. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

stack_root="$(cd "${TM_STACK_ROOT:-$TM_ROOT}" && pwd)"
label="${1:-$(git -C "$stack_root" rev-parse --short HEAD)}"
scale="${TM_SWEEP_SCALE:-1}"
out="$TM_ROOT/bench-results/sweep-$label-$(date -u +%Y%m%dT%H%M%SZ)"
mkdir -p "$out"
printf '%s\n' "$label ($(git -C "$stack_root" rev-parse --short HEAD)$(git -C "$stack_root" diff --quiet HEAD -- src || echo ', changed'))" >"$out/label"

[[ ${TM_SKIP_BUILD:-0} == 1 ]] || (cd "$TM_ROOT" && dotnet build src/Cli/Cli.csproj -c "${TM_BUILD_CONFIGURATION:-Release}" -v q -nologo >/dev/null) ||
  die "building the CLI failed: run dotnet build src/Cli/Cli.csproj to see why"
cli=(dotnet "$TM_ROOT/src/Cli/bin/${TM_BUILD_CONFIGURATION:-Release}/net10.0/TaggedMirror.Cli.dll")

run_dir="$stack_root/.run"
stop() { TM_RUN_DIR="$run_dir" "$stack_root/ops/stack-stop.sh" || true; }
trap stop EXIT
# A fresh stack (schema, data, topics) for every sweep: nothing left from an earlier one weighs on this one.
stop
TM_RUN_DIR="$run_dir" "$stack_root/ops/stack-start.sh"
kafka="$(cat "$run_dir/kafka.bootstrap")"

writes() { awk -v n="$1" -v s="$scale" 'BEGIN { printf "%d", n * s }'; }
log "sweep $label: warming up (unmeasured)"
"${cli[@]}" bench --volume warmup --writes "$(writes 4000)" --concurrency 16 --no-raw --kafka "$kafka" --output "$out/warmup.json" >"$out/warmup.log" 2>&1 ||
  die "warm-up failed (see $out/warmup.log)"
# name | size | in flight | writes
workloads=(
  "4k-c1|4096|1|600"
  "4k-c4|4096|4|2000"
  "4k-c16|4096|16|5000"
  "4k-c64|4096|64|6000"
  "64k-c16|65536|16|1000"
)
for w in "${workloads[@]}"; do
  IFS='|' read -r name size inflight count <<<"$w"
  "${cli[@]}" bench --writes "$(writes "$count")" --size "$size" --concurrency "$inflight" --kafka "$kafka" --output "$out/$name.json" >"$out/$name.log" 2>&1 ||
    die "$name failed (see $out/$name.log)"
  log "sweep $label: $name done"
done
"${cli[@]}" bench-chart "$out" --markdown "$out/table.md" --svg "$out/chart.svg"
log "sweep $label: results in $out"
