#!/usr/bin/env bash
# One round of the discard measurement (docs/benchmarks.md, "Discards and zeroes through NBD"): on a fresh local
# stack of the tree given, a volume of 1 GiB, 64 MiB of data written, then qemu-io times a discard of the whole
# volume and a WRITE_ZEROES of 256 MiB, and the bytes each put in d0's log are counted.
# Usage: run.sh TREE LABEL OUT_DIR
set -euo pipefail
tree="$1"; label="$2"; out="$3"
cd "$tree"
ops/stack-stop.sh >/dev/null 2>&1 || true
TM_SKIP_SETUP=1 TM_SKIP_BUILD=1 ops/stack-start.sh >/dev/null 2>&1
key=$(cat ~/.config/taggedmirror/operator.key)
api=http://127.0.0.1:5100
curl -skf -H "Authorization: Bearer $key" -H 'content-type: application/json' \
  -d '{"name":"disc","blockSize":4096,"blocks":262144,"mirrors":["d0","d1"]}' "$api/volumes" >/dev/null
uri=nbd://127.0.0.1:10809/disc
qemu-io -f raw -c "write -P 0x5a 0 64M" -c flush "$uri" >/dev/null
applied() { PGPASSWORD=tm psql -h 127.0.0.1 -U tm -d tm -tAc "SELECT coalesce(sum(next_offset),0) FROM tm_local.device_offsets WHERE device_id='d0'"; }
settle() { for _ in $(seq 1 600); do [[ $(curl -skf -H "Authorization: Bearer $key" "$api/volumes/disc" | jq '[.mirrors[] | select(.state != "InSync" or .lagMessages != 0)] | length') == 0 ]] && return; sleep 0.1; done; }
settle
run() { # name, qemu-io commands...
  local name="$1"; shift
  local before=$(applied) t0=$(date +%s.%N)
  qemu-io -f raw "$@" -c flush "$uri" >/dev/null
  local t1=$(date +%s.%N); settle; local t2=$(date +%s.%N) after=$(applied)
  printf '{"label":"%s","case":"%s","answered_s":%.3f,"settled_s":%.3f,"messages":%d}\n' "$label" "$name" \
    "$(echo "$t1 - $t0" | bc)" "$(echo "$t2 - $t0" | bc)" "$((after - before))"
}
{
  run discard-1g -c "discard 0 512M" -c "discard 512M 512M"
  run write-zeroes-256m -c "write -z 256M 256M"
} | tee -a "$out/results.jsonl"
ops/stack-stop.sh >/dev/null
