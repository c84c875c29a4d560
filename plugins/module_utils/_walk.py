# -*- coding: utf-8 -*-
# Copyright: residue.purge contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Safe tree walks shared by every module: disk usage (as `du -sB1` counts it) and removal (as `rm -rf`).

Both walks are fd-based: the path itself is reached from '/' one component at a time with
O_NOFOLLOW|O_DIRECTORY (_paths.open_parent: no component is ever followed, even one swapped for a symlink
after the path was checked), its last component is looked at, opened and removed relative to its parent's
descriptor, and every directory below is opened relative to its parent's descriptor and checked against the
(st_dev, st_ino) seen when it was listed, so a directory swapped for a symlink (or another directory) mid-run
is never entered. Symlinks are counted or removed as
themselves, never followed. Paths are bytes internally (any name, newline or non-UTF-8, survives), the walk
is iterative (no recursion limit), and at most MAX_OPEN_FDS descriptors are open at once, whatever the depth.
Memory grows with depth and with the number of hard-linked files, not with the number of files.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import errno
import fnmatch
import os
import stat
import time

from ansible_collections.residue.purge.plugins.module_utils._fork import can_fork, fork_call, fork_result
from ansible_collections.residue.purge.plugins.module_utils._mounts import mount_id, mount_points_under
from ansible_collections.residue.purge.plugins.module_utils._paths import O_DIR as _O_DIR, open_parent
from ansible_collections.residue.purge.plugins.module_utils._text import error_text as _error_text, printable

MAX_OPEN_FDS = 64
# Lists in results are capped so output size does not grow with file count; counters stay exact.
MAX_LISTED = 200
# A directory whose rmdir fails with ENOTEMPTY (a writer added entries after it was listed) is listed and emptied
# again, at most this many times in all (the first pass included), with every identity check applied again.
# Before each new pass the walk waits PASS_PAUSE * 2**(passes - 1) seconds, so the bound is a time (about 2 s of
# a directory still gaining entries), not a number of passes that a fast machine uses up in milliseconds.
MAX_PASSES = 12
PASS_PAUSE = 0.001
# errors that mean "the directory gained entries since it was listed"
_NOT_EMPTY = (errno.ENOTEMPTY, errno.EEXIST)
TIME_FIELDS = ("atime", "mtime", "ctime")


class WalkError(ValueError):
    """Bad arguments to a walk (raised before anything is read or removed)."""


class _Moved(Exception):
    """A directory we had closed to save descriptors could not be reopened as the same directory."""


def _pause_before_pass(passes):
    """Wait before pass passes + 1 of a directory that gained entries: a writer that is finishing gets time to."""
    time.sleep(PASS_PAUSE * 2 ** (passes - 1))


def _to_bytes(path):
    if isinstance(path, bytes):
        return path
    if not isinstance(path, str):
        raise WalkError("path must be a string, got %r" % (path,))
    return os.fsencode(path)


_TIME_GETTERS = {"atime": lambda st: st.st_atime, "mtime": lambda st: st.st_mtime, "ctime": lambda st: st.st_ctime}


def _time_getter(time_field):
    if time_field not in TIME_FIELDS:
        raise WalkError("time_field must be one of %s, got %r" % (", ".join(TIME_FIELDS), time_field))
    return _TIME_GETTERS[time_field]


def _cutoff(older_than, now):
    if older_than is None:
        return None
    if isinstance(older_than, bool) or not isinstance(older_than, (int, float)) or older_than < 0:
        raise WalkError("older_than must be a number of seconds >= 0, got %r" % (older_than,))
    return (time.time() if now is None else now) - older_than


class _Frame(object):
    __slots__ = ("name", "fd", "dev", "ino", "mnt", "pending", "kept", "removed_any", "old", "blocks", "passes",
                 "state", "uid")

    def __init__(self, name, fd, st):
        self.passes = 1
        self.state = None
        self.uid = getattr(st, "st_uid", None)
        self.name = name
        self.fd = fd
        self.dev = st.st_dev
        self.ino = st.st_ino
        self.mnt = None
        self.pending = []
        self.kept = 0
        self.removed_any = False
        self.old = False
        self.blocks = st.st_blocks


class _Stack(object):
    """The directories from the root down to the current one; only the deepest MAX_OPEN_FDS hold an fd."""

    def __init__(self, root):
        self.root = root
        self.frames = []
        self.lowest_open = 0

    def push(self, frame):
        self.frames.append(frame)
        if len(self.frames) - self.lowest_open > MAX_OPEN_FDS:
            low = self.frames[self.lowest_open]
            os.close(low.fd)
            low.fd = None
            self.lowest_open += 1

    def pop(self):
        """Close the deepest directory; reopen its parent through '..' if we had closed it."""
        top = self.frames[-1]
        try:
            if len(self.frames) >= 2 and self.frames[-2].fd is None:
                parent = self.frames[-2]
                fd = os.open(b"..", _O_DIR, dir_fd=top.fd)
                pst = os.fstat(fd)
                if (pst.st_dev, pst.st_ino) != (parent.dev, parent.ino):
                    os.close(fd)
                    raise _Moved(self.path(len(self.frames) - 2))
                parent.fd = fd
                self.lowest_open = len(self.frames) - 2
        finally:
            os.close(top.fd)
            self.frames.pop()
            self.lowest_open = min(self.lowest_open, max(len(self.frames) - 1, 0))
        return top

    def close_all(self):
        for frame in self.frames:
            if frame.fd is not None:
                os.close(frame.fd)
                frame.fd = None
        self.frames = []

    def path(self, depth=None, name=None):
        """Full path (bytes) of frame `depth` (default: the deepest), or of `name` inside it."""
        depth = len(self.frames) - 1 if depth is None else depth
        # os.listdir(fd) gives str names (surrogate-escaped); the root is bytes
        parts = [self.root] + [os.fsencode(f.name) for f in self.frames[1:depth + 1]]
        if name is not None:
            parts.append(os.fsencode(name))
        return os.path.join(*parts)


def _reach(root):
    """(parent fd, name) of the walk's root through the O_NOFOLLOW chain from '/' (_paths.open_parent).
    OSError when a component is missing, or is a symlink or not a directory (ELOOP/ENOTDIR)."""
    if not root.startswith(b"/"):
        raise WalkError("path must be absolute, got %r" % (root,))
    try:
        return open_parent(root)
    except ValueError as exc:
        raise WalkError(str(exc))


def _chain_error(root, exc):
    """The text of a failed _reach: a symlink (or file) on the way is named as such."""
    if exc.errno in (errno.ELOOP, errno.ENOTDIR):
        return "a directory on the way to %s is a symlink or not a directory; nothing below it is touched" % (
            printable(root))
    return _error_text(exc)


def _open_root(parent_fd, name, st):
    """Open the walk's root directory relative to its parent, without following it, and check it is what
    lstat saw."""
    fd = os.open(name, _O_DIR, dir_fd=parent_fd)
    fst = os.fstat(fd)
    if (fst.st_dev, fst.st_ino) != (st.st_dev, st.st_ino):
        os.close(fd)
        raise OSError(errno.ESTALE, "directory was replaced while opening it")
    return fd


def _open_child(parent_fd, name, dev, ino):
    """Open a subdirectory relative to its parent; None if it is no longer the directory we listed."""
    fd = os.open(name, _O_DIR, dir_fd=parent_fd)
    fst = os.fstat(fd)
    if (fst.st_dev, fst.st_ino) != (dev, ino):
        os.close(fd)
        return None
    return fd


# ---------------------------------------------------------------------------------------------- refusals

# Linux inode flags (FS_IOC_GETFLAGS, <linux/fs.h>): an immutable or append-only inode cannot be unlinked, and
# nothing in such a directory can be.
_FS_IOC_GETFLAGS = 0x80086601
_FS_IMMUTABLE_FL = 0x10
_FS_APPEND_FL = 0x20
_O_FLAGS_READ = (os.O_RDONLY | getattr(os, "O_NOFOLLOW", 0) | getattr(os, "O_NONBLOCK", 0)
                 | getattr(os, "O_NOCTTY", 0) | getattr(os, "O_CLOEXEC", 0))


def _inode_flags(fd):
    """The inode's FS_IOC_GETFLAGS flags (0 where the file system or the system has none)."""
    try:
        import fcntl
        import struct
        buf = fcntl.ioctl(fd, _FS_IOC_GETFLAGS, b"\0" * 8)
        return struct.unpack("i", buf[:4])[0]
    except (ImportError, OSError, IOError, ValueError):
        return 0


def _pinned(flags):
    return bool(flags & (_FS_IMMUTABLE_FL | _FS_APPEND_FL))


class _DirState(object):
    """What deciding unlink/rmdir in one directory needs, read once per directory (predict mode)."""

    __slots__ = ("error", "sticky", "uid", "pinned")

    def __init__(self, fd, st):
        self.uid = st.st_uid
        self.sticky = bool(st.st_mode & stat.S_ISVTX)
        self.pinned = _pinned(_inode_flags(fd))  # this directory itself: rmdir of it is refused too
        self.error = None
        try:
            read_only = bool(os.fstatvfs(fd).f_flag & getattr(os, "ST_RDONLY", 1))
        except OSError:
            read_only = False
        if read_only:
            self.error = errno.EROFS
        elif self.pinned:
            self.error = errno.EPERM
        elif not os.access(".", os.W_OK | os.X_OK, dir_fd=fd):
            self.error = errno.EACCES


def _refusal(parent, est, entry_pinned=False):
    """The OSError the kernel's may_delete() would raise for removing an entry (stat est) from the directory
    whose _DirState is parent, as this process: read-only file system, immutable or append-only directory, no
    write and search permission on it, the sticky-bit rule, an immutable or append-only entry. None when the
    removal would be allowed."""
    code = parent.error
    if code is None and parent.sticky and hasattr(os, "geteuid"):
        euid = os.geteuid()
        if euid != 0 and euid not in (est.st_uid, parent.uid):
            code = errno.EPERM
    if code is None and entry_pinned:
        code = errno.EPERM
    return None if code is None else OSError(code, os.strerror(code))


def refusal(parent_fd, name, est):
    """The OSError the kernel would raise for unlinking the non-directory `name` (lstat est) from parent_fd as this
    process (the checks of _refusal and the entry's own immutable/append-only flag), or None: how a dry run
    predicts one unlink (remove_at's predict mode, hf_cache's check mode)."""
    return _refusal(_DirState(parent_fd, os.fstat(parent_fd)), est, _file_pinned(parent_fd, name, est))


def _file_pinned(parent_fd, name, est):
    """A regular file's own immutable/append-only flag (opened read-only without following; never a device or
    FIFO, whose open could act). False when it cannot be opened (as `lsattr` could not either)."""
    if not stat.S_ISREG(est.st_mode):
        return False
    try:
        fd = os.open(name, _O_FLAGS_READ, dir_fd=parent_fd)
    except OSError:
        return False
    try:
        return _pinned(_inode_flags(fd))
    finally:
        os.close(fd)


# ---------------------------------------------------------------------------------------------- usage

class Usage(object):
    """Disk usage of one path; `bytes` equals `du -sB1` (or `du -sxB1` with one_file_system)."""

    __slots__ = ("bytes", "files", "dirs", "newest_mtime", "last_access", "old_bytes", "old_files", "problems")

    def __init__(self):
        self.bytes = 0
        self.files = 0
        self.dirs = 0
        self.newest_mtime = None
        self.last_access = None
        self.old_bytes = None
        self.old_files = None
        self.problems = []

    def to_dict(self):
        return dict((k, getattr(self, k)) for k in self.__slots__)

    def __repr__(self):
        return "Usage(%r)" % self.to_dict()


def _usage_start(path, older_than, time_field, now):
    """(root as bytes, time getter, cutoff, an empty Usage) of usage()'s arguments; WalkError for a bad one."""
    root = _to_bytes(path)
    get_time = _time_getter(time_field)
    cutoff = _cutoff(older_than, now)
    result = Usage()
    if cutoff is not None:
        result.old_bytes = result.old_files = 0
    return root, get_time, cutoff, result


def usage(path, one_file_system=True, older_than=None, time_field="atime", now=None, parallel=True):
    """Walk path once and size it: bytes (st_blocks*512, hard links once, directories included), regular
    files, dirs, newest_mtime/last_access (over non-directories; the root's own times when it has none),
    and with older_than (seconds) old_bytes/old_files: regular files whose time_field is older than
    now - older_than. Never follows symlinks; with one_file_system, like `du -x`, a directory on another
    device is not counted or entered. Unreadable entries are listed in problems ("path: error").
    parallel: a forked child walks half of the top-level subdirectories (same result, less wall time)."""
    root, get_time, cutoff, result = _usage_start(path, older_than, time_field, now)
    try:
        parent_fd, name = _reach(root)
    except OSError as exc:
        result.problems.append("%s: %s" % (printable(root), _chain_error(root, exc)))
        return result
    try:
        _usage_at(root, parent_fd, name, one_file_system, cutoff, get_time, result, parallel)
    finally:
        os.close(parent_fd)
    return result


def usage_at(parent_fd, name, path, one_file_system=True, older_than=None, time_field="atime", now=None,
             parallel=True):
    """usage() of the entry `name` in the directory parent_fd, for a caller that already holds the parent's
    descriptor, reached without following links (root's O_NOFOLLOW chain handed to a child acting with a
    user's rights): the same walk and counts. path names the entry in problems."""
    root, get_time, cutoff, result = _usage_start(path, older_than, time_field, now)
    return _usage_at(root, parent_fd, name, one_file_system, cutoff, get_time, result, parallel)


def _usage_at(root, parent_fd, name, one_file_system, cutoff, get_time, result, parallel):
    try:
        st = os.lstat(name, dir_fd=parent_fd)
    except OSError as exc:
        result.problems.append("%s: %s" % (printable(root), _error_text(exc)))
        return result
    if not stat.S_ISDIR(st.st_mode):
        result.bytes = st.st_blocks * 512
        if stat.S_ISREG(st.st_mode):
            result.files = 1
            if cutoff is not None and get_time(st) < cutoff:
                result.old_files, result.old_bytes = 1, result.bytes
        result.newest_mtime, result.last_access = st.st_mtime, st.st_atime
        return result
    result.bytes, result.dirs = st.st_blocks * 512, 1
    _UsageWalk(root, parent_fd, name, st, one_file_system, cutoff, get_time, result).run(parallel)
    if result.newest_mtime is None:
        result.newest_mtime, result.last_access = st.st_mtime, st.st_atime
    return result


class _TreeWalk(object):
    """A descriptor walk of the directory name below parent_fd (root: its path, root_st: its lstat): what the
    usage walk and the remover both hold, and the split of the root's subdirectories with a forked child."""

    def __init__(self, root, parent_fd, name, root_st, one_file_system, cutoff, get_time, result):
        self.root = root
        self.parent_fd = parent_fd
        self.name = name
        self.root_st = root_st
        self.one_file_system = one_file_system
        self.cutoff = cutoff
        self.get_time = get_time
        self.result = result
        self.stack = _Stack(root)
        self.ancestors = set()  # (dev, ino) of the open chain: a bind-mount loop is not walked twice

    @staticmethod
    def split(root_frame, work):
        """Give every other top-level subdirectory to a forked child running work(half) below the inherited root
        fd; (handle, half), or None when there is no child (root_frame keeps them all)."""
        half = root_frame.pending[::2]
        handle = fork_call(lambda: work(half))
        if handle is None:
            return None
        root_frame.pending = root_frame.pending[1::2]
        return handle, half


class _UsageWalk(_TreeWalk):
    def __init__(self, root, parent_fd, name, root_st, one_file_system, cutoff, get_time, result):
        _TreeWalk.__init__(self, root, parent_fd, name, root_st, one_file_system, cutoff, get_time, result)
        # files with st_nlink > 1: (dev, ino) -> (blocks, is_regular, is_old), added to the totals once at the end
        self.linked = {}

    def run(self, parallel):
        """Walk the tree; with parallel, a forked child walks every other top-level subdirectory (du is
        single-threaded C; one Python process needs about 1.7x its time, two processes on two cores less)."""
        result, child = self.result, None
        try:
            fd = _open_root(self.parent_fd, self.name, self.root_st)
        except OSError as exc:
            result.problems.append("%s: %s" % (printable(self.root), _error_text(exc)))
            return
        try:
            root_frame = self.enter(self.root, fd, self.root_st)
            if parallel and root_frame is not None and len(root_frame.pending) >= 2 and can_fork():
                child = self.fork_half(root_frame)
            self.loop()
        finally:
            self.stack.close_all()
        if child is not None:
            self.join(*child)
        for blocks, regular, old in self.linked.values():
            result.bytes += blocks * 512
            if regular:
                result.files += 1
                if old:
                    result.old_files += 1
                    result.old_bytes += blocks * 512

    def loop(self):
        stack, result = self.stack, self.result
        try:
            while stack.frames:
                top = stack.frames[-1]
                if not top.pending:
                    frame = stack.pop()
                    self.ancestors.discard((frame.dev, frame.ino))
                    continue
                name, dev, ino = top.pending.pop()
                if (dev, ino) in self.ancestors:
                    result.problems.append("%s: directory loop (bind mount), not walked again"
                                           % printable(stack.path(name=name)))
                    continue
                try:
                    fd = _open_child(top.fd, name, dev, ino)
                except OSError as exc:
                    result.problems.append("%s: %s" % (printable(stack.path(name=name)), _error_text(exc)))
                    continue
                if fd is None:
                    result.problems.append("%s: changed during the walk, not entered"
                                           % printable(stack.path(name=name)))
                    continue
                self.enter(name, fd, os.fstat(fd))
        except _Moved as exc:
            result.problems.append("%s: moved during the walk; walk stopped" % printable(exc.args[0]))

    def fork_half(self, root_frame):
        """Give every other top-level subdirectory to a forked child; (handle, its names) or None."""

        def walk_half(half):  # in the child: walk `half` from the inherited root fd
            root_frame.pending = half
            self.result = Usage()
            self.result.old_bytes = self.result.old_files = 0
            self.linked = {}
            self.loop()
            r = self.result
            return (r.bytes, r.files, r.dirs, r.old_bytes, r.old_files, r.newest_mtime, r.last_access, r.problems,
                    self.linked)

        return self.split(root_frame, walk_half)

    def join(self, handle, half):
        counts = fork_result(handle)
        if counts is None:
            self.walk_names(half)  # the child failed: walk its half here
            return
        nbytes, files, dirs, old_bytes, old_files, newest_m, newest_a, problems, linked = counts
        r = self.result
        r.bytes += nbytes
        r.files += files
        r.dirs += dirs
        if r.old_bytes is not None:
            r.old_bytes += old_bytes
            r.old_files += old_files
        if newest_m is not None and (r.newest_mtime is None or newest_m > r.newest_mtime):
            r.newest_mtime = newest_m
        if newest_a is not None and (r.last_access is None or newest_a > r.last_access):
            r.last_access = newest_a
        r.problems.extend(problems)
        for key, value in linked.items():
            self.linked.setdefault(key, value)

    def walk_names(self, names):
        try:
            fd = _open_root(self.parent_fd, self.name, self.root_st)
        except OSError as exc:
            self.result.problems.append("%s: %s" % (printable(self.root), _error_text(exc)))
            return
        self.stack = _Stack(self.root)
        frame = _Frame(self.root, fd, self.root_st)
        frame.pending = list(names)
        self.stack.push(frame)
        try:
            self.loop()
        finally:
            self.stack.close_all()

    def enter(self, name, fd, st):
        """Push a directory and count everything in it; subdirectories are queued (this loop is the hot path)."""
        frame = _Frame(name, fd, st)
        self.stack.push(frame)
        self.ancestors.add((frame.dev, frame.ino))
        result, linked, cutoff, get_time = self.result, self.linked, self.cutoff, self.get_time
        root_dev = self.root_st.st_dev if self.one_file_system else None
        pending = frame.pending
        lstat, is_dir, is_reg = os.lstat, stat.S_ISDIR, stat.S_ISREG
        total = files = dirs = old_bytes = old_files = 0
        newest_m = result.newest_mtime if result.newest_mtime is not None else float("-inf")
        newest_a = result.last_access if result.last_access is not None else float("-inf")
        any_file = False
        try:
            names = os.listdir(fd)
        except OSError as exc:
            result.problems.append("%s: %s" % (printable(self.stack.path()), _error_text(exc)))
            return frame
        for entry in names:
            try:
                est = lstat(entry, dir_fd=fd)
            except OSError as exc:
                result.problems.append("%s: %s" % (printable(self.stack.path(name=entry)), _error_text(exc)))
                continue
            if is_dir(est.st_mode):
                if root_dev is not None and est.st_dev != root_dev:
                    continue  # like du -x: another filesystem's mount point is neither counted nor entered
                total += est.st_blocks
                dirs += 1
                pending.append((entry, est.st_dev, est.st_ino))
                continue
            any_file = True
            if est.st_mtime > newest_m:
                newest_m = est.st_mtime
            if est.st_atime > newest_a:
                newest_a = est.st_atime
            if est.st_nlink > 1:
                key = (est.st_dev, est.st_ino)
                if key not in linked:
                    linked[key] = (est.st_blocks, is_reg(est.st_mode),
                                   cutoff is not None and get_time(est) < cutoff)
                continue
            total += est.st_blocks
            if is_reg(est.st_mode):
                files += 1
                if cutoff is not None and get_time(est) < cutoff:
                    old_files += 1
                    old_bytes += est.st_blocks
        result.bytes += total * 512
        result.files += files
        result.dirs += dirs
        if any_file:
            result.newest_mtime, result.last_access = newest_m, newest_a
        if cutoff is not None:
            result.old_files += old_files
            result.old_bytes += old_bytes * 512
        return frame


# ---------------------------------------------------------------------------------------------- removal

class RemovalResult(object):
    """What remove_tree removed (or would remove with dry_run): bytes (st_blocks*512, hard links once),
    files (non-directories: files, symlinks, sockets...), dirs; failed: [(path, error)] capped at
    MAX_LISTED with failed_count exact; problems: notes that are not failures (other filesystems skipped)."""

    __slots__ = ("bytes", "files", "dirs", "kept", "failed", "failed_count", "problems", "root_removed")

    def __init__(self):
        self.bytes = 0
        self.files = 0
        self.dirs = 0
        self.kept = 0
        self.failed = []
        self.failed_count = 0
        self.problems = []
        self.root_removed = False

    @property
    def changed(self):
        return bool(self.files or self.dirs)

    def fail(self, path, exc_or_text):
        self.failed_count += 1
        if len(self.failed) < MAX_LISTED:
            text = exc_or_text if isinstance(exc_or_text, str) else _error_text(exc_or_text)
            self.failed.append((printable(path), text))

    def note(self, text):
        if len(self.problems) < MAX_LISTED:
            self.problems.append(text)

    def to_dict(self):
        return dict((k, getattr(self, k)) for k in self.__slots__)

    def __repr__(self):
        return "RemovalResult(%r)" % self.to_dict()


class _Keep(object):
    """keep globs: a glob with '/' matches the full path, one without matches the entry's name."""

    def __init__(self, globs):
        self.name_globs, self.path_globs = [], []
        for glob in globs or []:
            if not isinstance(glob, (str, bytes)) or not glob:
                raise WalkError("keep: every entry must be a non-empty glob, got %r" % (glob,))
            glob = _to_bytes(glob)
            (self.path_globs if b"/" in glob else self.name_globs).append(glob)

    def __bool__(self):
        return bool(self.name_globs or self.path_globs)

    __nonzero__ = __bool__

    def matches(self, name, path_fn):
        name = os.fsencode(name)
        for glob in self.name_globs:
            if fnmatch.fnmatchcase(name, glob):
                return True
        if self.path_globs:
            path = path_fn()
            for glob in self.path_globs:
                if fnmatch.fnmatchcase(path, glob):
                    return True
        return False


def remove_tree(path, one_file_system=True, keep=None, older_than=None, time_field="atime", now=None,
                dry_run=False, on_entry=None, parallel=True, expect=None, protect=None, predict=False):
    """Remove path (a file, symlink or directory tree) like `rm -rf`, safely.

    Never follows symlinks (a symlink is removed, not its target); directories are opened relative to their
    parent fd and checked, so a directory swapped for a symlink mid-run is not entered; with
    one_file_system another filesystem (including a bind mount) is not entered and its mount point stays.
    keep: globs never removed (a kept directory is not entered). older_than (seconds): only non-directories
    whose time_field is older than now - older_than are removed, and directories left empty by that (or
    empty and old themselves: by mtime when time_field is atime, since listing a directory sets its atime).
    dry_run: the same walk and decisions, nothing removed. Failures (immutable file, permission) are listed
    and the walk goes on.
    on_entry(path, st, dir_fd, name): called before each non-directory is removed and for each directory
    entered (pre-order), with the fd of its parent directory, so a caller (backup) can read it safely.
    parallel: without on_entry, a forked child removes half of the top-level subdirectories.
    expect: the (st_dev, st_ino) planned for path; anything else found there is not touched (a failure).
    protect: (st_dev, st_ino) of protected directories (and of their ancestors): never entered nor removed,
    whatever name they are reached by (a bind mount of /etc inside a residue is noted and left alone).
    predict (with dry_run): each unlink and rmdir the real run would make is checked as the kernel's may_delete()
    would check it for this process (write and search permission on the directory, the sticky-bit rule,
    immutable and append-only flags, a read-only file system); what would be refused is a failure with the
    kernel's own message and is kept, so a dry run in a user's child names the refusals the real run meets.
    path must be absolute; no component of it is followed (see the module docstring)."""
    root = _to_bytes(path)
    result = RemovalResult()
    try:
        parent_fd, name = _reach(root)
    except OSError as exc:
        if exc.errno != errno.ENOENT:
            result.fail(root, _chain_error(root, exc))
        return result
    try:
        return remove_at(parent_fd, name, root, one_file_system, keep, older_than, time_field, now, dry_run,
                         on_entry, parallel, expect, protect, result, predict)
    finally:
        os.close(parent_fd)


def remove_at(parent_fd, name, path, one_file_system=True, keep=None, older_than=None, time_field="atime",
              now=None, dry_run=False, on_entry=None, parallel=True, expect=None, protect=None, result=None,
              predict=False):
    """remove_tree of the entry `name` in the directory parent_fd, for a caller that already holds the parent's
    descriptor, reached without following links (hf_cache's plan executor; root's O_NOFOLLOW chain handed to a
    child acting with a user's rights): the same engine, checks and counts. path names the entry in messages,
    keep globs and the mount table. Returns the RemovalResult."""
    root = _to_bytes(path)
    get_time = _time_getter(time_field)
    cutoff = _cutoff(older_than, now)
    keep = _Keep(keep)
    result = RemovalResult() if result is None else result
    _remove_at(root, parent_fd, name, one_file_system, keep, cutoff, get_time, dry_run, on_entry,
               parallel, expect, result, frozenset(protect or ()), bool(dry_run and predict))
    return result


def _remove_at(root, parent_fd, name, one_file_system, keep, cutoff, get_time, dry_run, on_entry, parallel,
               expect, result, protect=frozenset(), predict=False):
    try:
        st = os.lstat(name, dir_fd=parent_fd)
    except OSError as exc:
        if exc.errno != errno.ENOENT:
            result.fail(root, exc)
        return result
    if expect is not None and (st.st_dev, st.st_ino) != tuple(expect):
        result.fail(root, "is not what was planned (another file or directory is there now); not touched")
        return result
    if stat.S_ISDIR(st.st_mode) and (st.st_dev, st.st_ino) in protect:
        result.fail(root, "is a protected directory (or holds one) under another name; not touched")
        return result
    if keep and keep.matches(os.path.basename(root.rstrip(b"/")), lambda: root):
        result.kept += 1
        return result
    if not stat.S_ISDIR(st.st_mode):
        if cutoff is not None and not get_time(st) < cutoff:
            result.kept += 1
            return result
        try:
            if predict:
                refused = refusal(parent_fd, name, st)
                if refused is not None:
                    raise refused
            if on_entry is not None:
                on_entry(root, st, parent_fd, name)
            if not dry_run:
                os.unlink(name, dir_fd=parent_fd)
            result.files += 1
            result.bytes += st.st_blocks * 512
            result.root_removed = True
        except OSError as exc:
            result.fail(root, exc)
        return result
    remover = _Remover(root, parent_fd, name, st, one_file_system, keep, cutoff, get_time, dry_run, result,
                       on_entry)
    remover.protect = protect
    remover.predict = predict
    remover.run(parallel)
    return result


class _Remover(_TreeWalk):
    def __init__(self, root, parent_fd, name, root_st, one_file_system, keep, cutoff, get_time, dry_run, result,
                 on_entry=None):
        _TreeWalk.__init__(self, root, parent_fd, name, root_st, one_file_system, cutoff, get_time, result)
        self.keep = keep
        self.get_dir_time = _TIME_GETTERS["mtime"] if get_time is _TIME_GETTERS["atime"] else get_time
        self.dry_run = dry_run
        self.on_entry = on_entry
        self.seen = {}  # (dev, ino) -> st_blocks of removed files with st_nlink > 1, counted once
        self.mounts = mount_points_under(root) if one_file_system else set()
        self.protect = frozenset()
        self.predict = False  # dry_run only: refuse what the kernel would (_refusal)

    def run(self, parallel=False):
        """Remove the tree; with parallel (and no on_entry), a forked child removes every other top-level
        subdirectory with the same fd-based walk, and the parent merges its counts before the root."""
        result, stack, child = self.result, self.stack, None
        try:
            fd = _open_root(self.parent_fd, self.name, self.root_st)
        except OSError as exc:
            if exc.errno != errno.ENOENT:  # gone since it was looked at: nothing left to remove
                result.fail(self.root, exc)
            return
        try:
            if self.on_entry is not None:
                self.on_entry(self.root, self.root_st, self.parent_fd, self.name)
            root_frame = self.enter(self.root, fd, self.root_st)
            root_frame.old = self.is_old(self.root_st)
            if parallel and self.on_entry is None and len(root_frame.pending) >= 2 and can_fork():
                child = self.fork_half(root_frame)
            while True:
                self.drain()
                if child is None:
                    break
                self.join(root_frame, *child)  # may hand the child's half back to us
                child = None
            done = stack.pop()
            while self.finish_root(done):  # the root gained entries: list it again and empty it again
                _pause_before_pass(done.passes)
                try:
                    fd = _open_root(self.parent_fd, self.name, self.root_st)
                except OSError as exc:
                    if exc.errno != errno.ENOENT:
                        result.fail(self.root, exc)
                    break
                again = self.enter(self.root, fd, self.root_st)
                again.old, again.passes = done.old, done.passes + 1
                self.drain()
                done = stack.pop()
        except _Moved as exc:
            result.fail(exc.args[0], "moved during removal; removal of this tree stopped")
        finally:
            stack.close_all()
            if child is not None:
                self.join(None, *child)

    def drain(self):
        """Process everything queued until only the root frame is left."""
        stack = self.stack
        while True:
            top = stack.frames[-1]
            if top.pending:
                self.descend(top, *top.pending.pop())
                continue
            if len(stack.frames) == 1:
                return
            done = stack.pop()
            self.ancestors.discard((done.dev, done.ino))
            self.finish_dir(stack.frames[-1], done)

    def fork_half(self, root_frame):
        def remove_half(half):  # in the child: remove `half` below the inherited root fd
            root_frame.pending, root_frame.kept, root_frame.removed_any = half, 0, False
            self.result, self.seen = RemovalResult(), {}
            try:
                self.drain()
            except _Moved as exc:
                self.result.fail(exc.args[0], "moved during removal; removal of this tree stopped")
            r = self.result
            return (r.bytes, r.files, r.dirs, r.kept, r.failed, r.failed_count, r.problems, root_frame.kept,
                    root_frame.removed_any, self.seen)

        return self.split(root_frame, remove_half)

    def join(self, root_frame, handle, half):
        counts = fork_result(handle)
        if counts is None:
            if root_frame is not None:
                root_frame.pending.extend(half)  # the child failed: what it left is done here
            return
        (nbytes, files, dirs, kept, failed, failed_count, problems, root_kept, root_removed_any,
         seen) = counts
        r = self.result
        r.bytes += nbytes
        r.files += files
        r.dirs += dirs
        r.kept += kept
        r.failed.extend(failed[:max(0, MAX_LISTED - len(r.failed))])
        r.failed_count += failed_count
        for text in problems:
            r.note(text)
        for key, blocks in seen.items():
            if key in self.seen:
                r.bytes -= blocks * 512  # a hard link both halves removed: count its blocks once
            else:
                self.seen[key] = blocks
        if root_frame is not None:
            root_frame.kept += root_kept
            root_frame.removed_any = root_frame.removed_any or root_removed_any

    def is_old(self, st):
        """A directory's own age: its atime changes whenever anyone lists it (this walk too), so use mtime."""
        return self.cutoff is not None and self.get_dir_time(st) < self.cutoff

    def enter(self, name, fd, st):
        """Push a directory, remove its non-directories now and queue its subdirectories (the hot path)."""
        frame = _Frame(name, fd, st)
        self.stack.push(frame)
        self.ancestors.add((frame.dev, frame.ino))
        if self.mounts:
            frame.mnt = mount_id(fd)
        result = self.result
        try:
            names = os.listdir(fd)  # the whole directory is read before it is changed
        except OSError as exc:
            result.fail(self.stack.path(), exc)
            frame.kept += 1
            return frame
        keep, path_of, seen, cutoff, get_time = self.keep, self.stack.path, self.seen, self.cutoff, self.get_time
        dry_run, pending, on_entry, predict = self.dry_run, frame.pending, self.on_entry, self.predict
        if predict:
            frame.state = _DirState(fd, st)
        lstat, unlink, is_dir, enoent = os.lstat, os.unlink, stat.S_ISDIR, errno.ENOENT
        total = files = kept = 0
        for entry in names:
            if keep and keep.matches(entry, lambda: path_of(name=entry)):
                kept += 1
                result.kept += 1
                continue
            try:
                est = lstat(entry, dir_fd=fd)
            except OSError as exc:
                if exc.errno != enoent:
                    result.fail(path_of(name=entry), exc)
                    kept += 1
                continue
            if is_dir(est.st_mode):
                pending.append((entry, est))
                continue
            if cutoff is not None and not get_time(est) < cutoff:
                kept += 1
                continue
            if predict:
                refused = _refusal(frame.state, est, _file_pinned(fd, entry, est))
                if refused is not None:
                    result.fail(path_of(name=entry), refused)
                    kept += 1
                    continue
            if on_entry is not None:
                on_entry(path_of(name=entry), est, fd, entry)
            if not dry_run:
                try:
                    unlink(entry, dir_fd=fd)
                except OSError as exc:
                    if exc.errno in (errno.EISDIR, errno.EPERM) and _now_dir(fd, entry, pending):
                        continue  # replaced by a directory since it was looked at: walked as one
                    if exc.errno != enoent:
                        result.fail(path_of(name=entry), exc)
                        kept += 1
                    continue
            files += 1
            if est.st_nlink > 1:
                key = (est.st_dev, est.st_ino)
                if key in seen:
                    continue
                seen[key] = est.st_blocks
            total += est.st_blocks
        frame.kept += kept
        if files:
            frame.removed_any = True
            result.files += files
            result.bytes += total * 512
        return frame

    def remove_file(self, frame, name, est):
        if self.cutoff is not None and not self.get_time(est) < self.cutoff:
            frame.kept += 1
            return
        if self.predict and frame.state is not None:
            refused = _refusal(frame.state, est)
            if refused is not None:
                self.result.fail(self.stack.path(name=name), refused)
                frame.kept += 1
                return
        if not self.dry_run:
            try:
                os.unlink(name, dir_fd=frame.fd)
            except OSError as exc:
                if exc.errno != errno.ENOENT:
                    self.result.fail(self.stack.path(name=name), exc)
                    frame.kept += 1
                return
        frame.removed_any = True
        self.result.files += 1
        if est.st_nlink > 1:
            key = (est.st_dev, est.st_ino)
            if key in self.seen:
                return
            self.seen[key] = est.st_blocks
        self.result.bytes += est.st_blocks * 512

    def descend(self, parent, name, est):
        result = self.result
        if self.one_file_system and est.st_dev != self.root_st.st_dev:
            parent.kept += 1
            result.note("%s: on another filesystem, not entered" % printable(self.stack.path(name=name)))
            return
        if (est.st_dev, est.st_ino) in self.ancestors:
            if self.ancestor_moved_here(parent, name, est):
                # not a bind mount: someone renamed this directory (out of the walk's path) and then an ancestor into
                # it. Not entered now; the ancestors' rmdirs miss their moved names and the root's rmdir finds the
                # tree still there, so the root is listed again and reaches it afresh
                return
            parent.kept += 1  # a bind mount of an ancestor (cross_filesystems): never walk in circles
            result.note("%s: directory loop (bind mount), not entered" % printable(self.stack.path(name=name)))
            return
        if (est.st_dev, est.st_ino) in self.protect:
            parent.kept += 1  # a protected directory reached by another name (a bind mount of /etc)
            result.fail(self.stack.path(name=name), "is a protected directory (or holds one) under another name; "
                        "not entered")
            return
        try:
            fd = _open_child(parent.fd, name, est.st_dev, est.st_ino)
        except OSError as exc:
            if exc.errno == errno.ENOENT:
                return
            if exc.errno in (errno.ELOOP, errno.ENOTDIR):
                # swapped for a symlink or file since listed: remove that entry itself, never its target
                try:
                    now_st = os.stat(name, dir_fd=parent.fd, follow_symlinks=False)
                except OSError:
                    return
                if not stat.S_ISDIR(now_st.st_mode):
                    self.remove_file(parent, name, now_st)
                    return
            parent.kept += 1
            result.fail(self.stack.path(name=name), exc)
            return
        if fd is None:
            # another directory has this name now (renamed in): not entered under the old identity; the parent's
            # rmdir then finds it and the parent is listed again, which looks at the newcomer from scratch
            return
        if (est.st_dev, est.st_ino) in self.mounts:
            mnt = mount_id(fd)
            if mnt is None or mnt != parent.mnt:
                os.close(fd)
                parent.kept += 1
                result.note("%s: mount point (other filesystem), not entered"
                            % printable(self.stack.path(name=name)))
                return
        if self.on_entry is not None:
            self.on_entry(self.stack.path(name=name), est, parent.fd, name)
        frame = self.enter(name, fd, est)
        frame.old = self.is_old(est)

    def ancestor_moved_here(self, parent, name, est):
        """An ancestor's identity listed below itself: True when it is the same mount (only a rename does that), or
        when the name no longer leads to that directory; False for a bind mount, or when that cannot be told."""
        try:
            fd = _open_child(parent.fd, name, est.st_dev, est.st_ino)
        except OSError:
            return True  # gone or swapped since it was listed: nothing of it to walk here
        if fd is None:
            return True  # another directory has the name now: the parent's next pass looks at it
        try:
            here = mount_id(fd)
            return here is not None and here == mount_id(parent.fd)
        finally:
            os.close(fd)

    def removable(self, frame):
        if frame.kept:
            return False
        return self.cutoff is None or frame.removed_any or frame.old

    def finish_dir(self, parent, done):
        """A subdirectory has been processed: remove it if nothing in it stays."""
        if not self.removable(done):
            parent.kept += 1
            return
        if self.predict and parent.state is not None:
            refused = _refusal(parent.state, _Owner(done), done.state is not None and done.state.pinned)
            if refused is not None:
                parent.kept += 1
                self.result.fail(self.stack.path(name=done.name), refused)
                return
        if not self.dry_run:
            try:
                os.rmdir(done.name, dir_fd=parent.fd)
            except OSError as exc:
                if exc.errno in (errno.ENOENT, errno.ENOTDIR):
                    # renamed away or removed by someone else since it was emptied: gone (if something else has
                    # the name now, the parent's own rmdir finds it and the parent is listed again)
                    return
                if exc.errno in _NOT_EMPTY and self.relist(parent, done):
                    return
                parent.kept += 1
                self.result.fail(self.stack.path(name=done.name), exc if exc.errno not in _NOT_EMPTY else
                                 "still gaining entries after %d passes; left in place" % done.passes)
                return
        parent.removed_any = True
        self.result.dirs += 1
        self.result.bytes += done.blocks * 512

    def relist(self, parent, done):
        """done gained entries after it was listed: open it again (the same directory: dev and inode checked)
        and push it to be emptied again. False when MAX_PASSES is reached; True when it is queued again or is
        no longer there under that identity (then the parent's own rmdir tells whether anything stays)."""
        if done.passes >= MAX_PASSES:
            return False
        _pause_before_pass(done.passes)
        try:
            fd = _open_child(parent.fd, done.name, done.dev, done.ino)
        except OSError as exc:
            if exc.errno not in (errno.ENOENT, errno.ELOOP, errno.ENOTDIR):
                parent.kept += 1
                self.result.fail(self.stack.path(name=done.name), exc)
            # else gone, or a symlink or file has the name now (never followed): the parent's next pass sees it
            return True
        if fd is None:
            return True  # another directory has the name now: the parent's next pass looks at it
        frame = self.enter(done.name, fd, _Ident(done))
        frame.old, frame.passes = done.old, done.passes + 1
        return True

    def finish_root(self, done):
        """Remove the emptied root. True when it gained entries since it was listed and is to be listed again."""
        if not self.removable(done):
            return False
        if self.predict:
            refused = _refusal(_DirState(self.parent_fd, os.fstat(self.parent_fd)), _Owner(done),
                               done.state is not None and done.state.pinned)
            if refused is not None:
                self.result.fail(self.root, refused)
                return False
        if not self.dry_run:
            try:
                os.rmdir(self.name, dir_fd=self.parent_fd)
            except OSError as exc:
                if exc.errno == errno.ENOENT:
                    self.result.root_removed = True  # renamed away or removed meanwhile: not there any more
                    return False
                if exc.errno in _NOT_EMPTY and done.passes < MAX_PASSES:
                    return True
                self.result.fail(self.root, exc if exc.errno not in _NOT_EMPTY else
                                 "still gaining entries after %d passes; left in place" % done.passes)
                return False
        self.result.dirs += 1
        self.result.bytes += done.blocks * 512
        self.result.root_removed = True
        return False


class _Owner(object):
    """The owner of a frame's directory, as a stat result gives it (the sticky-bit rule of _refusal)."""

    __slots__ = ("st_uid",)

    def __init__(self, frame):
        self.st_uid = frame.uid


class _Ident(object):
    """The identity fields of a frame, as a stat result would give them (to enter a directory again)."""

    __slots__ = ("st_dev", "st_ino", "st_blocks", "st_uid")

    def __init__(self, frame):
        self.st_dev, self.st_ino, self.st_blocks, self.st_uid = frame.dev, frame.ino, frame.blocks, frame.uid


def _now_dir(fd, name, pending):
    """name could not be unlinked: if it is a directory now, queue it (with its new identity) and say so."""
    try:
        st = os.lstat(name, dir_fd=fd)
    except OSError:
        return False
    if stat.S_ISDIR(st.st_mode):
        pending.append((name, st))
        return True
    return False
