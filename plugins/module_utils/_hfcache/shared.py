# -*- coding: utf-8 -*-
# Copyright: residue.purge contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""huggingface_hub 2.x's cache-wide shared blob store: reference accounting and garbage collection.

Layout (written by huggingface_hub, read here with the same rules):

    <cache>/blobs/.huggingface-shared-blobs     marker, content "1\\n"; an unmarked blobs/ is no store
    <cache>/blobs/<xx>/<xet hash>               payload (regular file), xx = the hash's first two hex digits
    <cache>/blobs/<xx>/<xet hash>.refs          manifest: one "<repo folder>/blobs/<etag>" line per repo blob
    <cache>/blobs/<xx>/<xet hash>.lock          flock taken for publishing, linking and collecting the payload
    <cache>/<repo folder>/blobs/<etag>          relative symlink to its payload

The manifest is a hint: an entry counts only while that repo blob is a symlink into the store that
resolves (lexically) to this payload. A missing or unreadable manifest keeps the payload. Links the scan
saw are counted as references too, so a payload still linked by a repo is never collected even when its
manifest forgot the link. To plan and report, the links the scan read count as checked (one pass over the
repos' blob links) and only the manifest's other entries are checked on disk; to collect, every one is.
A payload is collected under its lock, after re-reading its references; the
manifest of a payload that stays is rewritten to its live references. Bytes count as freed only when the
payload's last hard link goes.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import errno
import os
import re
import time

from ansible_collections.residue.purge.plugins.module_utils._blobs import BlobStat
from ansible_collections.residue.purge.plugins.module_utils._walk import refusal
from ansible_collections.residue.purge.plugins.module_utils._hfcache.model import (
    _IFLNK, _IFMT, _IFREG, _O_DIR, _SHARED_STORE_MARKER, _err)
from ansible_collections.residue.purge.plugins.module_utils._paths import read_all

STORE_DIR = "blobs"
LAYOUT = "1\n"
MANIFEST_SUFFIX = ".refs"
LOCK_SUFFIX = ".lock"
LOCK_TIMEOUT = 10.0  # seconds to wait for a payload's lock before keeping it (a publish holds it briefly)
_XET_HASH = re.compile(r"[0-9a-f]{64}\Z")
_PREFIX = re.compile(r"[0-9a-f]{2}\Z")
_REPO_FOLDER = re.compile(r"(?:datasets|models|spaces)--.+\Z", re.S)
_NOFOLLOW = getattr(os, "O_NOFOLLOW", 0)
_CLOEXEC = getattr(os, "O_CLOEXEC", 0)
_PROTECTED = "is a protected directory (or holds one) under another name; not entered, payloads kept"


def is_payload_name(name):
    """'xx/<64 hex>' with xx its first two digits."""
    prefix, sep, digest = name.partition("/")
    return bool(sep) and _XET_HASH.match(digest) is not None and prefix == digest[:2]


def link_payload(cache_path, repo_folder, target):
    """The payload ('xx/hash') a repo blob link's target string names, resolved lexically; else None."""
    if target.startswith("../../blobs/"):
        # what huggingface_hub writes: resolved from <cache>/<folder>/blobs/ it is <cache>/blobs/<rest>, and
        # a rest that is a payload name has no '.', '..' or empty component left to resolve
        name = target[12:]
        if is_payload_name(name):
            return name
    base = cache_path.rstrip("/")
    full = os.path.normpath(target if target.startswith("/") else "%s/%s/%s/%s" % (base, repo_folder, "blobs", target))
    store = base + "/" + STORE_DIR + "/"
    if not full.startswith(store):
        return None
    name = full[len(store):]
    return name if is_payload_name(name) else None


def manifest_entry(line):
    """A manifest line as the repo blob it names ('<folder>/blobs/<etag>'), or None where it names none."""
    if not line or line.startswith("/"):
        return None
    parts = [p for p in line.split("/") if p and p != "."]
    if ".." in parts or len(parts) != 3 or parts[1] != "blobs" or not _REPO_FOLDER.match(parts[0]):
        return None
    if "\n" in line or "\r" in line:
        return None
    return "/".join(parts)


def _sort_key(entry):
    return entry.split("/")


def is_marked(cache_path):
    """True when <cache>/blobs is a directory holding the store marker with the supported layout."""
    store = os.path.join(cache_path, STORE_DIR)
    try:
        if os.lstat(store).st_mode & _IFMT != 0o040000:
            return False
        marker = os.path.join(store, _SHARED_STORE_MARKER)
        if os.lstat(marker).st_mode & _IFMT != _IFREG:
            return False
        fd = os.open(marker, os.O_RDONLY | _NOFOLLOW | _CLOEXEC)
        try:
            return os.read(fd, 64) == LAYOUT.encode()
        finally:
            os.close(fd)
    except OSError:
        return False


class Store(object):
    """The shared store of one cache, read lazily: payload stats and validated references, each read once."""

    def __init__(self, cache_path, repos=()):
        self.cache_path = cache_path.rstrip("/") or "/"
        self.path = os.path.join(self.cache_path, STORE_DIR)
        self.marked = is_marked(self.cache_path)
        self.problems = []
        self._payloads = None
        self._stat = {}
        self._refs = {}
        # links the scan saw: payload -> set of '<folder>/blobs/<etag>'
        self.seen_links = {}
        for repo in repos:
            for etag, payload in (getattr(repo, "shared_links", None) or {}).items():
                self.seen_links.setdefault(payload, set()).add("%s/blobs/%s" % (repo.folder, etag))

    def payloads(self):
        """{name: BlobStat} of every payload in the store (empty when it is not marked)."""
        if self._payloads is not None:
            return self._payloads
        found = {}
        if self.marked:
            try:
                with os.scandir(self.path) as it:
                    prefixes = sorted(e.name for e in it if _PREFIX.match(e.name) and e.is_dir(follow_symlinks=False))
            except OSError as e:
                self.problems.append("cannot read shared store %s: %s" % (self.path, _err(e)))
                prefixes = []
            for prefix in prefixes:
                try:
                    with os.scandir(self.path + "/" + prefix) as it:
                        for entry in it:
                            if _XET_HASH.match(entry.name) is None or not entry.name.startswith(prefix):
                                continue
                            try:
                                st = entry.stat(follow_symlinks=False)
                            except OSError:
                                continue
                            if st.st_mode & _IFMT == _IFREG:
                                name = prefix + "/" + entry.name
                                found[name] = self._stat[name] = BlobStat(name, st)
                except OSError as e:
                    self.problems.append("cannot read %s/%s: %s" % (self.path, prefix, _err(e)))
        self._payloads = found
        return found

    def payload(self, name):
        """The payload's BlobStat, or None (not a regular file)."""
        if name not in self._stat:
            try:
                st = os.lstat(self.path + "/" + name)
                self._stat[name] = BlobStat(name, st) if st.st_mode & _IFMT == _IFREG else None
            except OSError:
                self._stat[name] = None
        return self._stat[name]

    def total_bytes(self):
        """Bytes of the store's payloads (huggingface_hub's physical size: each payload once)."""
        return sum(p.size for p in self.payloads().values())

    def references(self, name):
        """Live references of a payload: frozenset of repo blobs, or None when its manifest is missing or
        unreadable (the payload is then kept whatever else says). The links the scan read are taken as
        checked (it read each one and resolved it with the same rule); the manifest's other entries are
        checked on the file system, each alone."""
        if name not in self._refs:
            self._refs[name] = live_references(self.cache_path, name, None, self.seen_links.get(name, ()),
                                               seen_checked=True)
        return self._refs[name]


def _read_manifest(cache_path, name, dir_fd):
    """Lines of a payload's manifest, or None (missing, not a regular file, unreadable, not text)."""
    digest = name.split("/")[1]
    try:
        if dir_fd is None:
            fd = os.open("%s/%s/%s%s" % (cache_path, STORE_DIR, name, MANIFEST_SUFFIX),
                         os.O_RDONLY | _NOFOLLOW | _CLOEXEC | getattr(os, "O_NONBLOCK", 0))
        else:
            fd = os.open(digest + MANIFEST_SUFFIX, os.O_RDONLY | _NOFOLLOW | _CLOEXEC | getattr(os, "O_NONBLOCK", 0),
                         dir_fd=dir_fd)
    except OSError:
        return None
    try:
        if os.fstat(fd).st_mode & _IFMT != _IFREG:
            return None
        return read_all(fd).decode("utf-8").splitlines()
    except (OSError, UnicodeError):
        return None
    finally:
        os.close(fd)


def live_references(cache_path, name, dir_fd, also=(), seen_checked=False):
    """The repo blobs that are, now, symlinks into the store naming payload `name`: the manifest's entries
    plus `also` (links a scan saw), each checked on the file system. None when the manifest is missing or
    unreadable, or a candidate cannot be checked (what cannot be checked is never grounds for deletion).

    seen_checked: `also` holds links a scan has just read (readlink) and resolved to `name` by link_payload,
    the very check made here; they count as live without a second lstat + readlink each, and only the
    manifest's other entries (stale ones, links the scan did not reach) are checked. Used to plan and to
    report; collection, under the payload's lock, passes False and checks every candidate again."""
    lines = _read_manifest(cache_path, name, dir_fd)
    if lines is None:
        return None
    live = set()
    candidates = set()
    if seen_checked:
        live.update(also)
        # a line that is one of those links, written as huggingface_hub writes it, needs no parsing
        lines = [line for line in lines if line not in live]
    for line in lines:
        entry = manifest_entry(line)
        if entry is not None:
            candidates.add(entry)
    if seen_checked:
        candidates.difference_update(live)
    else:
        candidates.update(also)
    for entry in candidates:
        folder, _blobs, etag = entry.split("/")
        path = "%s/%s" % (cache_path, entry)
        try:
            st = os.lstat(path)
            if st.st_mode & _IFMT != _IFLNK:
                continue
            target = os.readlink(path)
        except OSError as e:
            if e.errno in (errno.ENOENT,):
                continue
            return None
        if link_payload(cache_path, folder, target) == name:
            live.add(entry)
    return frozenset(live)


class Tally(object):
    """Which payloads a set of removed repo blob links frees: a payload goes when every live reference is
    removed; its bytes count when its last hard link goes (hard links of one another counted once)."""

    def __init__(self, store):
        self.store = store
        self.removed = set()
        self.freed = {}  # payload name -> BlobStat
        self.groups = {}  # (dev, ino) -> how many freed payloads are that inode (hard links of one another)

    def gain(self, links, attr="size"):
        """(bytes, [payload names]) removing links (pairs (payload, '<folder>/blobs/<etag>')) would add.
        attr: 'size' (huggingface_hub's accounting) or 'disk' (allocated bytes, du's)."""
        removing = set(entry for _p, entry in links)  # (not copied into self.removed: that grows per repo)
        removed = self.removed
        names = []
        for payload in sorted(set(p for p, _e in links)):
            if payload in self.freed:
                continue
            refs = self.store.references(payload)
            if refs is None or not all(r in removing or r in removed for r in refs):
                continue
            if self.store.payload(payload) is None:
                continue
            names.append(payload)
        return self._bytes(names, attr), names

    def _bytes(self, names, attr="size"):
        new = {}  # (dev, ino) -> the payloads of names that are that inode, in order
        for name in names:
            p = self.store.payload(name)
            new.setdefault(p.key, []).append(p)
        total = 0
        for key, members in new.items():
            last = members[-1]
            # one payload of a hard-link group carries its bytes: the group's last, once all its links go
            if self.groups.get(key, 0) + len(members) >= last.nlink:
                total += getattr(last, attr)
        return total

    def add(self, links, attr="size"):
        gained, names = self.gain(links, attr)
        self.removed.update(entry for _p, entry in links)
        for name in names:
            p = self.freed[name] = self.store.payload(name)
            self.groups[p.key] = self.groups.get(p.key, 0) + 1
        return gained, names

    def orphans(self):
        """Payloads no live reference names (a readable manifest, nothing live): what `hf cache prune` sweeps."""
        out = []
        for name in sorted(self.store.payloads()):
            if name in self.freed:
                continue
            refs = self.store.references(name)
            if refs is not None and not refs:
                out.append(name)
        return out


# ------------------------------------------------------------------------------------------ collection

def _open_lock(prefix_fd, digest):
    """huggingface_hub's payload lock file: created if missing (0666, never through a link), opened."""
    fd = os.open(digest + LOCK_SUFFIX, os.O_WRONLY | os.O_CREAT | _NOFOLLOW | _CLOEXEC, 0o666, dir_fd=prefix_fd)
    try:
        if os.fstat(fd).st_mode & _IFMT != _IFREG:
            raise OSError(errno.EINVAL, "lock is not a regular file")
        try:
            os.fchmod(fd, 0o666)
        except OSError:
            pass
    except OSError:
        os.close(fd)
        raise
    return fd


def _take(fd, timeout):
    import fcntl
    deadline = time.time() + timeout
    while True:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            return True
        except (IOError, OSError) as e:
            if e.errno not in (errno.EAGAIN, errno.EACCES, errno.EWOULDBLOCK):
                raise
        if time.time() >= deadline:
            return False
        time.sleep(0.05)


def _rewrite_manifest(prefix_fd, digest, refs):
    tmp = "%s%s.%s.tmp" % (digest, MANIFEST_SUFFIX, os.urandom(4).hex())
    data = "".join("%s\n" % entry for entry in sorted(refs, key=_sort_key)).encode("utf-8")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | _NOFOLLOW | _CLOEXEC, 0o666, dir_fd=prefix_fd)
    try:
        try:
            os.fchmod(fd, 0o666)
            view = memoryview(data)
            while view:
                view = view[os.write(fd, view):]
            os.fsync(fd)
        finally:
            os.close(fd)
        os.replace(tmp, digest + MANIFEST_SUFFIX, src_dir_fd=prefix_fd, dst_dir_fd=prefix_fd)
    finally:
        try:
            os.unlink(tmp, dir_fd=prefix_fd)
        except OSError:
            pass


def _protected(fd, protect):
    if protect:
        st = os.fstat(fd)
        return (st.st_dev, st.st_ino) in protect
    return False


def collect(cache_path, root_fd, names, seen_links, lock_timeout=None, protect=frozenset(), dry_run=False):
    """Collect payloads `names` of the store below root_fd (the cache dir) that no live reference names.

    Each payload: its lock taken, references read again, then either kept (manifest missing/unreadable,
    or still referenced: manifest rewritten to the live references) or removed with its manifest.
    protect: (st_dev, st_ino) of protected directories: a store or prefix directory that is one (a bind mount)
    is not entered, its payloads kept and named.
    dry_run (check mode): names are the payloads the plan frees; no lock is taken, nothing is written, and each
    payload's unlink is checked as the kernel would check it for this process (_walk.refusal): a refusal is a
    failure and the payload counts as kept, as in the real run.
    Returns (freed [(name, bytes)], failures, kept [names], busy [names whose lock another process held]).
    """
    freed, problems, kept, busy = [], [], [], []
    try:
        store_fd = os.open(STORE_DIR, _O_DIR, dir_fd=root_fd)
    except OSError as e:
        return freed, ["%s/%s: %s" % (cache_path, STORE_DIR, _err(e))], list(names), busy
    if _protected(store_fd, protect):
        os.close(store_fd)
        return freed, ["%s/%s: %s" % (cache_path, STORE_DIR, _PROTECTED)], list(names), busy
    try:
        for name in sorted(names):
            prefix, digest = name.split("/")
            path = "%s/%s/%s" % (cache_path, STORE_DIR, name)
            try:
                prefix_fd = os.open(prefix, _O_DIR, dir_fd=store_fd)
            except OSError as e:
                problems.append("%s: %s" % (path, _err(e)))
                kept.append(name)
                continue
            if _protected(prefix_fd, protect):
                os.close(prefix_fd)
                problems.append("%s/%s/%s: %s" % (cache_path, STORE_DIR, prefix, _PROTECTED))
                kept.append(name)
                continue
            if dry_run:
                try:
                    st = os.stat(digest, dir_fd=prefix_fd, follow_symlinks=False)
                    if st.st_mode & _IFMT != _IFREG:
                        kept.append(name)
                        continue
                    refused = refusal(prefix_fd, digest, st)
                    if refused is not None:
                        raise refused
                    freed.append((name, st.st_size if st.st_nlink <= 1 else 0))
                except OSError as e:
                    if e.errno != errno.ENOENT:
                        problems.append("%s: %s" % (path, _err(e)))
                    kept.append(name)
                finally:
                    os.close(prefix_fd)
                continue
            try:
                try:
                    lock_fd = _open_lock(prefix_fd, digest)
                except OSError as e:
                    problems.append("%s%s: %s, payload kept" % (path, LOCK_SUFFIX, _err(e)))
                    kept.append(name)
                    continue
                try:
                    if not _take(lock_fd, LOCK_TIMEOUT if lock_timeout is None else lock_timeout):
                        kept.append(name)
                        busy.append(name)
                        continue
                    refs = live_references(cache_path, name, prefix_fd, seen_links.get(name, ()))
                    if refs is None:
                        kept.append(name)
                        continue
                    if refs:
                        _rewrite_manifest(prefix_fd, digest, refs)
                        kept.append(name)
                        continue
                    try:
                        st = os.stat(digest, dir_fd=prefix_fd, follow_symlinks=False)
                    except OSError as e:
                        if e.errno != errno.ENOENT:
                            problems.append("%s: %s" % (path, _err(e)))
                        kept.append(name)
                        continue
                    if st.st_mode & _IFMT != _IFREG:
                        kept.append(name)
                        continue
                    os.unlink(digest, dir_fd=prefix_fd)
                    try:
                        os.unlink(digest + MANIFEST_SUFFIX, dir_fd=prefix_fd)
                    except OSError as e:
                        if e.errno != errno.ENOENT:
                            problems.append("%s%s: %s" % (path, MANIFEST_SUFFIX, _err(e)))
                    freed.append((name, st.st_size if st.st_nlink <= 1 else 0))
                except OSError as e:
                    problems.append("%s: %s" % (path, _err(e)))
                    kept.append(name)
                finally:
                    os.close(lock_fd)  # releases the lock
            finally:
                os.close(prefix_fd)
    finally:
        os.close(store_fd)
    return freed, problems, kept, busy


def collect_plan(plan, root_fd, done, protect=frozenset(), dry_run=False):
    """After a plan's repos in `done` were deleted: collect the store payloads their links named, and the
    planned orphans; then account what really went (each payload to the first repo of `done` naming it).
    dry_run: the payloads the plan frees, each unlink predicted (collect(dry_run=True)), accounted the same way.
    Returns the failures (a payload that could not be checked is kept); a busy lock is a store problem."""
    store = plan.store
    if store is None:
        return []
    if dry_run:  # nothing was deleted: the plan's own reckoning of what goes
        touched = set(name for rp in done for name in rp.payloads)
    else:
        touched = set(name for rp in done for name, _entry in rp.store_links())
    touched.update(name for name, _size in plan.orphans)
    if not touched:
        return []
    freed, failures, _kept, busy = collect(plan.cache.path.rstrip("/"), root_fd, touched, store.seen_links,
                                           protect=protect, dry_run=dry_run)
    store.problems.extend("%s/%s%s is held by another process (a download publishing it?): payload kept" % (
        store.path, name, LOCK_SUFFIX) for name in busy)
    gone = dict(freed)
    for rp in done:
        names = []
        for name, _entry in rp.store_links():
            if name in gone and name not in names:
                names.append(name)
        rp.payloads = names
        rp.store_bytes = sum(gone.pop(name) for name in names)
        rp.freed_bytes = rp.local_bytes + rp.store_bytes
    plan.orphans = [(name, gone.pop(name)) for name, _size in plan.orphans if name in gone]
    return failures
