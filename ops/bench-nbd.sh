#!/usr/bin/env bash
# Benchmarks the block front end: starts the local stack (ops/stack-start.sh), runs `tm bench-nbd` (fio through the
# controller's NBD export, against nbdkit's file plugin and nbd-server exporting a plain file, and against the HTTP
# path, one workload at a time across the four; results in bench-results/nbd-*.json and a chart, nbd-*.svg), then
# stops the stack. fio, nbdkit and nbd-server come from ops/setup.sh.
# Usage: ops/bench-nbd.sh [--keep] [tm bench-nbd options, e.g. --runtime 20 --region-mib 128]
#   --keep  leave the stack running afterwards (stop it with ops/stack-stop.sh)
set -euo pipefail
. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

mkdir -p "$TM_ROOT/bench-results"
rc=0
run_on_stack bench-nbd "$@" || rc=$?
exit "$rc"
