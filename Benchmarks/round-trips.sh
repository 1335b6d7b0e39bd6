#!/usr/bin/env bash
# Round trips as the kernel sees them: per opcode, how many requests one command sent to one
# FUSE mount, and how long each took from the kernel queueing it to the kernel taking in the
# reply (the fuse:fuse_request_send and fuse:fuse_request_end tracepoints).
#
#   bash Benchmarks/round-trips.sh [--why OPCODE] MOUNTPOINT -- COMMAND [ARG...]
#
# --why OPCODE (GETXATTR, or FUSE_GETXATTR) also prints the kernel call paths that sent that
# opcode, most frequent first, with counts: which syscall of the command, and which part of the
# kernel under it (a permission check, a privilege check before a write), asked the daemon.
#
# `unionfs-swift stats MOUNTPOINT` gives the daemon's own time per request; what this adds is
# the wait for a worker and the trip both ways, so the two side by side show whether a slow
# workload waits on the daemon or on the transport. Not counted here: the caller's own wake-up
# after the reply, which comes after fuse_request_end (on a VM, often the larger part), and
# requests without a reply (FORGET). Works for any FUSE mount (fuse-overlayfs too), also one a
# plain user made (run the command as that user: `-- runuser -u USER -- ...`). Needs root
# (tracefs); uses a tracing instance of its own, so other tracing is left as it was.
set -euo pipefail

usage() { sed -n '2,18p' "$0" >&2; exit 2; }
WHY=""
if [ "${1:-}" = --why ]; then
    [ $# -ge 2 ] || usage
    WHY="$(echo "$2" | tr a-z A-Z)"; WHY="${WHY#FUSE_}"; shift 2
    [[ "$WHY" =~ ^[A-Z0-9_]+$ ]] || { echo "round-trips.sh: --why takes an opcode name (GETXATTR), not '$WHY'" >&2; exit 2; }
fi
[ $# -ge 3 ] && [ "$2" = "--" ] || usage
MNT="$1"; shift 2
[ "$(id -u)" = 0 ] || { echo "round-trips.sh: needs root (tracefs)" >&2; exit 2; }
# From mountinfo, not stat: root may not enter another user's FUSE mount (no allow_other).
# Its last entry for the path (the one on top): the device and the filesystem type.
parent="$(cd "$(dirname "$MNT")" 2>/dev/null && pwd -P)" || { echo "round-trips.sh: no directory $MNT" >&2; exit 2; }
MNTP="${parent%/}/$(basename "$MNT")"; [ "$MNTP" != "//" ] || MNTP=/
read -r DEV FSTYPE < <(awk -v m="$MNTP" '$5 == m { for (i = 7; i <= NF; i++) if ($i == "-") { d = $3; t = $(i + 1) } } END { print d, t }' /proc/self/mountinfo)
[ -n "${DEV:-}" ] || { echo "round-trips.sh: $MNT is not a mount point" >&2; exit 2; }
case "$FSTYPE" in
    fuse|fuse.*) ;;
    *) echo "round-trips.sh: $MNT is not a FUSE mount ($FSTYPE)" >&2; exit 2 ;;
esac

T=/sys/kernel/tracing
[ -d "$T/events" ] || mount -t tracefs nodev "$T" 2>/dev/null || true
[ -d "$T/events/fuse" ] || { echo "round-trips.sh: this kernel has no fuse tracepoints under $T/events/fuse" >&2; exit 2; }

# The tracepoints name the connection by the mount's device number; an anonymous device has
# major 0, where the kernel's encoding is the minor itself.
[ "${DEV%%:*}" = 0 ] || { echo "round-trips.sh: unexpected device $DEV for $MNT" >&2; exit 2; }
CONN="${DEV#*:}"

I="$T/instances/unionfs-round-trips-$$"
OUTF="$(mktemp)"
cleanup() {
    [ -d "$I" ] && { echo 0 > "$I/tracing_on" 2>/dev/null; rmdir "$I" 2>/dev/null; } || true
    rm -f "$OUTF"
}
trap cleanup EXIT
mkdir "$I"
echo 65536 > "$I/buffer_size_kb"   # per CPU: an untar of 9k files sends about 160k events
for e in fuse_request_send fuse_request_end; do
    echo "connection == $CONN" > "$I/events/fuse/$e/filter"
    echo 1 > "$I/events/fuse/$e/enable"
done
if [ -n "$WHY" ]; then
    # The opcode's number from the event's own table ({22, "FUSE_GETXATTR"}), so no list here
    # goes stale as the kernel adds opcodes.
    num="$(grep -o "{[0-9]*, \"FUSE_$WHY\"}" "$T/events/fuse/fuse_request_send/format" | tr -dc 0-9 || true)"
    [ -n "$num" ] || { echo "round-trips.sh: --why $WHY: this kernel has no opcode FUSE_$WHY" >&2; exit 2; }
    echo "stacktrace if connection == $CONN && opcode == $num" > "$I/events/fuse/fuse_request_send/trigger"
fi

start=$(date +%s%N)
status=0
"$@" || status=$?
end=$(date +%s%N)
echo 0 > "$I/tracing_on"
cat "$I/trace" > "$OUTF"
lost=$(awk '/^overrun:/ { n += $2 } END { print n + 0 }' "$I"/per_cpu/cpu*/stats)

echo "command: $* (exit $status, $(( (end - start) / 1000000 )) ms)"
[ "$lost" = 0 ] || echo "warning: $lost events lost (trace buffer overrun): counts below are short"
# Pair each send with its end by request id; per opcode: count, p50, p90, p99, sum.
awk '
    /fuse_request_send:/ || /fuse_request_end:/ {
        ts = ""
        for (i = 1; i <= NF; i++) if ($i ~ /^fuse_request_(send|end):$/) { ts = $(i - 1); break }
        sub(/:$/, "", ts)
        for (j = i; j <= NF; j++) if ($j == "req") { id = $(j + 1); break }
        if ($i == "fuse_request_send:") {
            for (k = j; k <= NF; k++) if ($k == "opcode") { op = $(k + 2); break }
            gsub(/[()]/, "", op); sub(/^FUSE_/, "", op)
            sent[id] = ts; name[id] = op
        } else if (id in sent) {
            printf "%s %.1f\n", name[id], (ts - sent[id]) * 1e6
            delete sent[id]
        }
    }
    END { for (id in sent) printf "%s -1\n", name[id] }
' "$OUTF" | sort -k1,1 -k2,2n | awk '
    function flush() {
        if (op == "") return
        printf "%-14s %9d %9.0f %9.0f %9.0f %11.1f%s\n", op, n, v[int(n * 0.5) + 1], v[int(n * 0.9) + 1], v[int(n * 0.99) + 1], sum / 1000, (open ? "  " open " without reply" : "")
        total += n; tsum += sum
    }
    BEGIN { printf "%-14s %9s %9s %9s %9s %11s\n", "opcode", "requests", "p50 us", "p90 us", "p99 us", "sum ms" }
    $1 != op { flush(); op = $1; n = 0; sum = 0; open = 0; delete v }
    $2 < 0 { open++; next }
    { v[++n] = $2; sum += $2 }
    END { flush(); printf "%-14s %9d %9s %9s %9s %11.1f\n", "ALL", total, "", "", "", tsum / 1000 }
'
if [ -n "$WHY" ]; then
    # Each <stack trace> entry follows its request's send; its " => func" lines, innermost
    # first, are counted as one path. Left out: the tracepoint and queueing frames at the top
    # and the syscall entry at the bottom, the same for every path.
    echo
    echo "why $WHY: the kernel paths that sent it (innermost first)"
    awk '
        function end_stack() {
            if (key != "") { n[key]++; total++ }
            key = ""; inside = 0
        }
        /<stack trace>/ { end_stack(); inside = 1; next }
        inside && /^ => / {
            f = $2
            if (f ~ /^(trace_event_raw_event_|__traceiter_|fuse_dev_queue_req|fuse_uring_queue|fuse_request_queue_and_wait|__fuse_request_send|fuse_simple_request|__fuse_simple_request|do_syscall_64|entry_SYSCALL)/) next
            key = key (key == "" ? "" : " < ") f
            next
        }
        { end_stack() }
        END {
            end_stack()
            for (k in n) printf "%d\t%s\n", n[k], k
            if (total == 0) print "0\t(none sent)"
        }
    ' "$OUTF" | sort -t "$(printf '\t')" -k1,1nr | head -8 | awk -F '\t' '{ printf "%9d  %s\n", $1, $2 }'
fi
exit "$status"
