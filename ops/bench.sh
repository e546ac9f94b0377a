#!/usr/bin/env bash
# Benchmarks writes through the controller against raw Kafka produce: starts the local stack
# (ops/stack-start.sh), runs `tm bench` with the given options (results in bench-results/), then stops the stack.
# Usage: ops/bench.sh [--keep] [--tracing] [tm bench options, e.g. --writes 2000 --size 4096 --concurrency 16]
#   --keep     leave the stack running afterwards (stop it with ops/stack-stop.sh)
#   --tracing  run the stack with OpenTelemetry on: every span and metric is exported over OTLP/HTTP to
#              `tm otlp-sink` (which counts them and prints span durations by service and name) on
#              127.0.0.1:${TM_OTLP_SINK_PORT:-4318}
# The controller runs with its default Controller__MaxLagBytes unless the environment sets it; a stack left
# running by an earlier --keep is reused as it is (with whatever telemetry it was started with).
set -euo pipefail
. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

args=() tracing=0
for arg in "$@"; do
  case "$arg" in
    --tracing) tracing=1 ;;
    *) args+=("$arg") ;;
  esac
done

mkdir -p "$TM_ROOT/bench-results"
sink_pid=
stop_sink() {
  if [[ -n $sink_pid ]] && kill -0 "$sink_pid" 2>/dev/null; then
    kill -TERM "$sink_pid" 2>/dev/null || true
    wait "$sink_pid" 2>/dev/null || true
  fi
  sink_pid=
}
if ((tracing == 1)); then
  port="${TM_OTLP_SINK_PORT:-4318}"
  # The sink is the CLI: build it before the stack does.
  [[ ${TM_SKIP_BUILD:-0} == 1 ]] || (cd "$TM_ROOT" && dotnet build src/Cli/Cli.csproj -c "${TM_BUILD_CONFIGURATION:-Release}" -v q -nologo >/dev/null) ||
    die "building the CLI failed: run dotnet build src/Cli/Cli.csproj to see why"
  dotnet "$TM_ROOT/src/Cli/bin/${TM_BUILD_CONFIGURATION:-Release}/net10.0/TaggedMirror.Cli.dll" otlp-sink --port "$port" &
  sink_pid=$!
  wait_until 30 "tm otlp-sink on port $port" curl -fsS "http://127.0.0.1:$port/stats"
  export OTEL_EXPORTER_OTLP_ENDPOINT="http://127.0.0.1:$port" OTEL_EXPORTER_OTLP_PROTOCOL=http/protobuf
  TM_ON_EXIT=stop_sink
  log "tracing on: OTLP/HTTP to $OTEL_EXPORTER_OTLP_ENDPOINT"
fi
rc=0
run_on_stack bench "${args[@]}" || rc=$?
if ((tracing == 1)); then
  log "exported: $(curl -fsS "http://127.0.0.1:${TM_OTLP_SINK_PORT:-4318}/stats" || echo unknown)"
  stop_sink
fi
exit "$rc"
