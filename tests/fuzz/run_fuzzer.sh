#!/usr/bin/env bash
# Fuzzes the wire codec with libFuzzer (+ ASan + UBSan) for SECONDS seconds.
#
#   tests/fuzz/run_fuzzer.sh [SECONDS]      default 60
#
# Configures a separate clang build (LOOM_FUZZ=ON builds only the fuzz target) in build-fuzz/ at
# the repository root (LOOM_FUZZ_BUILD_DIR overrides), then fuzzes a copy of the seed corpus: the
# copy grows, the committed seeds stay as they are. Exits non-zero when the fuzzer finds a crash,
# a leak or undefined behaviour; the input that did it is left in <build>/fuzz-work/artifacts/.
set -euo pipefail

duration=${1:-60}
if ! [[ $duration =~ ^[0-9]+$ ]] || [[ $duration -eq 0 ]]; then
  echo "usage: $0 [SECONDS]" >&2
  exit 2
fi
repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
build=${LOOM_FUZZ_BUILD_DIR:-$repo/build-fuzz}

CC=clang CXX=clang++ cmake -S "$repo" -B "$build" -DLOOM_FUZZ=ON -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null
cmake --build "$build" --target fuzz_wire

work=$build/fuzz-work
rm -rf "$work"
mkdir -p "$work/corpus" "$work/artifacts"
cp "$repo"/tests/fuzz/corpus/*.bin "$work/corpus/"

echo "fuzzing the wire codec for ${duration}s (corpus: $work/corpus)"
status=0
"$build/bin/fuzz_wire" "$work/corpus" -max_total_time="$duration" -print_final_stats=1 \
  -artifact_prefix="$work/artifacts/" || status=$?
if [[ $status -ne 0 ]]; then
  echo "fuzz_wire FAILED (exit $status); reproducer(s):" >&2
  ls -1 "$work/artifacts" >&2 || true
  exit "$status"
fi
echo "fuzz_wire: no crash in ${duration}s"
