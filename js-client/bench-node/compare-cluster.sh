#!/usr/bin/env bash
# Runs a chatterbox cluster and a Node cluster through the same scenarios with the same
# load generator (chatterbox-bench), and prints one table side by side (issue #17 part 2,
# issue #16's measurements):
#
# - chatterbox: three nodes (release build) on one redis-server (`--redis-url
#   redis+unix://…`), Redis with no persistence; then the same with Redis's AOF on,
#   `appendfsync everysec` and `appendfsync always` (rows of their own);
# - Node: three processes of js-client/bench-node/server.js on socket.io 4 with
#   @socket.io/redis-adapter (REDIS_SOCKET), on one redis-server with no persistence.
#
# Each scenario gets a redis-server of its own (a unix socket in a temp dir, no TCP port)
# and three fresh nodes. The generator spreads its members evenly over the three nodes
# (member i on node i mod 3, so the 10 senders too), checks that every receiver sees the
# lines in one order, and splits latency by whether a line crossed nodes.
#
# Pinning, on a 2-core machine: the whole cluster (redis-server and the three nodes) on
# core 0, the generator on core 1, as compare.sh pins one server to core 0. So each row
# compares the two clusters on the same single core: what the cluster costs over one
# process, not what three machines would do. Figures are ratios from one run.
#
#   js-client/bench-node/compare-cluster.sh                  # the full comparison
#   ROUND_SECS=3 js-client/bench-node/compare-cluster.sh     # shorter rounds
#   REPORTS=dir js-client/bench-node/compare-cluster.sh      # also keep each JSON report
#                                                            # and the nodes' and Redis's logs
#   CLUSTERS="chatterbox node" SCENARIOS="p99" …             # a part of it (clusters:
#       chatterbox node chatterbox-everysec chatterbox-always; scenarios: n1000 lines
#       p99 idle5000)
#   NO_REFERENCE=1 …                                         # without one chatterbox's
#                                                            # p99 and the Redis round trip
#   CHATTERBOX_BIN=path …                                    # another chatterbox build
#                                                            # for the nodes and the reference
set -euo pipefail
cd "$(dirname "$0")/../.."
ROUND_SECS=${ROUND_SECS:-5}
NODES=3
source js-client/bench-node/servers.sh
scratch_dir

# 5,000 members and their server side need more descriptors than the usual 1,024.
ulimit -n 65536 2>/dev/null || ulimit -n "$(ulimit -Hn)"
(cd js-client/bench-node && npm ci --no-audit --no-fund --silent)
build_release

# start_redis PERSISTENCE: a redis-server of its own on core 0, on a unix socket in a
# fresh directory, RDB snapshots off; PERSISTENCE is `none`, `everysec` or `always`
# (AOF on, with that appendfsync). Sets $redis_pid and $sock.
start_redis() {
  local dir="$out/redis" aof=(--appendonly no)
  rm -rf "$dir" && mkdir -p "$dir"
  [ "$1" = none ] || aof=(--appendonly yes --appendfsync "$1")
  redis_in "$dir" "${aof[@]}"
}

# start_nodes CLUSTER: three nodes of that cluster on core 0 on $sock; sets $addrs (comma
# list, node order) and $watch (the generator's --watch flags for the nodes and Redis).
# The generator's members all come from one address and its senders are scripts: the
# connection limits and the message rate are off, as in compare.sh.
start_nodes() {
  addrs= watch=(--watch "redis=$redis_pid")
  for i in $(seq "$NODES"); do
    local log="$out/node$i.log"
    case "$1" in
      chatterbox*) taskset -c 0 "$chatterbox" --host 127.0.0.1 --port 0 --ws-port off \
          --tcp-json-port off --tcp-text-port off \
          --max-connections 0 --max-connections-per-ip 0 --rate-lines-per-sec 0 --rate-joins-per-min 0 \
          --redis-url "redis+unix://$sock" --cluster bench --node-id "node$i" 2>"$log" & ;;
      node) REDIS_SOCKET=$sock taskset -c 0 node js-client/bench-node/server.js 2>"$log" & ;;
    esac
    pids+=($!)
    watch+=(--watch "node$i=$!")
    wait_listening "$log" "$1 node $i"
    addrs="${addrs:+$addrs,}$addr"
  done
}

# Stops the nodes first (so that they leave the cluster while Redis answers), then Redis.
stop_all() {
  local i
  for ((i = ${#pids[@]} - 1; i >= 0; i--)); do
    kill "${pids[i]}" 2>/dev/null || true
    wait "${pids[i]}" 2>/dev/null || true
  done
  pids=()
}

# run CLUSTER SCENARIO ARGS...: one scenario against a fresh Redis and fresh nodes,
# JSON to $out/CLUSTER-SCENARIO.json.
run() {
  local cluster=$1 scenario=$2 persistence=none
  shift 2
  case "$cluster" in chatterbox-everysec) persistence=everysec ;; chatterbox-always) persistence=always ;; esac
  start_redis "$persistence"
  start_nodes "$cluster"
  echo "== $cluster: $scenario" >&2
  # The report is printed even when the run fails; only a run that printed none is n/a.
  taskset -c 1 "$bench" --addr "$addrs" "${watch[@]}" --json "$@" \
    > "$out/$cluster-$scenario.json" || true
  [ -s "$out/$cluster-$scenario.json" ] || echo '{}' > "$out/$cluster-$scenario.json"
  stop_all
  # The nodes' and Redis's logs, kept with the reports (REPORTS) for a run that went wrong.
  mkdir -p "$out/logs"
  for i in $(seq "$NODES"); do mv "$out/node$i.log" "$out/logs/$cluster-$scenario-node$i.log"; done
  mv "$out/redis/redis.log" "$out/logs/$cluster-$scenario-redis.log"
}

# The same p99 scenario against one chatterbox (no Redis), pinned the same way, and one
# Redis round trip (redis-benchmark's PING from core 0, where the nodes are): the p99
# target is the single node's figure plus one round trip.
reference() {
  local log="$out/single.log"
  rm -f "$out/single.db"*
  taskset -c 0 "$chatterbox" --host 127.0.0.1 --port 0 --ws-port off \
    --tcp-json-port off --tcp-text-port off --db "$out/single.db" --max-connections 0 \
    --max-connections-per-ip 0 --rate-lines-per-sec 0 --rate-joins-per-min 0 2>"$log" &
  pids+=($!)
  wait_listening "$log" chatterbox
  echo "== chatterbox (one node): p99" >&2
  taskset -c 1 "$bench" --addr "$addr" --server-pid "${pids[-1]}" --json \
    --members 1000 --senders 10 --rate 1.001 --duration-secs 10 > "$out/single-p99.json" || true
  stop_all
  start_redis none
  echo "== redis-server: round trip" >&2
  taskset -c 0 redis-benchmark -s "$sock" -t ping -n 20000 -c 1 --csv \
    | node -e 'const [h, r] = require("fs").readFileSync(0, "utf8").trim().split("\n").map((l) => JSON.parse(`[${l}]`));
      const v = Object.fromEntries(h.map((k, i) => [k, Number(r[i])]));
      console.log(JSON.stringify({ p50_ms: v.p50_latency_ms, p99_ms: v.p99_latency_ms }));' \
    > "$out/redis-rtt.json" || echo '{}' > "$out/redis-rtt.json"
  stop_all
}

scenario() {
  case "$2" in
    n1000) run "$1" n1000 --members 1000 --senders 10 --rate 2 --search --duration-secs "$ROUND_SECS" ;;
    lines) run "$1" lines --members 20 --senders 20 --rate 50 --search --duration-secs "$ROUND_SECS" ;;
    p99) run "$1" p99 --members 1000 --senders 10 --rate 1.001 --duration-secs 10 ;;
    idle5000) run "$1" idle5000 --members 5000 --idle --handshakes-in-flight 128 ;;
  esac
}

echo "load before: $(cut -d' ' -f1-3 /proc/loadavg)" >&2
for cluster in ${CLUSTERS:-chatterbox node chatterbox-everysec chatterbox-always}; do
  for s in ${SCENARIOS:-n1000 lines p99 idle5000}; do
    # The memory and the join storm do not depend on Redis's persistence.
    case "$cluster:$s" in chatterbox-*:idle5000) continue ;; esac
    scenario "$cluster" "$s"
  done
done
[ -n "${NO_REFERENCE:-}" ] || reference
load_after=$(cut -d' ' -f1-3 /proc/loadavg)

echo
echo "machine: $(nproc) cores, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs), $(free -g | awk '/Mem/ {print $2}') GiB; $(redis-server --version | cut -d' ' -f1-3), Node $(node --version)"
echo "command: js-client/bench-node/compare-cluster.sh (ROUND_SECS=$ROUND_SECS); load average after: $load_after"
node js-client/bench-node/table-cluster.mjs "$out"
if [ -n "${REPORTS:-}" ]; then
  mkdir -p "$REPORTS" && cp -r "$out"/*.json "$out/logs" "$REPORTS"/
fi
