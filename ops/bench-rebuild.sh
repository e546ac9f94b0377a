#!/usr/bin/env bash
# Benchmarks a rebuild from the log and a verify: starts the local stack (ops/stack-start.sh), runs
# `tm bench-rebuild` with the given options (results in bench-results/rebuild-*.json), then stops the stack.
# Each figure is against its baseline in the same run: the device's replay against a plain Confluent.Kafka consume
# of the same topic, the verify against cat of the object files.
# Usage: ops/bench-rebuild.sh [--keep] [tm bench-rebuild options, e.g. --writes 1000 --size 4096 --volumes 4]
#   --keep  leave the stack running afterwards (stop it with ops/stack-stop.sh)
# A fresh stack's device topics get as many partitions as --volumes N asks for, one without it (TM_DEVICE_PARTITIONS,
# unless set): each volume's log then has a partition of its own, and the log can hold N times the development
# broker's 5 MiB window. A stack left running by --keep is reused with the partitions it has.
set -euo pipefail
. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

previous="" volumes=""
for arg in "$@"; do
  # A value tm bench-rebuild would refuse is left for it to refuse, with its own message.
  if [[ $previous == --volumes ]]; then volumes="$arg"; fi
  case "$arg" in --volumes=*) volumes="${arg#--volumes=}" ;; esac
  previous="$arg"
done
[[ ${volumes:-} =~ ^([1-9]|1[0-6])$ ]] || volumes=1
export TM_DEVICE_PARTITIONS="${TM_DEVICE_PARTITIONS:-$volumes}"

mkdir -p "$TM_ROOT/bench-results"
rc=0
run_on_stack bench-rebuild "$@" || rc=$?
exit "$rc"
