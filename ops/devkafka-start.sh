#!/usr/bin/env bash
# Starts devkafka (librdkafka mock cluster, see src/DevKafka) in the background.
# Writes .run/devkafka.pid, .run/devkafka.log, .run/kafka.bootstrap (+ .control with the
# fault-injection port). A no-op when it is already running.
# Environment: TM_KAFKA_BROKERS (3), TM_KAFKA_TOPICS (e.g. "devices:8,events:1"),
# TM_KAFKA_CONTROL_PORT (0 = any free port), TM_BUILD_CONFIGURATION (Release).
set -euo pipefail
. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

ensure_run_dir
PID_FILE="$TM_RUN_DIR/devkafka.pid"
LOG_FILE="$TM_RUN_DIR/devkafka.log"
BOOTSTRAP_FILE="$TM_RUN_DIR/kafka.bootstrap"
CONFIGURATION="${TM_BUILD_CONFIGURATION:-Release}"
PROJECT_DIR="$TM_ROOT/src/DevKafka"
DLL="$PROJECT_DIR/bin/$CONFIGURATION/net10.0/TaggedMirror.DevKafka.dll"

if [[ -f $PID_FILE ]] && pid_matches "$(cat "$PID_FILE")" TaggedMirror.DevKafka && [[ -f $BOOTSTRAP_FILE ]]; then
  log "devkafka: already running (pid $(cat "$PID_FILE")), bootstrap $(cat "$BOOTSTRAP_FILE")"
  exit 0
fi
if [[ -f $PID_FILE ]] && pid_matches "$(cat "$PID_FILE")" TaggedMirror.DevKafka; then
  # Alive but without a bootstrap file: half started or broken. Restart it cleanly.
  "$TM_ROOT/ops/devkafka-stop.sh"
fi
rm -f "$PID_FILE" "$BOOTSTRAP_FILE" "$BOOTSTRAP_FILE.control"

command -v dotnet >/dev/null 2>&1 || die "dotnet not found (run ops/setup.sh)"
if [[ ! -f $DLL ]] || [[ -n "$(find "$PROJECT_DIR" -path '*/bin' -prune -o -path '*/obj' -prune -o -type f -newer "$DLL" -print -quit)" ]]; then
  log "devkafka: building ($CONFIGURATION)"
  dotnet build "$PROJECT_DIR" -c "$CONFIGURATION" -v q -nologo >"$TM_RUN_DIR/devkafka-build.log" 2>&1 ||
    { tail -n 30 "$TM_RUN_DIR/devkafka-build.log" >&2; die "devkafka: build failed (see $TM_RUN_DIR/devkafka-build.log)"; }
fi

args=(--brokers "${TM_KAFKA_BROKERS:-3}" --bootstrap-file "$BOOTSTRAP_FILE" --control-port "${TM_KAFKA_CONTROL_PORT:-0}")
if [[ -n ${TM_KAFKA_TOPICS:-} ]]; then
  args+=(--topics "$TM_KAFKA_TOPICS")
fi
# nohup execs dotnet, so $! is devkafka's own pid; stdin is closed on purpose.
cd "$TM_ROOT"
nohup dotnet "$DLL" "${args[@]}" </dev/null >>"$LOG_FILE" 2>&1 &
pid=$!
echo "$pid" >"$PID_FILE"

deadline=$((SECONDS + 30))
until [[ -f $BOOTSTRAP_FILE ]]; do
  if ! kill -0 "$pid" 2>/dev/null; then
    rm -f "$PID_FILE"
    tail -n 20 "$LOG_FILE" >&2
    die "devkafka exited during start (log: $LOG_FILE)"
  fi
  if ((SECONDS >= deadline)); then
    "$TM_ROOT/ops/devkafka-stop.sh" || true
    die "devkafka did not write $BOOTSTRAP_FILE within 30 s (log: $LOG_FILE)"
  fi
  sleep 0.2
done
log "devkafka: started (pid $pid), bootstrap $(cat "$BOOTSTRAP_FILE"), control port $(cat "$BOOTSTRAP_FILE.control")"
