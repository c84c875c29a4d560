"""Print a JSON manifest {path: "type mode uid gid size sha256-or-linktarget"} of the trees given.

manifest.py [--exclude REGEX]... ROOT...   Never follows symlinks, stays on each root's filesystem.
Used by the lab to prove that everything outside the purged residue is byte-identical afterwards.
"""
import hashlib
import json
import os
import re
import stat
import sys


def _open_noatime(path):
    """Read without touching the access time (O_NOATIME, root or the owner): a snapshot must not change what a
    later age-based prune sees."""
    try:
        return os.open(path, os.O_RDONLY | getattr(os, "O_NOATIME", 0))
    except PermissionError:
        return os.open(path, os.O_RDONLY)


def describe(path, st):
    kind = stat.S_IFMT(st.st_mode)
    head = "%o %o %d %d" % (kind >> 12, stat.S_IMODE(st.st_mode), st.st_uid, st.st_gid)
    if stat.S_ISREG(kind):
        digest = hashlib.sha256()
        with os.fdopen(_open_noatime(path), "rb") as f:
            for chunk in iter(lambda: f.read(1 << 20), b""):
                digest.update(chunk)
        return "%s %d %s" % (head, st.st_size, digest.hexdigest())
    if stat.S_ISLNK(kind):
        return "%s -> %s" % (head, os.readlink(path))
    if stat.S_ISCHR(kind) or stat.S_ISBLK(kind):
        return "%s dev %d" % (head, st.st_rdev)
    return head


def main(argv):
    excludes, roots = [], []
    it = iter(argv)
    for arg in it:
        if arg == "--exclude":
            excludes.append(re.compile(next(it)))
        else:
            roots.append(arg)
    out = {}
    for root in roots:
        if not os.path.lexists(root):
            continue
        dev = os.lstat(root).st_dev
        for top, dirs, files in os.walk(root):
            for name in list(dirs) + files:
                path = os.path.join(top, name)
                if any(x.search(path) for x in excludes):
                    if name in dirs:
                        dirs.remove(name)
                    continue
                st = os.lstat(path)
                if name in dirs and (stat.S_ISLNK(st.st_mode) or st.st_dev != dev):
                    dirs.remove(name)
                out[path] = describe(path, st)
    json.dump(out, sys.stdout, sort_keys=True, indent=0)


if __name__ == "__main__":
    main(sys.argv[1:])
