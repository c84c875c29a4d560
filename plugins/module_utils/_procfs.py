# -*- coding: utf-8 -*-
# Copyright: residue.purge contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Reading Linux /proc: process ids, the magic links a process holds (cwd, root, exe, fds), its file mappings,
its environment, owner, name and stat fields.

Raw /proc is used where psutil would be slower or lose information (psutil drops deleted files).
Every reader takes `proc` so tests and other namespaces' /proc mounts can be read the same way.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import os

from ansible_collections.residue.purge.plugins.module_utils._paths import read_all

PROC = "/proc"
DELETED_SUFFIX = " (deleted)"


def available(proc=PROC):
    """True where this /proc shows per-process descriptors (Linux)."""
    return os.path.isdir(os.path.join(proc, "self", "fd"))


def pids(proc=PROC):
    """Every process id listed in proc (empty when it cannot be listed)."""
    try:
        names = os.listdir(proc)
    except OSError:
        return []
    return [int(name) for name in names if name.isdigit()]


def read_bytes(path):
    """Whole file through raw os.read (no buffered file object: /proc files are read thousands of times)."""
    fd = os.open(path, os.O_RDONLY)
    try:
        return read_all(fd, 262144)
    finally:
        os.close(fd)


def read_text(path):
    return read_bytes(path).decode("utf-8", "surrogateescape")


def strip_deleted(target):
    """'/x/y (deleted)' -> '/x/y'; None when the text does not end in the kernel's marker."""
    if target.endswith(DELETED_SUFFIX):
        return target[:-len(DELETED_SUFFIX)]
    return None


def magic_links(pid, proc=PROC):
    """(label, link path) of what a process holds through links, lsof's labels: cwd, rtd (root), txt (the
    executable), then every fd by number. Listing the fd directory raises OSError (the process is gone, or
    its fds are not ours to read) after the three named links were given."""
    base = "%s/%d/" % (proc, pid)
    yield "cwd", base + "cwd"
    yield "rtd", base + "root"
    yield "txt", base + "exe"
    with os.scandir(base + "fd") as entries:
        for entry in entries:
            yield entry.name, entry.path


def mapped_files(pid, proc=PROC, only_deleted=False):
    """(address range, device field, inode field, path) of each file-backed mapping in /proc/PID/maps: bytes
    for the first three, text for the path ('\\012' decoded to the newline maps escapes it as; ' (deleted)'
    kept). only_deleted: just the mappings of deleted files (most processes have none: one search, no
    parsing). Raises OSError when the maps cannot be read."""
    data = read_bytes("%s/%d/maps" % (proc, pid))
    if only_deleted and b" (deleted)" not in data:
        return
    for raw in data.splitlines():
        if only_deleted and not raw.endswith(b" (deleted)"):
            continue
        fields = raw.split(None, 5)
        if len(fields) == 6:
            yield fields[0], fields[3], fields[4], fields[5].decode("utf-8", "surrogateescape").replace("\\012", "\n")


def held_paths(pid, proc=PROC, links=True):
    """Every path a process holds: (with links) its executable, cwd and root unless '/', then its open fds and
    mapped files; deleted ones keep the kernel's ' (deleted)' suffix. What cannot be read is skipped."""
    try:
        for label, link in magic_links(pid, proc):
            if not links and label in ("cwd", "rtd", "txt"):
                continue
            try:
                target = os.readlink(link)
            except OSError:
                continue
            if label != "rtd" or target != "/":
                yield target
    except OSError:
        pass
    try:
        for _address, _dev, _inode, path in mapped_files(pid, proc):
            if path.startswith("/"):
                yield path
    except OSError:
        pass


def stat_fields(pid, proc=PROC):
    """The fields of /proc/PID/stat after the process name, as bytes ([0] the state, [6] the flags): the name
    is skipped up to its last ')', since it may hold blanks and parentheses (OSError when gone)."""
    data = read_bytes("%s/%d/stat" % (proc, pid))
    return data[data.rfind(b")") + 2:].split()


def environ(pid, proc=PROC):
    """The NUL-separated bytes of /proc/PID/environ (OSError when gone or not ours to read)."""
    return read_bytes("%s/%d/environ" % (proc, pid))


def owner_uid(pid, proc=PROC):
    """The uid owning /proc/PID: the process's effective uid (OSError when gone)."""
    return os.stat("%s/%d" % (proc, pid)).st_uid


def uids(pid, proc=PROC):
    """(real, effective, saved, filesystem) uids of a process from /proc/PID/status (OSError when gone)."""
    for line in read_text("%s/%d/status" % (proc, pid)).splitlines():
        if line.startswith("Uid:"):
            return tuple(int(v) for v in line.split()[1:5])
    raise OSError("%s/%d/status has no Uid line" % (proc, pid))


def mount_namespace(pid, proc=PROC):
    """The link text of /proc/PID/ns/mnt ('mnt:[4026531840]'): equal for processes that see the same
    filesystem tree (OSError when gone or not ours to read)."""
    return os.readlink("%s/%d/ns/mnt" % (proc, pid))


def comm(pid, proc=PROC):
    """The process name as the kernel keeps it (OSError when gone)."""
    return read_text("%s/%d/comm" % (proc, pid)).rstrip("\n")


def pid_namespace(pid, proc=PROC):
    """The PID namespace of a process ('pid:[4026531836]'), or None when it cannot be read (gone, not ours, no
    namespaces on this system)."""
    try:
        return os.readlink("%s/%s/ns/pid" % (proc, pid))
    except OSError:
        return None


def cgroup_path(pid, proc=PROC):
    """The cgroup of a process: the cgroup v2 path ('0::/...'), else the first non-root v1 path; None if unread."""
    try:
        lines = read_text("%s/%d/cgroup" % (proc, pid)).splitlines()
    except OSError:
        return None
    paths = [line.split(":", 2)[2] for line in lines if line.count(":") >= 2]
    unified = [line.split(":", 2)[2] for line in lines if line.startswith("0::")]
    for path in unified + paths:
        if path and path != "/":
            return path
    return paths[0] if paths else None


# container runtimes as their cgroup paths show them (systemd and cgroupfs drivers)
_CONTAINER_CGROUPS = (
    ("docker", r"(?:/docker[-/]|docker-)([0-9a-f]{12,64})"),
    ("containerd", r"cri-containerd[-:]([0-9a-f]{12,64})"),
    ("cri-o", r"crio[-:]([0-9a-f]{12,64})"),
    ("podman", r"libpod-(?:conmon-)?([0-9a-f]{12,64})"),
    ("lxc", r"/lxc(?:\.payload)?[./]([^/]+)"),
    ("systemd-nspawn", r"/machine\.slice/(?:systemd-nspawn@|machine-)([^/]+?)(?:\.service|\.scope)?(?:/|$)"),
    ("kubernetes", r"/kubepods[^/]*/(?:[^/]+/)?pod([0-9a-f_-]+)"),
)


def container_of(cgroup):
    """(runtime, id) of the container a cgroup path shows, or (None, None)."""
    import re  # pylint: disable=import-outside-toplevel  # only when a foreign namespace is seen
    for runtime, pattern in _CONTAINER_CGROUPS:
        match = re.search(pattern, cgroup or "")
        if match:
            return runtime, match.group(1)
    return None, None
