# -*- coding: utf-8 -*-
# Copyright: residue.purge contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Run a share of the work in a forked child and get its (picklable) result back.

Walks, removals and the HF cache scan split their top-level entries in two: a forked child takes half
(two cores finish in about half the wall time), and the parent redoes the child's share when it fails,
so a result never depends on the fork.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import os
import pickle
import threading


def can_fork():
    """Fork only from a single-threaded process (forking with threads running can deadlock the child)."""
    return hasattr(os, "fork") and threading.active_count() == 1


def fork_call(work):
    """Run work() in a forked child. Returns a handle for fork_result(), or None when fork failed."""
    read_end, write_end = os.pipe()
    try:
        pid = os.fork()
    except OSError:
        os.close(read_end)
        os.close(write_end)
        return None
    if pid == 0:  # child: compute, send, leave without running the parent's cleanup handlers
        status = 1
        try:
            os.close(read_end)
            view = memoryview(pickle.dumps(work(), 2))
            while view:
                view = view[os.write(write_end, view):]
            status = 0
        finally:
            os._exit(status)
    os.close(write_end)
    return pid, read_end


def fork_result(handle):
    """What the child's work() returned, or None when the child failed (the caller then does that share itself)."""
    pid, read_end = handle
    chunks = []
    try:
        while True:
            chunk = os.read(read_end, 1 << 16)
            if not chunk:
                break
            chunks.append(chunk)
    finally:
        os.close(read_end)
    status = os.waitpid(pid, 0)[1]
    if status != 0 or not chunks:
        return None
    try:
        return pickle.loads(b"".join(chunks))
    except Exception:  # a truncated stream counts as a failed child
        return None
