#!/usr/bin/env bash
# Installs what is missing, builds everything, runs every test. Usage: scripts/test.sh [BUILD_DIR]
set -euo pipefail
cd "$(dirname "$0")/.."
build=${1:-build}
./scripts/setup.sh
cmake -S . -B "$build" -DCMAKE_BUILD_TYPE=Release
cmake --build "$build" -j "$(nproc)"
# Tests run one at a time: several of them time real processes on 2 cores.
ctest --test-dir "$build" --output-on-failure --timeout 900
