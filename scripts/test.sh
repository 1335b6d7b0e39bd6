#!/usr/bin/env bash
# Runs the whole test suite (XCTest; mounts for real, so run as root) and prints a one-line
# summary. Build first with scripts/setup.sh.
set -uo pipefail
cd "$(dirname "$0")/.."
log=$(mktemp)
swift build --build-tests 2>&1 | tail -3
swift test --skip-build --disable-swift-testing 2>&1 | tee "$log"
rc=${PIPESTATUS[0]}
# A second pass of the whole suite with every mount on FUSE over io_uring (uring=on; the harness
# turns the fuse module's enable_uring on, put back here), where the kernel has it (Linux 6.14+):
# all but podman (2.5 min of the same mount program, run above), and the stress test for 30 s
# instead of 120. ~3 min; the tests that mount nothing run again, in seconds.
uring_param=/sys/module/fuse/parameters/enable_uring
if [ "$(id -u)" = 0 ] && [ -w "$uring_param" ]; then
  saved_uring=$(cat "$uring_param")
  uring_log=$(mktemp)
  UNIONFS_TEST_URING=1 UNIONFS_STRESS_SECONDS=30 timeout 1200 swift test --skip-build --disable-swift-testing \
    --skip 'PodmanTests|RootlessPodmanTests' > "$uring_log" 2>&1
  uring_rc=$?
  [ "$saved_uring" = Y ] && echo 1 > "$uring_param" || echo 0 > "$uring_param"
  uring_summary=$(grep -E "^\s*Executed [0-9]+ tests?" "$uring_log" | tail -1)
  if [ "$uring_rc" != 0 ]; then
    grep -E "error:|failed \(" "$uring_log" | head -20
    echo "io_uring pass failed: $uring_summary"; rc=1
  else
    echo "io_uring pass:$uring_summary"
  fi
  rm -f "$uring_log"
fi
# XCTest's closing line: "Executed N tests, with [S tests skipped and ]F failures ...".
summary=$(grep -E "^\s*Executed [0-9]+ tests?, with ([0-9]+ tests? skipped and )?[0-9]+ failures?" "$log" | tail -1)
total=$(echo "$summary" | sed -E 's/.*Executed ([0-9]+) tests?.*/\1/')
failed=$(echo "$summary" | sed -E 's/.* ([0-9]+) failures?.*/\1/')
skipped=0
if echo "$summary" | grep -qE "[0-9]+ tests? skipped"; then
  skipped=$(echo "$summary" | sed -E 's/.* ([0-9]+) tests? skipped.*/\1/')
fi
rm -f "$log"
if [ -z "$summary" ]; then echo "tests: 0 passed, 1 failed"; exit 1; fi
echo "tests: $((total - failed - skipped)) passed, $failed failed, $skipped skipped"
# Nothing a test mounted may stay mounted.
if awk '$3 ~ /^fuse/ && $2 ~ /unionfs|tmp/ {found=1} END {exit !found}' /proc/mounts; then
  echo "a test left a FUSE mount behind:"; awk '$3 ~ /^fuse/' /proc/mounts; exit 1
fi
exit "$rc"
