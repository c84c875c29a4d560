# -*- coding: utf-8 -*-
# Copyright: residue.purge contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Paths given as options: validation, normalisation, containment; reaching a path without following any
component (open_parent)."""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import os

# Intermediate directories are opened as O_PATH where the OS has it: only search permission is needed on a
# directory that is passed through (a 0711 home), as for the kernel's own path walk.
_O_CHAIN = ((getattr(os, "O_PATH", 0) or os.O_RDONLY) | getattr(os, "O_DIRECTORY", 0)
            | getattr(os, "O_NOFOLLOW", 0) | getattr(os, "O_CLOEXEC", 0))


def normalise_roots(paths, option, allow_root=False):
    """Validate directories given in `option`: absolute, no NUL; returned normalised ('//' collapsed) and
    also symlink-resolved, because the kernel reports the files a process holds by their resolved path.
    '/' is refused unless allow_root (reporting every deleted file is harmless; matching every process is not).
    ValueError names the option."""
    roots = []
    for path in paths or ():
        if not isinstance(path, str) or not path.strip():
            raise ValueError("%s: every entry must be a non-empty absolute path, got %r" % (option, path))
        if "\0" in path:
            raise ValueError("%s: a path cannot contain a NUL byte: %r" % (option, path))
        if not os.path.isabs(path):
            raise ValueError("%s: %r is not an absolute path" % (option, path))
        for candidate in (os.path.normpath(path), os.path.realpath(path)):
            candidate = "/" + candidate.lstrip("/")  # normpath keeps a leading '//'
            if candidate == "/" and not allow_root:
                raise ValueError("%s: '/' would match every process; name the directory that holds the residue"
                                 % option)
            if candidate not in roots:
                roots.append(candidate)
    return roots


def root_of(path, roots):
    """The root that contains path (or equals it), else None; a trailing ' (deleted)' is ignored. A pure
    string test on normalised paths, on component boundaries."""
    if not path:
        return None
    if path.endswith(" (deleted)"):
        path = path[:-len(" (deleted)")]
    for root in roots:
        if path == root or path.startswith(root.rstrip("/") + "/"):
            return root
    return None


def open_parent(path):
    """(descriptor of path's parent directory, last component as bytes) for an absolute path with no '..':
    every directory from '/' is opened relative to the one before with O_NOFOLLOW|O_DIRECTORY, so a component
    that is (or has become) a symlink is never followed: OSError ELOOP/ENOTDIR then. The caller closes the
    descriptor. ValueError for '/' or a relative path."""
    raw = os.fsencode(path)
    if not raw.startswith(b"/"):
        raise ValueError("%r is not an absolute path" % (path,))
    parts = [p for p in raw.split(b"/") if p not in (b"", b".")]
    if not parts:
        raise ValueError("'/' has no parent directory")
    if b".." in parts:
        raise ValueError("%r must not contain '..'" % (path,))
    fd = os.open(b"/", _O_CHAIN)
    try:
        for part in parts[:-1]:
            nfd = os.open(part, _O_CHAIN, dir_fd=fd)
            os.close(fd)
            fd = nfd
    except BaseException:
        os.close(fd)
        raise
    return fd, parts[-1]
