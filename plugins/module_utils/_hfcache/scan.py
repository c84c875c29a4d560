# -*- coding: utf-8 -*-
# Copyright: residue.purge contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Hugging Face hub cache scanner: one pass per repo, never following a link (see model.py)."""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import os
import stat

from ansible_collections.residue.purge.plugins.module_utils._hfcache.model import (
    _IFDIR, _IFLNK, _IFMT, _IFREG, _O_DIR, _O_FILE, _ROOT_NON_REPOS, _SHARED_STORE_MARKER, HFCache, HFRepo,
    HFRevision, IGNORED_NAMES, INCOMPLETE_SUFFIX, MAX_PROBLEMS_PER_REPO, RepoLayout, _err, parse_repo_folder)
from ansible_collections.residue.purge.plugins.module_utils._hfcache.shared import link_payload
from ansible_collections.residue.purge.plugins.module_utils._fork import can_fork, fork_call, fork_result


class _Tally(object):
    """du-style accounting of one repo dir: allocated bytes, regular files, newest mtime."""

    __slots__ = ("disk", "files", "newest", "seen", "dev", "one_fs", "problems")

    def __init__(self, dev, one_fs, problems):
        self.disk = 0
        self.files = 0
        self.newest = 0.0
        self.seen = set()  # (dev, ino) of multiply-linked files: hard links count once, like du
        self.dev = dev
        self.one_fs = one_fs
        self.problems = problems

    def add(self, st):
        mode = st.st_mode
        if st.st_nlink > 1 and mode & _IFMT != _IFDIR:
            key = (st.st_dev, st.st_ino)
            if key in self.seen:
                return
            self.seen.add(key)
        self.disk += st.st_blocks * 512
        if mode & _IFMT == _IFREG:
            self.files += 1
        if st.st_mtime > self.newest:
            self.newest = st.st_mtime


class _Snap(object):
    """What one snapshot dir holds: blob names its links point to, and files copied into it."""

    __slots__ = ("names", "copy_bytes", "copy_count", "copy_mtime", "copy_atime", "files")

    def __init__(self):
        self.names = set()
        self.copy_bytes = 0
        self.copy_count = 0
        self.copy_mtime = 0.0
        self.copy_atime = 0.0
        self.files = 0


def _walk(tally, top, blob_stats=None, on_other=None):
    """Account every entry below top (never top itself, never through a link), one fstatat each.

    With blob_stats, regular files directly in top are blobs: name -> (size, mtime, atime).
    on_other(dirpath, name, st, dir_fd) is called for any other non-directory entry.
    """
    problems = tally.problems
    seen = tally.seen
    dev = tally.dev
    one_fs = tally.one_fs
    blocks = files = 0
    newest = tally.newest
    ifmt, ifdir, ifreg = _IFMT, _IFDIR, _IFREG
    suffix = INCOMPLETE_SUFFIX
    stack = [top]
    while stack:
        current = stack.pop()
        try:
            fd = os.open(current, _O_DIR)
        except OSError as e:
            problems.append("cannot read %s: %s" % (current, _err(e)))
            continue
        blobs = blob_stats if current == top else None
        try:
            with os.scandir(fd) as it:
                for entry in it:
                    try:
                        st = entry.stat(follow_symlinks=False)
                    except OSError as e:
                        problems.append("cannot stat %s/%s: %s" % (current, entry.name, _err(e)))
                        continue
                    mode = st.st_mode & ifmt
                    if mode == ifdir:
                        if one_fs and st.st_dev != dev:
                            problems.append("not crossing into another file system: %s/%s" % (current, entry.name))
                            continue
                        stack.append(current + "/" + entry.name)
                    elif st.st_nlink > 1:
                        key = (st.st_dev, st.st_ino)
                        if key in seen:
                            continue
                        seen.add(key)
                    blocks += st.st_blocks
                    mtime = st.st_mtime
                    if mtime > newest:
                        newest = mtime
                    if mode == ifdir:
                        continue
                    if mode == ifreg:
                        files += 1
                        if blobs is not None and not entry.name.endswith(suffix):
                            blobs[entry.name] = (st.st_size, mtime, st.st_atime)
                            continue
                    if on_other is not None:
                        on_other(current, entry.name, st, fd)
        except OSError as e:
            problems.append("cannot read %s: %s" % (current, _err(e)))
        finally:
            os.close(fd)
    tally.disk += blocks * 512
    tally.files += files
    tally.newest = newest


def _walk_snapshot(tally, top, blobs_dir, blob_stats, snap):
    """_walk for one snapshot dir: links resolved lexically to blob names, regular files are copies.

    Written out flat with locals: it runs once per file of caches with millions of them.
    """
    problems = tally.problems
    seen = tally.seen
    dev = tally.dev
    one_fs = tally.one_fs
    blocks = 0
    files = regular = 0
    newest = tally.newest
    names = snap.names
    add_name = names.add
    copy_bytes = copy_count = 0
    copy_mtime = copy_atime = 0.0
    readlink = os.readlink
    blocks_by_length = {}
    ifmt, ifdir, ifreg = _IFMT, _IFDIR, _IFREG
    stack = [(top, "../../blobs/")]  # (dir, the link prefix that reaches blobs/ from it)
    while stack:
        current, prefix = stack.pop()
        plen = len(prefix)
        try:
            fd = os.open(current, _O_DIR)
            dir_dev = os.fstat(fd).st_dev
        except OSError as e:
            problems.append("cannot read %s: %s" % (current, _err(e)))
            continue
        try:
            with os.scandir(fd) as it:
                for entry in it:
                    if entry.is_symlink():
                        # Snapshot links are most of a cache. A link's allocation depends only on its
                        # target's length on a given file system, so one lstat per length and dir
                        # device is enough; it saves a syscall per link (du's numbers, checked in tests).
                        try:
                            target = readlink(entry.name, dir_fd=fd)
                            key = (len(target), dir_dev)
                            link_blocks = blocks_by_length.get(key)
                            if link_blocks is None:
                                link_blocks = blocks_by_length[key] = entry.stat(follow_symlinks=False).st_blocks
                        except OSError as e:
                            problems.append("cannot read link %s/%s: %s" % (current, entry.name, _err(e)))
                            continue
                        blocks += link_blocks
                        files += 1
                        name = target[plen:]
                        # blob names are dir entries (no "/", never "." or ".."), so this test is exact
                        if name in blob_stats and target.startswith(prefix):
                            add_name(name)
                            continue
                        full = os.path.normpath(os.path.join(current, target))
                        name = os.path.basename(full)
                        if os.path.dirname(full) != blobs_dir:
                            problems.append("snapshot link points outside blobs/: %s/%s -> %s" % (
                                current, entry.name, target))
                        elif name not in blob_stats:
                            problems.append("broken snapshot link (blob missing): %s/%s" % (current, entry.name))
                        else:
                            add_name(name)
                        continue
                    try:
                        st = entry.stat(follow_symlinks=False)
                    except OSError as e:
                        problems.append("cannot stat %s/%s: %s" % (current, entry.name, _err(e)))
                        continue
                    mode = st.st_mode & ifmt
                    if mode == ifdir:
                        if one_fs and st.st_dev != dev:
                            problems.append("not crossing into another file system: %s/%s" % (current, entry.name))
                            continue
                        blocks += st.st_blocks
                        if st.st_mtime > newest:
                            newest = st.st_mtime
                        stack.append((current + "/" + entry.name, "../" + prefix))
                        continue
                    if st.st_nlink > 1:
                        key = (st.st_dev, st.st_ino)
                        if key in seen:
                            continue
                        seen.add(key)
                    blocks += st.st_blocks
                    if st.st_mtime > newest:
                        newest = st.st_mtime
                    if mode == ifreg:
                        # a copy instead of a link (Windows, file systems without symlinks): its own blob
                        files += 1
                        regular += 1
                        copy_bytes += st.st_size
                        copy_count += 1
                        if st.st_mtime > copy_mtime:
                            copy_mtime = st.st_mtime
                        if st.st_atime > copy_atime:
                            copy_atime = st.st_atime
        except OSError as e:
            problems.append("cannot read %s: %s" % (current, _err(e)))
        finally:
            os.close(fd)
    tally.disk += blocks * 512
    tally.files += regular
    tally.newest = newest
    snap.files = files
    snap.copy_bytes = copy_bytes
    snap.copy_count = copy_count
    snap.copy_mtime = copy_mtime
    snap.copy_atime = copy_atime


def _blob_totals(blob_stats, names):
    """(sum of sizes, newest mtime, newest atime) of the named blobs, computed in C loops."""
    if not names:
        return 0, 0.0, 0.0
    sizes, mtimes, atimes = zip(*map(blob_stats.__getitem__, names))
    return sum(sizes), max(mtimes), max(atimes)


def _within(path, root):
    return path == root or path.startswith(root.rstrip(os.sep) + os.sep)


def scan_repo(repo_path, one_file_system=True, detail=False, cache_root=None, dev=None, link_targets=None):
    """Scan one repo dir. Returns HFRepo, or (HFRepo, RepoLayout) when detail is true.

    link_targets: a dict shared by the repos of one cache scan, target path -> its lstat (or None): a shared
    store payload linked by several repo blobs is stat'ed once per scan, not once per link.

    Never raises for a broken repo: what huggingface_hub would call a CorruptedCacheException
    lands in repo.problems and the repo is still returned (so it can be reported or removed).
    """
    repo_path = os.path.normpath(repo_path)
    parsed = parse_repo_folder(os.path.basename(repo_path))
    repo_type, repo_id = parsed if parsed else ("unknown", os.path.basename(repo_path))
    repo = HFRepo(repo_id, repo_type, repo_path)
    layout = RepoLayout()
    problems = repo.problems
    try:
        top = os.lstat(repo_path)
    except OSError as e:
        problems.append("cannot stat %s: %s" % (repo_path, _err(e)))
        return (repo, layout) if detail else repo
    if top.st_mode & _IFMT != _IFDIR:
        problems.append("%s is not a directory" % repo_path)
        return (repo, layout) if detail else repo
    if parsed is None:
        problems.append("not a hub repo folder name: %s" % repo_path)
    tally = _Tally(dev if dev is not None else top.st_dev, one_file_system, problems)
    tally.add(top)
    cache_root = cache_root or os.path.dirname(repo_path)
    blobs_dir = repo_path + "/blobs"
    blob_stats = {}  # name -> (size, mtime, atime); only for this repo, dropped on return

    def on_blob(dirpath, name, st, dir_fd):
        mode = st.st_mode & _IFMT
        if dirpath != blobs_dir:
            return
        if name.endswith(INCOMPLETE_SUFFIX):
            repo.incomplete.append((name, st.st_size, st.st_mtime))
        elif mode == _IFLNK:
            # huggingface_hub 2.x's shared store: blobs/<etag> -> ../../blobs/xx/<hash> (see shared.py)
            raw = os.readlink(name, dir_fd=dir_fd)
            target = os.path.normpath(os.path.join(dirpath, raw))
            payload = link_payload(cache_root, repo.folder, raw)
            if payload is not None:
                repo.shared_links[name] = payload
            if link_targets is not None and target in link_targets:
                found = link_targets[target]
            else:
                try:
                    tst = os.lstat(target) if _within(target, cache_root) else None
                except OSError:
                    tst = None
                found = (tst.st_size, tst.st_mtime, tst.st_atime) if (
                    tst is not None and tst.st_mode & _IFMT == _IFREG) else None
                if link_targets is not None:
                    link_targets[target] = found
            if found is not None:
                blob_stats[name] = found
            else:
                problems.append("blob link leads nowhere usable: %s/%s" % (dirpath, name))

    entries = {}
    try:
        with os.scandir(repo_path) as it:
            for entry in it:
                try:
                    entries[entry.name] = entry.stat(follow_symlinks=False)
                except OSError as e:
                    problems.append("cannot stat %s: %s" % (entry.path, _err(e)))
    except OSError as e:
        problems.append("cannot read %s: %s" % (repo_path, _err(e)))

    def top_dir(name):
        st = entries.pop(name, None)
        if st is None:
            return None
        tally.add(st)
        path = repo_path + "/" + name
        if st.st_mode & _IFMT != _IFDIR:
            problems.append("%s is not a directory" % path)
            return None
        if one_file_system and st.st_dev != tally.dev:
            problems.append("not crossing into another file system: %s" % path)
            return None
        return path

    if top_dir("blobs"):
        _walk(tally, blobs_dir, blob_stats=blob_stats, on_other=on_blob)

    # refs: refs/main, refs/refs/pr/1 ... each holding a commit hash
    refs_by_commit = {}
    refs_dir = top_dir("refs")
    if refs_dir:
        def on_ref(dirpath, name, st, dir_fd):
            path = dirpath + "/" + name
            if st.st_mode & _IFMT != _IFREG:
                problems.append("ref is not a regular file: %s" % path)
                return
            if name in IGNORED_NAMES:
                return
            try:
                fd = os.open(name, _O_FILE, dir_fd=dir_fd)
                try:
                    commit = os.read(fd, 4096).decode("utf-8", "replace").strip()
                finally:
                    os.close(fd)
            except OSError as e:
                problems.append("cannot read ref %s: %s" % (path, _err(e)))
                return
            ref = os.path.relpath(path, refs_dir).replace(os.sep, "/")
            refs_by_commit.setdefault(commit, []).append(ref)
        _walk(tally, refs_dir, on_other=on_ref)

    referenced = set()
    copies = _Snap()  # totals over all snapshots of files copied instead of linked
    snapshots_dir = top_dir("snapshots")
    if snapshots_dir is None:
        problems.append("no snapshots dir in %s" % repo_path)
    else:
        commits = []
        try:
            with os.scandir(snapshots_dir) as it:
                for centry in it:
                    try:
                        commits.append((centry.name, centry.stat(follow_symlinks=False)))
                    except OSError as e:
                        problems.append("cannot stat %s: %s" % (centry.path, _err(e)))
        except OSError as e:
            problems.append("cannot read %s: %s" % (snapshots_dir, _err(e)))
        for commit, cst in sorted(commits):
            path = snapshots_dir + "/" + commit
            tally.add(cst)
            if cst.st_mode & _IFMT != _IFDIR:
                if commit not in IGNORED_NAMES:
                    problems.append("not a snapshot dir: %s" % path)
                continue
            if one_file_system and cst.st_dev != tally.dev:
                problems.append("not crossing into another file system: %s" % path)
                continue
            rev = HFRevision(commit, path)
            snap = _Snap()
            _walk_snapshot(tally, path, blobs_dir, blob_stats, snap)
            rev.files = snap.files
            size, mtime, atime = _blob_totals(blob_stats, snap.names)
            rev.bytes = snap.copy_bytes + size
            if snap.names or snap.copy_count:
                rev.last_modified = max(mtime, snap.copy_mtime)
                rev.last_access = max(atime, snap.copy_atime)
            else:
                rev.last_modified, rev.last_access = cst.st_mtime, cst.st_atime
            rev.refs = sorted(refs_by_commit.pop(commit, []))
            repo.revisions.append(rev)
            referenced |= snap.names
            copies.copy_bytes += snap.copy_bytes
            copies.copy_count += snap.copy_count
            copies.copy_mtime = max(copies.copy_mtime, snap.copy_mtime)
            copies.copy_atime = max(copies.copy_atime, snap.copy_atime)
            if detail:
                layout.revision_blobs[commit] = snap.names
                layout.revision_copy_bytes[commit] = snap.copy_bytes

    # everything else in the repo dir (.no_exist, stray files) only counts for du
    for name in sorted(entries):
        st = entries[name]
        if st.st_mode & _IFMT == _IFDIR and one_file_system and st.st_dev != tally.dev:
            problems.append("not crossing into another file system: %s/%s" % (repo_path, name))
            continue
        tally.add(st)
        if st.st_mode & _IFMT == _IFDIR:
            _walk(tally, repo_path + "/" + name)

    for commit, refs in sorted(refs_by_commit.items()):
        for ref in sorted(refs):
            repo.dangling_refs.append((ref, commit))
            problems.append("ref %s of %s points to a missing snapshot %s" % (ref, repo_path, commit))

    size, mtime, atime = _blob_totals(blob_stats, referenced)
    repo.blob_bytes = copies.copy_bytes + size
    if repo.shared_links:
        linked = [n for n in referenced if n in repo.shared_links and n in blob_stats]
        repo.shared_bytes = sum(blob_stats[n][0] for n in linked)
    repo.blob_count = len(referenced) + copies.copy_count
    if repo.blob_count:
        repo.last_modified = max(mtime, copies.copy_mtime)
        repo.last_access = max(atime, copies.copy_atime)
    else:
        repo.last_modified, repo.last_access = top.st_mtime, top.st_atime
    if len(problems) > MAX_PROBLEMS_PER_REPO:
        # output size must not grow with the number of broken files
        more = len(problems) - MAX_PROBLEMS_PER_REPO
        del problems[MAX_PROBLEMS_PER_REPO:]
        problems.append("... and %d more problems in %s" % (more, repo_path))
    repo.disk_bytes = tally.disk
    repo.files = tally.files
    repo.newest_mtime = tally.newest
    if detail:
        layout.blob_sizes = dict((n, v[0]) for n, v in blob_stats.items())
        layout.orphan_blobs = set(blob_stats) - referenced
        layout.shared = dict(repo.shared_links)
        return repo, layout
    return repo


def scan_cache(cache_dir, one_file_system=True, parallel=True):
    """Scan a hub cache dir: every repo in it, with sizes and problems. Never raises for cache content.

    parallel: a forked child scans every other repo (same result, about half the wall time on two cores)."""
    cache = HFCache(os.path.abspath(cache_dir))
    try:
        root = os.stat(cache.path)  # the cache dir itself may be a link (HF_HOME -> /data/hf)
    except OSError as e:
        cache.problems.append("cannot stat cache %s: %s" % (cache.path, _err(e)))
        return cache
    if not stat.S_ISDIR(root.st_mode):
        cache.problems.append("cache %s is not a directory" % cache.path)
        return cache
    cache.dev = root.st_dev
    try:
        with os.scandir(cache.path) as it:
            entries = sorted(it, key=lambda e: e.name)
    except OSError as e:
        cache.problems.append("cannot read cache %s: %s" % (cache.path, _err(e)))
        return cache
    folders = []
    for entry in entries:
        name = entry.name
        if name in _ROOT_NON_REPOS or name in IGNORED_NAMES:
            continue
        if name == "blobs" and os.path.exists(os.path.join(entry.path, _SHARED_STORE_MARKER)):
            continue
        if parse_repo_folder(name) is None or not entry.is_dir(follow_symlinks=False):
            cache.problems.append("not a hub repo: %s" % entry.path)
            continue
        folders.append(entry.path)

    def scan(paths):
        link_targets = {}
        return [scan_repo(path, one_file_system=one_file_system, cache_root=cache.path,
                          dev=cache.dev if one_file_system else None, link_targets=link_targets) for path in paths]

    if parallel and len(folders) >= _PARALLEL_MIN_REPOS and can_fork():
        repos = _scan_in_two(folders, scan)
    else:
        repos = scan(folders)
    for repo in repos:
        cache.repos.append(repo)
        cache.problems.extend(repo.problems)
    return cache


_PARALLEL_MIN_REPOS = 16  # below this a fork costs more than it saves


def _scan_in_two(folders, scan):
    """scan(folders) with every other folder scanned by a forked child; the parent redoes the child's share
    itself if the child fails for any reason, so the result never depends on the fork."""
    theirs_paths = folders[1::2]
    handle = fork_call(lambda: scan(theirs_paths))
    mine = scan(folders[0::2])
    theirs = fork_result(handle) if handle is not None else None
    if theirs is None or len(theirs) != len(theirs_paths):
        theirs = scan(theirs_paths)
    merged = []
    for i in range(len(folders)):
        merged.append(mine[i // 2] if i % 2 == 0 else theirs[i // 2])
    return merged
