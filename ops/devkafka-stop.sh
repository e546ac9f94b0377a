#!/usr/bin/env bash
# Stops the devkafka started by ops/devkafka-start.sh: SIGTERM, then SIGKILL after
# TM_STOP_TIMEOUT seconds (10). A no-op when it is not running.
set -euo pipefail
. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

PID_FILE="$TM_RUN_DIR/devkafka.pid"
BOOTSTRAP_FILE="$TM_RUN_DIR/kafka.bootstrap"
TIMEOUT="${TM_STOP_TIMEOUT:-10}"

pid="$(cat "$PID_FILE" 2>/dev/null || true)"
if ! pid_matches "$pid" TaggedMirror.DevKafka; then
  rm -f "$PID_FILE" "$BOOTSTRAP_FILE" "$BOOTSTRAP_FILE.control"
  log "devkafka: not running"
  exit 0
fi

kill -TERM "$pid" 2>/dev/null || true
deadline=$((SECONDS + TIMEOUT))
while pid_matches "$pid" TaggedMirror.DevKafka; do
  if ((SECONDS >= deadline)); then
    log "devkafka: still running after ${TIMEOUT}s, sending SIGKILL"
    kill -KILL "$pid" 2>/dev/null || true
    sleep 0.2
    break
  fi
  sleep 0.2
done
# devkafka removes its files on SIGTERM; after SIGKILL they are stale.
rm -f "$PID_FILE" "$BOOTSTRAP_FILE" "$BOOTSTRAP_FILE.control"
log "devkafka: stopped (pid $pid)"
