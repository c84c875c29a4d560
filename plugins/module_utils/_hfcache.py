# -*- coding: utf-8 -*-
# Copyright: residue.purge contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Hugging Face hub cache model: a fast scanner, blob reference counts, locks, deletion plans.

The scanner walks a cache once with os.scandir/lstat and never follows a symlink: a snapshot
link is resolved lexically (its target string joined to the link's directory) and confirmed by
the blob's name under the repo's blobs/ dir, whose sizes were read in the same pass. It keeps no
object per file: per repo it holds the blob table only while that repo is scanned.

Sizes follow huggingface_hub's accounting (size_on_disk = sum of the unique blob sizes a
revision or repo points to) and, separately, du's (allocated blocks, hard links once).
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import errno
import fnmatch
import os
import stat
import time

from ansible_collections.residue.purge.plugins.module_utils._walk import _can_fork, fork_call, fork_result

REPO_TYPES = {"models": "model", "datasets": "dataset", "spaces": "space"}
REPO_PREFIXES = dict((v, k) for k, v in REPO_TYPES.items())
# OS helper files that huggingface_hub ignores too.
IGNORED_NAMES = frozenset((".DS_Store", "Thumbs.db", "desktop.ini"))
# Entries of a cache root that are not repos and are no problem either.
_ROOT_NON_REPOS = frozenset((".locks", "CACHEDIR.TAG", "version.txt", "version_diffusers_cache.txt"))
_SHARED_STORE_MARKER = ".huggingface-shared-blobs"
INCOMPLETE_SUFFIX = ".incomplete"
MAX_PROBLEMS_PER_REPO = 20
MAX_LISTED_FAILURES = 50


class HFRevision(object):
    """One snapshot: commit hash, the refs naming it, its size by huggingface_hub's accounting."""

    __slots__ = ("commit", "refs", "bytes", "last_modified", "last_access", "files", "path")

    def __init__(self, commit, path):
        self.commit = commit
        self.path = path
        self.refs = []
        self.bytes = 0
        self.last_modified = 0.0
        self.last_access = 0.0
        self.files = 0

    def to_dict(self):
        return dict((k, getattr(self, k)) for k in self.__slots__)


class HFRepo(object):
    """One models--org--name (datasets--, spaces--) directory of a hub cache."""

    __slots__ = ("repo_id", "repo_type", "path", "folder", "blob_bytes", "blob_count", "disk_bytes", "files",
                 "newest_mtime", "last_modified", "last_access", "revisions", "dangling_refs", "incomplete",
                 "problems")

    def __init__(self, repo_id, repo_type, path):
        self.repo_id = repo_id
        self.repo_type = repo_type
        self.path = path
        self.folder = os.path.basename(path)
        self.blob_bytes = 0
        self.blob_count = 0
        self.disk_bytes = 0
        self.files = 0
        self.newest_mtime = 0.0
        self.last_modified = 0.0
        self.last_access = 0.0
        self.revisions = []
        self.dangling_refs = []  # (ref name, commit) for refs whose snapshot is missing
        self.incomplete = []  # (file name, size, mtime) of blobs/*.incomplete
        self.problems = []

    def to_dict(self):
        out = dict((k, getattr(self, k)) for k in self.__slots__ if k != "revisions")
        out["revisions"] = [r.to_dict() for r in self.revisions]
        out["dangling_refs"] = [list(x) for x in self.dangling_refs]
        out["incomplete"] = [list(x) for x in self.incomplete]
        return out


class HFCache(object):
    """A scanned hub cache: its repos, and what was wrong with it (never raised, always listed)."""

    __slots__ = ("path", "repos", "problems", "locks_path", "dev")

    def __init__(self, path):
        self.path = path
        self.repos = []
        self.problems = []
        self.locks_path = os.path.join(path, ".locks")
        self.dev = None

    @property
    def blob_bytes(self):
        return sum(r.blob_bytes for r in self.repos)

    def to_dict(self):
        return {"path": self.path, "repos": [r.to_dict() for r in self.repos], "problems": list(self.problems),
                "blob_bytes": self.blob_bytes}


class RepoLayout(object):
    """Which blobs each revision of one repo points to: what a deletion plan needs, built on demand."""

    __slots__ = ("blob_sizes", "revision_blobs", "revision_copy_bytes", "orphan_blobs")

    def __init__(self):
        self.blob_sizes = {}  # blob name -> size (regular files in blobs/, not *.incomplete)
        self.revision_blobs = {}  # commit -> set of blob names its links point to
        self.revision_copy_bytes = {}  # commit -> bytes of regular files copied into the snapshot
        self.orphan_blobs = set()


def parse_repo_folder(name):
    """'models--org--name' -> ('model', 'org/name'); None when the name is no repo folder."""
    prefix, sep, rest = name.partition("--")
    if not sep or not rest or prefix not in REPO_TYPES:
        return None
    return REPO_TYPES[prefix], rest.replace("--", "/")


def repo_folder(repo_type, repo_id):
    """('model', 'org/name') -> 'models--org--name', as huggingface_hub names it."""
    return "%s--%s" % (REPO_PREFIXES[repo_type], repo_id.replace("/", "--"))


def is_hub_cache(path):
    """True when path is a directory holding at least one models--/datasets--/spaces-- directory."""
    try:
        with os.scandir(path) as it:
            for entry in it:
                if parse_repo_folder(entry.name) and entry.is_dir(follow_symlinks=False):
                    return True
    except OSError:
        return False
    return False


def hub_cache_candidates(environ, home):
    """Hub cache dirs a user's huggingface_hub would use, in its order of precedence, without duplicates.

    HF_HUB_CACHE, HUGGINGFACE_HUB_CACHE, HF_HOME/hub, XDG_CACHE_HOME/huggingface/hub,
    ~/.cache/huggingface/hub, then the legacy TRANSFORMERS_CACHE / PYTORCH_*_CACHE that older
    transformers wrote hub-layout repos into. Pure: no file system access.
    """
    def expand(value):
        value = value.strip()
        if value.startswith("~") and home:
            value = home + value[1:]
        return value

    found = []
    env = environ or {}
    for name in ("HF_HUB_CACHE", "HUGGINGFACE_HUB_CACHE"):
        if env.get(name):
            found.append(expand(env[name]))
    if env.get("HF_HOME"):
        found.append(os.path.join(expand(env["HF_HOME"]), "hub"))
    if env.get("XDG_CACHE_HOME"):
        found.append(os.path.join(expand(env["XDG_CACHE_HOME"]), "huggingface", "hub"))
    if home:
        found.append(os.path.join(home, ".cache", "huggingface", "hub"))
    for name in ("TRANSFORMERS_CACHE", "PYTORCH_TRANSFORMERS_CACHE", "PYTORCH_PRETRAINED_BERT_CACHE"):
        if env.get(name):
            found.append(expand(env[name]))
    out = []
    for path in found:
        if os.path.isabs(path):
            path = os.path.normpath(path)
            if path not in out:
                out.append(path)
    return out


_IFMT = 0o170000
_IFDIR = 0o040000
_IFREG = 0o100000
_IFLNK = 0o120000
_O_DIR = os.O_RDONLY | getattr(os, "O_DIRECTORY", 0) | getattr(os, "O_NOFOLLOW", 0) | getattr(os, "O_CLOEXEC", 0)
_O_FILE = os.O_RDONLY | getattr(os, "O_NOFOLLOW", 0) | getattr(os, "O_CLOEXEC", 0) | getattr(os, "O_NONBLOCK", 0)


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


def _err(e):
    return e.strerror or str(e)


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


def scan_repo(repo_path, one_file_system=True, detail=False, cache_root=None, dev=None):
    """Scan one repo dir. Returns HFRepo, or (HFRepo, RepoLayout) when detail is true.

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
            # huggingface_hub's optional shared store: blobs/<etag> -> <cache>/blobs/xx/<hash>
            target = os.path.normpath(os.path.join(dirpath, os.readlink(name, dir_fd=dir_fd)))
            try:
                tst = os.lstat(target) if _within(target, cache_root) else None
            except OSError:
                tst = None
            if tst is not None and tst.st_mode & _IFMT == _IFREG:
                blob_stats[name] = (tst.st_size, tst.st_mtime, tst.st_atime)
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
        return repo, layout
    return repo


def scan_cache(cache_dir, one_file_system=True, parallel=True):
    """Scan a hub cache dir: every repo in it, with sizes and problems. Never raises for cache content.

    parallel: a forked child scans every other repo (same result, about half the wall time on two cores)."""
    cache = HFCache(os.path.abspath(cache_dir))
    try:
        root = os.stat(cache.path)  # the cache dir itself may be a link (HF_HOME -> /data/hf)
    except OSError as e:
        cache.problems.append("cannot stat cache %s: %s" % (cache.path, e.strerror or e))
        return cache
    if not stat.S_ISDIR(root.st_mode):
        cache.problems.append("cache %s is not a directory" % cache.path)
        return cache
    cache.dev = root.st_dev
    try:
        with os.scandir(cache.path) as it:
            entries = sorted(it, key=lambda e: e.name)
    except OSError as e:
        cache.problems.append("cannot read cache %s: %s" % (cache.path, e.strerror or e))
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
        return [scan_repo(path, one_file_system=one_file_system, cache_root=cache.path,
                          dev=cache.dev if one_file_system else None) for path in paths]

    if parallel and len(folders) >= _PARALLEL_MIN_REPOS and _can_fork():
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


# ------------------------------------------------------------------------------------------ in use

def held_lock(lock_dir):
    """Name of the first lock file under lock_dir that a live process holds (flock), else None.

    Each lock is probed with a non-blocking exclusive flock on a read-only descriptor and released at
    once: huggingface_hub's filelock takes exactly that lock for the whole of a download. No lock file
    is ever created, and links or special files are not opened.
    """
    try:
        fd = os.open(lock_dir, _O_DIR)
    except OSError:
        return None
    try:
        return _held_in(fd, "", 0)
    finally:
        os.close(fd)


def _held_in(dir_fd, rel, depth):
    import fcntl
    try:
        with os.scandir(dir_fd) as it:
            entries = [(e.name, e.is_dir(follow_symlinks=False), e.is_file(follow_symlinks=False)) for e in it]
    except OSError:
        return None
    for name, is_dir, is_file in sorted(entries):
        if is_dir and depth < 8:
            try:
                sub = os.open(name, _O_DIR, dir_fd=dir_fd)
            except OSError:
                continue
            try:
                found = _held_in(sub, rel + name + "/", depth + 1)
            finally:
                os.close(sub)
            if found:
                return found
            continue
        if not is_file:
            continue
        try:
            lfd = os.open(name, _O_FILE, dir_fd=dir_fd)
        except OSError:
            continue
        try:
            fcntl.flock(lfd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except (IOError, OSError) as e:
            if e.errno in (errno.EAGAIN, errno.EACCES, errno.EWOULDBLOCK):
                return rel + name
        finally:
            os.close(lfd)  # closing releases our probe lock, if we got it
    return None


def open_paths_under(roots, proc="/proc", own_pid=None):
    """{path: [(pid, process name)]} of files under any of roots that a process has open or mapped.

    Reads /proc/<pid>/fd/* links and /proc/<pid>/maps (Linux). Returns None where /proc is not
    available, so the caller can say it could not check. roots must be real paths (no links).
    """
    if not os.path.isdir(os.path.join(proc, "self", "fd")):
        return None
    own_pid = os.getpid() if own_pid is None else own_pid
    prefixes = tuple(r.rstrip("/") + "/" for r in roots)
    found = {}
    for pid in os.listdir(proc):
        if not pid.isdigit() or int(pid) == own_pid:
            continue
        base = os.path.join(proc, pid)
        paths = set()
        try:
            for fd in os.listdir(os.path.join(base, "fd")):
                try:
                    target = os.readlink(os.path.join(base, "fd", fd))
                except OSError:
                    continue
                if target.startswith(prefixes):
                    paths.add(target[:-len(" (deleted)")] if target.endswith(" (deleted)") else target)
        except OSError:
            pass
        try:
            with open(os.path.join(base, "maps"), "rb") as f:
                for line in f:
                    part = line.split(None, 5)
                    if len(part) == 6:
                        path = part[5].rstrip(b"\n").decode("utf-8", "surrogateescape")
                        if path.startswith(prefixes):
                            paths.add(path[:-len(" (deleted)")] if path.endswith(" (deleted)") else path)
        except (IOError, OSError):
            pass
        if paths:
            try:
                with open(os.path.join(base, "comm")) as f:
                    name = f.read().strip()
            except (IOError, OSError):
                name = "?"
            for path in paths:
                found.setdefault(path, []).append((int(pid), name))
    return found


# ------------------------------------------------------------------------------------------ planning

class Selection(object):
    """What to delete, from the module's options (already parsed and validated).

    patterns: globs on org/name (empty: every repo); repo_type: model|dataset|space|any; keep: globs
    never touched; revisions: 'all' | 'unreferenced' | None (only the budget selects); older_than:
    seconds or None; age_by: 'accessed' | 'modified'; max_size: bytes or None; incomplete_older_than:
    seconds or None (never); now: epoch seconds.
    """

    __slots__ = ("patterns", "repo_type", "keep", "revisions", "older_than", "age_by", "max_size",
                 "incomplete_older_than", "now")

    def __init__(self, patterns=(), repo_type="any", keep=(), revisions=None, older_than=None,
                 age_by="accessed", max_size=None, incomplete_older_than=86400, now=None):
        self.patterns = list(patterns)
        self.repo_type = repo_type
        self.keep = list(keep)
        self.revisions = revisions
        self.older_than = older_than
        self.age_by = age_by
        self.max_size = max_size
        self.incomplete_older_than = incomplete_older_than
        self.now = time.time() if now is None else now

    def in_scope(self, repo):
        if self.repo_type not in ("any", repo.repo_type):
            return False
        if self.patterns and not any(fnmatch.fnmatchcase(repo.repo_id, p) for p in self.patterns):
            return False
        return True

    def kept(self, repo):
        return any(fnmatch.fnmatchcase(repo.repo_id, p) for p in self.keep)

    def stamp(self, item):
        return item.last_access if self.age_by == "accessed" else item.last_modified

    def picks(self, rev):
        if self.revisions == "unreferenced" and rev.refs:
            return False
        if self.revisions is None:
            return False
        if self.older_than is not None and not self.stamp(rev) < self.now - self.older_than:
            return False
        return True


class RepoPlan(object):
    """The deletion planned for one repo, with huggingface_hub's accounting."""

    __slots__ = ("repo", "layout", "revisions", "whole", "blobs", "blobs_kept_shared", "refs", "freed_bytes",
                 "incomplete", "reason")

    def __init__(self, repo, layout):
        self.repo = repo
        self.layout = layout
        self.revisions = []  # commits to delete
        self.whole = False
        self.blobs = []  # blob names to unlink (partial deletion)
        self.blobs_kept_shared = 0
        self.refs = []
        self.freed_bytes = 0
        self.incomplete = []  # (name, size) of stale *.incomplete files
        self.reason = []  # why: 'selected', 'budget', 'incomplete'

    def compute(self):
        """Fill blobs/refs/freed from the chosen revisions: a blob goes only if no remaining revision uses it."""
        layout = self.layout
        gone = set(self.revisions)
        remaining = [r for r in self.repo.revisions if r.commit not in gone]
        deleted_blobs = set()
        copy_bytes = 0
        for commit in self.revisions:
            deleted_blobs |= layout.revision_blobs.get(commit, set())
            copy_bytes += layout.revision_copy_bytes.get(commit, 0)
        kept_blobs = set()
        for rev in remaining:
            kept_blobs |= layout.revision_blobs.get(rev.commit, set())
        self.whole = not remaining and (bool(self.revisions) or self.whole)
        if self.whole:
            self.blobs = sorted(deleted_blobs)
            self.blobs_kept_shared = 0
            self.refs = []
        else:
            self.blobs = sorted(deleted_blobs - kept_blobs)
            self.blobs_kept_shared = len(deleted_blobs & kept_blobs)
            self.refs = sorted(ref for r in self.repo.revisions if r.commit in gone for ref in r.refs)
        self.freed_bytes = copy_bytes + sum(layout.blob_sizes.get(b, 0) for b in self.blobs)
        return self

    @property
    def changes(self):
        return bool(self.revisions or self.whole or self.incomplete)

    def to_result(self, cache_path):
        return {
            "cache": cache_path, "repo_id": self.repo.repo_id, "repo_type": self.repo.repo_type,
            "path": self.repo.path, "revisions": list(self.revisions), "whole_repo": self.whole,
            "freed_bytes": self.freed_bytes, "blobs_deleted": len(self.blobs),
            "blobs_kept_shared": self.blobs_kept_shared, "refs_deleted": list(self.refs),
            "incomplete_deleted": [name for name, _size in self.incomplete],
            "incomplete_bytes": sum(size for _name, size in self.incomplete),
            "reason": list(self.reason),
        }


class CachePlan(object):
    __slots__ = ("cache", "repos", "held_back", "bytes_before", "bytes_after", "max_size", "kept_over_budget")

    def __init__(self, cache):
        self.cache = cache
        self.repos = []
        self.held_back = []  # dicts: cache, repo_id, repo_type, reason, detail
        self.bytes_before = cache.blob_bytes
        self.bytes_after = self.bytes_before
        self.max_size = None
        self.kept_over_budget = []

    def summary(self):
        return {"path": self.cache.path, "bytes_before": self.bytes_before, "bytes_after": self.bytes_after,
                "max_size": self.max_size,
                "over_budget": self.max_size is not None and self.bytes_after > self.max_size,
                "kept_over_budget": list(self.kept_over_budget)}


def plan_cache(cache, selection, layout_of, held_of):
    """Plan one cache's deletions. Pure given its inputs:

    layout_of(repo) -> RepoLayout (which blobs each revision uses); held_of(repo, whole) -> None or
    (reason, detail) when the repo must not be touched (locked, in use, fresh download).
    Revisions chosen by the selection go first; then, with max_size, the least recently used
    revisions (by selection.age_by) of the repos in scope and not kept, until the cache fits.
    """
    plan = CachePlan(cache)
    plan.max_size = selection.max_size
    plans = {}
    held = {}

    def check_held(repo, whole):
        key = (repo.path, whole)
        if key not in held:
            held[key] = held_of(repo, whole)
        return held[key]

    def hold(repo, reason_detail):
        entry = {"cache": cache.path, "repo_id": repo.repo_id, "repo_type": repo.repo_type,
                 "reason": reason_detail[0], "detail": reason_detail[1]}
        if entry not in plan.held_back:
            plan.held_back.append(entry)

    scope = [r for r in cache.repos if selection.in_scope(r) and not selection.kept(r)]
    cutoff_incomplete = (None if selection.incomplete_older_than is None
                         else selection.now - selection.incomplete_older_than)
    for repo in scope:
        chosen = [r.commit for r in repo.revisions if selection.picks(r)]
        # a repo in scope with no snapshot at all (broken, or only .no_exist) goes whole when all is asked
        whole_empty = (not repo.revisions and selection.revisions == "all" and selection.older_than is None
                       and (selection.patterns or selection.repo_type != "any"))
        stale = [(n, s) for n, s, m in repo.incomplete if cutoff_incomplete is not None and m < cutoff_incomplete]
        if not (chosen or whole_empty or stale):
            continue
        rp = RepoPlan(repo, layout_of(repo))
        rp.revisions = chosen
        rp.whole = whole_empty
        rp.compute()
        reason = check_held(repo, rp.whole)
        if reason:
            hold(repo, reason)
            continue
        if chosen or whole_empty:
            rp.reason.append("selected")
        rp.incomplete = [] if rp.whole else stale
        if stale:
            rp.reason.append("incomplete")
        plans[repo.path] = rp

    after = plan.bytes_before - sum(p.freed_bytes for p in plans.values())
    if selection.max_size is not None and after > selection.max_size:
        candidates = []
        for repo in scope:
            rp = plans.get(repo.path)
            gone = set(rp.revisions) if rp else set()
            candidates.extend((selection.stamp(r), repo.path, r.commit, repo) for r in repo.revisions
                              if r.commit not in gone)
        candidates.sort(key=lambda c: (c[0], c[1], c[2]))
        for _stamp, path, commit, repo in candidates:
            if after <= selection.max_size:
                break
            rp = plans.get(path)
            if rp is None:
                rp = RepoPlan(repo, layout_of(repo))
            before = rp.freed_bytes
            trial = RepoPlan(repo, rp.layout)
            trial.revisions = rp.revisions + [commit]
            trial.compute()
            reason = check_held(repo, trial.whole)
            if reason:
                hold(repo, reason)
                continue
            rp.revisions = trial.revisions
            rp.compute()
            if "budget" not in rp.reason:
                rp.reason.append("budget")
            if rp.whole:
                rp.incomplete = []
            plans[path] = rp
            after -= rp.freed_bytes - before
        if after > selection.max_size:
            plan.kept_over_budget = sorted(set(
                r.repo_id for r in cache.repos if selection.kept(r) or not selection.in_scope(r)))
    plan.repos = [plans[r.path] for r in cache.repos if r.path in plans and plans[r.path].changes]
    plan.bytes_after = plan.bytes_before - sum(p.freed_bytes for p in plan.repos)
    return plan


def diff_lines(plan):
    """(before, after) text of the repos a plan touches: one line per revision, refs in brackets."""
    before, after = [], []
    for rp in plan.repos:
        repo = rp.repo
        gone = set(rp.revisions)
        head = "%s/%s %s" % (plan.cache.path, repo.repo_type, repo.repo_id)
        for rev in repo.revisions:
            line = "%s@%s%s" % (head, rev.commit, " [%s]" % ", ".join(rev.refs) if rev.refs else "")
            before.append(line)
            if not rp.whole and rev.commit not in gone:
                after.append(line)
        for name, _size in rp.incomplete:
            before.append("%s blobs/%s" % (head, name))
        if rp.whole and not repo.revisions:
            before.append("%s (no snapshots)" % head)
    return before, after


# ------------------------------------------------------------------------------------------ deletion

class DeletionError(Exception):
    pass


def _open_below(root_fd, parts):
    """Open parts (dir names) one by one from root_fd, never through a link. Caller closes the fd."""
    fd = os.dup(root_fd)
    for part in parts:
        try:
            nfd = os.open(part, _O_DIR, dir_fd=fd)
        finally:
            os.close(fd)
        fd = nfd
    return fd


def _rmtree_at(parent_fd, name, dev, failures, path, depth=0):
    """rm -rf of parent_fd/name without following links or leaving the file system (dev)."""
    try:
        st = os.stat(name, dir_fd=parent_fd, follow_symlinks=False)
    except OSError as e:
        if e.errno != errno.ENOENT:
            failures.append("%s: %s" % (path, _err(e)))
        return
    if st.st_mode & _IFMT != _IFDIR:
        try:
            os.unlink(name, dir_fd=parent_fd)
        except OSError as e:
            if e.errno != errno.ENOENT:
                failures.append("%s: %s" % (path, _err(e)))
        return
    if st.st_dev != dev:
        failures.append("%s: on another file system, not removed" % path)
        return
    if depth > 256:
        failures.append("%s: nested too deep, not removed" % path)
        return
    try:
        fd = os.open(name, _O_DIR, dir_fd=parent_fd)
    except OSError as e:
        failures.append("%s: %s" % (path, _err(e)))
        return
    try:
        fst = os.fstat(fd)
        if (fst.st_dev, fst.st_ino) != (st.st_dev, st.st_ino):
            failures.append("%s: replaced during removal, not removed" % path)
            return
        with os.scandir(fd) as it:
            names = [e.name for e in it]
        for child in names:
            _rmtree_at(fd, child, dev, failures, path + "/" + child, depth + 1)
    finally:
        os.close(fd)
    try:
        os.rmdir(name, dir_fd=parent_fd)
    except OSError as e:
        if e.errno != errno.ENOENT:
            failures.append("%s: %s" % (path, _err(e)))


def _unlink_at(parent_fd, name, failures, path):
    try:
        st = os.stat(name, dir_fd=parent_fd, follow_symlinks=False)
        if st.st_mode & _IFMT == _IFDIR:
            failures.append("%s: is a directory, not removed" % path)
            return
        os.unlink(name, dir_fd=parent_fd)
    except OSError as e:
        if e.errno != errno.ENOENT:
            failures.append("%s: %s" % (path, _err(e)))


def execute_plan(plan, recheck=None):
    """Carry out a CachePlan. Every path is opened from the cache dir's descriptor, one component at a
    time without following links, so nothing outside the cache can be reached. Order as huggingface_hub:
    snapshots and refs before the blobs they point to. recheck(repo, whole) -> None or (reason, detail) is
    asked again right before each repo (a download may have started since the plan was made).
    Returns (failures, held_back): failures is empty when everything planned went."""
    failures = []
    late = []
    cache = plan.cache
    try:
        root_fd = os.open(cache.path, _O_DIR & ~getattr(os, "O_NOFOLLOW", 0))
    except OSError as e:
        return ["%s: %s" % (cache.path, _err(e))], late
    try:
        if cache.dev is not None and os.fstat(root_fd).st_dev != cache.dev:
            return ["%s: changed since it was scanned, nothing removed" % cache.path], late
        dev = os.fstat(root_fd).st_dev
        for rp in plan.repos:
            folder = rp.repo.folder
            base = cache.path + "/" + folder
            reason = recheck(rp.repo, rp.whole) if recheck else None
            if reason:
                late.append((rp, reason))
                continue
            if rp.whole:
                _rmtree_at(root_fd, folder, dev, failures, base)
                try:
                    locks_fd = _open_below(root_fd, [".locks"])
                except OSError:
                    locks_fd = None
                if locks_fd is not None:
                    try:
                        _rmtree_at(locks_fd, folder, dev, failures, cache.path + "/.locks/" + folder)
                    finally:
                        os.close(locks_fd)
                continue
            try:
                repo_fd = _open_below(root_fd, [folder])
            except OSError as e:
                failures.append("%s: %s" % (base, _err(e)))
                continue
            try:
                if rp.revisions:
                    try:
                        snaps_fd = _open_below(repo_fd, ["snapshots"])
                    except OSError as e:
                        failures.append("%s/snapshots: %s" % (base, _err(e)))
                        continue
                    try:
                        for commit in rp.revisions:
                            _rmtree_at(snaps_fd, commit, dev, failures, base + "/snapshots/" + commit)
                    finally:
                        os.close(snaps_fd)
                for ref in rp.refs:
                    parts = ref.split("/")
                    try:
                        ref_fd = _open_below(repo_fd, ["refs"] + parts[:-1])
                    except OSError as e:
                        failures.append("%s/refs/%s: %s" % (base, ref, _err(e)))
                        continue
                    try:
                        _unlink_at(ref_fd, parts[-1], failures, base + "/refs/" + ref)
                    finally:
                        os.close(ref_fd)
                if rp.blobs or rp.incomplete:
                    snapshot_failed = any(f.startswith(base + "/snapshots/") for f in failures)
                    try:
                        blobs_fd = _open_below(repo_fd, ["blobs"])
                    except OSError as e:
                        failures.append("%s/blobs: %s" % (base, _err(e)))
                        continue
                    try:
                        # a snapshot that could not go may still point at these blobs: keep them then
                        for name in ([] if snapshot_failed else rp.blobs):
                            _unlink_at(blobs_fd, name, failures, base + "/blobs/" + name)
                        for name, _size in rp.incomplete:
                            _unlink_at(blobs_fd, name, failures, base + "/blobs/" + name)
                    finally:
                        os.close(blobs_fd)
            finally:
                os.close(repo_fd)
    finally:
        os.close(root_fd)
    return failures, late


# ------------------------------------------------------------------------------------------ one run

class _Guard(object):
    """Answers 'may this repo be touched now?': held locks, open files, fresh downloads."""

    def __init__(self, caches, selection, force):
        self.selection = selection
        self.force = force
        self.roots = sorted(set(os.path.realpath(c.path) for c in caches))
        self._open = False  # not read yet
        self.problems = []

    def open_files(self):
        if self._open is False:
            self._open = open_paths_under(self.roots)
            if self._open is None:
                self.problems.append("could not check which processes have cache files open (no /proc here)")
        return self._open or {}

    def lock(self, cache, repo):
        name = held_lock(os.path.join(cache.locks_path, repo.folder))
        if name:
            return ("locked", "%s/%s/%s is held by a running process (a download in progress)" % (
                cache.locks_path, repo.folder, name))
        return None

    def held(self, cache, repo, whole):
        if whole:
            cutoff = self.selection.incomplete_older_than
            for name, _size, mtime in repo.incomplete:
                if cutoff is None or mtime >= self.selection.now - cutoff:
                    return ("in_use", "%s/blobs/%s is a fresh partial download (modified %d s ago)" % (
                        repo.path, name, max(0, int(self.selection.now - mtime))))
        if self.force:
            return None
        reason = self.lock(cache, repo)
        if reason:
            return reason
        prefix = os.path.realpath(repo.path) + "/"
        for path, procs in sorted(self.open_files().items()):
            if path.startswith(prefix):
                pid, name = procs[0]
                return ("in_use", "%s is open in process %d (%s)" % (path, pid, name))
        return None


def run(cache_dirs, selection, force=False, one_file_system=True, check_mode=False):
    """Scan, plan and (unless check_mode) carry out the deletions on every cache. Returns the module result."""
    caches = []
    problems = []
    seen = set()
    for path in cache_dirs:
        real = os.path.realpath(path)
        if real in seen:
            continue
        seen.add(real)
        if not os.path.isdir(path):
            problems.append("cache dir %s does not exist" % path)
            continue
        cache = scan_cache(path, one_file_system=one_file_system)
        problems.extend(cache.problems)
        caches.append(cache)
    guard = _Guard(caches, selection, force)
    layouts = {}

    def layout_of(repo):
        if repo.path not in layouts:
            layouts[repo.path] = scan_repo(repo.path, one_file_system=one_file_system, detail=True)[1]
        return layouts[repo.path]

    result = {"changed": False, "deleted": [], "held_back": [], "caches": [], "freed_bytes": 0,
              "blobs_deleted": 0, "blobs_kept_shared": 0, "problems": problems, "failures": [],
              "diff": {"before": "", "after": ""}}
    before_all, after_all = [], []
    for cache in caches:
        plan = plan_cache(cache, selection, layout_of, lambda repo, whole, c=cache: guard.held(c, repo, whole))
        if not check_mode and plan.repos:
            failures, late = execute_plan(
                plan, recheck=None if force else (lambda repo, whole, c=cache: guard.lock(c, repo)))
            result["failures"].extend(failures)
            for rp, reason in late:
                plan.held_back.append({"cache": cache.path, "repo_id": rp.repo.repo_id,
                                       "repo_type": rp.repo.repo_type, "reason": reason[0], "detail": reason[1]})
                plan.repos.remove(rp)
            plan.bytes_after = plan.bytes_before - sum(p.freed_bytes for p in plan.repos)
        before, after = diff_lines(plan)
        before_all.extend(before)
        after_all.extend(after)
        for rp in plan.repos:
            result["deleted"].append(rp.to_result(cache.path))
            result["freed_bytes"] += rp.freed_bytes + sum(size for _n, size in rp.incomplete)
            result["blobs_deleted"] += len(rp.blobs)
            result["blobs_kept_shared"] += rp.blobs_kept_shared
        result["held_back"].extend(plan.held_back)
        result["caches"].append(plan.summary())
        if plan.summary()["over_budget"]:
            problems.append("cache %s stays over its budget (%d > %d bytes): what is left is kept, held back or "
                            "out of scope (%s)" % (cache.path, plan.bytes_after, plan.max_size,
                                                   ", ".join(plan.kept_over_budget) or "nothing"))
    problems.extend(guard.problems)
    failed = result["failures"]
    if len(failed) > MAX_LISTED_FAILURES:  # output size must not grow with the number of files
        more = len(failed) - MAX_LISTED_FAILURES
        del failed[MAX_LISTED_FAILURES:]
        failed.append("... and %d more failures" % more)
    result["changed"] = bool(result["deleted"])
    result["diff"] = {"before": "\n".join(before_all) + ("\n" if before_all else ""),
                      "after": "\n".join(after_all) + ("\n" if after_all else "")}
    return result
