#!/usr/bin/env bash
# Starts the local stack in the background: devkafka (mock Kafka with tm.device.d0/d1/d2), the controller on
# :5100 (HTTP) and :5443 (HTTPS, with a self-signed certificate made here once: .run/tls/cert.pem, trusted by the
# CLI with TM_CA_FILE=.run/tls/ca.pem) and device agents d0 (:5101), d1 (:5102) and d2 (:5103, a spare: the demo's volume is mirrored on d0 and
# d1, so d2 is there to attach or replace onto), cluster `local`, PostgreSQL schema tm_local.
# Pid files and logs in .run/ (<name>.pid, <name>.log; the previous run's log is kept as <name>.log.prev),
# device data in .run/data/<device>. Idempotent: parts already running are left alone.
#
# The development broker keeps its log in memory only, so when it is (re)started the stack's earlier state —
# device offsets and tag tables in PostgreSQL, object files in .run/data — refers to a log that no longer
# exists. Starting devkafka therefore stops any controller/agents still running and starts from empty state.
#
# Environment: TM_SKIP_BUILD=1 (do not build), TM_SKIP_SETUP=1 (do not run ops/setup.sh),
# TM_START_TIMEOUT (60 s), TM_BUILD_CONFIGURATION (Release), TM_ASPNETCORE_LOG_LEVEL (Warning),
# TM_DEVICE_PARTITIONS (1: partitions of each device topic when devkafka starts; a volume's writes all go to one, so
# more lets a benchmark hold more than the development broker's 5 MiB per partition);
# Controller__* / Agent__* settings in the environment pass through.
set -euo pipefail
. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

CONFIGURATION="${TM_BUILD_CONFIGURATION:-Release}"
START_TIMEOUT="${TM_START_TIMEOUT:-60}"
CLUSTER=local
SCHEMA=tm_local
CONTROLLER_URL=http://127.0.0.1:5100
CONTROLLER_TLS_URL=https://127.0.0.1:5443
CONTROLLER_URLS="$CONTROLLER_URL;$CONTROLLER_TLS_URL"
declare -A AGENT_URLS=([d0]=http://127.0.0.1:5101 [d1]=http://127.0.0.1:5102 [d2]=http://127.0.0.1:5103)
DEVICES=(d0 d1 d2)
CONTROLLER_DLL="$TM_ROOT/src/Controller/bin/$CONFIGURATION/net10.0/TaggedMirror.Controller.dll"
AGENT_DLL="$TM_ROOT/src/DeviceAgent/bin/$CONFIGURATION/net10.0/TaggedMirror.DeviceAgent.dll"
export TM_BUILD_CONFIGURATION="$CONFIGURATION"

ensure_run_dir
cd "$TM_ROOT"

# The strings each process's command line contains (pid_matches guards against a reused pid).
controller_pattern() { echo "TaggedMirror.Controller.dll --urls $CONTROLLER_URLS "; }
agent_pattern() { echo "TaggedMirror.DeviceAgent.dll --urls ${AGENT_URLS[$1]} "; }
running() { local name="$1" pattern="$2"; pid_matches "$(cat "$TM_RUN_DIR/$name.pid" 2>/dev/null || true)" "$pattern"; }
controller_running() { running controller "$(controller_pattern)"; }
agent_running() { running "agent-$1" "$(agent_pattern "$1")"; }
devkafka_running() { pid_matches "$(cat "$TM_RUN_DIR/devkafka.pid" 2>/dev/null || true)" TaggedMirror.DevKafka && [[ -f $TM_RUN_DIR/kafka.bootstrap ]]; }

all_running() {
  devkafka_running && controller_running || return 1
  local d
  for d in "${DEVICES[@]}"; do agent_running "$d" || return 1; done
}

if all_running; then
  log "stack: already running (controller $CONTROLLER_URL, agents ${AGENT_URLS[*]}, bootstrap $(cat "$TM_RUN_DIR/kafka.bootstrap"))"
  exit 0
fi

[[ ${TM_SKIP_SETUP:-0} == 1 ]] || "$TM_ROOT/ops/setup.sh"
command -v curl >/dev/null 2>&1 || die "curl not found"

if [[ ${TM_SKIP_BUILD:-0} != 1 ]]; then
  log "stack: building TaggedMirror.sln ($CONFIGURATION)"
  dotnet build TaggedMirror.sln -c "$CONFIGURATION" -v q -nologo >"$TM_RUN_DIR/build.log" 2>&1 ||
    { grep -E 'error|Error' "$TM_RUN_DIR/build.log" | sort -u | tail -n 20 >&2; die "stack: build failed (see $TM_RUN_DIR/build.log)"; }
fi
[[ -f $CONTROLLER_DLL && -f $AGENT_DLL ]] || die "stack: $CONTROLLER_DLL or $AGENT_DLL is missing (build first)"

# --- devkafka, and fresh state whenever it starts ---------------------------------------------------
if ! devkafka_running; then
  if controller_running || agent_running d0 || agent_running d1 || agent_running d2; then
    log "stack: devkafka is not running but other parts are; stopping them so they do not keep a dead broker"
    TM_KEEP_DEVKAFKA=1 "$TM_ROOT/ops/stack-stop.sh"
  fi
  log "stack: fresh state (schema $SCHEMA, $TM_RUN_DIR/data, bus queues of cluster $CLUSTER)"
  PGPASSWORD=tm psql -h 127.0.0.1 -U tm -d tm -X -q -v ON_ERROR_STOP=1 -c "DROP SCHEMA IF EXISTS $SCHEMA CASCADE" >/dev/null 2>&1 ||
    die "stack: cannot drop schema $SCHEMA as tm/tm on 127.0.0.1 (is PostgreSQL up? ops/setup.sh)"
  rm -rf "$TM_RUN_DIR/data"
  # Acknowledgements left in the controller's queue by an earlier run would name tags this run reissues (epochs restart at 1).
  if command -v rabbitmqctl >/dev/null 2>&1; then
    for queue in $(rabbitmqctl -q list_queues name 2>/dev/null | grep -E "^tm\.$CLUSTER\." || true); do
      rabbitmqctl -q purge_queue "$queue" >/dev/null 2>&1 || true
    done
  fi
  partitions="${TM_DEVICE_PARTITIONS:-1}"
  [[ $partitions =~ ^[1-9][0-9]?$ ]] || die "stack: TM_DEVICE_PARTITIONS must be from 1 to 99, not '$partitions'"
  TM_KAFKA_TOPICS="tm.device.d0:$partitions,tm.device.d1:$partitions,tm.device.d2:$partitions" "$TM_ROOT/ops/devkafka-start.sh"
fi
BOOTSTRAP="$(cat "$TM_RUN_DIR/kafka.bootstrap")"

export TaggedMirror__Cluster="$CLUSTER" TaggedMirror__Schema="$SCHEMA" TaggedMirror__Kafka="$BOOTSTRAP"
export ASPNETCORE_ENVIRONMENT="${ASPNETCORE_ENVIRONMENT:-Production}"
# The services' appsettings.json (beside each dll) keeps ASP.NET Core's four Information lines per request off the
# console (on the write path they cost measurable CPU); TM_ASPNETCORE_LOG_LEVEL=Information brings them back.
COMMON_ARGS=(--Logging:LogLevel:Microsoft.AspNetCore "${TM_ASPNETCORE_LOG_LEVEL:-Warning}")

# start NAME URL PATTERN DLL ARGS...: starts one process unless it runs; refuses a port another process holds.
# It listens on URL, or on $START_URLS (';'-separated, URL among them) when set.
start() {
  local name="$1" url="$2" pattern="$3" dll="$4" urls="${START_URLS:-$2}"
  shift 4
  if running "$name" "$pattern"; then
    log "$name: already running (pid $(cat "$TM_RUN_DIR/$name.pid"))"
    return
  fi
  if curl -s -o /dev/null --max-time 2 "$url/"; then
    die "$name: something else answers on $url (not the pid in $TM_RUN_DIR/$name.pid); stop it or free the port"
  fi
  local log_file="$TM_RUN_DIR/$name.log"
  [[ -f $log_file ]] && mv -f "$log_file" "$log_file.prev"
  # nohup execs dotnet, so $! is the process's own pid; stdin is closed on purpose.
  nohup dotnet "$dll" --urls "$urls" "$@" </dev/null >"$log_file" 2>&1 &
  echo "$!" >"$TM_RUN_DIR/$name.pid"
  log "$name: started (pid $!) on $urls, log $log_file"
}

# wait_ready NAME PATTERN URL: until URL answers; on failure shows the log's tail.
wait_ready() {
  local name="$1" pattern="$2" url="$3" deadline=$((SECONDS + START_TIMEOUT))
  until curl -sf -o /dev/null --max-time 2 "$url"; do
    if ! running "$name" "$pattern"; then
      tail -n 30 "$TM_RUN_DIR/$name.log" >&2
      die "$name exited during start (log: $TM_RUN_DIR/$name.log)"
    fi
    if ((SECONDS >= deadline)); then
      tail -n 30 "$TM_RUN_DIR/$name.log" >&2
      die "$name did not answer $url within ${START_TIMEOUT}s (log: $TM_RUN_DIR/$name.log)"
    fi
    sleep 0.3
  done
}

# The controller's HTTPS certificate: self-signed for localhost and 127.0.0.1, made once (kept across restarts, so
# a client that trusts it goes on trusting it); ca.pem is the file to trust (the certificate is its own CA).
TLS_DIR="$TM_RUN_DIR/tls"
if [[ ! -s $TLS_DIR/cert.pem || ! -s $TLS_DIR/key.pem ]]; then
  command -v openssl >/dev/null 2>&1 || die "openssl not found (ops/setup.sh installs it)"
  mkdir -p "$TLS_DIR" && chmod 700 "$TLS_DIR"
  openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 825 -subj "/CN=TaggedMirror local stack" \
    -addext "subjectAltName=DNS:localhost,IP:127.0.0.1" -keyout "$TLS_DIR/key.pem" -out "$TLS_DIR/cert.pem" >/dev/null 2>&1 ||
    die "stack: openssl could not make the controller's certificate in $TLS_DIR"
  chmod 600 "$TLS_DIR/key.pem"
  cp "$TLS_DIR/cert.pem" "$TLS_DIR/ca.pem"
  log "stack: made a self-signed TLS certificate for the controller in $TLS_DIR (trust it with TM_CA_FILE=$TLS_DIR/ca.pem)"
fi
# NBD on the stack's loopback port serves every volume to each client (Controller__NbdAnonymous), as the demo and
# ops/bench-nbd.sh use it; a controller started any other way serves NBD to no one until told whom to (README, "Access").
if [[ -z ${Controller__NbdClientCaFile:-} ]]; then export Controller__NbdAnonymous="${Controller__NbdAnonymous:-true}"; fi
START_URLS="$CONTROLLER_URLS" start controller "$CONTROLLER_URL" "$(controller_pattern)" "$CONTROLLER_DLL" "${COMMON_ARGS[@]}" \
  --Kestrel:Certificates:Default:Path "$TLS_DIR/cert.pem" --Kestrel:Certificates:Default:KeyPath "$TLS_DIR/key.pem"
for d in "${DEVICES[@]}"; do
  mkdir -p "$TM_RUN_DIR/data/$d"
  # Device settings go on the command line (not only the environment) so pid_matches can tell d0 from d1.
  start "agent-$d" "${AGENT_URLS[$d]}" "$(agent_pattern "$d")" "$AGENT_DLL" \
    --Agent:DeviceId "$d" --Agent:DataDirectory "$TM_RUN_DIR/data/$d" "${COMMON_ARGS[@]}"
done

wait_ready controller "$(controller_pattern)" "$CONTROLLER_URL/health/live"
for d in "${DEVICES[@]}"; do
  wait_ready "agent-$d" "$(agent_pattern "$d")" "${AGENT_URLS[$d]}/health/live"
done
log "stack: ready — controller $CONTROLLER_URL and $CONTROLLER_TLS_URL (TM_CA_FILE=$TLS_DIR/ca.pem), agents ${AGENT_URLS[d0]} ${AGENT_URLS[d1]} (spare ${AGENT_URLS[d2]}), kafka $BOOTSTRAP, logs in $TM_RUN_DIR"
