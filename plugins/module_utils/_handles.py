# -*- coding: utf-8 -*-
# Copyright: residue.purge contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Deleted-but-open files: the `lsof +L1` check, done with one pass over /proc (Linux) or lsof (macOS).

A handle is one process holding one deleted file, either through a file descriptor or through a
memory mapping (fd "DEL", as lsof names deleted mappings). The space such a file pins is freed once
the last holder lets go, so pinned bytes are counted once per (device, inode) whatever the number
of holders. psutil is not used here: it silently drops deleted files.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import os

from ansible.module_utils.basic import missing_required_lib

from ansible_collections.residue.purge.plugins.module_utils import _macos, _paths, _platform, _procfs, _procs
from ansible_collections.residue.purge.plugins.module_utils._mounts import (
    device_numbers, free_bytes, mountinfo_points, parse_mountinfo)
from ansible_collections.residue.purge.plugins.module_utils._procfs import strip_deleted
from ansible_collections.residue.purge.plugins.module_utils._profiles import user_name
from ansible_collections.residue.purge.plugins.module_utils._text import printable
from ansible_collections.residue.purge.plugins.module_utils._units import parse_size

MAPPED_FD = "DEL"
MEMFD_PREFIX = "/memfd:"


def _user_name(uid, _cache={}):  # pylint: disable=dangerous-default-value  # a scan meets the same few users
    if uid not in _cache:
        _cache[uid] = user_name(uid)
    return _cache[uid]


class HandleError(ValueError):
    """Bad input (options); the message names the option."""


# ---------------------------------------------------------------------------------------------
# Pure helpers


def normalise_roots(under):
    """Validate the `under` option (see _paths.normalise_roots); '/' is allowed: reporting every deleted file
    is harmless, and open_deleted refuses it for terminate."""
    return _paths.normalise_roots(under, "under", allow_root=True)


def is_under(path, roots):
    """True when path is one of roots or inside one of them (on a path-component boundary); no roots: True."""
    return not roots or _paths.root_of(path, roots) is not None


def select_handles(handles, roots=None, min_bytes=0):
    """Keep handles whose original path lies under roots and whose file is at least min_bytes big."""
    kept = []
    for handle in handles:
        if not is_under(handle["path"], roots):
            continue
        if min_bytes and (handle["bytes"] is None or handle["bytes"] < min_bytes):
            continue
        kept.append(handle)
    return kept


def public(handles):
    """Handles as the module returns them (the filesystem type is given once per filesystem instead)."""
    return [dict((k, v) for k, v in h.items() if k != "fstype") for h in handles]


def summarise(handles):
    """Per filesystem: bytes pinned (allocated blocks, each (device, inode) counted once), files, holders.

    Returns a list sorted by filesystem name of
    {filesystem, device, fstype, pinned_bytes, size_bytes, files, processes}.
    """
    per_fs = {}
    for handle in handles:
        fs = per_fs.setdefault(handle["filesystem"], {
            "filesystem": handle["filesystem"], "device": handle["device"], "fstype": handle.get("fstype", ""),
            "pinned_bytes": 0, "size_bytes": 0, "files": 0, "processes": 0, "_seen": set(), "_pids": set()})
        fs["_pids"].add(handle["pid"])
        key = (handle["device"], handle["inode"])
        if key in fs["_seen"]:
            continue
        fs["_seen"].add(key)
        fs["files"] += 1
        fs["pinned_bytes"] += handle.get("disk_bytes") or 0
        fs["size_bytes"] += handle["bytes"] or 0
    result = []
    for name in sorted(per_fs):
        fs = per_fs[name]
        fs["processes"] = len(fs.pop("_pids"))
        del fs["_seen"]
        result.append(fs)
    return result


def holders(handles):
    """One entry per holding process: {pid, name, user, handles, paths} sorted by pid."""
    by_pid = {}
    for handle in handles:
        entry = by_pid.setdefault(handle["pid"], {"pid": handle["pid"], "name": handle["name"],
                                                  "user": handle["user"], "handles": 0, "paths": []})
        entry["handles"] += 1
        if handle["path"] not in entry["paths"]:
            entry["paths"].append(handle["path"])
    return [by_pid[pid] for pid in sorted(by_pid)]


# ---------------------------------------------------------------------------------------------
# Linux: /proc


class _Mounts(object):
    """Where a deleted file lived: the mount of its device in this mount namespace, else in the holder's
    (another namespace). A device in neither table (overlayfs and btrfs subvolumes report the device of the
    layer or subvolume) is placed by its path on the holder's longest matching mount point; memfd files live
    on no mount and are named 'dev:MAJOR:MINOR'."""

    def __init__(self, proc):
        self._proc = proc
        try:
            text = _procfs.read_text(os.path.join(proc, "self", "mountinfo"))
        except OSError:
            text = ""
        self._mine = parse_mountinfo(text)
        self.my_points = mountinfo_points(text)
        self._theirs = {}

    def _their_tables(self, pid):
        if pid not in self._theirs:
            try:
                text = _procfs.read_text("%s/%d/mountinfo" % (self._proc, pid))
            except OSError:
                text = ""
            self._theirs[pid] = (parse_mountinfo(text), mountinfo_points(text))
        return self._theirs[pid]

    def find(self, dev, pid):
        """(mount point, fstype) of dev in this mount namespace, else in the holder's; None if neither has it."""
        key = (os.major(dev), os.minor(dev))
        if key in self._mine:
            return self._mine[key]
        return self._their_tables(pid)[0].get(key)

    def lookup(self, dev, pid, path):
        found = self.find(dev, pid)
        if found:
            return found
        if path.startswith("/") and not path.startswith(MEMFD_PREFIX):
            found = mount_of(path, self._their_tables(pid)[1] or self.my_points)
            if found[0]:
                return found
        return ("dev:%d:%d" % (os.major(dev), os.minor(dev)), "")

    def mount_point(self, dev):
        """This namespace's mount point of dev, or None."""
        entry = self._mine.get((os.major(dev), os.minor(dev)))
        return entry[0] if entry else None


def _process_identity(base):
    try:
        name = printable(_procfs.read_text(base + "comm").rstrip("\n"))
    except OSError:
        name = ""
    try:
        user = _user_name(os.stat(base).st_uid)
    except OSError:
        user = ""
    return name, user


def _handle(pid, identity, fd, path, st, mounts):
    filesystem, fstype = mounts.lookup(st.st_dev, pid, path)
    return {
        "pid": pid, "name": identity[0], "user": identity[1], "fd": fd, "path": printable(path),
        "bytes": st.st_size, "disk_bytes": st.st_blocks * 512 if hasattr(st, "st_blocks") else st.st_size,
        "filesystem": filesystem, "fstype": fstype,
        "device": "%d:%d" % (os.major(st.st_dev), os.minor(st.st_dev)), "inode": st.st_ino,
        "_dev": st.st_dev,
    }


def _deleted_link(base, pid, link, label, identity, mounts):
    """A handle when the magic link (an fd, exe, cwd, root) names a deleted file with no links left."""
    try:
        target = os.readlink(link)
    except OSError:
        return None  # closed meanwhile, or not ours to read (the fd directory itself reports that)
    path = strip_deleted(target)
    if path is None:
        return None
    try:
        st = os.stat(link)  # follows the magic link to the open file itself
    except OSError:
        return None
    if st.st_nlink != 0:  # renamed over, or still hard-linked elsewhere: pins nothing (lsof +L1 agrees)
        return None
    if identity[0] is None:
        identity[:] = _process_identity(base)
    return _handle(pid, identity, label, path, st, mounts)


def _scan_links(proc, base, pid, identity, mounts):
    found = []
    for label, link in _procfs.magic_links(pid, proc):
        handle = _deleted_link(base, pid, link, label, identity, mounts)
        if handle:
            found.append(handle)
    return found


def _scan_maps(proc, base, pid, identity, mounts, executable=None):
    """Deleted files mapped into memory (no fd needed to pin them), once per (device, inode); the
    executable's own mappings are already its "txt" handle."""
    found, seen = [], set()
    for address, device, inode, text in _procfs.mapped_files(pid, proc, only_deleted=True):
        if inode == b"0":
            continue
        path = strip_deleted(text)
        key = (device, inode)
        if key in seen:
            continue
        seen.add(key)
        try:
            st = os.stat(base + "map_files/" + address.decode("ascii"))
        except OSError:
            continue  # unmapped meanwhile, or no ptrace access
        # Shared anonymous memory (/dev/zero, SysV shm) also shows as deleted shmem mappings: those are
        # not files. memfd files are (lsof lists them), though they live on no mounted filesystem.
        if (st.st_dev, st.st_ino) == executable:
            continue
        if st.st_nlink != 0 or not (mounts.find(st.st_dev, pid) or path.startswith(MEMFD_PREFIX)):
            continue
        if identity[0] is None:
            identity[:] = _process_identity(base)
        found.append(_handle(pid, identity, MAPPED_FD, path, st, mounts))
    return found


def _scan_pid(proc, pid, mounts, include_maps=True):
    """The handles of one process and the error (OSError) that cut its scan short, if any.

    What was found before the error is kept: PID 1's maps, say, can be closed even to root."""
    identity = [None, None]
    base = "%s/%d/" % (proc, pid)
    found, error = [], None
    try:
        found = _scan_links(proc, base, pid, identity, mounts)
        if include_maps:
            executable = [(h["_dev"], h["inode"]) for h in found if h["fd"] == "txt"]
            found.extend(_scan_maps(proc, base, pid, identity, mounts, executable[0] if executable else None))
    except OSError as exc:
        error = exc
    for handle in found:
        del handle["_dev"]
    return found, error


def scan_proc(proc="/proc", include_maps=True, skip_pids=()):
    """One pass over /proc: every (pid, deleted file) held through an fd or a mapping.

    Returns (handles, stats); stats counts processes seen, gone during the scan, and not readable
    (permission denied: without root only the user's own processes can be inspected).
    """
    mounts = _Mounts(proc)
    handles = []
    stats = {"processes": 0, "vanished": 0, "denied": 0, "denied_pids": []}
    for pid in _procfs.pids(proc):
        if pid in skip_pids:
            continue
        stats["processes"] += 1
        found, error = _scan_pid(proc, pid, mounts, include_maps)
        handles.extend(found)
        if isinstance(error, PermissionError):
            stats["denied"] += 1
            stats["denied_pids"].append(pid)
        elif error is not None:
            stats["vanished"] += 1  # ENOENT/ESRCH: the process exited during the scan
    handles.sort(key=lambda h: (h["pid"], _fd_order(h["fd"]), h["path"]))
    return handles, stats


def still_holds(pid, handles, proc="/proc"):
    """True when pid still holds at least one of these files (same device and inode): checked after a
    process handle was taken, so that a PID reused since the scan is never signalled."""
    wanted = set((h["device"], h["inode"]) for h in handles if h["pid"] == pid)
    current = _scan_pid(proc, pid, _Mounts(proc))[0]
    return any((h["device"], h["inode"]) in wanted for h in current)


_NAMED_FDS = {"cwd": -4, "rtd": -3, "txt": -2, MAPPED_FD: -1}  # lsof's order: before numbered fds


def _fd_order(fd):
    return int(fd) if fd.isdigit() else _NAMED_FDS.get(fd, -5)


def free_space(filesystems, proc="/proc"):
    """{filesystem: free bytes} for the filesystems of a summary that are mounted in this namespace. A macOS
    summary (lsof's hex devices, filesystems named by their mount point) is measured with statvfs at that mount
    point, once it is checked to be the same device."""
    if _platform.is_macos():
        return _free_space_by_point(filesystems)
    mounts = _Mounts(proc)
    my_points = set(point for point, _fstype in mounts.my_points)
    result = {}
    for fs in filesystems:
        try:
            dev = os.makedev(*device_numbers(fs["device"]))
        except ValueError:
            continue  # not a MAJOR:MINOR device: no statvfs comparison here
        point = mounts.mount_point(dev)
        try:
            if point is not None:
                if os.stat(point).st_dev != dev:
                    continue  # over-mounted: statvfs would describe another filesystem
            elif fs["filesystem"] in my_points:
                point = fs["filesystem"]  # placed by path (overlayfs, btrfs subvolume): its statvfs is the one
            else:
                continue
            result[fs["filesystem"]] = free_bytes(point)
        except OSError:
            continue
    return result


def _free_space_by_point(filesystems):
    result = {}
    for fs in filesystems:
        dev = _macos.lsof_device(fs["device"])
        point = fs["filesystem"]
        if isinstance(dev, tuple):
            dev = os.makedev(*dev)
        if dev is None or not point.startswith("/"):
            continue
        try:
            if os.stat(point).st_dev == dev:
                result[point] = free_bytes(point)
        except OSError:
            continue
    return result


# ---------------------------------------------------------------------------------------------
# macOS (and any host with lsof): lsof -nP +L1 -F <fields>0

LSOF_FIELDS = "pcuLftDsikn"
LSOF_COMMAND = ["lsof", "-nP", "-w", "+L1", "-F", LSOF_FIELDS + "0"]


def parse_lsof_fields(output):
    """Parse `lsof -F ...` field output (NUL- or newline-terminated fields; _macos.parse_lsof_fields).

    Returns a list of {pid, name, user, fd, path, bytes, device, inode, type}, one per file with a link count
    of 0 or none shown (lsof +L1 lists only those); paths under the Data volume carry their firmlinked name
    (/Users/...), and the ' (deleted)' lsof appends on Linux is dropped.
    """
    records = []
    for process in _macos.parse_lsof_fields(output):
        user = process["login"]
        if not user and process["uid"] is not None:
            user = _user_name(process["uid"])
        for entry in process["files"]:
            if entry["links"]:
                continue
            path = entry["name"]
            stripped = strip_deleted(path)
            records.append({
                "pid": process["pid"], "name": printable(process["command"]), "user": user, "fd": entry["fd"],
                "path": printable(_macos.firmlinked(stripped if stripped is not None else path)),
                "bytes": entry["size"], "device": entry["device"], "inode": entry["inode"], "type": entry["type"],
            })
    return records


def lsof_error(rc, out, err):
    """The error text when an lsof run failed, else None. lsof exits 1 when it lists nothing, and warns on
    stderr (lines starting 'lsof: WARNING') about things it could not read without failing."""
    problems = [line for line in err.splitlines() if line.strip() and not line.startswith("lsof: WARNING")]
    if rc == 0 or (rc == 1 and (out.strip() or not problems)):
        return None
    return "lsof failed (rc %d): %s" % (rc, " ".join(problems) or "no output")


def parse_mount_output(text):
    """Output of `mount` -> [(mount_point, fstype)], longest mount point first. BSD/macOS lines read
    '/dev/disk1s1 on /System/Volumes/Data (apfs, local, ...)', util-linux lines 'proc on /proc type proc (rw)'."""
    mounts = []
    for line in text.splitlines():
        left, sep, right = line.rpartition(" (")
        if not sep or " on " not in left:
            continue
        point = left.split(" on ", 1)[1]
        point, typed, fstype = point.rpartition(" type ")
        if typed:
            mounts.append((point, fstype.strip()))
        else:
            mounts.append((fstype, right.split(",")[0].rstrip(")").strip()))
    mounts.sort(key=lambda m: len(m[0]), reverse=True)
    return mounts


def mount_of(path, mounts):
    """The (mount_point, fstype) holding path, by longest path prefix."""
    for point, fstype in mounts:
        if point == "/" or path == point or path.startswith(point.rstrip("/") + "/"):
            return point, fstype
    return "", ""


def mount_devices(mounts, stat=os.stat):
    """{st_dev: (mount_point, fstype)} of the mount points in mounts (those that can be stat'ed)."""
    devices = {}
    for point, fstype in sorted(mounts, key=lambda m: len(m[0])):  # the top mount wins over one hiding below
        try:
            devices.setdefault(stat(point).st_dev, (point, fstype))
        except OSError:
            continue
    return devices


def handles_from_lsof(records, mounts, devices=None):
    """lsof records (one deleted file each, as +L1 lists them) -> handles like scan_proc's. A file's filesystem
    is the mount point of its device (devices: mount_devices()); by longest path prefix where the device is not
    mounted in view."""
    handles = []
    for record in records:
        dev = _macos.lsof_device(record["device"])
        if isinstance(dev, tuple):
            dev = os.makedev(*dev)
        filesystem, fstype = (devices or {}).get(dev) or _mount_of_name(record["path"], mounts)
        handle = dict(record)
        handle.pop("type", None)
        handle.update(filesystem=filesystem or ("dev:%s" % record["device"]), fstype=fstype,
                      disk_bytes=record["bytes"])
        handles.append(handle)
    return handles


def _mount_of_name(path, mounts):
    """mount_of, where a firmlinked name (/Users/...) is looked up on the Data volume it lives on when that is
    mounted (macOS); the root volume would be the wrong answer."""
    found = mount_of(path, mounts)
    real = _macos.data_volume_name(path) if found[0] == "/" else None
    if real is not None:
        on_data = mount_of(real, mounts)
        if on_data[0] and on_data[0] != "/":
            return on_data
    return found


def apfs_notes(run):
    """(snapshots, problems) on macOS: the local snapshots of / (tmutil), which keep the blocks of files deleted
    since they were taken. Reported, never touched."""
    rc, out, err = run(_macos.TMUTIL_SNAPSHOTS)
    problems = []
    if rc != 0:
        return [], ["tmutil listlocalsnapshots / failed (rc %d): %s; local snapshots not checked"
                    % (rc, (err or out).strip())]
    snapshots = _macos.parse_local_snapshots(out)
    if snapshots:
        problems.append("%d local snapshot(s) of / keep the blocks of files deleted since they were taken (%s); "
                        "space comes back when macOS thins them (tmutil thinlocalsnapshots), not by this run"
                        % (len(snapshots), ", ".join(snapshots[:5])))
    return snapshots, problems


# ---------------------------------------------------------------------------------------------
# The module's run

def scan(commands, roots, min_bytes):
    """(handles, stats) after the filters, from /proc or, where there is none, from lsof."""
    if not _platform.is_macos() and _procfs.available():
        handles, stats = scan_proc(skip_pids=(os.getpid(),))
    else:
        rc, out, err = commands.run([commands.which("lsof")] + LSOF_COMMAND[1:])
        error = lsof_error(rc, out, err)
        if error:
            raise HandleError(error)
        rc, mount_out, err = commands.run([commands.which("mount")])
        if rc != 0:
            raise HandleError("mount failed (rc %d): %s" % (rc, err.strip()))
        mounts = parse_mount_output(mount_out)
        handles = handles_from_lsof(parse_lsof_fields(out), mounts, mount_devices(mounts))
        handles = [h for h in handles if h["pid"] != os.getpid()]
        stats = {"processes": None, "vanished": 0, "denied": 0, "denied_pids": []}  # lsof does not say
    return select_handles(handles, roots, min_bytes), stats


def check_terminate_roots(roots):
    """terminate stops processes: only those holding files of named residue directories, never 'any'."""
    if not roots:
        raise ValueError("under: action=terminate needs the residue directories in under; stopping every process "
                         "that holds any deleted file would stop system services")
    if "/" in roots:
        raise ValueError("under: '/' would stop every process that holds any deleted file; name the residue "
                         "directories instead")


def holds_again(commands, pid, handles):
    """Does pid still hold one of these files? /proc where there is one, else lsof for that pid."""
    if not _platform.is_macos() and _procfs.available():
        return still_holds(pid, handles)
    rc, out, err = commands.run([commands.which("lsof")] + LSOF_COMMAND[1:] + ["-a", "-p", str(pid)])
    wanted = set((h["device"], h["inode"]) for h in handles if h["pid"] == pid)
    return any((r["device"], r["inode"]) in wanted for r in parse_lsof_fields(out) if r["pid"] == pid)


def describe(handles):
    return "".join("%d %s fd=%s %s\n" % (h["pid"], h["name"], h["fd"], h["path"]) for h in handles)


def holder_targets(commands, handles, protected, own_ns=None, others=None):
    """(targets, spared): ProcInfo of each holder still holding its files, and the holders never signalled.
    With own_ns (a PID namespace), holders in another PID namespace are neither: they go to `others` (a list),
    with their namespace, cgroup, container and the paths they hold."""
    targets, spared = [], []
    for holder in holders(handles):
        pid = holder["pid"]
        if pid in protected or _procs.is_kernel_thread(pid):
            spared.append(dict(holder, reason="protected: PID 1, this module or one of its ancestors"))
            continue
        if _procs.in_other_namespace(pid, own_ns):
            if others is not None and pid not in set(o["pid"] for o in others):
                cgroup = _procfs.cgroup_path(pid)
                runtime, container = _procfs.container_of(cgroup)
                others.append(dict(holder, namespace=_procfs.pid_namespace(pid), runtime=runtime, container=container,
                                   cgroup=printable(cgroup) if cgroup else None))
            continue
        try:
            info = _procs.snapshot(_procs.psutil.Process(pid), "holding-deleted")
        except _procs.psutil.Error:
            continue  # exited since the scan
        # the file must still be held after the psutil handle was taken: then a reused PID is never signalled
        if info is not None and holds_again(commands, pid, handles):
            targets.append(info)
    return targets, spared


def terminate(params, check_mode, commands, handles, result, rescan):
    """Stop the holders with reap's machinery. A holder that appears meanwhile (a supervisor forking a new
    child that inherits the descriptor) is found by a fresh scan and stopped in the next round. Returns the
    failure message that ends the task early, or None."""
    if not _procs.HAS_PSUTIL:
        return missing_required_lib("psutil") + " " + _procs.PSUTIL_INSTALL_HINT
    protected = _procs.protected_pids()
    own_ns = _procs.own_namespace() if params.get("namespaces", "own") != "all" else None
    others = result.setdefault("other_namespaces", [])
    targets, spared = holder_targets(commands, handles, protected, own_ns, others)
    result["spared"] = spared
    for entry in spared:
        result["problems"].append("pid %d (%s) holds deleted files but is never signalled: %s"
                                  % (entry["pid"], entry["name"], entry["reason"]))
    try:
        terminated, survivors = _procs.stop_processes(
            targets, signal=params["signal"], grace=params["grace"], tree=False,
            check_mode=check_mode, rematch=lambda: holder_targets(commands, rescan(), protected, own_ns, others)[0],
            namespaces=params.get("namespaces", "own"))
    except ValueError as exc:
        return str(exc)
    result["terminated"], result["survivors"] = terminated, survivors
    result["changed"] = bool(terminated)
    for entry in others:
        where = " (%s container %s)" % (entry["runtime"], entry["container"]) if entry["runtime"] else ""
        result["problems"].append("pid %d (%s) holds deleted files (%s) but runs in another PID namespace%s, cgroup "
                                  "%s: not signalled (namespaces=all stops it)" % (
                                      entry["pid"], entry["name"], ", ".join(entry["paths"][:5]), where,
                                      entry["cgroup"]))
    return None


def run(params, check_mode=False, commands=None):
    """open_deleted with validated module params: the module's result. commands (_module.Commands) runs lsof
    where there is no /proc (macOS). ValueError for bad options, before any process is inspected or signalled."""
    with _platform.attached(commands):
        return _run(params, check_mode, commands)


def _run(params, check_mode, commands):
    roots = normalise_roots(params["under"])
    min_bytes = parse_size(params["min_bytes"], option="min_bytes")
    if params["grace"] < 0:
        raise ValueError("grace: expected a number of seconds >= 0, got %r" % (params["grace"],))
    if params.get("namespaces", "own") not in ("own", "all"):
        raise ValueError("namespaces: expected 'own' or 'all', got %r" % (params["namespaces"],))
    if params["action"] == "terminate":
        _procs.signal_number(params["signal"])
        check_terminate_roots(roots)

    handles, stats = scan(commands, roots, min_bytes)
    filesystems = summarise(handles)
    result = dict(changed=False, handles=public(handles), filesystems=filesystems,
                  pinned_bytes=dict((fs["filesystem"], fs["pinned_bytes"]) for fs in filesystems),
                  scan=stats, problems=[])
    if stats["denied"]:
        hint = ("run with become to see every process" if os.geteuid() != 0 else
                "even root may not read them (another container, or a Yama/LSM ptrace restriction)")
        result["problems"].append("%d process(es) could not be fully inspected (permission denied: pid %s); %s" % (
            stats["denied"], ", ".join(str(p) for p in stats["denied_pids"][:20]), hint))

    if _platform.is_macos():
        result["snapshots"], notes = apfs_notes(commands.run)
        result["problems"].extend(notes)

    if params["action"] == "terminate" and handles:
        before = free_space(filesystems)
        failure = terminate(params, check_mode, commands, handles, result,
                            lambda: scan(commands, roots, min_bytes)[0])
        if failure:
            result["failure"] = failure
            return result
        if not check_mode:
            after = free_space(filesystems)
            for fs in filesystems:
                if fs["filesystem"] in before and fs["filesystem"] in after:
                    fs.update(free_bytes_before=before[fs["filesystem"]], free_bytes_after=after[fs["filesystem"]],
                              freed_bytes=after[fs["filesystem"]] - before[fs["filesystem"]])
            result["remaining"] = public(scan(commands, roots, min_bytes)[0])
            spared = set(entry["pid"] for entry in result["spared"] + result.get("other_namespaces", []))
            unexplained = [h for h in result["remaining"] if h["pid"] not in spared]
            if unexplained:
                result["problems"].append("still held after terminate: %s" % "; ".join(
                    "pid %d (%s) %s" % (h["pid"], h["name"], h["path"]) for h in unexplained[:20]))
        after_text = describe(result.get("remaining", [])) if not check_mode else describe(
            [h for h in handles if h["pid"] not in set(t["pid"] for t in result["terminated"])])
        result["diff"] = {"before": describe(handles), "after": after_text,
                          "before_header": "deleted files held", "after_header": "deleted files held"}
    elif params["action"] == "terminate":
        result.update(terminated=[], survivors=[], spared=[], remaining=[], other_namespaces=[])

    result["_warnings"] = result["problems"]
    held = [h for h in result.get("remaining", []) if h["pid"] not in set(
        e["pid"] for e in result.get("spared", []) + result.get("other_namespaces", []))]
    if held and not result.get("survivors"):
        result["failure"] = "%d deleted file handle(s) are still held after terminate (see remaining)" % len(held)
    if result.get("survivors"):
        stuck = ", ".join("pid %d (%s)" % (s["pid"], s.get("error", s["outcome"])) for s in result["survivors"])
        result["failure"] = "%d holder(s) of deleted files could not be stopped: %s" % (len(result["survivors"]), stuck)
    return result
