#!/usr/bin/env bash
# Runs the product end to end: starts the local stack (ops/stack-start.sh), runs `tm demo` against it
# (writes, appends, reads back and verifies every mirror, shows the tag tables drain), then stops the stack.
# Usage: ops/run.sh [--keep] [tm demo options, e.g. --writes 500 --volume demo2]
#   --keep  leave the stack running afterwards (stop it with ops/stack-stop.sh)
# Exit code: the demo's (0 = verified).
set -euo pipefail
. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

rc=0
run_on_stack demo "$@" || rc=$?
log "logs: $TM_RUN_DIR/controller.log, $TM_RUN_DIR/agent-d0.log, $TM_RUN_DIR/agent-d1.log, $TM_RUN_DIR/agent-d2.log, $TM_RUN_DIR/devkafka.log"
exit "$rc"
