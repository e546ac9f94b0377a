#!/usr/bin/env bash
# Stops what ops/stack-start.sh started, by pid file only: the controller, agents d0, d1 and d2, then devkafka.
# SIGTERM, then SIGKILL after TM_STOP_TIMEOUT seconds (10). Parts not running are skipped.
# TM_KEEP_DEVKAFKA=1 leaves devkafka running.
set -euo pipefail
. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

TIMEOUT="${TM_STOP_TIMEOUT:-10}"

# stop NAME PATTERN
stop() {
  local name="$1" pattern="$2" pid_file="$TM_RUN_DIR/$1.pid" pid
  pid="$(cat "$pid_file" 2>/dev/null || true)"
  if ! pid_matches "$pid" "$pattern"; then
    rm -f "$pid_file"
    log "$name: not running"
    return
  fi
  kill -TERM "$pid" 2>/dev/null || true
  local deadline=$((SECONDS + TIMEOUT))
  while pid_matches "$pid" "$pattern"; do
    if ((SECONDS >= deadline)); then
      log "$name: still running after ${TIMEOUT}s, sending SIGKILL"
      kill -KILL "$pid" 2>/dev/null || true
      sleep 0.2
      break
    fi
    sleep 0.2
  done
  rm -f "$pid_file"
  log "$name: stopped (pid $pid)"
}

stop controller TaggedMirror.Controller.dll
stop agent-d0 TaggedMirror.DeviceAgent.dll
stop agent-d1 TaggedMirror.DeviceAgent.dll
stop agent-d2 TaggedMirror.DeviceAgent.dll
if [[ ${TM_KEEP_DEVKAFKA:-0} != 1 ]]; then
  "$TM_ROOT/ops/devkafka-stop.sh"
fi
