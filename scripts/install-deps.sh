#!/usr/bin/env bash
# Installs every Debian package the project builds and tests with. Idempotent:
# packages already present are skipped, so a second run costs one dpkg query.
set -euo pipefail

PKGS=(
  cmake ninja-build g++ pkg-config
  libboost1.81-dev
  flatbuffers-compiler libflatbuffers-dev
  libfmt-dev catch2 libbenchmark-dev libssl-dev
  clang-14 libclang-rt-14-dev clang-format-14 gcovr
  openssl python3 curl jq cloc
  redis-server redis-tools libhiredis-dev
)

missing=()
for p in "${PKGS[@]}"; do
  if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed"; then
    missing+=("$p")
  fi
done

if ((${#missing[@]})); then
  echo "install-deps: installing ${missing[*]}"
  SUDO=""
  [ "$(id -u)" -ne 0 ] && SUDO="sudo"
  export DEBIAN_FRONTEND=noninteractive
  $SUDO apt-get update -qq
  $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}"
else
  echo "install-deps: all Debian packages present"
fi
