#!/usr/bin/env bash
# Installs everything UnionFS needs on Debian 12 (run as root): the libraries it builds against,
# the tools its tests drive (kernel overlayfs is the reference; fuse-overlayfs, podman, buildah and
# debootstrap are the real clients). The scripts that need a build make it themselves (demo.sh the
# release binary, test.sh the debug build with the tests), so that CI builds the code once.
set -euo pipefail
cd "$(dirname "$0")/.."
export DEBIAN_FRONTEND=noninteractive
packages=(
  libfuse3-dev fuse3 libattr1-dev attr libarchive-dev pkg-config cmake ninja-build  # build
  fuse-overlayfs podman buildah crun runc debootstrap busybox-static zstd           # tests
  uidmap                                                                            # rootless podman (newuidmap)
  docker-registry apache2-utils openssl curl python3                                # registry tests
  fio                                                                               # data checks (FioVerifyTests)
)
if ! dpkg -s "${packages[@]}" >/dev/null 2>&1; then
  apt-get update -qq
  apt-get install -y -qq "${packages[@]}" >/dev/null
fi
[ -e /dev/fuse ] || modprobe fuse
# Every user may open /dev/fuse, as Debian's udev rule sets it (fusermount3 decides who mounts);
# a container or minimal machine may leave it 0600, which stops every non-root mount.
chmod 0666 /dev/fuse
