#!/usr/bin/env bash
# Benchmarks how much PostgreSQL the cluster keeps: starts the local stack (ops/stack-start.sh, fresh schema
# tm_local), runs `tm bench-growth` with the given options (results in bench-results/growth-*.json), then stops
# the stack. Default: 100,000 writes of 4 KiB, then 10 idle minutes sampled every minute.
# Usage: ops/bench-growth.sh [--keep] [tm bench-growth options, e.g. --short, or --writes 20000 --idle 00:05:00]
#   --keep   leave the stack running afterwards (stop it with ops/stack-stop.sh)
#   --short  a smoke run: 2,000 writes and 60 s idle
# The stack is the shared local one (ports 5100-5102): one benchmark at a time on a machine.
set -euo pipefail
. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

mkdir -p "$TM_ROOT/bench-results"
export TaggedMirror__Schema="${TaggedMirror__Schema:-tm_local}"
rc=0
run_on_stack bench-growth "$@" || rc=$?
exit "$rc"
