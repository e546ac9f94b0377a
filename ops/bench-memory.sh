#!/usr/bin/env bash
# Memory over a long write run (issue #11: "no growth over a 10-minute run"): starts the local stack
# (ops/stack-start.sh), runs `tm bench --no-raw` for about TM_MEMORY_MINUTES (default 10) minutes of writes, and
# samples the resident set (VmRSS) of the controller and of every agent every TM_MEMORY_SAMPLE seconds (default 10).
# Writes bench-results/memory-<UTC>.csv (seconds,process,rss_mib) and bench-results/memory-<UTC>.txt: per process
# the first sample after the warm-up minute, the peak, the last, and last ÷ first (growth as a ratio, so it holds
# on a noisy machine), plus the `tm bench` JSON of the same run. Then stops the stack (--keep leaves it running).
# Usage: ops/bench-memory.sh [--keep] [tm bench options, e.g. --size 4096 --concurrency 16]
#   TM_MEMORY_RATE   writes/s the run is sized for (default 1500; the run ends after that many writes per second
#                    of TM_MEMORY_MINUTES, sooner or later as the machine goes)
set -euo pipefail
. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

minutes="${TM_MEMORY_MINUTES:-10}"
every="${TM_MEMORY_SAMPLE:-10}"
rate="${TM_MEMORY_RATE:-1500}"
[[ $minutes =~ ^[1-9][0-9]*$ ]] || die "TM_MEMORY_MINUTES must be a whole number of minutes, at least 1 (got '$minutes')"
[[ $every =~ ^[1-9][0-9]*$ ]] || die "TM_MEMORY_SAMPLE must be a whole number of seconds, at least 1 (got '$every')"
[[ $rate =~ ^[1-9][0-9]*$ ]] || die "TM_MEMORY_RATE must be a whole number of writes per second, at least 1 (got '$rate')"

keep=0 args=()
for arg in "$@"; do
  case "$arg" in
    --keep) keep=1 ;;
    *) args+=("$arg") ;;
  esac
done
stamp="$(date -u +%Y%m%dT%H%M%SZ)"
results="$TM_ROOT/bench-results"
csv="$results/memory-$stamp.csv" summary="$results/memory-$stamp.txt" json="$results/memory-$stamp.json"
mkdir -p "$results"

sampler=
cleanup() {
  [[ -z $sampler ]] || kill "$sampler" 2>/dev/null || true
  ((keep == 1)) || "$TM_ROOT/ops/stack-stop.sh" || true
}
trap cleanup EXIT
"$TM_ROOT/ops/stack-start.sh"
cd "$TM_ROOT"

names=()
for f in "$TM_RUN_DIR"/controller.pid "$TM_RUN_DIR"/agent-*.pid; do
  [[ -f $f ]] && names+=("$(basename "$f" .pid)")
done
((${#names[@]} > 0)) || die "no controller or agent pid files in $TM_RUN_DIR"

echo "seconds,process,rss_mib" >"$csv"
sample() {
  local start=$SECONDS name pid kb
  while true; do
    for name in "${names[@]}"; do
      pid="$(cat "$TM_RUN_DIR/$name.pid" 2>/dev/null || true)"
      kb="$(awk '/^VmRSS:/ {print $2}' "/proc/$pid/status" 2>/dev/null || true)"
      [[ -z $kb ]] || awk -v s=$((SECONDS - start)) -v n="$name" -v kb="$kb" 'BEGIN { printf "%d,%s,%.1f\n", s, n, kb / 1024 }' >>"$csv"
    done
    sleep "$every"
  done
}
sample &
sampler=$!

writes=$((minutes * 60 * rate))
log "memory: $writes writes (about $minutes min at $rate writes/s), sampled every ${every}s into $csv"
rc=0
dotnet "src/Cli/bin/${TM_BUILD_CONFIGURATION:-Release}/net10.0/TaggedMirror.Cli.dll" bench --no-raw --warmup 3000 \
  --writes "$writes" --output "$json" "${args[@]}" || rc=$?
kill "$sampler" 2>/dev/null || true
wait "$sampler" 2>/dev/null || true

{
  echo "memory over a write run: tm bench ${args[*]} ($writes writes), sampled every ${every}s; first = first sample after 60 s"
  printf '%-14s %10s %10s %10s %12s\n' process "first MiB" "peak MiB" "last MiB" "last÷first"
  for name in "${names[@]}"; do
    awk -F, -v n="$name" '$2 == n && $1 >= 60 { if (first == "") first = $3; if ($3 > peak) peak = $3; last = $3 }
      END { if (first == "") { printf "%-14s (no sample after 60 s)\n", n } else printf "%-14s %10.1f %10.1f %10.1f %12.2f\n", n, first, peak, last, last / first }' "$csv"
  done
} | tee "$summary"
exit "$rc"
