"""The ansible-core releases make test covers: every minor release from meta/runtime.yml's requires_ansible
to the newest, which is .venv's (requirements-dev.txt); each older one has tests/ci/ansible-core-X.Y.txt.

    python3 tools/cores.py list           the minor versions, oldest first (the Makefile's CORES)
    python3 tools/cores.py check          exit 1 when the list has a gap or does not start at meta/runtime.yml's
                                  minimum, or an older core's sanity ignore file differs from the newest's
    python3 tools/cores.py sync-ignores   write tests/sanity/ignore-X.Y.txt of every older core from the newest's
                                  (make generate)

The sanity ignore files may only hold the lines allowed for PowerShell modules (validate-modules, pslint on
.ps1); they say the same for every core, so the newest core's file is the one to edit.
"""
import glob
import os
import re
import sys

TOP = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def _read(path):
    with open(os.path.join(TOP, path)) as f:
        return f.read()


def _minor(version):
    return tuple(int(part) for part in version.split(".")[:2])


def _name(minor):
    return "%d.%d" % minor


def newest():
    found = re.search(r"^ansible-core==(\d+\.\d+)\.", _read("requirements-dev.txt"), re.M)
    if not found:
        raise SystemExit("cores: no ansible-core==X.Y.Z pin in requirements-dev.txt")
    return _minor(found.group(1))


def older():
    return sorted(_minor(re.search(r"ansible-core-(\d+\.\d+)\.txt$", path).group(1))
                  for path in glob.glob(os.path.join(TOP, "tests", "ci", "ansible-core-*.txt")))


def cores():
    return older() + [newest()]


def declared_minimum():
    found = re.search(r"""^requires_ansible:\s*["']?>=\s*(\d+\.\d+)""", _read("meta/runtime.yml"), re.M)
    if not found:
        raise SystemExit("cores: meta/runtime.yml has no requires_ansible: '>=X.Y...'")
    return _minor(found.group(1))


def ignore_file(minor):
    return os.path.join("tests", "sanity", "ignore-%s.txt" % _name(minor))


def problems():
    found = []
    listed = cores()
    if listed[0] != declared_minimum():
        found.append("meta/runtime.yml claims ansible-core >= %s but the oldest tested is %s"
                     % (_name(declared_minimum()), _name(listed[0])))
    for before, after in zip(listed, listed[1:]):
        if after != (before[0], before[1] + 1):
            found.append("no ansible-core release between %s and %s is tested (tests/ci/ansible-core-X.Y.txt)"
                         % (_name(before), _name(after)))
    wanted = _ignores()
    for minor in older():
        if _ignores(minor) != wanted:
            found.append("%s differs from %s; run `make generate`" % (ignore_file(minor), ignore_file(newest())))
    return found


def _ignores(minor=None):
    path = os.path.join(TOP, ignore_file(minor or newest()))
    if not os.path.exists(path):
        return None
    with open(path) as f:
        return f.read()


def sync_ignores():
    wanted = _ignores() or ""
    for minor in older():
        if _ignores(minor) != wanted:
            with open(os.path.join(TOP, ignore_file(minor)), "w") as f:
                f.write(wanted)
            print("cores: wrote %s" % ignore_file(minor))


def main(argv):
    command = argv[1] if len(argv) == 2 else ""
    if command == "list":
        print(" ".join(_name(minor) for minor in cores()))
    elif command == "check":
        found = problems()
        for problem in found:
            print("cores: %s" % problem, file=sys.stderr)
        if not found:
            print("cores: ansible-core %s tested (meta/runtime.yml: >= %s)"
                  % (", ".join(_name(minor) for minor in cores()), _name(declared_minimum())))
        return 1 if found else 0
    elif command == "sync-ignores":
        sync_ignores()
    else:
        print(__doc__, file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
