#!/usr/bin/env bash
# Benchmarks a rebuild from the log and a verify: starts the local stack (ops/stack-start.sh), runs
# `tm bench-rebuild` with the given options (results in bench-results/rebuild-*.json), then stops the stack.
# Each figure is against its baseline in the same run: the device's replay against a plain Confluent.Kafka consume
# of the same topic, the verify against cat of the object files.
# Usage: ops/bench-rebuild.sh [--keep] [tm bench-rebuild options, e.g. --writes 1000 --size 4096]
#   --keep  leave the stack running afterwards (stop it with ops/stack-stop.sh)
set -euo pipefail
. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

mkdir -p "$TM_ROOT/bench-results"
rc=0
run_on_stack bench-rebuild "$@" || rc=$?
exit "$rc"
