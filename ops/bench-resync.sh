#!/usr/bin/env bash
# Benchmarks reconciliation after an outage of one mirror's log: starts the local stack (ops/stack-start.sh), runs
# `tm bench-resync` with the given options (results in bench-results/resync-*.json), then stops the stack.
# Usage: ops/bench-resync.sh [--keep] [tm bench-resync options, e.g. --partial-writes 50 --volume-size 256MiB]
#   --keep  leave the stack running afterwards (stop it with ops/stack-stop.sh)
# The controller runs with Controller__DeliveryTimeout=00:00:02 unless the environment sets it (the first write of
# the outage waits that long before d1 is degraded). A stack left running by an earlier --keep is reused as it is,
# with whatever delivery timeout it was started with.
set -euo pipefail
. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

export Controller__DeliveryTimeout="${Controller__DeliveryTimeout:-00:00:02}"
mkdir -p "$TM_ROOT/bench-results"
rc=0
run_on_stack bench-resync "$@" || rc=$?
exit "$rc"
