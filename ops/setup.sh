#!/usr/bin/env bash
# Prepares a Debian 12 machine for development: system packages, a local PostgreSQL with role and
# database tm/tm, a local RabbitMQ with user tm/tm. Idempotent: safe to run any number of times.
# The applications read TM_PG, TM_RABBIT_HOST, ... to point elsewhere; this sets up only the defaults.
set -euo pipefail
. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

need_root_or_sudo
ensure_run_dir

# No librdkafka: it comes with the NuGet package librdkafka.redist (see src/KafkaNative).
# The NBD clients the block front end is tested and benchmarked with (qemu-io/qemu-img, nbdinfo/nbdcopy, fio's nbd
# engine) and the unmirrored NBD servers it is compared against (nbdkit's file plugin, nbd-server).
# openssl makes the local stack's self-signed TLS certificate (ops/stack-start.sh).
PACKAGES=(postgresql rabbitmq-server procps util-linux ca-certificates strace openssl
  qemu-utils libnbd-bin fio nbdkit nbd-server)
PG_VERSION="${TM_PG_VERSION:-15}"
PG_CLUSTER="${TM_PG_CLUSTER:-main}"

missing=()
for package in "${PACKAGES[@]}"; do
  if ! dpkg-query -W -f='${Status}' "$package" 2>/dev/null | grep -q 'install ok installed'; then
    missing+=("$package")
  fi
done
if ((${#missing[@]} > 0)); then
  log "installing ${missing[*]}"
  $SUDO apt-get update -qq
  $SUDO env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
  log "packages: installed ${missing[*]}"
else
  log "packages: all present (${PACKAGES[*]})"
fi

if ! command -v dotnet >/dev/null 2>&1; then
  die "dotnet not found: install the .NET 10 SDK (see global.json) and put dotnet on PATH"
fi
log "dotnet: $(dotnet --version)"

# --- PostgreSQL -------------------------------------------------------------------------------
if ! pg_lsclusters -h 2>/dev/null | awk -v v="$PG_VERSION" -v c="$PG_CLUSTER" '$1 == v && $2 == c { found = 1 } END { exit !found }'; then
  $SUDO pg_createcluster "$PG_VERSION" "$PG_CLUSTER" >/dev/null
  log "postgresql: created cluster $PG_VERSION/$PG_CLUSTER"
fi
if pg_lsclusters -h | awk -v v="$PG_VERSION" -v c="$PG_CLUSTER" '$1 == v && $2 == c && $4 ~ /^online/ { found = 1 } END { exit !found }'; then
  log "postgresql: $PG_VERSION/$PG_CLUSTER already running"
else
  $SUDO pg_ctlcluster "$PG_VERSION" "$PG_CLUSTER" start
  log "postgresql: started $PG_VERSION/$PG_CLUSTER"
fi
PG_PORT="$(pg_lsclusters -h | awk -v v="$PG_VERSION" -v c="$PG_CLUSTER" '$1 == v && $2 == c { print $3 }')"
wait_until 30 "PostgreSQL on port $PG_PORT" pg_isready -q -h 127.0.0.1 -p "$PG_PORT"

psql_admin() { run_as postgres psql -p "$PG_PORT" -X -v ON_ERROR_STOP=1 -tAq "$@"; }
if [[ "$(psql_admin -c "SELECT 1 FROM pg_roles WHERE rolname = 'tm'")" == 1 ]]; then
  log "postgresql: role tm exists"
else
  psql_admin -c "CREATE ROLE tm LOGIN SUPERUSER PASSWORD 'tm'"
  log "postgresql: created role tm (password tm, superuser for development)"
fi
if [[ "$(psql_admin -c "SELECT 1 FROM pg_database WHERE datname = 'tm'")" == 1 ]]; then
  log "postgresql: database tm exists"
else
  psql_admin -c "CREATE DATABASE tm OWNER tm"
  log "postgresql: created database tm"
fi
PGPASSWORD=tm psql -h 127.0.0.1 -p "$PG_PORT" -U tm -d tm -X -tAq -c 'SELECT 1' >/dev/null ||
  die "postgresql: cannot log in as tm/tm on 127.0.0.1:$PG_PORT (check pg_hba.conf)"

# --- RabbitMQ ---------------------------------------------------------------------------------
RABBIT_NOFILE="${TM_RABBIT_NOFILE:-16384}"
rabbit_up() { $SUDO rabbitmq-diagnostics -q ping >/dev/null 2>&1; }
if rabbit_up; then
  log "rabbitmq: already running"
else
  # No systemd here. Each queue holds file handles: at the usual limit of 1024 (927 usable) a node with about
  # a thousand queues ran out and 'rabbitmqctl start_app' hung. The Debian wrapper, run as root, drops to the
  # rabbitmq user through su, whose PAM session puts the limit back to 1024; so start it as that user with
  # the limit raised (up to the hard limit when that is lower), and the wrapper runs the node directly.
  run_as rabbitmq env HOME=/var/lib/rabbitmq sh -c \
    'ulimit -n "$1" 2>/dev/null || ulimit -n "$(ulimit -Hn)"; exec "$2" -detached' \
    sh "$RABBIT_NOFILE" "$(command -v rabbitmq-server)" >/dev/null 2>&1 || true
  wait_until 90 "RabbitMQ to answer ping" rabbit_up
  log "rabbitmq: node up"
fi
# A node answers ping before its 'rabbit' application has booted; user commands fail until it has.
# (A clean CI machine hit exactly that: add_user ran between ping and boot.)
rabbit_booted() { $SUDO rabbitmq-diagnostics -q check_running >/dev/null 2>&1; }
wait_until 120 "RabbitMQ's rabbit application to boot" rabbit_booted
log "rabbitmq: running"
# A node started before this script raised the limit keeps its own; say so rather than restart it under
# whoever is using it.
fd_limit=$($SUDO rabbitmq-diagnostics -q status 2>/dev/null | sed -n 's/^Total: [0-9]*, limit: \([0-9]*\).*/\1/p' | head -1 || true)
if [ -n "$fd_limit" ] && [ "$fd_limit" -lt 4096 ]; then
  log "rabbitmq: warning: the node may open only $fd_limit files (about one per queue); restart it with" \
      "'rabbitmqctl stop' then this script to raise that to $RABBIT_NOFILE"
else
  log "rabbitmq: file descriptor limit ${fd_limit:-unknown}"
fi
if $SUDO rabbitmqctl -q list_users 2>/dev/null | awk '{ print $1 }' | grep -qx tm; then
  log "rabbitmq: user tm exists"
else
  $SUDO rabbitmqctl -q add_user tm tm >/dev/null
  log "rabbitmq: created user tm"
fi
# Re-applied every run: cheap, and repairs a user whose tags or permissions were changed.
$SUDO rabbitmqctl -q set_user_tags tm administrator >/dev/null
$SUDO rabbitmqctl -q set_permissions -p / tm '.*' '.*' '.*' >/dev/null
log "rabbitmq: tm has full permissions on vhost /"

log "ready: PostgreSQL tm/tm@127.0.0.1:$PG_PORT/tm, RabbitMQ tm/tm@127.0.0.1:5672/"
