#!/usr/bin/env bash
# Shared helpers for the ops/ scripts. Source it: `. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"`.
set -euo pipefail

# Repository root: the parent of this ops/ directory, wherever the script is called from.
TM_ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
# Pid files, logs and the Kafka bootstrap file of locally started processes (git-ignored).
TM_RUN_DIR="${TM_RUN_DIR:-$TM_ROOT/.run}"
export TM_ROOT TM_RUN_DIR

log() { printf '[%s] %s\n' "$(date +%H:%M:%S)" "$*" >&2; }
die() { log "error: $*"; exit 1; }

ensure_run_dir() { mkdir -p "$TM_RUN_DIR"; }

# Sets SUDO to "" as root, or "sudo" when sudo can be used; dies otherwise.
need_root_or_sudo() {
  if [[ ${EUID:-$(id -u)} -eq 0 ]]; then
    SUDO=""
  elif command -v sudo >/dev/null 2>&1; then
    SUDO="sudo"
  else
    die "run as root or install sudo"
  fi
}

# Runs a command as another system user (postgres, rabbitmq) from root or through sudo.
run_as() {
  local user="$1"
  shift
  if [[ ${EUID:-$(id -u)} -eq 0 ]]; then
    runuser -u "$user" -- "$@"
  else
    sudo -u "$user" -- "$@"
  fi
}

# wait_until SECONDS DESCRIPTION COMMAND...: polls COMMAND every 0.5 s until it succeeds.
wait_until() {
  local seconds="$1" what="$2"
  shift 2
  local deadline=$((SECONDS + seconds))
  until "$@" >/dev/null 2>&1; do
    if ((SECONDS >= deadline)); then
      die "timed out after ${seconds}s waiting for $what"
    fi
    sleep 0.5
  done
}

# True when PID is alive and its command line contains PATTERN (guards against pid reuse).
pid_matches() {
  local pid="$1" pattern="$2"
  [[ -n $pid && -r /proc/$pid/cmdline ]] || return 1
  tr '\0' ' ' <"/proc/$pid/cmdline" | grep -qF -- "$pattern"
}

# run_on_stack CLI_COMMAND [--keep] [options...]: starts the local stack (ops/stack-start.sh), runs
# `tm CLI_COMMAND options...`, and stops the stack however this ends unless --keep was given.
# Returns the command's exit code. Shared by ops/run.sh, ops/bench.sh and ops/bench-resync.sh.
run_on_stack() {
  local command="$1"
  shift
  local keep=0 args=() arg
  for arg in "$@"; do
    case "$arg" in
      --keep) keep=1 ;;
      *) args+=("$arg") ;;
    esac
  done
  if ((keep == 0)); then
    # Stops the stack however the script ends: failure, start failure or Ctrl-C.
    # TM_ON_EXIT: a caller's own clean-up (a command), run after the stack is stopped.
    trap '"$TM_ROOT/ops/stack-stop.sh" || true; eval "${TM_ON_EXIT:-true}"' EXIT
  fi
  "$TM_ROOT/ops/stack-start.sh"
  cd "$TM_ROOT"
  local rc=0
  dotnet "src/Cli/bin/${TM_BUILD_CONFIGURATION:-Release}/net10.0/TaggedMirror.Cli.dll" "$command" "${args[@]}" || rc=$?
  if ((keep == 1)); then
    log "stack left running (--keep): controller http://127.0.0.1:5100 and https://127.0.0.1:5443 (TM_CA_FILE=.run/tls/ca.pem), agents :5101 :5102 (spare :5103); stop with ops/stack-stop.sh"
  fi
  return "$rc"
}
