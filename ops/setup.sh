#!/usr/bin/env bash
# Prepares a Debian 12 machine for development: system packages, a local PostgreSQL with role and
# database tm/tm, a local RabbitMQ with user tm/tm. Idempotent: safe to run any number of times.
# The applications read TM_PG, TM_RABBIT_HOST, ... to point elsewhere; this sets up only the defaults.
set -euo pipefail
. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

need_root_or_sudo
ensure_run_dir

# No librdkafka: it comes with the NuGet package librdkafka.redist (see src/KafkaNative).
PACKAGES=(postgresql rabbitmq-server procps util-linux ca-certificates strace)
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
rabbit_up() { $SUDO rabbitmq-diagnostics -q ping >/dev/null 2>&1; }
if rabbit_up; then
  log "rabbitmq: already running"
else
  # No systemd here: the Debian wrapper drops to the rabbitmq user by itself.
  $SUDO rabbitmq-server -detached >/dev/null 2>&1 || true
  wait_until 90 "RabbitMQ to answer ping" rabbit_up
  log "rabbitmq: node up"
fi
# A node answers ping before its 'rabbit' application has booted; user commands fail until it has.
# (A clean CI machine hit exactly that: add_user ran between ping and boot.)
rabbit_booted() { $SUDO rabbitmq-diagnostics -q check_running >/dev/null 2>&1; }
wait_until 120 "RabbitMQ's rabbit application to boot" rabbit_booted
log "rabbitmq: running"
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
