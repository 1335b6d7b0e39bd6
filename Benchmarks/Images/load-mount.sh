#!/bin/bash
# Time to a mounted rootfs from an image archive, and disk used by two images sharing a base:
# unionfs-swift image load + image mount, against umoci unpack and podman load + image mount.
#
#   bash Benchmarks/Images/load-mount.sh [TOTAL_MIB [FILES [LAYERS]]]   (default 1024 50000 5)
#
# Makes a LAYERS-layer image of FILES files (TOTAL_MIB of random data) with podman (import, then
# create/mount/commit per layer: nothing is run), saves it as an oci-archive, then times each
# tool from that archive with cold caches (drop_caches before each run). A second image shares
# all but the top layer, for the disk-use column. Needs root, podman, umoci.
set -euo pipefail
TOTAL_MIB=${1:-1024}
FILES=${2:-50000}
LAYERS=${3:-5}
BIN=${UNIONFS_SWIFT:-$(cd "$(dirname "$0")/../.." && pwd)/.build/release/unionfs-swift}
[ -x "$BIN" ] || BIN=$(cd "$(dirname "$0")/../.." && pwd)/.build/debug/unionfs-swift
W=$(mktemp -d /var/tmp/ufs-bench.XXXXXX)
RUN=$(mktemp -d /tmp/ufsb.XXXXXX)
P="podman --root $W/podman --runroot $RUN/run --storage-driver overlay --cgroup-manager cgroupfs"
cleanup() {
    for m in "$W"/mnt*; do [ -d "$m" ] && { fusermount3 -u -q "$m" 2>/dev/null || umount -l "$m" 2>/dev/null || true; }; done
    $P unmount -a >/dev/null 2>&1 || true
    $P system reset -f >/dev/null 2>&1 || true
    rm -rf "$W" "$RUN"
}
trap cleanup EXIT

now() { date +%s.%N; }
since() { echo "$(now) - $1" | bc | xargs printf '%.2f'; }
cold() { sync; echo 3 > /proc/sys/vm/drop_caches; }

# --- the image -----------------------------------------------------------------------------
. "$(dirname "$0")/bench-image.sh"
make_bench_images "$P" "$W" "$TOTAL_MIB" "$FILES" "$LAYERS"
$P save -q --format oci-archive -o "$W/image.tar" localhost/bench:$LAYERS
$P save -q --format oci-archive -o "$W/other.tar" localhost/other:1
$P system reset -f >/dev/null 2>&1
echo "archive: $(du -m "$W/image.tar" | cut -f1) MiB" >&2

# --- unionfs-swift ---------------------------------------------------------------------------
mkdir -p "$W/mnt-u"
cold; t=$(now)
"$BIN" image load --quiet --store "$W/store" "$W/image.tar" >/dev/null
"$BIN" image mount --store "$W/store" localhost/bench:$LAYERS "$W/mnt-u"
ours=$(since "$t")
files_u=$(find "$W/mnt-u" -type f | wc -l)
fusermount3 -u "$W/mnt-u"
"$BIN" image load --quiet --store "$W/store" "$W/other.tar" >/dev/null
disk_u=$(du -sm "$W/store" | cut -f1)

# --- umoci ------------------------------------------------------------------------------------
cold; t=$(now)
mkdir -p "$W/layout" && tar -C "$W/layout" -xf "$W/image.tar"
umoci unpack --image "$W/layout:localhost/bench:$LAYERS" "$W/bundle" >/dev/null 2>&1 \
    || umoci unpack --image "$W/layout" "$W/bundle" >/dev/null
umoci_t=$(since "$t")
files_m=$(find "$W/bundle/rootfs" -type f | wc -l)
mkdir -p "$W/layout2" && tar -C "$W/layout2" -xf "$W/other.tar"
umoci unpack --image "$W/layout2:localhost/other:1" "$W/bundle2" >/dev/null 2>&1 \
    || umoci unpack --image "$W/layout2" "$W/bundle2" >/dev/null
disk_m=$(du -smc "$W/bundle" "$W/bundle2" | tail -1 | cut -f1)
rm -rf "$W/layout" "$W/layout2" "$W/bundle" "$W/bundle2"

# --- podman (overlay driver) ----------------------------------------------------------------
cold; t=$(now)
$P load -q -i "$W/image.tar" >/dev/null
pm=$($P image mount localhost/bench:$LAYERS)
podman_t=$(since "$t")
files_p=$(find "$pm" -type f | wc -l)
$P image unmount -a >/dev/null
$P load -q -i "$W/other.tar" >/dev/null
disk_p=$(du -smx "$W/podman" | cut -f1)

echo
echo "| $LAYERS layers, $FILES files, $TOTAL_MIB MiB | to a mounted rootfs (s) | files seen | disk, two images sharing the base (MiB) |"
echo "| --- | --- | --- | --- |"
echo "| unionfs-swift image load + image mount | $ours | $files_u | $disk_u (layers + kept blobs) |"
echo "| umoci unpack (incl. untar of the archive) | $umoci_t | $files_m | $disk_m (two full copies) |"
echo "| podman load + podman image mount (overlay) | $podman_t | $files_p | $disk_p |"
