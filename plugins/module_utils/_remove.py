# -*- coding: utf-8 -*-
# Copyright: residue.purge contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""residue.purge.remove: which paths, a verified backup first, fd-based removal, free space per filesystem.

The same dry-run walk (_walk.remove_tree(dry_run=True)) gives check mode's list and sizes the backup; the
real run makes the same decisions. A backup is written through descriptors opened relative to their parent
directory (never through a symlink), read back and compared entry by entry with its manifest (path, type,
size, sha256) before anything is removed.

Whose rights (the trust boundary, docs/DESIGN.md invariant 7): every item has an actor. An item inside a
user's home, or resolved from a user's placeholders or environment, is a user's residue: when the module runs
as root, it is sized, read for the backup and removed by a forked child that dropped to that user's uid, gid
and groups (_privileges), so the kernel refuses whatever that user could not do (a root-owned file in a
directory the user cannot write, a bind mount of /etc). Root reaches the item's parent directory from '/'
with O_NOFOLLOW at every component (_paths.open_parent) and hands that descriptor to the child, which acts
only relative to it and only on the (st_dev, st_ino) root planned. Root's own and system residue (absolute
system profile paths, root's home, explicit paths outside every home) stay with root. The backup archive is
written by root: the child reads the user's files and streams them (plain data) to the parent. Without root,
everything runs in this process with the connecting user's rights, as before.
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
from collections import namedtuple

try:
    from lzma import LZMAError as _LZMAError
except ImportError:  # a Python built without lzma cannot write tar.xz either
    _LZMAError = EOFError

from ansible_collections.residue.purge.plugins.module_utils import _inputs, _paths, _privileges, _profiles
from ansible_collections.residue.purge.plugins.module_utils._units import parse_duration
from ansible_collections.residue.purge.plugins.module_utils._mounts import free_bytes, mount_point
from ansible_collections.residue.purge.plugins.module_utils._text import error_text, printable
from ansible_collections.residue.purge.plugins.module_utils._walk import (
    MAX_LISTED, TIME_FIELDS, RemovalResult, remove_at)

BACKUP_FORMATS = {"tar.gz": "gz", "tar.xz": "xz"}
# Each tar entry costs at least a 512-byte header plus padding; PAX headers for long names cost more.
_TAR_OVERHEAD_PER_ENTRY = 2048
_READ_FLAGS = os.O_RDONLY | getattr(os, "O_NOFOLLOW", 0) | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_CLOEXEC", 0)
# A backup child sends file content in chunks of this size (each one message to the parent).
_CHUNK = 1 << 18

# One thing to remove: its path, the profile that named it (None for explicit paths) and whose rights it is
# acted on with (a user: name, uid, gid, home; root for root's and system residue).
Item = namedtuple("Item", "path target actor")


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
    """[Item(path, target, actor)] to remove: the given paths, or the selected profiles' resolved paths;
    checked against protected paths (by spelling and by identity), de-duplicated, and a path inside another
    listed path dropped. See the module docstring for the actor. Environment values that were not used
    (_profiles.user_environments) are described in problems."""
    return _resolve(params, environ, problems)[0]


def _resolve(params, environ, problems=None):
    """(items, protected): protected is the set every walk refuses to enter by identity (system directories,
    every home and its shared directories, their default locations: no user's environment adds to it)."""
    environ = os.environ if environ is None else environ
    users = _profiles.list_users(params.get("homes") or None, params.get("users", "all"))
    contexts = _profiles.user_environments(users, scan_processes=params.get("scan_processes", True),
                                           problems=problems)
    claims = {}  # path -> {uid: user} of the contexts that resolved it (root for system paths)
    targets = {}
    root = _privileges.root_user()
    if params.get("paths"):
        # Paths given by whoever runs the module: checked against what is protected for that user (no other
        # user's environment can make a given path refused).
        me = os.getuid() if hasattr(os, "getuid") else None
        runner = next((c.user for c in contexts if c.user.uid == me), None)
        protected = _profiles.protected_paths(users, contexts, user=runner) if runner else \
            _profiles.protected_paths(users)
        for i, raw in enumerate(params["paths"]):
            path = expand_home(raw, environ)
            path = _profiles.check_path(path, protected, field="paths[%d]" % i)
            claims.setdefault(path, {})[0] = root
            targets[path] = None
    else:
        profiles = _profiles.select_targets(_profiles.load_profiles(params.get("profiles")), params.get("targets"))
        resolved = _profiles.resolve_all(profiles, users, contexts, problems)
        claims = _privileges.claims_of(resolved, contexts)  # an absolute system path: root's, for everyone
        for r in resolved:
            targets.setdefault(r.path, r.target)
    homes = _privileges.HomeIndex(users)
    items, seen = [], set()
    for path in sorted(claims):
        if path in seen or any(path.startswith(p.rstrip("/") + "/") for p in seen):
            continue
        seen.add(path)
        items.append(Item(path, targets[path], _privileges.actor_of(path, claims[path], homes)))
    if params.get("backup"):  # the rules preflight applies to residue_backup_dir (_inputs.backup_dir)
        try:
            # root's own directory: protected as every user's home and default caches are, whatever any
            # user's environment says (no environment can make the backup refused, or allowed)
            _inputs.backup_dir(params["backup"], "backup", _profiles.protected_paths(users),
                               [item.path for item in items])
        except _inputs.InputError as exc:
            raise RemoveError(str(exc))
    return items, _profiles.protected_paths(users)


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

    def add(self, header, content):
        """Archive one entry the reading child described: header = (path bytes, kind, mode, mtime, uid, gid,
        size, link target bytes or None); content: a reader of exactly size bytes for a file."""
        path, kind, mode, mtime, uid, gid, size, linkname = header
        info = tarfile.TarInfo(_member_name(path))
        info.mode, info.mtime, info.uid, info.gid = mode, mtime, uid, gid
        record = {"path": os.fsdecode(path), "size": 0, "sha256": None}
        if kind == "file":
            info.size = size
            reader = _HashingReader(content)
            self._tar.addfile(info, reader)
            record.update(type="file", size=size, sha256=reader.sha.hexdigest())
        elif kind == "dir":
            info.type = tarfile.DIRTYPE
            self._tar.addfile(info)
            record["type"] = "dir"
        elif kind == "symlink":
            info.type = tarfile.SYMTYPE
            info.linkname = os.fsdecode(linkname)
            self._tar.addfile(info)
            record.update(type="symlink", target=info.linkname)
        elif kind == "fifo":
            info.type = tarfile.FIFOTYPE
            self._tar.addfile(info)
            record["type"] = "fifo"
        else:
            if len(self.problems) < MAX_LISTED:
                self.problems.append("%s: sockets and devices are not archived" % printable(path))
            return
        self._manifest.write((json.dumps(record, sort_keys=True) + "\n").encode("ascii"))
        self.entries += 1

    def fds(self):
        return [f.fileno() for f in (self._file, self._manifest)]

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


def _item_record(item, uid, res):
    return {"path": item.path, "target": item.target, "owner": _profiles.user_name(uid), "bytes": res.bytes,
            "files": res.files, "dirs": res.dirs, "kept": res.kept, "whole": res.root_removed}


def run(params, check_mode=False, environ=None, before_verify=None):
    """The whole remove: validate, plan, back up and verify, remove, measure. Returns the module's result.

    Raises RemoveError/ProfileError/ValueError before anything is changed (and RemoveError for a host error
    that stops the run). before_verify(archive) is a test seam called between writing the backup and reading
    it back."""
    try:
        result = _run(params, check_mode, environ, before_verify)
    except OSError as exc:
        raise RemoveError("%s: %s; nothing more was removed" % (exc.filename or "remove", error_text(exc)))
    result["diff"] = diff_of(result)
    if result["failed_count"]:
        first = result["failures"][0]
        result["failure"] = (("%d entries would be refused (first: %s: %s); the rest would be removed" if check_mode
                              else "%d entries could not be removed (first: %s: %s); the rest was removed")
                             % (result["failed_count"], first["path"], first["error"]))
    return result


def diff_of(result):
    before = "".join("%s (%d bytes)\n" % (r["path"], r["bytes"]) for r in result["removed"])
    after = "".join("%s (kept %d entries)\n" % (r["path"], r["kept"]) for r in result["removed"] if not r["whole"])
    return {"before": before, "after": after, "before_header": "residues", "after_header": "residues"}


# ---------------------------------------------------------------------------------------------- acting as a user

def _by_runner(items):
    """[(runner, [(index, item)])] in the items' order of first appearance (_privileges.by_runner)."""
    return _privileges.by_runner(items, lambda item: item.actor)


def _open_parents(group):
    """Root's side: (index, parent fd or None, last name, error text or None) per item, each parent reached
    from '/' with O_NOFOLLOW at every component (a symlink on the way is refused, never followed)."""
    opened = []
    for i, item in group:
        try:
            fd, name = _paths.open_parent(item.path)
            opened.append((i, fd, name, None))
        except OSError as exc:
            if exc.errno == errno.ENOENT:
                opened.append((i, None, None, None))
            elif exc.errno in (errno.ELOOP, errno.ENOTDIR):
                opened.append((i, None, None, "a directory on the way is a symlink or not a directory; nothing "
                                              "below it is touched"))
            else:
                opened.append((i, None, None, error_text(exc)))
    return opened


def _close(opened):
    for _i, fd, _name, _error in opened:
        if fd is not None:
            os.close(fd)


def _failed_result(path, text):
    res = RemovalResult()
    res.fail(os.fsencode(path), text)
    return res.to_dict()


def _plan_at(jobs, walk, protect, sizing, predict=False):
    """In the acting process: for each (index, parent fd, name, path): the entry's identity and owner and the
    dry-run walk's result (and what a backup of it needs when sizing). Plain data."""
    out = []
    for i, fd, name, path in jobs:
        try:
            st = os.lstat(name, dir_fd=fd)
        except OSError as exc:
            out.append((i, None, None if exc.errno == errno.ENOENT else _failed_result(path, error_text(exc)), 0, 0))
            continue
        sizer = _Sizer() if sizing else None
        expect = (st.st_dev, st.st_ino)
        res = remove_at(fd, name, path, dry_run=True, on_entry=sizer, expect=expect, protect=protect,
                        predict=predict, **walk)
        out.append((i, (st.st_dev, st.st_ino, st.st_uid), res.to_dict(), sizer.entries if sizer else 0,
                    sizer.content if sizer else 0))
    return out


def _remove_jobs(jobs, walk, protect):
    """In the acting process: remove each (index, parent fd, name, path, planned (dev, ino)); plain data."""
    return [(i, remove_at(fd, name, path, expect=expect, protect=protect, **walk).to_dict())
            for i, fd, name, path, expect in jobs]


def _as(runner, work, *args):
    """work(*args) with runner's rights (_privileges.call_as); a child that failed is the text of ChildFailed."""
    try:
        return _privileges.call_as(runner, work, *args), None
    except (_privileges.ChildFailed, _privileges.NotReachable) as exc:
        return None, str(exc)


def _result_of(data):
    res = RemovalResult()
    for key, value in data.items():
        setattr(res, key, [tuple(f) for f in value] if key == "failed" else value)
    return res


def _plan(items, walk, protect, sizing, predict=False):
    """{index: (uid, identity, RemovalResult, entries, content)} of the items that exist, plus a failed
    RemovalResult for those that could not be looked at; each group planned with its runner's rights.
    predict (check mode): the plan also names what the kernel would refuse the runner (_walk predict)."""
    plans = {}
    for runner, group in _by_runner(items):
        opened = _open_parents(group)
        try:
            jobs = []
            for i, fd, name, error in opened:
                if error is not None:
                    plans[i] = (None, None, _result_of(_failed_result(items[i].path, error)), 0, 0)
                elif fd is not None:
                    jobs.append((i, fd, name, os.fsencode(items[i].path)))
            if not jobs:
                continue
            out, error = _as(runner, _plan_at, jobs, walk, protect, sizing, predict)
        finally:
            _close(opened)
        if error is not None:
            for i, _fd, _name, _path in jobs:
                plans[i] = (None, None, _result_of(_failed_result(items[i].path, error)), 0, 0)
            continue
        for i, ident, res, entries, content in out:
            if res is not None:
                plans[i] = (ident[2] if ident else None, ident[:2] if ident else None, _result_of(res), entries,
                            content)
    return plans


def _remove(items, plans, walk, protect):
    """{index: RemovalResult} of the real removal of the planned items, each with its runner's rights."""
    done = {}
    for runner, group in _by_runner(items):
        group = [(i, item) for i, item in group if i in plans]
        if not group:
            continue
        opened = _open_parents(group)
        try:
            jobs = []
            for i, fd, name, error in opened:
                if error is not None:
                    done[i] = _result_of(_failed_result(items[i].path, error))
                elif fd is not None:
                    jobs.append((i, fd, name, os.fsencode(items[i].path), tuple(plans[i][1])))
            if not jobs:
                continue
            out, error = _as(runner, _remove_jobs, jobs, walk, protect)
        finally:
            _close(opened)
        if error is not None:
            for job in jobs:
                done[job[0]] = _result_of(_failed_result(items[job[0]].path, error))
            continue
        for i, res in out:
            done[i] = _result_of(res)
    return done


def _run(params, check_mode, environ, before_verify):
    older_than, _keep = validate_options(params)
    env_problems = []
    items, protected = _resolve(params, environ, env_problems)
    protect = frozenset(protected.identities()) if isinstance(protected, _profiles.ProtectedPaths) else frozenset()
    walk = _walk_options(params, older_than)
    backup_dir = params.get("backup")
    # Planning walk (with each item's actor's rights): the list check mode shows, and the size of the backup.
    # In check mode the plan is also what the real run would be refused (its failures are the dry run's report).
    plans = _plan(items, walk, protect, bool(backup_dir), predict=check_mode)
    present = sorted(i for i in plans if plans[i][1] is not None)
    mounts = sorted(set(mount_point(items[i].path) for i in present))
    if backup_dir:
        mounts = sorted(set(mounts) | {mount_point(os.path.join(backup_dir, "x"))})
    free_before = dict((m, free_bytes(m)) for m in mounts)
    to_remove = [i for i in present if plans[i][2].changed]

    result = {"removed": [], "freed_bytes": 0, "failures": [], "failed_count": 0, "problems": [], "backup": None,
              "changed": bool(to_remove)}
    result["problems"].extend(env_problems)
    for i in sorted(plans):
        result["problems"].extend(plans[i][2].problems)
        if i not in to_remove:
            _add_failures(result, plans[i][2])  # refused before anything could be removed: named, not hidden

    if backup_dir and to_remove:
        entries = sum(plans[i][3] for i in to_remove)
        content = sum(plans[i][4] for i in to_remove)
        result["backup"] = _backup(backup_dir, params.get("backup_format", "tar.gz"), entries, content,
                                   [(items[i], plans[i][1]) for i in to_remove], walk, protect, check_mode,
                                   before_verify, result["problems"])

    if check_mode:
        for i in to_remove:
            result["removed"].append(_item_record(items[i], plans[i][0], plans[i][2]))
            _add_failures(result, plans[i][2])
    else:
        done = _remove([items[i] for i in to_remove], dict((n, plans[i]) for n, i in enumerate(to_remove)), walk,
                       protect)
        for n, i in enumerate(to_remove):
            res = done.get(n)
            if res is None:
                continue
            if res.changed:
                result["removed"].append(_item_record(items[i], plans[i][0], res))
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


# ---------------------------------------------------------------------------------------------- backup run

class _EntrySender(object):
    """on_entry in the reading child: describe each entry to the parent, and stream a file's content."""

    def __init__(self, send):
        self.send = send

    def __call__(self, path, st, dir_fd, name):
        mode, mtime, uid, gid = stat.S_IMODE(st.st_mode), int(st.st_mtime), st.st_uid, st.st_gid
        if stat.S_ISREG(st.st_mode):
            fd = os.open(name, _READ_FLAGS, dir_fd=dir_fd)
            with os.fdopen(fd, "rb") as f:
                fst = os.fstat(f.fileno())
                if (fst.st_dev, fst.st_ino) != (st.st_dev, st.st_ino):
                    raise RemoveError("backup: %s was replaced while it was being archived" % printable(path))
                size = fst.st_size
                self.send(("entry", (path, "file", mode, mtime, uid, gid, size, None)))
                left = size
                while left:
                    data = f.read(min(left, _CHUNK))
                    if not data:
                        raise RemoveError("backup: %s shrank while it was being archived" % printable(path))
                    left -= len(data)
                    self.send(("data", data))
        elif stat.S_ISDIR(st.st_mode):
            self.send(("entry", (path, "dir", mode, mtime, uid, gid, 0, None)))
        elif stat.S_ISLNK(st.st_mode):
            target = os.readlink(name, dir_fd=dir_fd)
            self.send(("entry", (path, "symlink", mode, mtime, uid, gid, 0, os.fsencode(target))))
        elif stat.S_ISFIFO(st.st_mode):
            self.send(("entry", (path, "fifo", mode, mtime, uid, gid, 0, None)))
        else:
            self.send(("entry", (path, "other", mode, mtime, uid, gid, 0, None)))


class _Content(object):
    """A file's content as the child streams it: read(n) gives exactly n bytes (fewer only at its end)."""

    def __init__(self, messages, size):
        self.messages = messages
        self.left = size
        self.buf = b""

    def read(self, size=-1):
        want = self.left + len(self.buf) if size is None or size < 0 else size
        while len(self.buf) < want and self.left:
            kind, data = _message(self.messages)
            if kind != "data" or not isinstance(data, bytes) or len(data) > self.left:
                raise RemoveError("backup: the reading process sent something other than the file's content")
            self.left -= len(data)
            self.buf += data
        out, self.buf = self.buf[:want], self.buf[want:]
        return out


def _check_header(header, below):
    """The child's description of an entry, checked: its shape, and that it lies in the item being read."""
    ok = (isinstance(header, tuple) and len(header) == 8 and isinstance(header[0], bytes)
          and header[1] in ("file", "dir", "symlink", "fifo", "other")
          and all(isinstance(v, int) and not isinstance(v, bool) and v >= 0 for v in header[2:7])
          and (header[7] is None or isinstance(header[7], bytes)))
    if not ok or not (header[0] == below or header[0].startswith(below.rstrip(b"/") + b"/")):
        raise RemoveError("backup: the reading process described an entry outside %s" % printable(below))
    return header


def _archive_group(writer, runner, jobs_of, walk, protect):
    """Stream one runner's items into the archive: a child with the runner's rights walks each item (the
    same dry-run walk as the plan) and sends its entries; root writes them. RemoveError on any failure."""
    opened = jobs_of()
    try:
        # an item gone since the plan (fd None) has nothing left to archive
        jobs = [(i, fd, name, path, expect) for i, fd, name, path, expect, error in opened
                if error is None and fd is not None]
        refused = [(path, error) for _i, _fd, _name, path, _e, error in opened if error is not None]
        if refused:
            raise RemoveError("backup: %s could not be read (%s); nothing was removed"
                              % (printable(refused[0][0]), refused[0][1]))
        if not jobs:
            return
        inherited = writer.fds()

        def produce(send):
            for fd in inherited:  # the archive is root's: the reading child never holds it
                os.close(fd)
            sender = _EntrySender(send)
            for i, fd, name, path, expect in jobs:
                res = remove_at(fd, name, path, dry_run=True, on_entry=sender, expect=expect, protect=protect,
                                parallel=False, **walk)
                send(("item", (i, res.failed_count, list(res.failed[:1]))))

        messages = _privileges.stream_as(runner, produce)
        try:
            _take(writer, messages, dict((i, path) for i, _fd, _name, path, _expect in jobs))
        finally:
            messages.close()  # a child still running is ended
    except _privileges.ChildFailed as exc:
        raise RemoveError("backup: reading the residue failed (%s); nothing was removed" % exc)
    finally:
        for _i, fd, _name, _path, _expect, _error in opened:
            if fd is not None:
                os.close(fd)


def _message(messages):
    message = next(messages)
    if not (isinstance(message, tuple) and len(message) == 2):
        raise RemoveError("backup: the reading process sent an unexpected message")
    return message


def _take(writer, messages, paths):
    """Write what the reading child sends into the archive; RemoveError when it could not read everything."""
    while True:
        try:
            kind, body = _message(messages)
        except StopIteration:
            return
        if kind == "entry":
            header = _below_any(body, paths)
            content = _Content(messages, header[6]) if header[1] == "file" else None
            writer.add(header, content)
            if content is not None and (content.left or content.buf):
                raise RemoveError("backup: %s: the archive did not take the whole file" % printable(header[0]))
        elif kind == "item":
            i, failed_count, failed = body
            if failed_count:
                raise RemoveError("backup: %s could not be read completely (%s: %s); nothing was removed"
                                  % (printable(paths[i]), failed[0][0], failed[0][1]))
        else:
            raise RemoveError("backup: the reading process sent an unexpected message")


def _below_any(header, paths):
    for below in paths.values():
        try:
            return _check_header(header, below)
        except RemoveError:
            continue
    raise RemoveError("backup: the reading process described an entry outside the residue")


def _backup(directory, fmt, entries, content, planned, walk, protect, check_mode, before_verify, problems):
    """Free-space check, archive, read back and verify; RemoveError (nothing removed) on any failure."""
    needed = content + entries * _TAR_OVERHEAD_PER_ENTRY
    probe = directory
    while not os.path.isdir(probe):
        probe = os.path.dirname(probe)
    available = free_bytes(probe)
    if available < needed:
        raise RemoveError("backup: %s has %d bytes free, the backup of %d entries needs up to %d; nothing was removed"
                          % (directory, available, entries, needed))
    if check_mode:
        return {"path": None, "manifest": None, "bytes": None, "sha256": None, "entries": entries,
                "needed_bytes": needed}
    created = []  # the directories this backup made, removed again (when empty) if it fails
    missing = directory
    while not os.path.isdir(missing):
        created.insert(0, missing)
        missing = os.path.dirname(missing)
    writer = None
    items = [item for item, _ident in planned]
    try:
        for path in created:
            os.mkdir(path, 0o700)
        writer = BackupWriter(directory, fmt)
        for runner, group in _by_runner(items):
            def jobs_of(group=group):
                opened = _open_parents(group)
                return [(i, fd, name, os.fsencode(items[i].path), tuple(planned[i][1]), error)
                        for i, fd, name, error in opened]
            _archive_group(writer, runner, jobs_of, walk, protect)
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
        if isinstance(exc, (OSError, tarfile.TarError, StopIteration, ValueError, KeyError, TypeError)) \
                and not isinstance(exc, RemoveError):
            raise RemoveError("backup: writing %s failed: %s; nothing was removed"
                              % (writer.archive if writer is not None else directory, exc))
        raise
    problems.extend(writer.problems)
    return {"path": writer.archive, "manifest": writer.manifest, "bytes": os.path.getsize(writer.archive),
            "sha256": _sha256_of(writer.archive), "entries": entries, "needed_bytes": needed}
