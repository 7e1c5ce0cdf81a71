#!/bin/sh
# `make check`: build (plain and ASan+UBSan), run every unit and end-to-end test, the
# cgroup v2 smoke suite in a VM when this host can boot one (scripts/vm/), and print
# "N passed, N failed" as the last line. Exits non-zero when anything failed.
set -u
cd "$(dirname "$0")/.."
BUILD=${BUILD:-build}
ASAN_BUILD=${ASAN_BUILD:-build-asan}
PYTHON=/usr/bin/python3   # Debian's python, which has pytest
RESULTS=$(mktemp -d /tmp/seed-check.XXXXXX)
trap 'rm -rf "$RESULTS"' EXIT
status=0

step() { printf '\n== %s\n' "$*"; }

step "build ($BUILD, $ASAN_BUILD with AddressSanitizer + UndefinedBehaviorSanitizer)"
[ -f "$BUILD/build.ninja" ] || meson setup "$BUILD" >/dev/null || status=1
[ -f "$ASAN_BUILD/build.ninja" ] || \
    meson setup "$ASAN_BUILD" -Db_sanitize=address,undefined -Db_lundef=false >/dev/null || status=1
ninja -C "$BUILD" >/dev/null || { echo "build failed"; status=1; }
ninja -C "$ASAN_BUILD" >/dev/null || { echo "sanitizer build failed"; status=1; }
if [ $status -ne 0 ]; then
    echo "0 passed, 1 failed"
    exit 1
fi

export ASAN_OPTIONS=${ASAN_OPTIONS:-detect_leaks=1:abort_on_error=1:detect_stack_use_after_return=1}
export UBSAN_OPTIONS=${UBSAN_OPTIONS:-print_stacktrace=1:halt_on_error=1}

for b in "$BUILD" "$ASAN_BUILD"; do
    step "unit tests ($b)"
    rm -rf "$b/junit" && mkdir -p "$b/junit"
    meson test -C "$b" --print-errorlogs --no-rebuild >"$RESULTS/meson-$b.log" 2>&1 || status=1
    tail -n 12 "$RESULTS/meson-$b.log"
    mkdir -p "$RESULTS/unit-$b"
    cp "$b"/junit/*.xml "$RESULTS/unit-$b/" 2>/dev/null || true
    cp "$b/meson-logs/testlog.json" "$RESULTS/unit-$b/testlog.json" 2>/dev/null || true
done

step "end-to-end tests"
SEED_BUILD="$PWD/$BUILD" SEED_ASAN_BUILD="$PWD/$ASAN_BUILD" \
    $PYTHON -m pytest -q -p no:cacheprovider --basetemp="$RESULTS/pytest" --junitxml="$RESULTS/e2e.xml" tests/e2e tests/lint || status=1

# The node itself under AddressSanitizer + UndefinedBehaviorSanitizer: the suites that
# run nodes, once more with the sanitizer build (an error or a leak aborts the node,
# which the tests see as a node that exited or did not stop cleanly).
step "end-to-end tests of the node ($ASAN_BUILD)"
SEED_BUILD="$PWD/$ASAN_BUILD" \
    $PYTHON -m pytest -q -p no:cacheprovider --basetemp="$RESULTS/pytest-asan" --junitxml="$RESULTS/e2e-asan.xml" \
    tests/e2e/test_node.py tests/e2e/test_shoot.py tests/e2e/test_exec.py \
    tests/e2e/test_hardening.py || status=1

step "cgroup v2 smoke suite in a QEMU guest (make check-vm)"
# Skips (status 77) when this host cannot run it, saying why; the skip is counted.
mkdir -p "$RESULTS/vm"
vm_skip=""
./scripts/vm/check-vm.sh "$BUILD" "$RESULTS/vm/vm.xml"
case $? in
    0) ;;
    77) vm_skip=$($PYTHON -c 'import sys, xml.etree.ElementTree as ET
print(ET.parse(sys.argv[1]).find(".//skipped").get("message"))' "$RESULTS/vm/vm.xml") ;;
    *) status=1 ;;
esac

step "summary"
[ -z "$vm_skip" ] || echo "check-vm skipped: $vm_skip"
$PYTHON scripts/summarize.py "$RESULTS" || status=1
exit $status
