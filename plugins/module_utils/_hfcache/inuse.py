# -*- coding: utf-8 -*-
# Copyright: residue.purge contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Whether a hub cache repo is in use: held download locks, files open or mapped by a process."""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import errno
import os
import stat

from ansible_collections.residue.purge.plugins.module_utils import _macos, _platform, _procfs
from ansible_collections.residue.purge.plugins.module_utils._hfcache.model import _O_DIR, _O_FILE


# ------------------------------------------------------------------------------------------ in use

def held_lock(lock_dir):
    """Name of the first lock file under lock_dir that a live process holds (flock), else None.

    Each lock is probed with a non-blocking exclusive flock on a read-only descriptor and released at
    once: huggingface_hub's filelock takes exactly that lock for the whole of a download. No lock file
    is ever created, and links or special files are not opened.
    """
    try:
        fd = os.open(lock_dir, _O_DIR)
    except OSError:
        return None
    try:
        return _held_in(fd, "", 0)
    finally:
        os.close(fd)


def held_lock_file(path):
    """True when a live process holds the flock of the lock file at path (probed as held_lock does)."""
    import fcntl
    try:
        lfd = os.open(path, _O_FILE)
    except OSError:
        return False
    try:
        if not stat.S_ISREG(os.fstat(lfd).st_mode):
            return False
        fcntl.flock(lfd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except (IOError, OSError) as e:
        return e.errno in (errno.EAGAIN, errno.EACCES, errno.EWOULDBLOCK)
    finally:
        os.close(lfd)
    return False


def _held_in(dir_fd, rel, depth):
    import fcntl
    try:
        with os.scandir(dir_fd) as it:
            entries = [(e.name, e.is_dir(follow_symlinks=False), e.is_file(follow_symlinks=False)) for e in it]
    except OSError:
        return None
    for name, is_dir, is_file in sorted(entries):
        if is_dir and depth < 8:
            try:
                sub = os.open(name, _O_DIR, dir_fd=dir_fd)
            except OSError:
                continue
            try:
                found = _held_in(sub, rel + name + "/", depth + 1)
            finally:
                os.close(sub)
            if found:
                return found
            continue
        if not is_file:
            continue
        try:
            lfd = os.open(name, _O_FILE, dir_fd=dir_fd)
        except OSError:
            continue
        try:
            fcntl.flock(lfd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except (IOError, OSError) as e:
            if e.errno in (errno.EAGAIN, errno.EACCES, errno.EWOULDBLOCK):
                return rel + name
        finally:
            os.close(lfd)  # closing releases our probe lock, if we got it
    return None


def open_paths_under(roots, proc="/proc", own_pid=None):
    """{path: [(pid, process name)]} of files under any of roots that a process has open or mapped.

    Reads /proc/<pid>/fd/* links and /proc/<pid>/maps (Linux), or one `lsof -F` listing (macOS). Returns None
    where neither can be read, so the caller can say it could not check. roots must be real paths (no links).
    """
    own_pid = os.getpid() if own_pid is None else own_pid
    if _platform.is_macos():
        return _open_paths_from_lsof(roots, own_pid)
    if not _procfs.available(proc):
        return None
    prefixes = tuple(r.rstrip("/") + "/" for r in roots)
    found = {}
    for pid in _procfs.pids(proc):
        if pid == own_pid:
            continue
        paths = set()
        for path in _procfs.held_paths(pid, proc, links=False):
            if path.startswith(prefixes):
                paths.add(_procfs.strip_deleted(path) or path)
        if paths:
            try:
                name = _procfs.comm(pid, proc).strip()
            except (IOError, OSError):
                name = "?"
            for path in paths:
                found.setdefault(path, []).append((pid, name))
    return found


class OpenFiles(object):
    """open_paths_under(roots), read on the first call only and kept for the run: a run that selects nothing, or
    forces, never scans /proc. Where it cannot be read, `unreadable` goes to problems (once) and the answer is {}.
    """

    def __init__(self, roots, problems, unreadable):
        self.roots = sorted(set(os.path.realpath(r) for r in roots))
        self.problems = problems
        self.unreadable = unreadable
        self._found = False  # not read yet

    def __call__(self):
        if self._found is False:
            self._found = open_paths_under(self.roots)
            if self._found is None:
                self.problems.append(self.unreadable)
        return self._found or {}


def _open_paths_from_lsof(roots, own_pid):
    """open_paths_under on macOS: every open file (descriptors, cwd, mapped files as 'txt') from lsof."""
    rc, out, _err = _platform.run(_macos.LSOF_ALL)
    if rc not in (0, 1) or not out.strip():
        return None
    prefixes = tuple(r.rstrip("/") + "/" for r in roots)
    found = {}
    for process in _macos.parse_lsof_fields(out):
        if process["pid"] == own_pid:
            continue
        paths = set(_macos.firmlinked(f["name"]) for f in process["files"])
        for path in sorted(p for p in paths if p.startswith(prefixes)):
            found.setdefault(path, []).append((process["pid"], process["command"] or "?"))
    return found
