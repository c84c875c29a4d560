# -*- coding: utf-8 -*-
# Copyright: residue.purge contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Run a share of the work in a forked child and get its (picklable) result back.

Walks, removals and the HF cache scan split their top-level entries in two: a forked child takes half
(two cores finish in about half the wall time), and the parent redoes the child's share when it fails,
so a result never depends on the fork. _privileges runs a user's share in a child that dropped to that
user's rights; its results are read back with safe_loads (plain data only) and never redone by the parent.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import io
import os
import pickle
import select
import signal
import struct
import threading

from ansible_collections.residue.purge.plugins.module_utils import _platform, _procfs

# A child that stops (SIGSTOP from the user it runs as) would block its parent forever: after this many
# seconds without output the parent looks at its state and ends a stopped child.
STALL_CHECK_SECONDS = 5
_FRAME = struct.Struct("!Q")  # each message: its length (8 bytes), then the pickle
_HEADER = 8


def can_fork():
    """Fork only from a single-threaded process (forking with threads running can deadlock the child)."""
    return hasattr(os, "fork") and threading.active_count() == 1


class _PlainUnpickler(pickle.Unpickler):
    """Loads plain data only (dict, list, tuple, set, str, bytes, numbers, None): no class is ever looked up,
    so bytes from a less privileged child cannot make the parent run anything."""

    def find_class(self, module, name):
        raise pickle.UnpicklingError("refusing %s.%s: only plain data crosses from a child" % (module, name))


def safe_loads(data):
    return _PlainUnpickler(io.BytesIO(data)).load()


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
            _write_all(write_end, pickle.dumps(work(), 4))
            status = 0
        finally:
            os._exit(status)
    os.close(write_end)
    return pid, read_end


def _write_all(fd, data):
    view = memoryview(data)
    while view:
        view = view[os.write(fd, view):]


def _stopped(pid):
    """True when the child is stopped or traced (state T or t in /proc/PID/stat; `ps -o stat=` on macOS)."""
    if _platform.is_macos():
        rc, out, _err = _platform.run(["ps", "-o", "stat=", "-p", str(pid)])
        return rc == 0 and out.strip()[:1] in ("T", "t")
    try:
        fields = _procfs.stat_fields(pid)
    except OSError:
        return False
    return bool(fields) and fields[0][:1] in (b"T", b"t")


def _read_some(pid, fd):
    """The next bytes from the child (b'' at its end); a child found stopped is killed (b'' then)."""
    while True:
        ready, _w, _x = select.select([fd], [], [], STALL_CHECK_SECONDS)
        if ready:
            return os.read(fd, 1 << 16)
        if _stopped(pid):
            os.kill(pid, signal.SIGKILL)
            return b""


def fork_result(handle, plain=False):
    """What the child's work() returned, or None when the child failed (the caller then does that share itself,
    unless the child ran with other rights). plain: accept plain data only (safe_loads)."""
    pid, read_end = handle
    chunks = []
    try:
        while True:
            chunk = _read_some(pid, read_end)
            if not chunk:
                break
            chunks.append(chunk)
    finally:
        os.close(read_end)
    status = os.waitpid(pid, 0)[1]
    if status != 0 or not chunks:
        return None
    try:
        return safe_loads(b"".join(chunks)) if plain else pickle.loads(b"".join(chunks))
    except Exception:  # a truncated stream counts as a failed child
        return None


def fork_stream(produce):
    """Run produce(send) in a forked child; send(obj) passes one message (plain data) to the parent at once.
    Returns a generator of the messages, in order, for the parent; it raises EOFError when the child ended
    without sending everything (it failed or was killed), or OSError when fork failed."""
    read_end, write_end = os.pipe()
    pid = None
    try:
        pid = os.fork()
    finally:
        if pid is None:
            os.close(read_end)
            os.close(write_end)
    if pid == 0:
        status = 1
        try:
            os.close(read_end)

            def send(obj):
                data = pickle.dumps(obj, 4)
                _write_all(write_end, _FRAME.pack(len(data)) + data)

            produce(send)
            status = 0
        finally:
            os._exit(status)
    os.close(write_end)
    return _messages(pid, read_end)


def _messages(pid, fd):
    buf = b""
    try:
        while True:
            while len(buf) >= _HEADER:
                size = int(_FRAME.unpack(buf[:_HEADER])[0])
                if len(buf) < _HEADER + size:
                    break
                data, buf = buf[_HEADER:_HEADER + size], buf[_HEADER + size:]
                yield safe_loads(data)
            chunk = _read_some(pid, fd)
            if not chunk:
                break
            buf += chunk
    finally:
        os.close(fd)
        _reap(pid)
    if buf:
        raise EOFError("the child's last message was cut short")


def _reap(pid):
    """Wait for the child; one that is still running when its messages are abandoned is ended first."""
    try:
        done, _status = os.waitpid(pid, os.WNOHANG)
        if done == 0:
            os.kill(pid, signal.SIGKILL)
            os.waitpid(pid, 0)
    except OSError:
        pass
