"""Fail when a unit-test run skipped a test or ran none: a skip is not a pass.

Usage: tools/no_skipped_tests.py DIR   (DIR holds the junit XML files ansible-test units wrote)
Prints one line per junit file and a closing 'N passed, N failed, N skipped' line.
"""
import glob
import os
import sys
import xml.etree.ElementTree as ET


def main(directory):
    files = sorted(glob.glob(os.path.join(directory, "*.xml")))
    if not files:
        print("no_skipped_tests: no junit files in %s" % directory, file=sys.stderr)
        return 1
    total = failed = 0
    skips = []
    for path in files:
        cases = ET.parse(path).getroot().iter("testcase")
        counted = 0
        for case in cases:
            counted += 1
            name = "%s::%s" % (case.get("classname"), case.get("name"))
            if case.find("skipped") is not None:
                skips.append((name, case.find("skipped").get("message", "")))
            elif case.find("failure") is not None or case.find("error") is not None:
                failed += 1
        total += counted
        print("  %s: %d tests" % (os.path.basename(path), counted))
    print("units: %d passed, %d failed, %d skipped" % (total - failed - len(skips), failed, len(skips)))
    for name, why in skips:
        print("  skipped: %s (%s)" % (name, why), file=sys.stderr)
    if total == 0:
        print("no_skipped_tests: no test ran", file=sys.stderr)
        return 1
    if skips:
        print("no_skipped_tests: a skipped test is not a pass; make it run here or remove it", file=sys.stderr)
        return 1
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1]))
