#!/usr/bin/env bash
# FAULTS.md F2: a peer that (a) exits cleanly, (b) is killed with SIGKILL, (c) freezes (SIGSTOP) or
# (d) sits behind a black-holed link (its interface goes down: no reset ever arrives) is detected
# by the survivors within the bound, and the error names it.
#
# Three emulated hosts (bench/cluster: network namespaces on a bridge), one loss_worker rank on
# each, all-reducing 1 MiB in a loop with LOOM_PEER_TIMEOUT_MS=1000 and an operation deadline of
# 30 s (so only detection, not the deadline, can free them). The fault hits rank 2; rank 0's
# output is watched. Bounds, with margin for a loaded 2-core machine: (a), (b) within 2 s (the
# socket says so at once); (c), (d) within the peer timeout + 2.5 s (promise: timeout + 0.5 s).
#   f2_detection.sh SOURCE_DIR BIN_DIR      exit 0 pass, 1 fail, 77 cannot run here (not root...)
set -uo pipefail
src=${1:?usage: f2_detection.sh SOURCE_DIR BIN_DIR}
bin=${2:?usage: f2_detection.sh SOURCE_DIR BIN_DIR}
cluster="$src/bench/cluster"
name=loomf2
timeout_ms=1000
failures=0

source "$src/tests/support/cluster_up.sh"
cluster_up 3 f2_detection

now_ms() { echo $(( $(date +%s%N) / 1000000 )); }

# Waits (at most $2 ms) until file $1 contains $3.
wait_for() {
  local file=$1 limit=$2 text=$3 start
  start=$(now_ms)
  while ! grep -q -- "$text" "$file" 2>/dev/null; do
    (( $(now_ms) - start > limit )) && return 1
    sleep 0.05
  done
}

run_case() {
  local label=$1 bound=$2
  local out
  out=$(mktemp /tmp/$name-XXXXXX.out)
  # The cluster was made by `up`, so each run leaves it up for the next; a cut link is restored.
  ip netns exec "${name}h2" ip link set eth0 up 2>/dev/null
  LOOM_PEER_TIMEOUT_MS=$timeout_ms "$cluster" run --name "$name" --hosts 3 --timeout 60 --keep-going --bin "$bin" -- \
    "$bin/loss_worker" --timeout-ms 30000 --linger-ms 3000 --seconds 45 >"$out" 2>&1 &
  local runner=$!
  if ! wait_for "$out" 30000 "rank 0: iteration 10"; then
    echo "FAIL $label: the ranks did not get going"; cat "$out"
    kill "$runner" 2>/dev/null; wait "$runner" 2>/dev/null
    failures=$((failures + 1)); return
  fi
  local victim
  victim=$(ip netns pids "${name}h2" | head -1)
  local t0
  t0=$(now_ms)
  case $label in
    exit) kill -USR1 "$victim" ;;
    kill) kill -KILL "$victim" ;;
    stop) kill -STOP "$victim" ;;
    blackhole) ip netns exec "${name}h2" ip link set eth0 down ;;
  esac
  local seen=-1
  if wait_for "$out" $((bound + 10000)) "rank 0: failed after"; then seen=$(( $(now_ms) - t0 )); fi
  [ "$label" = stop ] && kill -CONT "$victim" 2>/dev/null
  local line
  line=$(grep "rank 0: failed after" "$out" | head -1)
  if [ "$seen" = -1 ]; then
    echo "FAIL $label: rank 0 reported nothing within $((bound + 10000)) ms"; cat "$out"
    failures=$((failures + 1))
  elif (( seen > bound )); then
    echo "FAIL $label: detected after $seen ms (bound $bound ms): $line"
    failures=$((failures + 1))
  elif [[ "$line" != *"peer rank 2 "* ]]; then
    echo "FAIL $label: the error does not name rank 2: $line"
    failures=$((failures + 1))
  else
    printf 'ok   %-9s detected by rank 0 after %5d ms (bound %d ms): %s\n' "$label" "$seen" "$bound" "$line"
  fi
  # The survivors exit after their linger; a frozen or cut-off rank fails on its own (its peers
  # fell silent for it too). Whatever is left is stopped.
  for _ in $(seq 1 200); do kill -0 "$runner" 2>/dev/null || break; sleep 0.1; done
  kill "$runner" 2>/dev/null
  wait "$runner" 2>/dev/null
  rm -f "$out"
}

run_case exit 2000
run_case kill 2000
run_case stop $(( timeout_ms + 2500 ))
run_case blackhole $(( timeout_ms + 2500 ))
[ $failures -eq 0 ] && echo "f2_detection: all four faults detected in bound" || echo "f2_detection: $failures failed"
[ $failures -eq 0 ]
