#!/usr/bin/env bash
# Side-by-side benchmark: kernel overlayfs, fuse-overlayfs, unionfs-fuse and unionfs-swift on
# one layer fixture, each workload on a fresh mount, several rounds, implementations alternating.
#
#   bash Benchmarks/side-by-side.sh [--quick] [--rounds N] [--only IMPL,IMPL] [--no-build]
#                                   [--disk [--journaled]] [--all-128] [--fixture-only]
#
# Needs root (mounts, drop_caches). Fixtures are built once under $BENCH_DIR (default /tmp/ub);
# delete it to rebuild. By default the layers are copied to a tmpfs and mounted from there, so
# the figures show what each union filesystem costs rather than this machine's virtual disk
# (whose ext4 with online discard dominates every write and cold read); --disk runs on the
# disk copy instead; --journaled then puts every upper and workdir on an ext4 with a journal
# (a loop image under $BENCH_DIR, made once): on an ext4 without one, as on these VMs, the
# inode allocator passes over every inode freed in the last minutes, so each create and untar
# would pay for the removals of the implementation before it. Prints medians per workload,
# ratios to kernel overlayfs and to fuse-overlayfs, and each daemon's memory after the cold
# walk. Not run in CI.
# UNIONFS_SWIFT=PATH runs another unionfs-swift binary; with UNIONFS_SWIFT_BEFORE=PATH the
# implementation "unionfs-swift-before" (in --only) runs that one alongside, for before/after.
# "unionfs-swift+OPT+OPT" (in --only) is unionfs-swift mounted with ",OPT,OPT" added to its
# options, one column each: --only kernel,unionfs-swift,unionfs-swift+uring=on,unionfs-swift+passthrough=off
set -euo pipefail

ROUNDS=5
QUICK=0
BUILD=1
FIXTURE_ONLY=0
DISK=0
JOURNALED=0
ALL128=0
IMPLS="kernel,fuse-overlayfs,unionfs-fuse,unionfs-swift"
while [ $# -gt 0 ]; do
    case "$1" in
        --quick) QUICK=1; ROUNDS=1 ;;
        --rounds) ROUNDS="$2"; shift ;;
        --only) IMPLS="$2"; shift ;;
        --no-build) BUILD=0 ;;
        --fixture-only) FIXTURE_ONLY=1 ;;
        --disk) DISK=1 ;;
        --journaled) JOURNALED=1 ;;
        --all-128) ALL128=1 ;;
        -h|--help) sed -n '2,21p' "$0"; exit 0 ;;
        *) echo "side-by-side.sh: unknown argument '$1' (try --help)" >&2; exit 2 ;;
    esac
    shift
done
[ "$JOURNALED" = 0 ] || [ "$DISK" = 1 ] || { echo "side-by-side.sh: --journaled goes with --disk" >&2; exit 2; }
[ "$(id -u)" = 0 ] || { echo "side-by-side.sh: needs root (mounts, drop_caches)" >&2; exit 2; }

HERE="$(cd "$(dirname "$0")/.." && pwd)"
B="${BENCH_DIR:-/tmp/ub}"          # short: 128 lowerdir paths must fit one mount option page
F="$B/fx"                          # fixture layers
R="$B/run"                         # per-mount upper/work/mountpoint
OUT="$B/results-$(date +%Y%m%d-%H%M%S).csv"
SWIFT_BIN="${UNIONFS_SWIFT:-$HERE/.build/release/unionfs-swift}"   # override to compare builds
FIXTURE_VERSION=3
EXTRA_LAYERS=125                   # 3 real lowers + 125 = 128 lower layers

log() { echo "[$(date +%H:%M:%S)] $*" >&2; }

if [ "$BUILD" = 1 ] && [ "$FIXTURE_ONLY" = 0 ]; then
    log "building unionfs-swift (release)"
    (cd "$HERE" && swift build -c release --product unionfs-swift >/dev/null)
fi
[ "$FIXTURE_ONLY" = 1 ] || [ -x "$SWIFT_BIN" ] || { echo "side-by-side.sh: $SWIFT_BIN missing (build it, or drop --no-build)" >&2; exit 2; }

# ---------------------------------------------------------------- fixture
build_fixture() {
    log "building fixture in $F (once)"
    rm -rf "$F"; mkdir -p "$F"/{base,mid,top,extra}
    # base: a Debian-like rootfs (host /usr/bin, /usr/sbin, /usr/share, /etc).
    mkdir -p "$F/base/usr"
    cp -a /usr/bin /usr/sbin /usr/share "$F/base/usr/"
    cp -a /etc "$F/base/etc" 2>/dev/null || true
    # mid: a header tree (about 9k files) and shadows of 500 files of base.
    cp -a /usr/include "$F/mid/usr-include.tmp"; mkdir -p "$F/mid/usr"; mv "$F/mid/usr-include.tmp" "$F/mid/usr/include"
    (cd "$F/base" && find usr/share/doc -name copyright | awk "NR <= 500") | while read -r p; do
        mkdir -p "$F/mid/$(dirname "$p")"; echo "shadowed $p" > "$F/mid/$p"
    done
    # top: whiteouts (300 files of man pages, 20 whole doc dirs), an opaque dir.
    (cd "$F/base" && find usr/share/man/man1 -type f | awk "NR <= 300") | while read -r p; do
        mkdir -p "$F/top/$(dirname "$p")"; mknod "$F/top/$p" c 0 0
    done
    (cd "$F/base" && ls -d usr/share/doc/*/ | awk "NR > 100 && NR <= 120") | while read -r p; do
        mkdir -p "$F/top/$(dirname "$p")"; mknod "$F/top/${p%/}" c 0 0
    done
    mkdir -p "$F/top/usr/share/locale"; setfattr -n trusted.overlay.opaque -v y "$F/top/usr/share/locale"
    echo "only this" > "$F/top/usr/share/locale/README"
    # big: 10k entries in each of the three layers, 1k whiteouts in top hiding base names.
    mkdir -p "$F/base/big" "$F/mid/big" "$F/top/big"
    (cd "$F/base/big" && seq -f 'b%05g' 0 9999 | xargs touch)
    (cd "$F/mid/big" && seq -f 'm%05g' 0 9999 | xargs touch)
    (cd "$F/top/big" && seq -f 't%05g' 0 9999 | xargs touch)
    for i in $(seq -f '%05g' 0 999); do mknod "$F/top/big/b$i" c 0 0; done
    # copy-up material: 2k small files, one 256 MiB file.
    mkdir -p "$F/base/small"; (cd "$F/base/small" && seq -f 's%04g' 0 1999 | xargs -n 500 sh -c 'for f; do head -c 4096 /dev/urandom > "$f"; done' _)
    mkdir -p "$F/base/data"; head -c $((256 << 20)) /dev/urandom > "$F/base/data/big.bin"
    # a 9k-file tarball to unpack onto the mount (outside every layer).
    tar cf "$F/untar.tar" -C /usr include
    # 125 more lower layers, each touching a few directories, for the 128-layer walk.
    for i in $(seq 1 $EXTRA_LAYERS); do
        mkdir -p "$F/extra/$i/usr/share/doc"; echo "$i" > "$F/extra/$i/usr/share/doc/extra-$i"
    done
    echo "$FIXTURE_VERSION" > "$F/.version"
    log "fixture: $(find "$F/base" "$F/mid" "$F/top" | wc -l) entries in base+mid+top"
}
[ "$(cat "$F/.version" 2>/dev/null)" = "$FIXTURE_VERSION" ] || build_fixture
[ "$FIXTURE_ONLY" = 0 ] || exit 0

if [ "$DISK" = 0 ]; then
    T="${BENCH_TMPFS:-/tmp/ubt}"
    mkdir -p "$T"
    mountpoint -q "$T" || mount -t tmpfs -o size=6g,mode=0755 tmpfs "$T"
    if [ "$(cat "$T/fx/.version" 2>/dev/null)" != "$FIXTURE_VERSION" ]; then
        log "copying the fixture to tmpfs $T (once; umount $T to free it)"
        rm -rf "$T/fx"; cp -a "$F" "$T/fx"
    fi
    F="$T/fx"; R="$T/run"
fi
if [ "$JOURNALED" = 1 ]; then
    JD="$B/journaled"; IMG="$B/journaled.img"
    mkdir -p "$JD"
    if ! mountpoint -q "$JD"; then
        if [ ! -f "$IMG" ]; then
            log "making a journaled ext4 for the uppers: $IMG (once; umount $JD and delete it to free it)"
            # Made aside and renamed, so an interrupted mkfs never leaves a half image here.
            rm -f "$IMG.tmp"; truncate -s 16G "$IMG.tmp"
            mkfs.ext4 -q -F -O has_journal "$IMG.tmp"
            mv "$IMG.tmp" "$IMG"
        fi
        mount -o loop "$IMG" "$JD"
    fi
    R="$JD/run"
fi

LOWER3="$F/top:$F/mid:$F/base"
LOWER128="$F/top:$F/mid"
for i in $(seq 1 $EXTRA_LAYERS); do LOWER128="$LOWER128:$F/extra/$i"; done
LOWER128="$LOWER128:$F/base"

# ---------------------------------------------------------------- mounting
M="$R/mnt"; U="$R/upper"; W="$R/work"
DAEMON_PID=""

fresh_dirs() {
    umount_now
    rm -rf "$U" "$W"; mkdir -p "$U" "$W" "$M"
}

mount_impl() {  # impl lowers [ro: no upper, a read-only stack]
    local impl="$1" lowers="$2" ro="${3:-}"
    fresh_dirs
    DAEMON_PID=""; DAEMON_BIN=""
    local layers="lowerdir=$lowers,upperdir=$U,workdir=$W"
    [ -z "$ro" ] || layers="lowerdir=$lowers"
    # Each FUSE daemon runs in a session of its own (setsid), as a daemon started by a
    # container tool or by hand (it daemonizes) does: with the kernel's autogroups a session
    # is a scheduling group, and a daemon in the workload's own group gets placed beside its
    # callers differently (`ls -l` on io_uring took 0.87 s in the same group, 1.9-2.0 s alone).
    case "$impl" in
        kernel)
            mount -t overlay overlay -o "$layers" "$M" ;;
        fuse-overlayfs)
            setsid fuse-overlayfs -f -o "$layers" "$M" 2>>"$B/daemon.log" &
            DAEMON_PID=$! ;;
        unionfs-fuse)
            # unionfs-fuse has its own whiteout format: overlay whiteouts in top show as
            # character devices there, and the opaque xattr is ignored.
            local dirs="$U=RW" l cow=cow,
            [ -z "$ro" ] || { dirs=""; cow=""; }
            IFS=: read -ra parts <<< "$lowers"
            for l in "${parts[@]}"; do dirs="${dirs:+$dirs:}$l=RO"; done
            setsid unionfs -f -o "${cow}allow_other,use_ino,hide_meta_files" "$dirs" "$M" 2>>"$B/daemon.log" &
            DAEMON_PID=$! ;;
        unionfs-swift|unionfs-swift-before|unionfs-swift+*)
            local bin="$SWIFT_BIN" extra=""
            [ "$impl" != unionfs-swift-before ] || bin="${UNIONFS_SWIFT_BEFORE:?set UNIONFS_SWIFT_BEFORE to an older unionfs-swift binary}"
            case "$impl" in unionfs-swift+*) extra=",$(echo "${impl#unionfs-swift+}" | tr + ,)" ;; esac
            setsid "$bin" -f -o "$layers$extra" "$M" 2>>"$B/daemon.log" &
            DAEMON_PID=$!; DAEMON_BIN="$bin" ;;
    esac
    local t=0
    until mountpoint -q "$M"; do
        sleep 0.02; t=$((t + 1))
        [ $t -lt 500 ] || { echo "side-by-side.sh: $impl did not mount in 10 s" >&2; exit 1; }
    done
}

umount_now() {
    if mountpoint -q "$M" 2>/dev/null; then
        if [ -n "$DAEMON_PID" ]; then fusermount3 -u "$M" 2>/dev/null || umount -l "$M"; else umount "$M" || umount -l "$M"; fi
    fi
    if [ -n "$DAEMON_PID" ]; then
        local t=0
        while kill -0 "$DAEMON_PID" 2>/dev/null && [ $t -lt 250 ]; do sleep 0.02; t=$((t + 1)); done
        kill -0 "$DAEMON_PID" 2>/dev/null && kill "$DAEMON_PID" 2>/dev/null || true
        wait "$DAEMON_PID" 2>/dev/null || true
        DAEMON_PID=""
    fi
}
trap umount_now EXIT

drop_caches() { sync; echo 3 > /proc/sys/vm/drop_caches; }

now() { date +%s%N; }
record() {  # impl workload round seconds
    echo "$1,$2,$3,$4" >> "$OUT"
    printf '  %-15s %-24s %8.3f s\n' "$1" "$2" "$4" >&2
}
timed() {  # impl workload round -- command...
    local impl="$1" wl="$2" round="$3"; shift 4
    local t0 t1; t0=$(now); "$@" >"$B/last.out" || log "warning: $impl: $wl exited non-zero"; t1=$(now)
    record "$impl" "$wl" "$round" "$(awk -v a="$t0" -v b="$t1" 'BEGIN{printf "%.4f", (b-a)/1e9}')"
}
requests_per_entry() {  # impl workload round entries: the daemon's request count (stats) / entries
    [ "${1#unionfs-swift}" != "$1" ] && [ -n "${DAEMON_BIN:-}" ] || return 0
    local n; n=$("$DAEMON_BIN" stats "$M" 2>/dev/null | awk '$1 == "ALL" { print $2 }') || return 0
    [ -n "$n" ] && echo "$1,requests per entry $2,$3,$(awk -v a="$n" -v b="$4" 'BEGIN{printf "%.2f", a/b}')" >> "$OUT" || true
}
memory_kib() {  # field (VmHWM / VmRSS) of the daemon, or empty
    [ -n "$DAEMON_PID" ] || return 0
    awk -v f="$1:" '$1 == f { print $2 }' "/proc/$DAEMON_PID/status" 2>/dev/null || true
}

walk() { find "$M" -printf '%s\n' | wc -l; }
tar_read() { tar cf - -C "$M/usr" include | wc -c; }
seq_read() { dd if="$M/data/big.bin" of=/dev/null bs=1M 2>/dev/null; }
create_unlink() {
    mkdir "$M/cw"; local i
    for i in $(seq 1 5000); do echo "file $i" > "$M/cw/f$i"; done
    rm -rf "$M/cw"
}
append_small() { local f; for f in "$M"/small/*; do echo x >> "$f"; done; }
append_big() { echo x >> "$M/data/big.bin"; }
untar() { mkdir "$M/untar"; tar xf "$F/untar.tar" -C "$M/untar"; }

# ---------------------------------------------------------------- one round of one implementation
run_impl() {  # impl round
    local impl="$1" r="$2"
    log "round $r: $impl"
    # Walk, cold then warm, and the daemon's memory after it.
    mount_impl "$impl" "$LOWER3"; drop_caches
    timed "$impl" "walk cold" "$r" -- walk
    echo "$impl,entries seen by walk,$r,$(cat "$B/last.out")" >> "$OUT"
    local hwm; hwm=$(memory_kib VmHWM)
    timed "$impl" "walk warm" "$r" -- walk
    if [ -n "$DAEMON_PID" ]; then
        echo 2 > /proc/sys/vm/drop_caches; sleep 1
        echo "$impl,rss hwm after walk KiB,$r,$hwm" >> "$OUT"
        echo "$impl,rss after drop_caches KiB,$r,$(memory_kib VmRSS)" >> "$OUT"
    fi
    # The same walks on a read-only stack (no upper): kernel overlayfs mounts it ro, and so does
    # unionfs-swift, which spares the atime GETATTR per directory in the warm walk.
    mount_impl "$impl" "$LOWER3" ro; drop_caches
    timed "$impl" "walk cold read-only" "$r" -- walk
    timed "$impl" "walk warm read-only" "$r" -- walk
    # The big directory (fresh mount each: the kernel caches listings).
    mount_impl "$impl" "$LOWER3"
    timed "$impl" "ls -f big" "$r" -- ls -f "$M/big"
    mount_impl "$impl" "$LOWER3"
    timed "$impl" "ls -l big" "$r" -- ls -l "$M/big"
    # Reads.
    mount_impl "$impl" "$LOWER3"
    timed "$impl" "tar read 9k" "$r" -- tar_read
    requests_per_entry "$impl" "tar read 9k" "$r" "$INCLUDE_ENTRIES"
    mount_impl "$impl" "$LOWER3"; drop_caches
    timed "$impl" "read 256M cold" "$r" -- seq_read
    timed "$impl" "read 256M warm" "$r" -- seq_read
    # Writes.
    mount_impl "$impl" "$LOWER3"
    timed "$impl" "create+unlink 5k" "$r" -- create_unlink
    mount_impl "$impl" "$LOWER3"
    timed "$impl" "copy-up 2k append" "$r" -- append_small
    mount_impl "$impl" "$LOWER3"
    timed "$impl" "copy-up 256M" "$r" -- append_big
    mount_impl "$impl" "$LOWER3"
    timed "$impl" "untar 9k" "$r" -- untar
    requests_per_entry "$impl" "untar 9k" "$r" "$INCLUDE_ENTRIES"
    # 128 lower layers (fuse-overlayfs takes ~2 min and unionfs-fuse ~5 min here: only with --all-128).
    if [ "$ALL128" = 1 ] || [ "$impl" = kernel ] || [ "${impl#unionfs-swift}" != "$impl" ]; then
        mount_impl "$impl" "$LOWER128"; drop_caches
        timed "$impl" "walk cold 128 layers" "$r" -- walk
    fi
    umount_now
}

mkdir -p "$B"
echo "impl,workload,round,value" > "$OUT"
INCLUDE_ENTRIES=$(tar tf "$F/untar.tar" | wc -l)   # the same tree tar read reads (usr/include)
IFS=, read -ra IMPL_LIST <<< "$IMPLS"
for r in $(seq 1 "$ROUNDS"); do
    # Alternate: rotate the order every round so no implementation always runs first.
    n=${#IMPL_LIST[@]}
    for k in $(seq 0 $((n - 1))); do
        run_impl "${IMPL_LIST[$(( (k + r - 1) % n ))]}" "$r"
    done
done
umount_now

# ---------------------------------------------------------------- summary
log "results: $OUT"
awk -F, -v rounds="$ROUNDS" '
NR == 1 { next }
{ key = $1 SUBSEP $2; n[key]++; v[key, n[key]] = $4; if (!($2 in seenw)) { seenw[$2] = 1; order[++nw] = $2 }
  if (!($1 in seeni)) { seeni[$1] = 1; impls[++ni] = $1 } }
function median(key,   m, i, j, t, a) {
    m = n[key]; if (m == 0) return ""
    for (i = 1; i <= m; i++) a[i] = v[key, i] + 0
    for (i = 2; i <= m; i++) { t = a[i]; j = i - 1; while (j > 0 && a[j] > t) { a[j + 1] = a[j]; j-- } a[j + 1] = t }
    return (m % 2) ? a[(m + 1) / 2] : (a[m / 2] + a[m / 2 + 1]) / 2
}
END {
    printf "\nMedians of %d round(s), seconds (memory rows: KiB). x k = ratio to kernel overlayfs, x f = ratio to fuse-overlayfs.\n\n", rounds
    printf "| %-26s |", "workload"
    for (i = 1; i <= ni; i++) printf " %-14s |", impls[i]
    printf " %-22s |\n", "unionfs-swift x k / x f"
    printf "|%s|", "----------------------------"
    for (i = 1; i <= ni; i++) printf "%s|", "----------------"
    printf "%s|\n", "------------------------"
    for (w = 1; w <= nw; w++) {
        name = order[w]; printf "| %-26s |", name
        for (i = 1; i <= ni; i++) {
            m = median(impls[i] SUBSEP name)
            if (m == "") printf " %-14s |", "-"
            else if (name ~ /KiB|entries seen/) printf " %-14d |", m
            else if (name ~ /per entry/) printf " %-14.2f |", m
            else printf " %-14.3f |", m
        }
        s = median("unionfs-swift" SUBSEP name); k = median("kernel" SUBSEP name); f = median("fuse-overlayfs" SUBSEP name)
        if (s != "" && name !~ /KiB|entries|entry/) {
            rk = (k != "" && k > 0) ? sprintf("%.2f", s / k) : "-"
            rf = (f != "" && f > 0) ? sprintf("%.2f", s / f) : "-"
            printf " %-22s |\n", rk " / " rf
        } else printf " %-22s |\n", ""
    }
}' "$OUT"
