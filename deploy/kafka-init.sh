#!/usr/bin/env bash
# One-shot: creates the device topics before controller and agents start. Device topics keep everything
# (retention.ms=-1, retention.bytes=-1): replay rebuilds a device from its topic, and an offset that fell
# off the log means a full copy from a healthy mirror. Idempotent: an existing topic (for instance one
# auto-created earlier) is given the same retention.
set -euo pipefail

bootstrap="${KAFKA_BOOTSTRAP:?set KAFKA_BOOTSTRAP}"
devices="${TM_DEVICES:?set TM_DEVICES (space-separated device ids)}"
bin=/opt/kafka/bin

for device in $devices; do
  topic="tm.device.${device}"
  "$bin/kafka-topics.sh" --bootstrap-server "$bootstrap" --create --if-not-exists \
    --topic "$topic" --partitions 1 --replication-factor 1 \
    --config retention.ms=-1 --config retention.bytes=-1
  "$bin/kafka-configs.sh" --bootstrap-server "$bootstrap" --alter \
    --entity-type topics --entity-name "$topic" \
    --add-config retention.ms=-1,retention.bytes=-1
  echo "kafka-init: ${topic} ready (1 partition, retention unlimited)"
done
