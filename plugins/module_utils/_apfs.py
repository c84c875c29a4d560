# -*- coding: utf-8 -*-
# Copyright: residue.purge contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""APFS clones and snapshots on macOS: how many bytes of a residue removing it would not free, read only.

A file cloned with `cp -c` / clonefile(2), or one whose blocks a local (Time Machine) snapshot keeps, shares its
blocks: deleting it frees only its private part. getattrlist(2)'s ATTR_CMNEXT_PRIVATESIZE (macOS 10.15+) is that
part, per file; `shared_bytes` walks a residue once (macOS only, a second pass after _walk.usage) and adds up
allocated minus private. The call is a thin ctypes wrapper (`private_size`), the buffer decoding is the pure
_macos.decode_private_size, tested on Linux. Nothing is ever opened for writing or changed.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import ctypes
import os
import stat

from ansible_collections.residue.purge.plugins.module_utils import _macos, _platform
from ansible_collections.residue.purge.plugins.module_utils._paths import O_DIR as _O_DIR

_state = {"getattrlistat": None}


def _getattrlistat():
    """libc's getattrlistat(int fd, const char *path, struct attrlist *, void *buf, size_t size, unsigned long
    options) (macOS 10.10+), or False where libc has none (any other OS)."""
    if _state["getattrlistat"] is None:
        try:
            func = ctypes.CDLL(None, use_errno=True).getattrlistat
        except (AttributeError, OSError):
            func = False
        else:
            func.argtypes = [ctypes.c_int, ctypes.c_char_p, ctypes.c_void_p, ctypes.c_void_p, ctypes.c_size_t,
                             ctypes.c_ulong]
            func.restype = ctypes.c_int
        _state["getattrlistat"] = func
    return _state["getattrlistat"]


def private_size(dir_fd, name):
    """ATTR_CMNEXT_PRIVATESIZE of `name` (bytes) in the directory dir_fd, never following a symlink; None when it
    is unknown (no getattrlistat here, the call failed, the volume does not report it)."""
    func = _getattrlistat()
    if not func:
        return None
    request = ctypes.create_string_buffer(_macos.PRIVATE_SIZE_REQUEST, len(_macos.PRIVATE_SIZE_REQUEST))
    buf = ctypes.create_string_buffer(_macos.PRIVATE_SIZE_BUFFER * 2)
    if func(dir_fd, os.fsencode(name), request, buf, len(buf), _macos.PRIVATE_SIZE_OPTIONS) != 0:
        return None
    return _macos.decode_private_size(buf.raw)


def shared_bytes(path, one_file_system=True, size_of=None):
    """Sharing of path's regular files: (shared, known, unknown): bytes a clone or snapshot shares (each file
    st_blocks*512 minus its private size, never below 0, hard links once), how many files' private size was
    read and how many could not be; None off macOS or when path cannot be looked at. Symlinks are never
    followed, and with one_file_system no other volume is entered.
    size_of(dir_fd, name): the private size reader (private_size; tests give a recorded one)."""
    if not _platform.is_macos():
        return None
    size_of = size_of or private_size
    tally = [0, 0, 0]
    seen = set()

    def count(dir_fd, name, st):
        if st.st_nlink > 1:
            if (st.st_dev, st.st_ino) in seen:
                return
            seen.add((st.st_dev, st.st_ino))
        private = size_of(dir_fd, name)
        if private is None:
            tally[2] += 1
        else:
            tally[0] += max(0, st.st_blocks * 512 - private)
            tally[1] += 1

    try:
        top = os.lstat(path)
        if stat.S_ISREG(top.st_mode):
            parent = os.open(os.path.dirname(path) or ".", _O_DIR)
            try:
                count(parent, os.path.basename(path), top)
            finally:
                os.close(parent)
            return tuple(tally)
    except OSError:
        return None
    if not stat.S_ISDIR(top.st_mode):
        return tuple(tally)
    for _dirpath, dirs, files, dir_fd in os.fwalk(path, follow_symlinks=False):
        if one_file_system:
            dirs[:] = [d for d in dirs if _same_device(dir_fd, d, top.st_dev)]
        for name in files:
            try:
                st = os.lstat(name, dir_fd=dir_fd)
            except OSError:
                tally[2] += 1
                continue
            if stat.S_ISREG(st.st_mode):
                count(dir_fd, name, st)
    return tuple(tally)


def _same_device(dir_fd, name, dev):
    try:
        return os.lstat(name, dir_fd=dir_fd).st_dev == dev
    except OSError:
        return False
