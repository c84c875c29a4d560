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

import os

from ansible_collections.residue.purge.plugins.module_utils._paths import O_DIR as _O_DIR, O_FILE as _O_FILE
from ansible_collections.residue.purge.plugins.module_utils._text import error_text as _err

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
                 "problems", "shared_links", "shared_bytes")

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
        self.shared_links = {}  # blob name -> shared store payload ('xx/<hash>') its symlink names
        self.shared_bytes = 0  # of blob_bytes, what referenced blobs in the shared store weigh

    def to_dict(self):
        out = dict((k, getattr(self, k)) for k in self.__slots__ if k != "revisions")
        out["shared_links"] = dict(self.shared_links)
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

    __slots__ = ("blob_sizes", "revision_blobs", "revision_copy_bytes", "orphan_blobs", "shared")

    def __init__(self):
        self.shared = {}  # blob name -> shared store payload ('xx/<hash>'), for blobs that link into the store
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
