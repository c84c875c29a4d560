# -*- coding: utf-8 -*-
# Copyright: residue.purge contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""residue.purge.remove: which paths, a verified backup first, fd-based removal, free space per filesystem.

The same dry-run walk (_walk.remove_tree(dry_run=True)) gives check mode's list and sizes the backup; the
real run makes the same decisions. A backup is written through descriptors opened relative to their parent
directory (never through a symlink), read back and compared entry by entry with its manifest (path, type,
size, sha256) before anything is removed.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import errno
import hashlib
import json
import os
import stat
import tarfile
import time
import zlib

try:
    from lzma import LZMAError as _LZMAError
except ImportError:  # a Python built without lzma cannot write tar.xz either
    _LZMAError = EOFError

from ansible_collections.residue.purge.plugins.module_utils import _inputs, _profiles
from ansible_collections.residue.purge.plugins.module_utils._units import parse_duration
from ansible_collections.residue.purge.plugins.module_utils._mounts import free_bytes, mount_point
from ansible_collections.residue.purge.plugins.module_utils._text import printable
from ansible_collections.residue.purge.plugins.module_utils._walk import MAX_LISTED, TIME_FIELDS, remove_tree

BACKUP_FORMATS = {"tar.gz": "gz", "tar.xz": "xz"}
# Each tar entry costs at least a 512-byte header plus padding; PAX headers for long names cost more.
_TAR_OVERHEAD_PER_ENTRY = 2048
_READ_FLAGS = os.O_RDONLY | getattr(os, "O_NOFOLLOW", 0) | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_CLOEXEC", 0)


class RemoveError(ValueError):
    """Bad input or a failed backup: raised before anything is removed."""


# ---------------------------------------------------------------------------------------------- input

def expand_home(path, environ):
    """'~' and '~/x' use HOME; without HOME (or for '~user') the path is refused."""
    if not isinstance(path, str):
        raise RemoveError("paths: %r is not a string" % (path,))
    if path == "~" or path.startswith("~/"):
        home = environ.get("HOME")
        if not home:
            raise RemoveError("paths: %r uses '~' but HOME is not set; give an absolute path" % path)
        return home.rstrip("/") + path[1:]
    if path.startswith("~"):
        raise RemoveError("paths: %r: only '~' (HOME) is expanded; give an absolute path" % path)
    return path


def validate_options(params):
    """Check every option that does not need the host; returns (older_than seconds or None, keep list)."""
    older_than = None
    if params.get("older_than") not in (None, ""):
        older_than = parse_duration(params["older_than"])
    if params.get("time_field", "atime") not in TIME_FIELDS:
        raise RemoveError("time_field must be one of %s" % ", ".join(TIME_FIELDS))
    keep = params.get("keep") or []
    for glob in keep:
        if not isinstance(glob, str) or not glob.strip():
            raise RemoveError("keep: every entry must be a non-empty glob, got %r" % (glob,))
    backup = params.get("backup")
    if backup is not None:
        try:
            _inputs.absolute(backup, "backup")
        except _inputs.InputError as exc:
            raise RemoveError(str(exc))
        if params.get("backup_format", "tar.gz") not in BACKUP_FORMATS:
            raise RemoveError("backup_format must be one of %s" % ", ".join(sorted(BACKUP_FORMATS)))
    return older_than, keep


def resolve_items(params, environ=None, problems=None):
    """[(path, target)] to remove: the given paths, or the selected profiles' resolved paths; checked
    against protected paths, de-duplicated, and a path inside another listed path dropped. Environment
    values that were not used (_profiles.user_environments) are described in problems."""
    environ = os.environ if environ is None else environ
    users = _profiles.list_users(params.get("homes") or None, params.get("users", "all"))
    contexts = _profiles.user_environments(users, scan_processes=params.get("scan_processes", True),
                                           problems=problems)
    wanted = []
    if params.get("paths"):
        # Paths given by whoever runs the module: checked against what is protected for that user (no other
        # user's environment can make a given path refused).
        me = os.getuid() if hasattr(os, "getuid") else None
        runner = next((c.user for c in contexts if c.user.uid == me), None)
        protected = _profiles.protected_paths(users, contexts, user=runner) if runner else \
            _profiles.protected_paths(users)
        for i, raw in enumerate(params["paths"]):
            path = expand_home(raw, environ)
            wanted.append((_profiles.check_path(path, protected, field="paths[%d]" % i), None))
    else:
        profiles = _profiles.select_targets(_profiles.load_profiles(params.get("profiles")), params.get("targets"))
        wanted.extend((r.path, r.target) for r in _profiles.resolve_all(profiles, users, contexts, problems))
    items, seen = [], set()
    for path, target in sorted(wanted):
        if path in seen or any(path.startswith(p.rstrip("/") + "/") for p in seen):
            continue
        seen.add(path)
        items.append((path, target))
    if params.get("backup"):  # the rules preflight applies to residue_backup_dir (_inputs.backup_dir)
        try:
            # root's own directory: protected as every user's home and default caches are, whatever any
            # user's environment says (no environment can make the backup refused, or allowed)
            _inputs.backup_dir(params["backup"], "backup", _profiles.protected_paths(users), [p for p, _t in items])
        except _inputs.InputError as exc:
            raise RemoveError(str(exc))
    return items


# ---------------------------------------------------------------------------------------------- backup

class _HashingReader(object):
    """File wrapper for tarfile.addfile: hashes exactly what goes into the archive."""

    def __init__(self, f):
        self.f = f
        self.sha = hashlib.sha256()

    def read(self, size=-1):
        data = self.f.read(size)
        self.sha.update(data)
        return data


def _member_name(path):
    return os.fsdecode(path).lstrip("/")


class BackupWriter(object):
    """Writes the archive and its manifest (JSON lines, same order as the archive's members)."""

    def __init__(self, directory, fmt, now=None):
        stamp = time.strftime("%Y%m%dT%H%M%SZ", time.gmtime(now))
        self.entries = 0
        self.problems = []
        for attempt in range(1000):
            base = os.path.join(directory, "residue-purge-%s-%d-%d" % (stamp, os.getpid(), attempt))
            self.archive = base + "." + fmt
            self.manifest = base + ".manifest.jsonl"
            try:
                self._file = self._create(self.archive)
            except OSError as exc:
                if exc.errno == errno.EEXIST:
                    continue
                raise
            break
        self._manifest = self._tar = None
        try:
            self._manifest = self._create(self.manifest)
            self._tar = tarfile.open(fileobj=self._file, mode="w:" + BACKUP_FORMATS[fmt], format=tarfile.PAX_FORMAT)
        except BaseException:
            self.discard()
            raise

    @staticmethod
    def _create(path):
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_NOFOLLOW", 0), 0o600)
        return os.fdopen(fd, "wb")

    def add(self, path, st, dir_fd, name):
        """on_entry callback of remove_tree: archive one entry, read relative to its parent's fd."""
        info = tarfile.TarInfo(_member_name(path))
        info.mode = stat.S_IMODE(st.st_mode)
        info.mtime = int(st.st_mtime)
        info.uid, info.gid = st.st_uid, st.st_gid
        record = {"path": os.fsdecode(path), "size": 0, "sha256": None}
        if stat.S_ISREG(st.st_mode):
            fd = os.open(name, _READ_FLAGS, dir_fd=dir_fd)
            with os.fdopen(fd, "rb") as f:
                fst = os.fstat(f.fileno())
                if (fst.st_dev, fst.st_ino) != (st.st_dev, st.st_ino):
                    raise RemoveError("backup: %s was replaced while it was being archived" % printable(path))
                info.size = fst.st_size
                reader = _HashingReader(f)
                self._tar.addfile(info, reader)
            record.update(type="file", size=info.size, sha256=reader.sha.hexdigest())
        elif stat.S_ISDIR(st.st_mode):
            info.type = tarfile.DIRTYPE
            self._tar.addfile(info)
            record["type"] = "dir"
        elif stat.S_ISLNK(st.st_mode):
            info.type = tarfile.SYMTYPE
            info.linkname = os.fsdecode(os.readlink(name, dir_fd=dir_fd))
            self._tar.addfile(info)
            record.update(type="symlink", target=info.linkname)
        elif stat.S_ISFIFO(st.st_mode):
            info.type = tarfile.FIFOTYPE
            self._tar.addfile(info)
            record["type"] = "fifo"
        else:
            if len(self.problems) < MAX_LISTED:
                self.problems.append("%s: sockets and devices are not archived" % printable(path))
            return
        self._manifest.write((json.dumps(record, sort_keys=True) + "\n").encode("ascii"))
        self.entries += 1

    def close(self):
        self._tar.close()
        for f in (self._file, self._manifest):
            f.flush()
            os.fsync(f.fileno())
            f.close()

    def discard(self):
        """Close and delete the archive and the manifest: a failed backup leaves no partial archive."""
        for f in (self._tar, self._file, self._manifest):
            try:
                if f is not None:
                    f.close()
            except (OSError, ValueError, tarfile.TarError):
                pass
        for path in (self.archive, self.manifest):
            try:
                os.unlink(path)
            except OSError:
                pass


def _sha256_of(path):
    sha = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            sha.update(block)
    return sha.hexdigest()


_TAR_TYPES = {"file": tarfile.REGTYPE, "dir": tarfile.DIRTYPE, "symlink": tarfile.SYMTYPE, "fifo": tarfile.FIFOTYPE}


def verify_backup(archive, manifest):
    """Read the archive back and check it member by member against the manifest; RemoveError on mismatch."""
    count = 0
    try:
        with tarfile.open(archive, "r:*") as tar, open(manifest, "rb") as records:
            for line in records:
                want = json.loads(line.decode("ascii"))
                member = tar.next()
                where = "backup %s: %s" % (archive, printable(want["path"]))
                if member is None:
                    raise RemoveError("%s: missing from the archive" % where)
                if member.name != _member_name(want["path"]) or member.type != _TAR_TYPES[want["type"]]:
                    raise RemoveError("%s: archive has %r instead" % (where, member.name))
                if want["type"] == "file":
                    if member.size != want["size"]:
                        raise RemoveError("%s: size %d in the archive, %d in the manifest"
                                          % (where, member.size, want["size"]))
                    sha = hashlib.sha256()
                    data = tar.extractfile(member)
                    for block in iter(lambda: data.read(1 << 20), b""):
                        sha.update(block)
                    if sha.hexdigest() != want["sha256"]:
                        raise RemoveError("%s: sha256 of the archived content does not match" % where)
                elif want["type"] == "symlink" and member.linkname != want["target"]:
                    raise RemoveError("%s: symlink target differs" % where)
                count += 1
            if tar.next() is not None:
                raise RemoveError("backup %s: the archive has entries the manifest does not list" % archive)
    except (tarfile.TarError, EOFError, OSError, ValueError, KeyError, zlib.error, _LZMAError) as exc:
        if isinstance(exc, RemoveError):
            raise
        raise RemoveError("backup %s could not be read back: %s" % (archive, exc))
    return count


# ---------------------------------------------------------------------------------------------- run

class _Sizer(object):
    """on_entry for the planning walk: what a backup of exactly these entries needs."""

    def __init__(self):
        self.entries = 0
        self.content = 0

    def __call__(self, path, st, dir_fd, name):
        self.entries += 1
        if stat.S_ISREG(st.st_mode):
            self.content += st.st_size


def _walk_options(params, older_than):
    return dict(one_file_system=not params.get("cross_filesystems", False), keep=params.get("keep") or None,
                older_than=older_than, time_field=params.get("time_field", "atime"))


def _item_record(path, target, st, res):
    return {"path": path, "target": target, "owner": _profiles.user_name(st.st_uid), "bytes": res.bytes, "files": res.files,
            "dirs": res.dirs, "kept": res.kept, "whole": res.root_removed}


def run(params, check_mode=False, environ=None, before_verify=None):
    """The whole remove: validate, plan, back up and verify, remove, measure. Returns the module's result.

    Raises RemoveError/ProfileError/ValueError before anything is changed (and RemoveError for a host error
    that stops the run). before_verify(archive) is a test seam called between writing the backup and reading
    it back."""
    try:
        result = _run(params, check_mode, environ, before_verify)
    except OSError as exc:
        raise RemoveError("%s: %s; nothing more was removed" % (exc.filename or "remove", exc.strerror or exc))
    result["diff"] = diff_of(result)
    if result["failed_count"]:
        first = result["failures"][0]
        result["failure"] = ("%d entries could not be removed (first: %s: %s); the rest was removed"
                             % (result["failed_count"], first["path"], first["error"]))
    return result


def diff_of(result):
    before = "".join("%s (%d bytes)\n" % (r["path"], r["bytes"]) for r in result["removed"])
    after = "".join("%s (kept %d entries)\n" % (r["path"], r["kept"]) for r in result["removed"] if not r["whole"])
    return {"before": before, "after": after, "before_header": "residues", "after_header": "residues"}


def _run(params, check_mode, environ, before_verify):
    older_than, _keep = validate_options(params)
    env_problems = []
    items = resolve_items(params, environ, env_problems)
    walk = _walk_options(params, older_than)
    present = []
    for path, target in items:
        try:
            present.append((path, target, os.lstat(path)))
        except OSError as exc:
            if exc.errno != errno.ENOENT:
                raise RemoveError("%s: %s" % (path, exc.strerror))
    mounts = sorted(set(mount_point(p) for p, _t, _s in present))
    backup_dir = params.get("backup")
    if backup_dir:
        mounts = sorted(set(mounts) | {mount_point(os.path.join(backup_dir, "x"))})
    free_before = dict((m, free_bytes(m)) for m in mounts)

    # Planning walk: the list check mode shows, and the size of the backup.
    sizer = _Sizer() if backup_dir else None
    plans = []
    for path, target, st in present:
        res = remove_tree(path, dry_run=True, on_entry=sizer, **walk)
        plans.append((path, target, st, res))
    to_remove = [p for p in plans if p[3].changed]

    result = {"removed": [], "freed_bytes": 0, "failures": [], "failed_count": 0, "problems": [], "backup": None,
              "changed": bool(to_remove)}
    result["problems"].extend(env_problems)
    for _p, _t, _s, res in plans:
        result["problems"].extend(res.problems)

    if backup_dir and to_remove:
        result["backup"] = _backup(backup_dir, params.get("backup_format", "tar.gz"), sizer, to_remove, walk,
                                   check_mode, before_verify, result["problems"])

    if check_mode:
        for path, target, st, res in to_remove:
            result["removed"].append(_item_record(path, target, st, res))
            _add_failures(result, res)
    else:
        for path, target, st, _plan in to_remove:
            res = remove_tree(path, **walk)
            if res.changed:
                result["removed"].append(_item_record(path, target, st, res))
            _add_failures(result, res)
            result["problems"].extend(p for p in res.problems if p not in result["problems"])
        result["changed"] = bool(result["removed"])
    result["freed_bytes"] = sum(r["bytes"] for r in result["removed"])
    result["filesystems"] = [{"mount": m, "free_before": free_before[m], "free_after": free_bytes(m),
                              "freed": free_bytes(m) - free_before[m]} for m in mounts]
    result["problems"] = result["problems"][:MAX_LISTED]
    return result


def _add_failures(result, res):
    result["failed_count"] += res.failed_count
    for path, error in res.failed:
        if len(result["failures"]) < MAX_LISTED:
            result["failures"].append({"path": path, "error": error})


def _backup(directory, fmt, sizer, to_remove, walk, check_mode, before_verify, problems):
    """Free-space check, archive, read back and verify; RemoveError (nothing removed) on any failure."""
    needed = sizer.content + sizer.entries * _TAR_OVERHEAD_PER_ENTRY
    probe = directory
    while not os.path.isdir(probe):
        probe = os.path.dirname(probe)
    available = free_bytes(probe)
    if available < needed:
        raise RemoveError("backup: %s has %d bytes free, the backup of %d entries needs up to %d; nothing was removed"
                          % (directory, available, sizer.entries, needed))
    if check_mode:
        return {"path": None, "manifest": None, "bytes": None, "sha256": None, "entries": sizer.entries,
                "needed_bytes": needed}
    created = []  # the directories this backup made, removed again (when empty) if it fails
    missing = directory
    while not os.path.isdir(missing):
        created.insert(0, missing)
        missing = os.path.dirname(missing)
    writer = None
    try:
        for path in created:
            os.mkdir(path, 0o700)
        writer = BackupWriter(directory, fmt)
        for path, _target, _st, _plan in to_remove:
            res = remove_tree(path, dry_run=True, on_entry=writer.add, **walk)
            if res.failed_count:
                raise RemoveError("backup: %s could not be read completely (%s: %s); nothing was removed"
                                  % (path, res.failed[0][0], res.failed[0][1]))
        writer.close()
        if before_verify is not None:
            before_verify(writer.archive)
        entries = verify_backup(writer.archive, writer.manifest)
    except BaseException as exc:
        if writer is not None:
            writer.discard()
        for path in reversed(created):
            try:
                os.rmdir(path)
            except OSError:
                pass
        if isinstance(exc, (OSError, tarfile.TarError)):
            raise RemoveError("backup: writing %s failed: %s; nothing was removed"
                              % (writer.archive if writer is not None else directory, exc))
        raise
    problems.extend(writer.problems)
    return {"path": writer.archive, "manifest": writer.manifest, "bytes": os.path.getsize(writer.archive),
            "sha256": _sha256_of(writer.archive), "entries": entries, "needed_bytes": needed}
