#!/usr/bin/env bash
# Installs what is missing, builds, and runs the demo: loomrun hosts the coordinator and starts
# 4 ranks on localhost that sweep all-reduce and broadcast sizes, printing nccl-tests tables.
set -euo pipefail
cd "$(dirname "$0")/.."
./scripts/setup.sh
cmake -S . -B build -DCMAKE_BUILD_TYPE=Release
cmake --build build -j "$(nproc)"
echo "== all-reduce, 4 ranks =="
build/bin/loomrun -n 4 -- build/bin/all_reduce_perf -b 8 -e 64M -f 4 -w 2 -n 10
echo "== broadcast, 4 ranks =="
build/bin/loomrun -n 4 -- build/bin/broadcast_perf -b 8 -e 64M -f 4 -w 2 -n 10
