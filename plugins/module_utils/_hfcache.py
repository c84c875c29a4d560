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
import re
import stat
import time

REPO_TYPES = {"models": "model", "datasets": "dataset", "spaces": "space"}
REPO_PREFIXES = dict((v, k) for k, v in REPO_TYPES.items())
# OS helper files that huggingface_hub ignores too.
IGNORED_NAMES = frozenset((".DS_Store", "Thumbs.db", "desktop.ini"))
# Entries of a cache root that are not repos and are no problem either.
_ROOT_NON_REPOS = frozenset((".locks", "CACHEDIR.TAG", "version.txt", "version_diffusers_cache.txt"))
_SHARED_STORE_MARKER = ".huggingface-shared-blobs"
INCOMPLETE_SUFFIX = ".incomplete"


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
        if st.st_nlink > 1 and not stat.S_ISDIR(mode):
            key = (st.st_dev, st.st_ino)
            if key in self.seen:
                return
            self.seen.add(key)
        self.disk += st.st_blocks * 512
        if stat.S_ISREG(mode):
            self.files += 1
        if st.st_mtime > self.newest:
            self.newest = st.st_mtime


def _walk(top, tally, on_entry=None):
    """Account every entry below top (not top itself); call on_entry(dirpath, entry, st) for non-dirs."""
    stack = [top]
    while stack:
        current = stack.pop()
        try:
            it = os.scandir(current)
        except OSError as e:
            tally.problems.append("cannot read %s: %s" % (current, e.strerror or e))
            continue
        with it:
            for entry in it:
                try:
                    st = entry.stat(follow_symlinks=False)
                except OSError as e:
                    tally.problems.append("cannot stat %s: %s" % (entry.path, e.strerror or e))
                    continue
                if stat.S_ISDIR(st.st_mode):
                    if tally.one_fs and st.st_dev != tally.dev:
                        tally.problems.append("not crossing into another file system: %s" % entry.path)
                        continue
                    tally.add(st)
                    stack.append(entry.path)
                else:
                    tally.add(st)
                    if on_entry is not None:
                        on_entry(current, entry, st)


def _within(path, root):
    return path == root or path.startswith(root.rstrip(os.sep) + os.sep)


def scan_repo(repo_path, one_file_system=True, detail=False, cache_root=None, dev=None):
    """Scan one repo dir. Returns HFRepo, or (HFRepo, RepoLayout) when detail is true.

    Never raises for a broken repo: what huggingface_hub would call a CorruptedCacheException
    lands in repo.problems and the repo is still returned (so it can be reported or removed).
    """
    parsed = parse_repo_folder(os.path.basename(repo_path))
    repo_type, repo_id = parsed if parsed else ("unknown", os.path.basename(repo_path))
    repo = HFRepo(repo_id, repo_type, repo_path)
    layout = RepoLayout()
    problems = repo.problems
    try:
        top = os.lstat(repo_path)
    except OSError as e:
        problems.append("cannot stat %s: %s" % (repo_path, e.strerror or e))
        return (repo, layout) if detail else repo
    tally = _Tally(dev if dev is not None else top.st_dev, one_file_system, problems)
    tally.add(top)
    cache_root = cache_root or os.path.dirname(repo_path)
    blobs_dir = os.path.join(repo_path, "blobs")
    blob_stats = {}  # name -> (size, mtime, atime); only for this repo, dropped on return

    def on_blob(dirpath, entry, st):
        name = entry.name
        if dirpath != blobs_dir:
            return
        if name.endswith(INCOMPLETE_SUFFIX):
            repo.incomplete.append((name, st.st_size, st.st_mtime))
        elif stat.S_ISREG(st.st_mode):
            blob_stats[name] = (st.st_size, st.st_mtime, st.st_atime)
        elif stat.S_ISLNK(st.st_mode):
            # huggingface_hub's optional shared store: blobs/<etag> -> <cache>/blobs/xx/<hash>
            target = os.path.normpath(os.path.join(dirpath, os.readlink(entry.path)))
            try:
                tst = os.lstat(target) if _within(target, cache_root) else None
            except OSError:
                tst = None
            if tst is not None and stat.S_ISREG(tst.st_mode):
                blob_stats[name] = (tst.st_size, tst.st_mtime, tst.st_atime)
            else:
                problems.append("blob link leads nowhere usable: %s" % entry.path)

    entries = {}
    try:
        with os.scandir(repo_path) as it:
            for entry in it:
                entries[entry.name] = entry
    except OSError as e:
        problems.append("cannot read %s: %s" % (repo_path, e.strerror or e))
    if parsed is None:
        problems.append("not a hub repo folder name: %s" % repo_path)

    def top_dir(name):
        entry = entries.pop(name, None)
        if entry is None:
            return None
        try:
            st = entry.stat(follow_symlinks=False)
        except OSError as e:
            problems.append("cannot stat %s: %s" % (entry.path, e.strerror or e))
            return None
        tally.add(st)
        if not stat.S_ISDIR(st.st_mode):
            problems.append("%s is not a directory" % entry.path)
            return None
        if one_file_system and st.st_dev != tally.dev:
            problems.append("not crossing into another file system: %s" % entry.path)
            return None
        return entry.path

    if top_dir("blobs"):
        _walk(blobs_dir, tally, on_blob)

    # refs: refs/main, refs/refs/pr/1 ... each holding a commit hash
    refs_by_commit = {}
    refs_dir = top_dir("refs")
    if refs_dir:
        def on_ref(dirpath, entry, st):
            if entry.name in IGNORED_NAMES or not stat.S_ISREG(st.st_mode):
                if not stat.S_ISREG(st.st_mode):
                    problems.append("ref is not a regular file: %s" % entry.path)
                return
            try:
                fd = os.open(entry.path, os.O_RDONLY | getattr(os, "O_NOFOLLOW", 0))
                try:
                    commit = os.read(fd, 4096).decode("utf-8", "replace").strip()
                finally:
                    os.close(fd)
            except OSError as e:
                problems.append("cannot read ref %s: %s" % (entry.path, e.strerror or e))
                return
            ref = os.path.relpath(entry.path, refs_dir).replace(os.sep, "/")
            refs_by_commit.setdefault(commit, []).append(ref)
        _walk(refs_dir, tally, on_ref)

    referenced = set()
    copies = [0, 0.0, 0.0, 0]  # bytes, newest mtime, newest atime, count of files copied into snapshots
    snapshots_dir = top_dir("snapshots")
    if snapshots_dir is None:
        problems.append("no snapshots dir in %s" % repo_path)
    else:
        try:
            with os.scandir(snapshots_dir) as it:
                commits = [e for e in it]
        except OSError as e:
            problems.append("cannot read %s: %s" % (snapshots_dir, e.strerror or e))
            commits = []
        for centry in commits:
            try:
                cst = centry.stat(follow_symlinks=False)
            except OSError as e:
                problems.append("cannot stat %s: %s" % (centry.path, e.strerror or e))
                continue
            tally.add(cst)
            if not stat.S_ISDIR(cst.st_mode):
                if centry.name not in IGNORED_NAMES:
                    problems.append("not a snapshot dir: %s" % centry.path)
                continue
            if one_file_system and cst.st_dev != tally.dev:
                problems.append("not crossing into another file system: %s" % centry.path)
                continue
            rev = HFRevision(centry.name, centry.path)
            names = set()
            state = [0, 0.0, 0.0, 0]  # copied bytes, newest mtime, newest atime, files

            def on_file(dirpath, entry, st, rev=rev, names=names, state=state):
                mode = st.st_mode
                state[3] += 1
                if stat.S_ISLNK(mode):
                    try:
                        target = os.readlink(entry.path)
                    except OSError as e:
                        problems.append("cannot read link %s: %s" % (entry.path, e.strerror or e))
                        return
                    full = os.path.normpath(os.path.join(dirpath, target))
                    name = os.path.basename(full)
                    if os.path.dirname(full) != blobs_dir:
                        problems.append("snapshot link points outside blobs/: %s -> %s" % (entry.path, target))
                        return
                    info = blob_stats.get(name)
                    if info is None:
                        problems.append("broken snapshot link (blob missing): %s" % entry.path)
                        return
                    if name not in names:
                        names.add(name)
                        if info[1] > state[1]:
                            state[1] = info[1]
                        if info[2] > state[2]:
                            state[2] = info[2]
                elif stat.S_ISREG(mode):
                    # a copy instead of a link (Windows, file systems without symlinks): its own blob
                    state[0] += st.st_size
                    if st.st_mtime > state[1]:
                        state[1] = st.st_mtime
                    if st.st_atime > state[2]:
                        state[2] = st.st_atime
                    copies[3] += 1
                    if st.st_mtime > copies[1]:
                        copies[1] = st.st_mtime
                    if st.st_atime > copies[2]:
                        copies[2] = st.st_atime
                else:
                    state[3] -= 1
            _walk(centry.path, tally, on_file)
            rev.files = state[3]
            rev.bytes = state[0] + sum(blob_stats[n][0] for n in names)
            if rev.files:
                rev.last_modified, rev.last_access = state[1], state[2]
            else:
                rev.last_modified, rev.last_access = cst.st_mtime, cst.st_atime
            rev.refs = sorted(refs_by_commit.pop(rev.commit, []))
            repo.revisions.append(rev)
            referenced |= names
            copies[0] += state[0]
            if detail:
                layout.revision_blobs[rev.commit] = names
                layout.revision_copy_bytes[rev.commit] = state[0]

    # everything else in the repo dir (.no_exist, stray files) only counts for du
    for name, entry in entries.items():
        try:
            st = entry.stat(follow_symlinks=False)
        except OSError as e:
            problems.append("cannot stat %s: %s" % (entry.path, e.strerror or e))
            continue
        if stat.S_ISDIR(st.st_mode):
            if one_file_system and st.st_dev != tally.dev:
                problems.append("not crossing into another file system: %s" % entry.path)
                continue
            tally.add(st)
            _walk(entry.path, tally)
        else:
            tally.add(st)

    for commit, refs in sorted(refs_by_commit.items()):
        for ref in sorted(refs):
            repo.dangling_refs.append((ref, commit))
            problems.append("ref %s of %s points to a missing snapshot %s" % (ref, repo_path, commit))

    repo.revisions.sort(key=lambda r: r.commit)
    repo.blob_bytes = copies[0] + sum(blob_stats[n][0] for n in referenced)
    repo.blob_count = len(referenced) + copies[3]
    if referenced or copies[3]:
        repo.last_modified = max([blob_stats[n][1] for n in referenced] + [copies[1]])
        repo.last_access = max([blob_stats[n][2] for n in referenced] + [copies[2]])
    else:
        repo.last_modified, repo.last_access = top.st_mtime, top.st_atime
    repo.disk_bytes = tally.disk
    repo.files = tally.files
    repo.newest_mtime = tally.newest
    if detail:
        layout.blob_sizes = dict((n, v[0]) for n, v in blob_stats.items())
        layout.orphan_blobs = set(blob_stats) - referenced
        return repo, layout
    return repo


def scan_cache(cache_dir, one_file_system=True):
    """Scan a hub cache dir: every repo in it, with sizes and problems. Never raises for cache content."""
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
    for entry in entries:
        name = entry.name
        if name in _ROOT_NON_REPOS or name in IGNORED_NAMES:
            continue
        if name == "blobs" and os.path.exists(os.path.join(entry.path, _SHARED_STORE_MARKER)):
            continue
        if parse_repo_folder(name) is None or not entry.is_dir(follow_symlinks=False):
            cache.problems.append("not a hub repo: %s" % entry.path)
            continue
        repo = scan_repo(entry.path, one_file_system=one_file_system, cache_root=cache.path,
                         dev=cache.dev if one_file_system else None)
        cache.repos.append(repo)
        cache.problems.extend(repo.problems)
    return cache
