#!/usr/bin/env bash
# Installs the system packages UnionFS needs on Debian 12 (run as root) and builds it.
set -euo pipefail
cd "$(dirname "$0")/.."
export DEBIAN_FRONTEND=noninteractive
if ! dpkg -s libfuse3-dev fuse3 libattr1-dev attr libarchive-dev cmake ninja-build pkg-config >/dev/null 2>&1; then
  apt-get update -qq
  apt-get install -y -qq libfuse3-dev fuse3 libattr1-dev attr libarchive-dev cmake ninja-build pkg-config >/dev/null
fi
[ -e /dev/fuse ] || modprobe fuse
swift build -c release --product unionfs-swift 2>&1 | tail -1
