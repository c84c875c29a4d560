# -*- coding: utf-8 -*-
# Copyright: residue.purge contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Generate Hugging Face hub caches with the real on-disk layout, for tests and benchmarks.

    <cache>/models--org--name/blobs/<sha256 or sha1 hex>
    <cache>/models--org--name/refs/main                      (a commit hash)
    <cache>/models--org--name/snapshots/<commit>/<path>      -> ../../blobs/<hash> (relative link)
    <cache>/.locks/models--org--name/<hash>.lock

Deterministic for a seed. windows_style=True copies files into the snapshots instead of linking
them (what huggingface_hub does where symlinks are unavailable). Helpers add the broken cases.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import fcntl
import hashlib
import os
import random
import time

TYPE_PREFIX = {"model": "models", "dataset": "datasets", "space": "spaces"}


class GenRepo(object):
    __slots__ = ("repo_id", "repo_type", "path", "commits", "refs")

    def __init__(self, repo_id, repo_type, path):
        self.repo_id = repo_id
        self.repo_type = repo_type
        self.path = path
        self.commits = []  # oldest first
        self.refs = {}  # ref name -> commit

    @property
    def folder(self):
        return os.path.basename(self.path)


def _hex(rng, n):
    return "%0*x" % (n, rng.getrandbits(4 * n))


def make_cache(root, repos=4, revisions_per_repo=2, files_per_revision=6, shared_fraction=0.75, seed=0,
               windows_style=False, repo_types=("model", "dataset", "space"), max_file_size=2048,
               nested_fraction=0.3, ref_fraction=0.5, time_spread=90 * 86400, now=None, locks=True):
    """Create a hub cache under root (created if missing) and return the list of GenRepo.

    Each repo has revisions_per_repo revisions of files_per_revision files; revision k+1 keeps
    shared_fraction of revision k's files (same blob) and changes the rest. The newest revision
    is refs/main; an older one gets refs/pr/<n> with probability ref_fraction, else it is detached.
    Blob mtimes/atimes are spread over time_spread seconds before now, per repo, oldest revision oldest.
    """
    rng = random.Random(seed)
    now = time.time() if now is None else now
    os.makedirs(root, exist_ok=True)
    made = []
    for i in range(repos):
        repo_type = repo_types[i % len(repo_types)]
        repo_id = "org%d/%s-%d" % (rng.randrange(1000), rng.choice(["AutoGLM", "bert", "llama", "data"]), i)
        repo = add_repo(root, repo_id, repo_type, revisions_per_repo, files_per_revision, shared_fraction, rng,
                        windows_style, max_file_size, nested_fraction, ref_fraction, time_spread, now, locks)
        made.append(repo)
    return made


def add_repo(root, repo_id, repo_type="model", revisions=2, files_per_revision=6, shared_fraction=0.75, rng=None,
             windows_style=False, max_file_size=2048, nested_fraction=0.3, ref_fraction=0.5,
             time_spread=90 * 86400, now=None, locks=True):
    rng = rng or random.Random(repo_id)
    now = time.time() if now is None else now
    folder = "%s--%s" % (TYPE_PREFIX[repo_type], repo_id.replace("/", "--"))
    path = os.path.join(root, folder)
    repo = GenRepo(repo_id, repo_type, path)
    blobs = os.path.join(path, "blobs")
    os.makedirs(blobs, exist_ok=True)
    os.makedirs(os.path.join(path, "refs"), exist_ok=True)
    if locks:
        os.makedirs(os.path.join(root, ".locks", folder), exist_ok=True)
    base_age = rng.uniform(0.2, 1.0) * time_spread
    files = {}  # relative path -> blob name
    for r in range(revisions):
        commit = _hex(rng, 40)
        snap = os.path.join(path, "snapshots", commit)
        os.makedirs(snap)
        stamp = now - base_age * (revisions - r) / revisions
        names = sorted(files)
        keep = set(rng.sample(names, int(len(names) * shared_fraction))) if names else set()
        new_files = {}
        for j in range(files_per_revision):
            if j < len(names) and names[j] in keep:
                rel = names[j]
                new_files[rel] = files[rel]
                continue
            rel = "f%d_%s.bin" % (j, _hex(rng, 4))
            if rng.random() < nested_fraction:
                rel = "sub%d/%s" % (j % 3, rel)
            size = rng.randrange(0, max_file_size + 1)
            data = (rng.getrandbits(64).to_bytes(8, "little") * (size // 8 + 1))[:size]
            data += (commit + rel).encode()  # unique content, so a new file is a new blob
            blob = hashlib.sha256(data).hexdigest() if rng.random() < 0.5 else hashlib.sha1(data).hexdigest()
            blob_path = os.path.join(blobs, blob)
            if not windows_style:
                with open(blob_path, "wb") as f:
                    f.write(data)
                os.utime(blob_path, (stamp, stamp))
                if locks:
                    open(os.path.join(root, ".locks", folder, blob + ".lock"), "w").close()
            new_files[rel] = (blob, data)
        for rel, (blob, data) in sorted(new_files.items()):
            dest = os.path.join(snap, rel)
            os.makedirs(os.path.dirname(dest), exist_ok=True)
            if windows_style:
                with open(dest, "wb") as f:
                    f.write(data)
                os.utime(dest, (stamp, stamp))
            else:
                os.symlink(os.path.relpath(os.path.join(blobs, blob), os.path.dirname(dest)), dest)
        files = new_files
        repo.commits.append(commit)
    set_ref(repo, "main", repo.commits[-1])
    for n, commit in enumerate(repo.commits[:-1]):
        if rng.random() < ref_fraction:
            set_ref(repo, "refs/pr/%d" % (n + 1), commit)
    return repo


def set_ref(repo, ref, commit):
    """Write refs/<ref> = commit (ref may be nested, like refs/pr/1)."""
    path = os.path.join(repo.path, "refs", *ref.split("/"))
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "w") as f:
        f.write(commit)
    repo.refs[ref] = commit


def add_detached_revision(repo, files=2, seed=1):
    """A snapshot no ref points to, sharing one blob with the newest revision when it can."""
    rng = random.Random(seed)
    commit = _hex(rng, 40)
    snap = os.path.join(repo.path, "snapshots", commit)
    os.makedirs(snap)
    blobs = os.path.join(repo.path, "blobs")
    existing = sorted(n for n in os.listdir(blobs) if not n.endswith(".incomplete"))
    for j in range(files):
        if j == 0 and existing:
            blob = existing[0]
        else:
            data = ("detached %s %d" % (commit, j)).encode()
            blob = hashlib.sha256(data).hexdigest()
            with open(os.path.join(blobs, blob), "wb") as f:
                f.write(data)
        os.symlink(os.path.join("..", "..", "blobs", blob), os.path.join(snap, "d%d.bin" % j))
    repo.commits.insert(0, commit)
    return commit


def add_missing_ref(repo, ref="refs/pr/99", commit="f" * 40):
    """A ref naming a commit that has no snapshot."""
    set_ref(repo, ref, commit)
    return commit


def add_broken_symlink(repo, commit=None, name="broken.bin"):
    """A snapshot link to a blob that does not exist."""
    commit = commit or repo.commits[-1]
    link = os.path.join(repo.path, "snapshots", commit, name)
    os.symlink(os.path.join("..", "..", "blobs", "0" * 64), link)
    return link


def add_incomplete(repo, name=None, size=1000, age=0):
    """blobs/<hash>.incomplete of size bytes, last modified age seconds ago."""
    name = name or hashlib.sha256(("inc%s%d" % (repo.path, age)).encode()).hexdigest() + ".incomplete"
    path = os.path.join(repo.path, "blobs", name)
    with open(path, "wb") as f:
        f.write(b"\0" * size)
    stamp = time.time() - age
    os.utime(path, (stamp, stamp))
    return path


def add_no_exist(repo, commit=None, filename="missing.json"):
    """.no_exist/<commit>/<file>: huggingface_hub's record of a file the repo does not have."""
    commit = commit or repo.commits[-1]
    path = os.path.join(repo.path, ".no_exist", commit, filename)
    os.makedirs(os.path.dirname(path), exist_ok=True)
    open(path, "w").close()
    return path


def lock_path(cache_root, repo, blob="download"):
    return os.path.join(cache_root, ".locks", repo.folder, blob + ".lock")


def hold_lock(path):
    """Take the lock huggingface_hub's filelock takes during a download (flock, exclusive). Returns the fd."""
    os.makedirs(os.path.dirname(path), exist_ok=True)
    fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_TRUNC, 0o644)
    fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    return fd


def count_entries(root):
    """Entries below root (files, links, dirs), the figure benchmarks quote."""
    n = 0
    for _dirpath, dirnames, filenames in os.walk(root):
        n += len(dirnames) + len(filenames)
    return n


def tree_listing(root):
    """Sorted relative paths of every non-directory entry under root, with link targets: compare two trees."""
    out = []
    for dirpath, _dirnames, filenames in os.walk(root):
        for name in filenames:
            full = os.path.join(dirpath, name)
            rel = os.path.relpath(full, root)
            out.append(rel + (" -> " + os.readlink(full) if os.path.islink(full) else ""))
    return sorted(out)
