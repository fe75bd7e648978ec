#!/usr/bin/env bash
# cmake --install into a temporary prefix, build an example against the installed package with
# find_package(loom), run it with the installed loomrun, and check loom.pc.
set -euo pipefail
build_dir=$1
source_dir=$2
prefix=$(mktemp -d)
work=$(mktemp -d)
trap 'rm -rf "$prefix" "$work"' EXIT
cmake --install "$build_dir" --prefix "$prefix" >/dev/null
for f in include/loom/loom.h include/loom/loom.hpp bin/loomrun bin/loomd bin/loom_info; do
  [ -e "$prefix/$f" ] || { echo "install test: $f was not installed"; exit 1; }
done
ls "$prefix"/lib*/libloom.so >/dev/null && ls "$prefix"/lib*/libloom.a >/dev/null
cmake -S "$source_dir/examples/install_consumer" -B "$work/build" -DCMAKE_PREFIX_PATH="$prefix" >/dev/null
cmake --build "$work/build" >/dev/null
exe=$(find "$work/build" -maxdepth 1 -type f -executable -name 'allreduce_broadcast*' | head -n1)
[ -n "$exe" ] || { echo "install test: consumer program not built"; exit 1; }
LD_LIBRARY_PATH="$(dirname "$(ls "$prefix"/lib*/libloom.so | head -n1)")" "$prefix/bin/loomrun" -n 2 --timeout 60 -- "$exe"
flags=$(PKG_CONFIG_PATH="$(ls -d "$prefix"/lib*/pkgconfig | head -n1)" pkg-config --cflags --libs loom)
echo "pkg-config loom: $flags"
# Build the same example with nothing but pkg-config's flags.
cc -std=c99 "$source_dir/examples/c/allreduce_broadcast.c" $flags -o "$work/pc_consumer"
echo "install test: passed"
