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
    --rate-lines-per-sec 0 "$@" 2>"$log" &
  pid=$!
  wait_listening "$log" chatterbox
}
