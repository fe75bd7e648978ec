#!/usr/bin/env bash
# LOOM_TCP_CONGESTION=auto across hosts: data connections to a rank on another host that is near
# (handshake under LOOM_TCP_NEAR_RTT_US, as every link of an emulated cluster is) use Reno, at
# both ends; with LOOM_TCP_NEAR_RTT_US=0 or LOOM_TCP_CONGESTION=system they keep the system's.
#
# Two emulated hosts (bench/cluster, network namespaces on a bridge), whose default algorithm is
# set to one other than Reno so that the two outcomes differ. While a 2-rank all-reduce runs, the
# algorithm of every data connection (all but the coordinator's) is read with `ss -ti` in both
# namespaces. The result of the all-reduce is checked too.
#   cluster_congestion.sh SOURCE_DIR BIN_DIR    exit 0 pass, 1 fail, 77 cannot run here (not root...)
set -uo pipefail
src=${1:?usage: cluster_congestion.sh SOURCE_DIR BIN_DIR}
bin=${2:?usage: cluster_congestion.sh SOURCE_DIR BIN_DIR}
cluster="$src/bench/cluster"
name=loomcc
port=29611
failures=0

source "$src/tests/support/cluster_up.sh"
cluster_up 2 cluster_congestion

# The hosts' default: any algorithm but Reno that this kernel offers.
system=""
for cc in $(cat /proc/sys/net/ipv4/tcp_available_congestion_control); do
  [ "$cc" != reno ] && { system=$cc; break; }
done
[ -n "$system" ] || { echo "cluster_congestion: the kernel offers only reno: skipped"; exit 77; }
for h in 0 1; do
  ip netns exec ${name}h$h sysctl -qw net.ipv4.tcp_congestion_control="$system" || exit 1
done
echo "hosts' default congestion control: $system"

# "host address peer-address algorithm" for each data connection in host $1.
data_connections() {
  ip netns exec ${name}h$1 ss -tin state established "( sport != :$port and dport != :$port )" |
    awk -v h="$1" 'NR > 1 && /^ *[0-9]/ { pair = $3 " " $4 } /rtt:/ { print "h" h, pair, $1 }'
}

# check LABEL EXPECTED [VAR=VALUE...]: runs the all-reduce with the variables set and checks that
# each host shows 2 data connections (LOOM_STREAMS' default) and every one uses EXPECTED.
check() {
  local label=$1 want=$2 out=/tmp/$name-run.log seen="" deadline
  shift 2
  env "$@" "$cluster" run --name "$name" --hosts 2 --port $port --timeout 60 --bin "$bin" -- \
    "$bin/all_reduce_perf" -b 16M -e 16M -w 1 -n 40 >"$out" 2>&1 &
  local runner=$!
  deadline=$(( $(date +%s) + 30 ))
  while [ "$(date +%s)" -lt $deadline ]; do
    seen="$(data_connections 0; data_connections 1)"
    [ "$(grep -c . <<<"$seen")" -ge 4 ] && break
    kill -0 $runner 2>/dev/null || break
    sleep 0.1
  done
  sleep 0.3  # set at connect/accept, before the first byte: read again once traffic flows
  seen="$(data_connections 0; data_connections 1)"
  wait $runner
  local rc=$?
  echo "--- $label ($*): want $want"
  echo "$seen"
  if [ $rc -ne 0 ] || ! grep -q "# Out of bounds values : 0 OK" "$out"; then
    echo "FAIL: $label: the all-reduce failed (exit $rc)"; cat "$out"; failures=$((failures + 1)); return
  fi
  if [ "$(grep -c . <<<"$seen")" -ne 4 ]; then
    echo "FAIL: $label: expected 2 data connections in each host"; failures=$((failures + 1)); return
  fi
  if grep -qv " $want\$" <<<"$seen"; then
    echo "FAIL: $label: a data connection does not use $want"; failures=$((failures + 1)); return
  fi
  echo "ok"
}

check "auto, near hosts" reno LOOM_TCP_CONGESTION=auto
check "no host near" "$system" LOOM_TCP_NEAR_RTT_US=0
check "system" "$system" LOOM_TCP_CONGESTION=system
[ $failures -eq 0 ] && { echo "cluster_congestion: all passed"; exit 0; }
echo "cluster_congestion: $failures failed"
exit 1
