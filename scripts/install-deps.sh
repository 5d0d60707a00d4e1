#!/usr/bin/env bash
# Installs the Debian packages chainwatch builds and tests with. Idempotent:
# does nothing when every package is already installed. Needs root (or sudo).
set -euo pipefail
# libclang-rt-dev: clang's sanitizer and libFuzzer runtimes, only recommended
# by clang, so --no-install-recommends would leave them out.
pkgs=(build-essential cmake ninja-build pkg-config python3 clang libclang-rt-dev
      libuv1-dev libprotobuf-c-dev protobuf-c-compiler librdkafka-dev libpq-dev
      libhiredis-dev libcurl4-openssl-dev libssl-dev libh2o-dev libyaml-dev
      libjansson-dev libhyperscan-dev libcmocka-dev zlib1g-dev curl)
missing=()
for p in "${pkgs[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
[ ${#missing[@]} -eq 0 ] && exit 0
echo "installing: ${missing[*]}" >&2
SUDO=; [ "$(id -u)" -eq 0 ] || SUDO=sudo
$SUDO apt-get update -q
DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -q --no-install-recommends "${missing[@]}"
