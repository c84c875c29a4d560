# -*- coding: utf-8 -*-
# Copyright: residue.purge contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Mounts: /proc/PID/mountinfo parsing, mount points below a directory, mount ids, free space."""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import os


def unescape(field):
    """A mountinfo field (bytes or str) with the kernel's \\ooo octal escapes (space, tab, newline, backslash)
    decoded."""
    backslash = b"\\" if isinstance(field, bytes) else "\\"
    if backslash not in field:
        return field
    out, i = [], 0
    while i < len(field):
        digits = field[i + 1:i + 4]
        if field[i:i + 1] == backslash and len(digits) == 3 and all(c in "01234567" for c in _chars(digits)):
            value = int(digits, 8)
            out.append(bytes([value]) if isinstance(field, bytes) else chr(value))
            i += 4
        else:
            out.append(field[i:i + 1])
            i += 1
    return (b"" if isinstance(field, bytes) else "").join(out)


def _chars(digits):
    return digits.decode("ascii", "replace") if isinstance(digits, bytes) else digits


def device_numbers(text):
    """'254:0' -> (254, 0); ValueError for anything else."""
    major, sep, minor = text.partition(":")
    if not sep:
        raise ValueError("not a MAJOR:MINOR device: %r" % (text,))
    return int(major), int(minor)


def parse_mountinfo(text):
    """Text of /proc/PID/mountinfo -> {(major, minor): (mount_point, fstype)}.

    A device mounted several times (bind mounts) maps to the mount of its own root ("/") if there is
    one, else to the first mount listed.
    """
    mounts = {}
    for line in text.splitlines():
        left, sep, right = line.partition(" - ")
        fields = left.split()
        if not sep or len(fields) < 5:
            continue
        try:
            dev = device_numbers(fields[2])
        except ValueError:
            continue
        entry = (unescape(fields[4]), right.split()[0] if right.split() else "")
        if dev not in mounts or (fields[3] == "/" and mounts[dev][2] != "/"):
            mounts[dev] = entry + (fields[3],)
    return dict((dev, value[:2]) for dev, value in mounts.items())


def mountinfo_points(text):
    """Text of /proc/PID/mountinfo -> [(mount_point, fstype)], longest mount point first (for mount_of)."""
    points = []
    for line in text.splitlines():
        left, sep, right = line.partition(" - ")
        fields = left.split()
        if sep and len(fields) >= 5 and right.split():
            points.append((unescape(fields[4]), right.split()[0]))
    points.sort(key=lambda m: len(m[0]), reverse=True)
    return points


def mount_points_under(root):
    """(dev, ino) of every mount point strictly below root (bytes), from /proc/self/mountinfo (empty where
    absent)."""
    try:
        with open("/proc/self/mountinfo", "rb") as f:
            lines = f.read().splitlines()
    except OSError:
        return set()
    base = os.path.realpath(root).rstrip(b"/") + b"/"
    found = set()
    for line in lines:
        fields = line.split(b" ")
        if len(fields) < 5:
            continue
        point = unescape(fields[4])
        if point.startswith(base):
            try:
                st = os.lstat(point)
            except OSError:
                continue
            found.add((st.st_dev, st.st_ino))
    return found


def mount_id(fd):
    """The kernel's mount id of an open descriptor (/proc/self/fdinfo), or None where it is not shown."""
    try:
        with open("/proc/self/fdinfo/%d" % fd, "rb") as f:
            for line in f:
                if line.startswith(b"mnt_id:"):
                    return int(line.split()[1])
    except (OSError, ValueError):
        pass
    return None


def mount_point(path):
    """The mount point holding path (the path itself need not exist)."""
    path = os.path.realpath(os.path.dirname(path.rstrip("/")) or "/")
    while not os.path.ismount(path):
        parent = os.path.dirname(path)
        if parent == path:
            break
        path = parent
    return path


def free_bytes(mount):
    """Space available to unprivileged users on the filesystem at mount, as statvfs reports it."""
    st = os.statvfs(mount)
    return st.f_bavail * st.f_frsize
