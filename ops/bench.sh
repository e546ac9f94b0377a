#!/usr/bin/env bash
# Benchmarks writes through the controller against raw Kafka produce: starts the local stack
# (ops/stack-start.sh), runs `tm bench` with the given options (results in bench-results/), then stops the stack.
# Usage: ops/bench.sh [--keep] [tm bench options, e.g. --writes 2000 --size 4096 --concurrency 16]
#   --keep  leave the stack running afterwards (stop it with ops/stack-stop.sh)
# The controller runs with its default Controller__MaxLagBytes unless the environment sets it; a stack left
# running by an earlier --keep is reused as it is.
set -euo pipefail
. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

mkdir -p "$TM_ROOT/bench-results"
rc=0
run_on_stack bench "$@" || rc=$?
exit "$rc"
