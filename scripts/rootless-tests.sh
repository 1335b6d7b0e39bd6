#!/usr/bin/env bash
# Runs the rootless in-process tier (the core's operations over every row of the §6 edge-case
# table, no mount; docs/ARCHITECTURE.md) as an unprivileged user, to show it needs no root.
# Run as root after `swift build --build-tests`: the test bundle is copied where that user can
# read it and run there. USER_NAME (default nobody) must exist. Fails on any failure, or when
# the tier takes longer than 30 s.
set -euo pipefail
cd "$(dirname "$0")/.."
user=${USER_NAME:-nobody}
bundle=$(find .build/debug/ -maxdepth 1 -name '*PackageTests.xctest' | head -1)
[ -n "$bundle" ] || { echo "rootless-tests: no test bundle in .build/debug: swift build --build-tests first" >&2; exit 1; }
dir=$(mktemp -d /tmp/unionfs-rootless.XXXXXX)
trap 'rm -rf "$dir"' EXIT
cp "$bundle" "$dir/tests"
chmod 755 "$dir" "$dir/tests"
start=$SECONDS
cd "$dir"
rc=0
out=$(runuser -u "$user" -- env HOME="$dir" TMPDIR=/tmp timeout 60 ./tests UnionFSTests.InProcessEdgeCaseTests 2>&1) || rc=$?
if [ "$rc" = 0 ]; then echo "$out" | tail -1; else echo "$out" | tail -40; fi
took=$((SECONDS - start))
[ "$rc" = 0 ] || { echo "rootless-tests: failed as $user ($rc)" >&2; exit 1; }
[ "$took" -le 30 ] || { echo "rootless-tests: took $took s as $user (more than 30 s)" >&2; exit 1; }
echo "rootless-tests: ok as $user in $took s"
