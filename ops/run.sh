#!/usr/bin/env bash
# Runs the product end to end: starts the local stack (ops/stack-start.sh), runs `tm demo` against it
# (writes, appends, reads back and verifies every mirror, shows the tag tables drain), then stops the stack.
# Usage: ops/run.sh [--keep] [tm demo options, e.g. --writes 500 --volume demo2]
#   --keep  leave the stack running afterwards (stop it with ops/stack-stop.sh)
# Exit code: the demo's (0 = verified).
set -euo pipefail
. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

keep=0
demo_args=()
for arg in "$@"; do
  case "$arg" in
    --keep) keep=1 ;;
    *) demo_args+=("$arg") ;;
  esac
done

if ((keep == 0)); then
  # Stops the stack however this script ends: demo failure, start failure or Ctrl-C.
  trap '"$TM_ROOT/ops/stack-stop.sh" || true' EXIT
fi

"$TM_ROOT/ops/stack-start.sh"
cd "$TM_ROOT"
rc=0
dotnet "src/Cli/bin/${TM_BUILD_CONFIGURATION:-Release}/net10.0/TaggedMirror.Cli.dll" demo "${demo_args[@]}" || rc=$?

log "logs: $TM_RUN_DIR/controller.log, $TM_RUN_DIR/agent-d0.log, $TM_RUN_DIR/agent-d1.log, $TM_RUN_DIR/devkafka.log"
if ((keep == 1)); then
  log "stack left running (--keep): controller http://127.0.0.1:5100, agents :5101 :5102; stop with ops/stack-stop.sh"
fi
exit "$rc"
