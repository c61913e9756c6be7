# Sourced by the benchmark scripts (run from the repository's root).

# wait_listening LOG NAME: waits for the server logging to LOG (chatterbox or the Node
# original, both log `listening http=<address>`) to listen; sets $addr. Exits if it
# does not within 10 seconds.
wait_listening() {
  addr=
  for _ in $(seq 100); do
    addr=$(grep -o 'listening http=[0-9.:]*' "$1" | head -1 | cut -d= -f2 || true)
    [ -n "$addr" ] && return 0
    sleep 0.1
  done
  echo "$2 did not start: $(cat "$1")" >&2
  exit 1
}

# start_chatterbox LOG ARGS...: starts the release build on core 0, HTTP on a free port
# and the other listeners off, the per-address limit and the message rate off (the
# generator's members all come from one address and send scripted), with ARGS; logs to
# LOG and sets $pid, and $addr once it listens.
start_chatterbox() {
  local log=$1
  shift
  taskset -c 0 target/release/chatterbox --host 127.0.0.1 --port 0 --ws-port off \
    --tcp-json-port off --tcp-text-port off --max-connections-per-ip 0 \
    --rate-lines-per-sec 0 --rate-joins-per-min 0 "$@" 2>"$log" &
  pid=$!
  wait_listening "$log" chatterbox
}

# scratch_dir: a fresh temp dir in $out and an empty list $pids of the processes a script
# starts; on exit every process in $pids is killed and $out removed.
scratch_dir() {
  out=$(mktemp -d)
  pids=()
  trap 'for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done; wait 2>/dev/null || true; rm -rf "$out"' EXIT
}

# build_release: builds the release binaries; sets $release (their directory), $bench
# (the generator) and $chatterbox (CHATTERBOX_BIN, or this build's server).
build_release() {
  cargo build --release --bins --quiet
  release=${CARGO_TARGET_DIR:-target}/release
  bench=$release/chatterbox-bench
  chatterbox=${CHATTERBOX_BIN:-$release/chatterbox}
}

# redis_in DIR [SETTINGS...]: a redis-server on core 0 on the unix socket DIR/redis.sock
# (no TCP port, RDB snapshots off, SETTINGS after that), logging to DIR/redis.log; adds
# it to $pids and sets $redis_pid and $sock. Exits if it does not answer in 10 seconds.
redis_in() {
  local dir=$1
  shift
  sock="$dir/redis.sock"
  taskset -c 0 redis-server --port 0 --unixsocket "$sock" --unixsocketperm 700 --dir "$dir" \
    --save '' "$@" --logfile "$dir/redis.log" &
  redis_pid=$!
  pids+=("$redis_pid")
  for _ in $(seq 100); do
    redis-cli -s "$sock" ping >/dev/null 2>&1 && return 0
    sleep 0.1
  done
  echo "redis-server did not start: $(cat "$dir/redis.log")" >&2
  exit 1
}
