#!/usr/bin/env bash
# Micro-benchmarks of the per-write hot path (issue #11): BenchmarkDotNet over bench/Micro.Benchmarks, product
# code alone (the transaction codec, the fan-out's per-write work): no stack, no servers, no network.
# Builds Release and runs every benchmark unless a --filter is given; the arguments are BenchmarkDotNet's.
# Usage: ops/bench-micro.sh [BenchmarkDotNet options, e.g. --filter '*Codec*' --job short]
#   --job short       3 warm-ups and 3 iterations per case: a few minutes for all, rougher figures
#   --filter PATTERN  only the benchmarks whose full name matches (e.g. '*Fanout*', '*Codec.Decode*')
# Results: bench-results/micro-<utc>/ (BenchmarkDotNet's --artifacts: logs, and results/*-report-github.md).
# TM_SKIP_BUILD=1 runs what was built last.
set -euo pipefail
. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
cd "$TM_ROOT"

project="bench/Micro.Benchmarks/TaggedMirror.Micro.Benchmarks.csproj"
out="$TM_ROOT/bench-results/micro-$(date -u +%Y%m%dT%H%M%SZ)"

args=("$@")
has() {
  local want="$1" arg
  for arg in "${args[@]}"; do [[ $arg == "$want" || $arg == "$want="* ]] && return 0; done
  return 1
}
# Without a filter BenchmarkDotNet asks on the terminal which benchmarks to run.
if ! has --filter && ! has -f; then args+=(--filter '*'); fi
if has --artifacts || has -a; then out=""; else args+=(--artifacts "$out"); fi

if [[ ${TM_SKIP_BUILD:-0} != 1 ]]; then
  log "build $project (Release)"
  dotnet build "$project" -c Release -nologo -v q
fi
if [[ -n $out ]]; then
  mkdir -p "$out"
  log "running micro-benchmarks; results in $out"
fi
dotnet "bench/Micro.Benchmarks/bin/Release/net10.0/TaggedMirror.Micro.Benchmarks.dll" "${args[@]}"
if [[ -n $out ]]; then
  for report in "$out"/results/*-report-github.md; do
    if [[ -f $report ]]; then log "report: ${report#"$TM_ROOT"/}"; fi
  done
fi
