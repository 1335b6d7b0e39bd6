#!/usr/bin/env bash
# Times a few workloads inside podman containers on three overlay set-ups and prints a
# Markdown table (median of N runs, milliseconds, measured inside the container so container
# start-up is not counted, except in the "podman run true" row):
#   native          podman's overlay driver on kernel overlayfs
#   unionfs-swift   overlay driver with mount_program = this project's binary
#   fuse-overlayfs  overlay driver with mount_program = /usr/bin/fuse-overlayfs
#
# and the same three rootless (a throw-away user with subordinate ID ranges, made and removed
# here; podman's native rootless driver is kernel overlayfs with userxattr in the user's
# namespace). Rounds interleave the set-ups (round 1 of each, then round 2, ...), so machine
# noise spreads over all columns.
#
# Usage (root): Benchmarks/podman-workloads.sh [-n RUNS] [-b BINARY] [-R]
#   BINARY defaults to .build/release/unionfs-swift (swift build -c release --product unionfs-swift).
#   -R: rootless set-ups only.
# The base image is the debootstrap rootfs tarball the test suite caches under
# /var/cache/unionfs-tests/ (made here with debootstrap when absent).
set -euo pipefail
cd "$(dirname "$0")/.."

runs=3
binary=$PWD/.build/release/unionfs-swift
rootful=1
while getopts "n:b:R" opt; do
  case $opt in
    n) runs=$OPTARG ;;
    b) binary=$(realpath "$OPTARG") ;;
    R) rootful=0 ;;
    *) echo "usage: $0 [-n RUNS] [-b BINARY] [-R]" >&2; exit 2 ;;
  esac
done
[ "$(id -u)" = 0 ] || { echo "$0: needs root" >&2; exit 1; }
[ -x "$binary" ] || { echo "$0: no binary at $binary (swift build -c release --product unionfs-swift)" >&2; exit 1; }
command -v podman >/dev/null || { echo "$0: podman is not installed" >&2; exit 1; }

suite=$(. /etc/os-release && echo "${VERSION_CODENAME:-bookworm}")
tarball=/var/cache/unionfs-tests/debootstrap-$suite-minbase.tar
if [ ! -f "$tarball" ]; then
  echo "building $tarball with debootstrap (a few minutes)..." >&2
  mkdir -p /var/cache/unionfs-tests
  work=$(mktemp -d /var/cache/unionfs-tests/build-XXXXXX)
  timeout 900 debootstrap --variant=minbase "$suite" "$work/rootfs" >/dev/null
  rm -rf "$work"/rootfs/var/cache/apt/* "$work"/rootfs/var/lib/apt/lists/*
  tar --numeric-owner --xattrs -C "$work/rootfs" -cf "$work/rootfs.tar" .
  mv "$work/rootfs.tar" "$tarball"
  rm -rf "$work"
fi

# One runtime that works here: crun refuses hybrid cgroup hierarchies, runc does not.
tmp=$(mktemp -d /tmp/podman-workloads-XXXXXX)
nofile=$(ulimit -Hn); [ "$nofile" = unlimited ] && nofile=1048576
nproc=4096
limits=(--ulimit "nofile=$nofile:$nofile" --ulimit "nproc=$nproc:$nproc")

# Rootless set-ups run as this user (made here with subordinate ranges, removed at exit).
user=podbench$RANDOM
useradd -m -s /bin/sh "$user"
uid=$(id -u "$user")
mkdir -p "/run/user/$uid" && chown "$user:" "/run/user/$uid" && chmod 700 "/run/user/$uid"
[ "$(stat -c %a /dev/fuse)" = 666 ] || chmod 0666 /dev/fuse  # as Debian's udev rule makes it
chmod 755 "$tmp"

setups=(rl-native rl-unionfs-swift rl-fuse-overlayfs)
[ "$rootful" = 1 ] && setups=(native unionfs-swift fuse-overlayfs "${setups[@]}")
declare -A program=([native]="" [unionfs-swift]=$binary [fuse-overlayfs]=/usr/bin/fuse-overlayfs
                    [rl-native]="" [rl-unionfs-swift]=$binary [rl-fuse-overlayfs]=/usr/bin/fuse-overlayfs)

pod() { # pod SETUP ARGS...: podman on SETUP's own storage, as root or (rl-*) as the user
  local s=$1; shift
  local as=()
  [[ $s == rl-* ]] && as=(runuser -u "$user" -- env -i -C "/home/$user" HOME="/home/$user" XDG_RUNTIME_DIR="/run/user/$uid"
                          PATH=/usr/local/bin:/usr/bin:/bin:/usr/sbin:/sbin)
  "${as[@]}" env CONTAINERS_STORAGE_CONF="$tmp/$s/storage.conf" timeout 600 podman --tmpdir "$tmp/$s/tmp" \
    --cgroup-manager cgroupfs --events-backend file --runtime "$runtime" "$@"
}

cleanup() {
  for s in "${setups[@]}"; do
    [ -f "$tmp/$s/storage.conf" ] && pod "$s" system reset -f >/dev/null 2>&1 || true
  done
  awk -v t="$tmp" 'index($2, t) == 1 {print $2}' /proc/mounts | sort -r | xargs -r -n1 umount -l 2>/dev/null || true
  ps -o pid= -u "$user" 2>/dev/null | xargs -r kill -KILL 2>/dev/null || true
  userdel -r -f "$user" >/dev/null 2>&1 || true
  rm -rf "$tmp" "/run/user/$uid"
}
trap cleanup EXIT

for s in "${setups[@]}"; do
  mkdir -p "$tmp/$s/root" "$tmp/$s/runroot" "$tmp/$s/tmp"
  {
    printf '[storage]\ndriver = "overlay"\ngraphroot = "%s"\nrunroot = "%s"\nrootless_storage_path = "%s"\n' \
      "$tmp/$s/root" "$tmp/$s/runroot" "$tmp/$s/root"
    [ -n "${program[$s]}" ] && printf '[storage.options.overlay]\nmount_program = "%s"\n' "${program[$s]}"
  } > "$tmp/$s/storage.conf"
  [[ $s == rl-* ]] && chown -R "$user:" "$tmp/$s"
done

runtime=crun
first=${setups[0]}
runtime_ok() { pod "$first" run --rm --network none "${limits[@]}" localhost/bench-base /bin/true >/dev/null 2>&1; }
chmod 644 "$tarball"
pod "$first" import "$tarball" localhost/bench-base >/dev/null
runtime_ok || { runtime=runc; runtime_ok || { echo "$0: neither crun nor runc can run a container here" >&2; exit 1; }; }
for s in "${setups[@]:1}"; do pod "$s" import "$tarball" localhost/bench-base >/dev/null; done

# The header tree: a tar of the host's /usr/include, bind-mounted read-only into the container.
tar -C /usr -cf "$tmp/include.tar" include
headers=$(tar -tf "$tmp/include.tar" | wc -l)
files_in_image=$(tar -tf "$tarball" | wc -l)

# Each workload prints its own duration in ms (date +%s%N around the work).
declare -A script=(
  [find]='find / -xdev >/dev/null'
  [create-delete]='mkdir /w; i=0; while [ $i -lt 2000 ]; do echo x > /w/f$i; i=$((i+1)); done; rm -rf /w'
  [untar]='mkdir /inc && tar -xf /include.tar -C /inc'
)
workloads=(find create-delete untar)
declare -A label=(
  [find]="find over the rootfs ($files_in_image entries)"
  [create-delete]="create and delete 2,000 files"
  [untar]="untar /usr/include ($headers entries)"
  [start]="podman run true (wall, incl. mount)"
)

median() { sort -n | awk '{a[NR]=$1} END {print (NR % 2) ? a[(NR+1)/2] : int((a[NR/2] + a[NR/2+1]) / 2)}'; }

declare -A times
for round in $(seq "$runs"); do
  for s in "${setups[@]}"; do
    t0=$(date +%s%N)
    pod "$s" run --rm --network none "${limits[@]}" localhost/bench-base /bin/true
    t1=$(date +%s%N)
    times[$s,start]+=" $(( (t1 - t0) / 1000000 ))"
  done
  for w in "${workloads[@]}"; do
    for s in "${setups[@]}"; do
      t=$(pod "$s" run --rm --network none "${limits[@]}" -v "$tmp/include.tar:/include.tar:ro" localhost/bench-base \
        /bin/sh -ec "t0=\$(date +%s%N); ${script[$w]}; t1=\$(date +%s%N); echo \$(( (t1 - t0) / 1000000 ))")
      times[$s,$w]+=" $t"
    done
  done
done
declare -A result
for key in "${!times[@]}"; do result[$key]=$(printf '%s\n' ${times[$key]} | median); done

table() { # table PREFIX TITLE
  echo "| $2 (median of $runs, ms) | native overlay | unionfs-swift | fuse-overlayfs |"
  echo "|---|---:|---:|---:|"
  for w in "${workloads[@]}" start; do
    echo "| ${label[$w]} | ${result[$1native,$w]} | ${result[$1unionfs-swift,$w]} | ${result[$1fuse-overlayfs,$w]} |"
  done
  echo
}
[ "$rootful" = 1 ] && table "" "root: workload"
table rl- "rootless: workload"
echo "podman $(podman --version | awk '{print $3}'), runtime $runtime, fuse-overlayfs $(fuse-overlayfs --version 2>&1 | awk '/^fuse-overlayfs: version/ {print $3}'), kernel $(uname -r), $(nproc) cores"
