#!/usr/bin/env bash
# Checks the CMake build end to end (called by .ci/run): configure and build with Ninja into
# build-cmake/, install into a temporary prefix, run the installed unionfs-swift, check that
# libunionfs.so exports exactly the functions of include/unionfs.h, then compile
# Examples/C/example.c against the installed library with pkg-config alone and run it, as root
# and as a throw-away plain user (made and removed here). Fails on the first problem; prints the
# time taken.
#
# Debug by default: a cold Debug build takes about half the CPU time of Release (BoringSSL at -O0,
# Swift at -Onone), which keeps CI short on small machines; UNIONFS_CMAKE_BUILD_TYPE=Release
# checks the optimised build (the CMakeLists.txt default) instead.
set -euo pipefail
cd "$(dirname "$0")/.."
start=$SECONDS
build=build-cmake
build_type=${UNIONFS_CMAKE_BUILD_TYPE:-Debug}
prefix=$(mktemp -d /tmp/unionfs-cmake-prefix.XXXXXX)
trap 'rm -rf "$prefix"' EXIT
fail() { echo "cmake-check: $*" >&2; exit 1; }

cmake -G Ninja -S . -B "$build" -DCMAKE_BUILD_TYPE="$build_type" >/dev/null
# Warnings of the project's Swift sources are the Swift build's business: show only the outcome.
if ! cmake --build "$build" >"$build/build.log" 2>&1; then
  grep -E "error|FAILED" "$build/build.log" | head -40 >&2
  fail "cmake --build failed (full log in $build/build.log)"
fi
cmake --install "$build" --prefix "$prefix" >/dev/null

version=$("$prefix/bin/unionfs-swift" --version) || fail "installed unionfs-swift --version failed"
[ -n "$version" ] || fail "installed unionfs-swift --version printed nothing"
echo "cmake-check: installed unionfs-swift $version"

# The CMake build has no registry client (no swift-nio): pull says so instead of doing nothing.
if pull_out=$("$prefix/bin/unionfs-swift" image pull --store "$prefix/store" example.com/app 2>&1); then
  fail "image pull succeeded in a build without registry support"
fi
echo "$pull_out" | grep -q "has no registry support" || fail "image pull without registry support said: $pull_out"

# Exactly the header's functions are exported (the version script hides everything else).
lib="$prefix/lib/libunionfs.so"
declared=$(grep -oE '\bunionfs_[a-z_]+\(' include/unionfs.h | tr -d '(' | sort -u)
exported=$(nm -D --defined-only "$lib" | awk '$2 ~ /^[TDBRW]$/ {print $3}' | sort -u)
[ "$declared" = "$exported" ] || fail "libunionfs.so exports [$(echo $exported)], header declares [$(echo $declared)]"

# The C example, compiled and linked with pkg-config only, then run from the install.
export PKG_CONFIG_PATH="$prefix/lib/pkgconfig${PKG_CONFIG_PATH:+:$PKG_CONFIG_PATH}"
flags=$(pkg-config --cflags --libs unionfs) || fail "pkg-config --cflags --libs unionfs failed"
# shellcheck disable=SC2086 # the flags are words
cc -Wall -Wextra -Werror -o "$prefix/example" Examples/C/example.c $flags
out=$(timeout 120 "$prefix/example" 2>&1) || fail "Examples/C/example.c failed ($?): $out"
echo "$out" | sed 's/^/  example: /'
[ "$(echo "$out" | tail -1)" = "ok" ] || fail "the C example did not finish with ok"
if grep -q 'unionfs-c-example' /proc/self/mountinfo; then
  fail "the C example left a mount behind: $(grep unionfs-c-example /proc/self/mountinfo)"
fi

# The same example as a plain user (issue 14): the library mounts through fusermount3, which
# needs /dev/fuse open to every user (Debian's udev rule makes it 0666).
user=ufs-capi-$RANDOM
useradd -r -M -d /nonexistent -s /bin/sh "$user" || fail "useradd $user failed"
trap 'pkill -KILL -u "$user" 2>/dev/null || true; userdel -f "$user" >/dev/null 2>&1 || true; rm -rf "$prefix"' EXIT
[ "$(stat -c %a /dev/fuse)" = 666 ] || chmod 0666 /dev/fuse
chmod 755 "$prefix"
out=$(cd /tmp && timeout 120 runuser -u "$user" -- "$prefix/example" 2>&1) \
  || fail "Examples/C/example.c as the plain user $user failed ($?): $out"
echo "$out" | sed 's/^/  example as a plain user: /'
[ "$(echo "$out" | tail -1)" = "ok" ] || fail "the C example did not finish with ok as a plain user"
grep -q 'unionfs-c-example' /proc/self/mountinfo && fail "the C example left a mount behind as a plain user"
sleep 1  # fusermount3 -u, run by libfuse at unmount, may still be exiting
[ -z "$(pgrep -u "$user")" ] || fail "the C example left processes of $user: $(pgrep -a -u "$user")"
echo "cmake-check: ok ($build_type build) in $((SECONDS - start)) s"
