#!/bin/bash
# Time to a mounted rootfs from a registry, cold store: unionfs-swift image pull + image mount,
# against podman pull + podman image mount (overlay driver) and skopeo copy + umoci unpack; then
# the second image sharing all but its top layer (what each fetches again). Also the network
# bytes each pull asked for (the registry's access log) and unionfs-swift's peak RSS.
#
#   bash Benchmarks/Images/pull.sh [TOTAL_MIB [FILES [LAYERS]]]   (default 1024 20000 5)
#
# The image is made with podman (import, then create/mount/commit per layer: nothing is run) and
# pushed by podman to Debian's docker-registry on a free loopback port (plain HTTP, filesystem
# storage in the work dir). Page caches are dropped before each timed run; the registry's own
# files are read back cold too, as a remote registry's would be. Needs root, podman, skopeo,
# umoci, docker-registry.
set -euo pipefail
TOTAL_MIB=${1:-1024}
FILES=${2:-20000}
LAYERS=${3:-5}
BIN=${UNIONFS_SWIFT:-$(cd "$(dirname "$0")/../.." && pwd)/.build/release/unionfs-swift}
[ -x "$BIN" ] || BIN=$(cd "$(dirname "$0")/../.." && pwd)/.build/debug/unionfs-swift
W=$(mktemp -d /var/tmp/ufs-pull.XXXXXX)
RUN=$(mktemp -d /tmp/ufsp.XXXXXX)
P="podman --root $W/podman --runroot $RUN/run --storage-driver overlay --cgroup-manager cgroupfs"
REG_PID=
cleanup() {
    for m in "$W"/mnt*; do [ -d "$m" ] && { fusermount3 -u -q "$m" 2>/dev/null || umount -l "$m" 2>/dev/null || true; }; done
    $P unmount -a >/dev/null 2>&1 || true
    $P system reset -f >/dev/null 2>&1 || true
    [ -n "$REG_PID" ] && kill "$REG_PID" 2>/dev/null || true
    rm -rf "$W" "$RUN"
}
trap cleanup EXIT

now() { date +%s.%N; }
since() { echo "$(now) - $1" | bc | xargs printf '%.2f'; }
cold() { sync; echo 3 > /proc/sys/vm/drop_caches; }
# Bytes of blob GET answers logged since line $1 of the access log.
blob_bytes() { tail -n +"$1" "$W/registry.log" | grep -E '"GET /v2/[^ ]*/blobs/sha256:' | awk '{ s += $10 } END { print s + 0 }'; }
log_lines() { wc -l < "$W/registry.log"; }
mib() { if [ "$1" -lt 1048576 ]; then echo "$(( $1 / 1024 )) KiB"; else echo "$(echo "scale=1; $1 / 1048576" | bc) MiB"; fi; }

# --- the registry ----------------------------------------------------------------------------
PORT=$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
cat > "$W/registry.yml" <<YML
version: 0.1
log: { level: warn, accesslog: { disabled: false } }
storage: { filesystem: { rootdirectory: $W/registry } }
http: { addr: 127.0.0.1:$PORT, secret: bench }
YML
/usr/bin/docker-registry serve "$W/registry.yml" > "$W/registry.log" 2>&1 &
REG_PID=$!
for _ in $(seq 100); do curl -sf "http://127.0.0.1:$PORT/v2/" >/dev/null && break; sleep 0.1; done
REG=127.0.0.1:$PORT

# --- the image -----------------------------------------------------------------------------
. "$(dirname "$0")/bench-image.sh"
make_bench_images "$P" "$W" "$TOTAL_MIB" "$FILES" "$LAYERS"
$P push -q --tls-verify=false localhost/bench:$LAYERS "docker://$REG/bench:$LAYERS"
$P push -q --tls-verify=false localhost/other:1 "docker://$REG/other:1"
$P system reset -f >/dev/null 2>&1
echo "registry: $(du -sm "$W/registry" | cut -f1) MiB" >&2

# --- unionfs-swift ---------------------------------------------------------------------------
mkdir -p "$W/mnt-u"
l=$(log_lines); cold; t=$(now)
/usr/bin/time -f %M -o "$W/rss" "$BIN" image pull --quiet --tls-verify=false --store "$W/store" "$REG/bench:$LAYERS" >/dev/null
"$BIN" image mount --store "$W/store" "$REG/bench:$LAYERS" "$W/mnt-u"
ours=$(since "$t"); ours_bytes=$(blob_bytes $((l + 1))); rss=$(($(cat "$W/rss") / 1024))
files_u=$(find "$W/mnt-u" -type f | wc -l)
fusermount3 -u "$W/mnt-u"
l=$(log_lines); cold; t=$(now)
"$BIN" image pull --quiet --tls-verify=false --store "$W/store" "$REG/other:1" >/dev/null
ours2=$(since "$t"); ours2_bytes=$(blob_bytes $((l + 1)))

# --- podman (overlay driver) -----------------------------------------------------------------
l=$(log_lines); cold; t=$(now)
$P pull -q --tls-verify=false "$REG/bench:$LAYERS" >/dev/null
pm=$($P image mount "$REG/bench:$LAYERS")
podman_t=$(since "$t"); podman_bytes=$(blob_bytes $((l + 1)))
files_p=$(find "$pm" -type f | wc -l)
$P image unmount -a >/dev/null
l=$(log_lines); cold; t=$(now)
$P pull -q --tls-verify=false "$REG/other:1" >/dev/null
podman2=$(since "$t"); podman2_bytes=$(blob_bytes $((l + 1)))
$P system reset -f >/dev/null 2>&1

# --- skopeo + umoci --------------------------------------------------------------------------
l=$(log_lines); cold; t=$(now)
skopeo copy -q --src-tls-verify=false "docker://$REG/bench:$LAYERS" "oci:$W/layout:bench" >/dev/null
umoci unpack --image "$W/layout:bench" "$W/bundle" >/dev/null 2>&1
umoci_t=$(since "$t"); umoci_bytes=$(blob_bytes $((l + 1)))
files_m=$(find "$W/bundle/rootfs" -type f | wc -l)
l=$(log_lines); cold; t=$(now)
skopeo copy -q --src-tls-verify=false "docker://$REG/other:1" "oci:$W/layout:other" >/dev/null
umoci unpack --image "$W/layout:other" "$W/bundle2" >/dev/null 2>&1
umoci2=$(since "$t"); umoci2_bytes=$(blob_bytes $((l + 1)))

echo
echo "| $LAYERS layers, $FILES files, $TOTAL_MIB MiB, local registry | to a mounted rootfs (s) | fetched | files seen | second image, shared base (s) | fetched |"
echo "| --- | --- | --- | --- | --- | --- |"
echo "| unionfs-swift image pull + image mount (peak RSS $rss MiB) | $ours | $(mib "$ours_bytes") | $files_u | $ours2 | $(mib "$ours2_bytes") |"
echo "| podman pull + podman image mount (overlay) | $podman_t | $(mib "$podman_bytes") | $files_p | $podman2 | $(mib "$podman2_bytes") |"
echo "| skopeo copy + umoci unpack | $umoci_t | $(mib "$umoci_bytes") | $files_m | $umoci2 | $(mib "$umoci2_bytes") |"
