#!/usr/bin/env bash
# What a stalled disk does to the lobby: chatterbox-bench at a steady rate (100
# members, 10 senders) against chatterbox whose history is on a small ext4 file system
# of its own, which is frozen (fsfreeze) for FREEZE_SECS, 4 seconds into the run: every
# commit waits, the lines pile up in the history's queue, and are relayed once the disk
# is back. Prints the generator's report and how many members the server cut off.
# Needs root (a loop mount and fsfreeze), and taskset; the server runs on core 0, the
# generator on core 1.
#
#   js-client/bench-node/disk-stall.sh                  # 800 lines/s per sender, 1 s frozen
#   RATE=500 FREEZE_SECS=0.5 js-client/bench-node/disk-stall.sh
set -euo pipefail
cd "$(dirname "$0")/../.."
RATE=${RATE:-800}
FREEZE_SECS=${FREEZE_SECS:-1}
out=$(mktemp -d)
mkdir "$out/disk"
cleanup() {
  fsfreeze -u "$out/disk" 2>/dev/null || true
  kill $(jobs -p) 2>/dev/null || true
  wait 2>/dev/null || true
  umount "$out/disk" 2>/dev/null || true
  rm -rf "$out"
}
trap cleanup EXIT
cargo build --release --bins --quiet
truncate -s 64M "$out/disk.img"
mkfs.ext4 -q "$out/disk.img"
mount -o loop "$out/disk.img" "$out/disk"

source js-client/bench-node/servers.sh
start_chatterbox "$out/server.log" --db "$out/disk/h.db"

taskset -c 1 target/release/chatterbox-bench --addr "$addr" --server-pid "$pid" \
  --members 100 --senders 10 --rate "$RATE" --duration-secs 8 &
bench=$!
sleep 4
fsfreeze -f "$out/disk"
sleep "$FREEZE_SECS"
fsfreeze -u "$out/disk"
wait "$bench" || true
echo "members cut off as slow consumers: $(grep -c 'cut off as a slow consumer' "$out/server.log" || true)"
