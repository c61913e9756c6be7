#!/usr/bin/env bash
# What the durable history costs: the same chatterbox-bench searches against chatterbox
# with its history (every line committed to SQLite before it is relayed), with
# --db-durability full (the default) and normal, and with --no-history, a fresh server per run pinned to core 0, the generator to core 1. The
# per-address limit and the message rate are off: the generator's members all come
# from one address and send scripted.
#
#   js-client/bench-node/history-cost.sh          # 5-second rounds
#   ROUND_SECS=3 js-client/bench-node/history-cost.sh
set -euo pipefail
cd "$(dirname "$0")/../.."
ROUND_SECS=${ROUND_SECS:-5}
out=$(mktemp -d)
trap 'kill $(jobs -p) 2>/dev/null || true; rm -rf "$out"' EXIT
cargo build --release --bins --quiet
source js-client/bench-node/servers.sh

for mode in full normal no-history; do
  for scenario in "10 10 50" "100 10 20"; do
    read -r members senders rate <<<"$scenario"
    rm -f "$out"/h.db*
    flags=(--db "$out/h.db" --db-durability "$mode")
    [ "$mode" = no-history ] && flags=(--no-history)
    start_chatterbox "$out/server.log" "${flags[@]}"
    echo "== $mode: N=$members K=$senders"
    taskset -c 1 target/release/chatterbox-bench --addr "$addr" --server-pid "$pid" \
      --members "$members" --senders "$senders" --rate "$rate" --search \
      --duration-secs "$ROUND_SECS" | tail -n 4
    if [ "$mode" != no-history ]; then
      echo "lines stored: $(curl -s "http://$addr/metrics" | grep '^chatterbox_history_lines_total' | awk '{print $2}')"
      curl -s "http://$addr/metrics" | grep '^chatterbox_history_commit_seconds' || true
    fi
    kill "$pid"; wait "$pid" 2>/dev/null || true
  done
done
