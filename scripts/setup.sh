#!/usr/bin/env bash
# Installs, with Debian's apt, whatever Loom needs that this machine lacks.
# Safe to run again: it installs nothing when everything is present.
#   --peers   also install the peer libraries the benchmarks compare against (bench/peers):
#             Gloo (libgloo-dev) and Open MPI (openmpi-bin libopenmpi-dev)
set -euo pipefail
peers=0
for arg in "$@"; do
  case "$arg" in
    --peers) peers=1 ;;
    -h|--help) sed -n '2,5p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
    *) echo "setup: unknown argument '$arg' (try --peers)" >&2; exit 2 ;;
  esac
done
packages=(
  build-essential cmake pkg-config
  libuv1-dev libboost-dev libfmt-dev catch2
  clang libclang-rt-14-dev
  iproute2 procps
  python3-numpy python3-pytest pybind11-dev python3-matplotlib
)
if ((peers)); then
  packages+=(libgloo-dev openmpi-bin libopenmpi-dev)
fi
missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if ((${#missing[@]})); then
  echo "setup: installing ${missing[*]}"
  SUDO=""; [ "$(id -u)" -eq 0 ] || SUDO="sudo"
  export DEBIAN_FRONTEND=noninteractive
  $SUDO apt-get update -qq
  $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi
echo "setup: all dependencies present"
