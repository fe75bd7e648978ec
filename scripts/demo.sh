#!/usr/bin/env bash
# Installs what is missing, builds, and runs the demo:
#  1. elastic training (scripts/elastic_demo.sh): loomd and 4 workers on localhost; one is killed
#     with kill -9 mid-run and a new one joins; every worker's parameter hash stays equal;
#  2. loomrun hosts the coordinator and starts 4 ranks that sweep all-reduce and broadcast sizes,
#     printing nccl-tests tables.
set -euo pipefail
cd "$(dirname "$0")/.."
./scripts/setup.sh
cmake -S . -B build -DCMAKE_BUILD_TYPE=Release
cmake --build build -j "$(nproc)"
echo "== elastic training: 4 workers, one killed, one joining =="
scripts/elastic_demo.sh build/bin
echo "== all-reduce, 4 ranks =="
build/bin/loomrun -n 4 -- build/bin/all_reduce_perf -b 8 -e 64M -f 4 -w 2 -n 10
echo "== broadcast, 4 ranks =="
build/bin/loomrun -n 4 -- build/bin/broadcast_perf -b 8 -e 64M -f 4 -w 2 -n 10
