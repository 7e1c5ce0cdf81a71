#!/usr/bin/python3
"""Count test results from cmocka and pytest JUnit XML files and meson's test log.

Prints the failures by name and, as the last line, "N passed, N failed". A unit test
binary that crashed before writing its XML (a sanitizer abort, say) counts as failed.
Exit status is 1 when anything failed.
"""
import json
import pathlib
import sys
import xml.etree.ElementTree as ET


def cases(xml_path):
    root = ET.parse(xml_path).getroot()
    for case in root.iter("testcase"):
        name = f"{case.get('classname', '')}::{case.get('name')}".lstrip(":")
        if case.find("failure") is not None or case.find("error") is not None:
            yield name, "failed"
        elif case.find("skipped") is not None:
            yield name, "skipped"
        else:
            yield name, "passed"


def main(results):
    passed = failed = skipped = 0
    failures = []
    for xml in sorted(pathlib.Path(results).rglob("*.xml")):
        try:
            found = list(cases(xml))
        except ET.ParseError:
            found = [(xml.stem, "failed")]
        for name, state in found:
            if state == "passed":
                passed += 1
            elif state == "skipped":
                skipped += 1
            else:
                failed += 1
                failures.append(f"{xml.parent.name}/{xml.stem}/{name}")
    # Binaries meson saw fail whose XML reports no failure crashed mid-run.
    for log in sorted(pathlib.Path(results).rglob("testlog.json")):
        for line in log.read_text().splitlines():
            t = json.loads(line)
            if t.get("result") in ("OK", "SKIP", "EXPECTEDFAIL"):
                continue
            xml = log.parent / f"{t['name']}.xml"
            reported = xml.exists() and any(s == "failed" for _, s in _safe_cases(xml))
            if not reported:
                failed += 1
                failures.append(f"{log.parent.name}/{t['name']} ({t.get('result')}, no test report)")
    for f in failures:
        print(f"FAILED {f}")
    if skipped:
        print(f"({skipped} skipped)")
    print(f"{passed} passed, {failed} failed")
    return 1 if failed else 0


def _safe_cases(xml):
    try:
        return list(cases(xml))
    except ET.ParseError:
        return [(xml.stem, "failed")]


if __name__ == "__main__":
    sys.exit(main(sys.argv[1]))
