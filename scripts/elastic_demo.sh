#!/usr/bin/env bash
# The elastic demo: a standalone coordinator (loomd) and 4 workers of examples/cpp/elastic_train on
# localhost. Mid-run one worker is killed with kill -9 and a new one joins; the survivors drop the
# dead one, admit the joiner, hand it the model, and every worker's parameter hash stays equal.
#   scripts/elastic_demo.sh [BIN_DIR] [-- extra elastic_train flags, e.g. --outer 10]
# Exits 0 only if every worker that finished printed the same final hash.
set -uo pipefail
cd "$(dirname "$0")/.."
bin=${1:-build/bin}
shift || true
[ "${1:-}" = "--" ] && shift
extra=("$@")
steps=40
work=$(mktemp -d /tmp/loom-elastic-demo.XXXXXX)
pids=()
cleanup() {
  for p in "${pids[@]}"; do kill -9 "$p" 2>/dev/null; done
  [ -n "${loomd:-}" ] && kill "$loomd" 2>/dev/null
  wait 2>/dev/null
  rm -rf "$work"
}
trap cleanup EXIT

LOOM_DEBUG=WARN "$bin/loomd" --listen 127.0.0.1:0 >"$work/loomd.out" 2>"$work/loomd.err" &
loomd=$!
for _ in $(seq 100); do grep -q "listening on" "$work/loomd.out" && break; sleep 0.05; done
address=$(sed -n 's/^loomd listening on //p' "$work/loomd.out")
[ -n "$address" ] || { echo "elastic_demo: loomd did not start"; cat "$work/loomd.err"; exit 1; }
echo "== coordinator (loomd) at $address; starting 4 workers =="
export LOOM_COORDINATOR=$address LOOM_COMM_ID=42 LOOM_PEER_TIMEOUT_MS=1000
run() {  # run NAME ARGS...: a worker whose output goes to the terminal and to $work/NAME
  local name=$1
  shift
  "$bin/elastic_train" --steps $steps --step-ms 60 --print-every 4 "${extra[@]}" "$@" > >(tee "$work/$name") 2>&1 &
  pids+=($!)
}
for r in 0 1 2 3; do LOOM_RANK=$r LOOM_WORLD_SIZE=4 run "w$r"; done

wait_for() {  # wait_for FILE TEXT: at most 60 s
  for _ in $(seq 1200); do grep -q -- "$2" "$1" 2>/dev/null && return 0; sleep 0.05; done
  echo "elastic_demo: timed out waiting for '$2'"
  exit 1
}
wait_for "$work/w0" " 12 world 4 "
echo "== kill -9 worker 2 (pid ${pids[2]}) =="
kill -9 "${pids[2]}"
wait_for "$work/w0" " 20 world 3 "
echo "== a new worker joins =="
LOOM_RANK= LOOM_WORLD_SIZE= run joiner --join --id 7

status=0
for i in "${!pids[@]}"; do
  [ "$i" = 2 ] && continue
  wait "${pids[$i]}" || status=1
done
pids=()
finals=$(cat "$work"/w0 "$work"/w1 "$work"/w3 "$work"/joiner | grep -E " (step|round) $steps world " | sed 's/.*params hash \([0-9a-f]*\).*/\1/' | sort -u)
count=$(cat "$work"/w0 "$work"/w1 "$work"/w3 "$work"/joiner | grep -cE " (step|round) $steps world ")
if [ "$status" = 0 ] && [ "$count" = 4 ] && [ "$(echo "$finals" | wc -l)" = 1 ]; then
  echo "== 4 workers finished (one killed, one joined); every final parameter hash is $finals: OK =="
  exit 0
fi
echo "== FAILED: exit status $status, $count workers finished, final hashes: $(echo $finals) =="
exit 1
