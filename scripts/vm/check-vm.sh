#!/bin/sh
# `make check-vm`: boot Debian's generic kernel under QEMU (TCG) with a cgroup v2-only
# hierarchy and run the smoke suite tests/vm/ inside it against the seed of BUILD.
#
# Usage: scripts/vm/check-vm.sh [BUILD [JUNIT]]
# JUnit XML of the run goes to JUNIT (default BUILD/vm/junit.xml). Exit status: 0 all
# passed, 1 something failed, 77 skipped (the reason printed as "check-vm: skipped: ...").
# CHECK_VM_TIMEOUT (seconds, default 420) bounds the guest; CHECK_VM_ACCEL (default
# tcg,thread=multi) picks QEMU's accelerator, e.g. kvm on a host with a usable /dev/kvm.
set -u
cd "$(dirname "$0")/../.."
BUILD=${1:-build}
JUNIT=${2:-$BUILD/vm/junit.xml}

skipped() {
    # A skip counts in `make check`'s summary as one skipped test, with its reason.
    /usr/bin/python3 - "$JUNIT" "$1" <<'EOF'
import sys
import xml.etree.ElementTree as ET
suite = ET.Element("testsuite", name="check-vm", tests="1", skipped="1", failures="0", errors="0")
case = ET.SubElement(suite, "testcase", classname="check-vm", name="vm")
ET.SubElement(case, "skipped", message=sys.argv[2])
ET.ElementTree(suite).write(sys.argv[1], encoding="unicode", xml_declaration=True)
EOF
    exit 77
}

[ -x "$BUILD/src/seed" ] || { echo "check-vm: $BUILD/src/seed is not built (make build)"; exit 1; }
mkdir -p "$BUILD/vm" "$(dirname "$JUNIT")"
rm -f "$JUNIT" "${JUNIT%.xml}-run.xml"
err="$BUILD/vm/deps.log"
kernel=$(./scripts/vm/deps.sh "$BUILD/vm" 2>"$err")
rc=$?
cat "$err"
if [ $rc -eq 77 ]; then
    skipped "$(sed -n 's/^check-vm: skipped: //p' "$err" | tail -n 1)"
elif [ $rc -ne 0 ]; then
    echo "check-vm: FAILED: preparing the guest (scripts/vm/deps.sh exited $rc)"
    exit 1
fi
/usr/bin/python3 scripts/vm/run.py --build "$BUILD" --kernel "$kernel" --junit "$JUNIT" \
    --timeout "${CHECK_VM_TIMEOUT:-420}" --accel "${CHECK_VM_ACCEL:-tcg,thread=multi}" -- -q -rs tests/vm
