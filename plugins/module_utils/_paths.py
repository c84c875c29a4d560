# -*- coding: utf-8 -*-
# Copyright: residue.purge contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Paths: validation and normalisation of option paths, containment, and the canonicaliser.

canonical() is the one place a path's spelling becomes a location: '//' collapsed, '.' dropped, '..' refused,
then every component looked at with lstat from '/'. A symlink component is followed only when the link itself
is root's (uid 0, one hard link): the system's own layout (/home -> /data/home, /lib -> usr/lib), which no user
can create. A symlink owned by anyone else is never followed: the path is refused, naming the link and its
owner (a user's ~/.config -> /etc). The result carries the (st_dev, st_ino) of every existing component, so
callers compare locations by identity, not by spelling. open_parent() then reaches a canonical path through
descriptors, one component at a time with O_NOFOLLOW, so a component swapped for a symlink afterwards is not
followed either.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import errno
import os
import stat
from collections import namedtuple

from ansible_collections.residue.purge.plugins.module_utils._text import error_text

# path: the canonical text; exists: whether every component was found (False also when a component could not
# be looked up: permission denied); st: lstat of the last component when it exists, else None; chain: the
# (st_dev, st_ino) of '/' and of each existing component, in order.
Canonical = namedtuple("Canonical", "path exists st chain")

MAX_LINKS = 40  # as the kernel's MAXSYMLINKS
# Intermediate directories are opened as O_PATH where the OS has it: only search permission is needed on a
# directory that is passed through (a 0711 home), as for the kernel's own path walk.
_O_CHAIN = ((getattr(os, "O_PATH", 0) or os.O_RDONLY) | getattr(os, "O_DIRECTORY", 0)
            | getattr(os, "O_NOFOLLOW", 0) | getattr(os, "O_CLOEXEC", 0))


# A directory below a descriptor, never through a link (open_below, and every descriptor walk: _walk, _hfcache,
# _ollama, _apfs); a file to read there, never through a link nor blocking on a FIFO.
O_DIR = os.O_RDONLY | getattr(os, "O_DIRECTORY", 0) | getattr(os, "O_NOFOLLOW", 0) | getattr(os, "O_CLOEXEC", 0)
O_FILE = os.O_RDONLY | getattr(os, "O_NOFOLLOW", 0) | getattr(os, "O_CLOEXEC", 0) | getattr(os, "O_NONBLOCK", 0)


PROTECTED = "is a protected directory (or holds one) under another name; not entered"


class PathRefused(ValueError):
    """A path that is not used as given; the message says why (for a symlink: the link, its owner, the path)."""


def normalise_roots(paths, option, allow_root=False):
    """Validate directories given in `option`: absolute, no NUL; returned normalised ('//' collapsed) and
    also symlink-resolved, because the kernel reports the files a process holds by their resolved path.
    '/' is refused unless allow_root (reporting every deleted file is harmless; matching every process is not).
    ValueError names the option."""
    roots = []
    for path in paths or ():
        if not isinstance(path, str) or not path.strip():
            raise ValueError("%s: every entry must be a non-empty absolute path, got %r" % (option, path))
        if "\0" in path:
            raise ValueError("%s: a path cannot contain a NUL byte: %r" % (option, path))
        if not os.path.isabs(path):
            raise ValueError("%s: %r is not an absolute path" % (option, path))
        for candidate in (os.path.normpath(path), os.path.realpath(path)):
            candidate = "/" + candidate.lstrip("/")  # normpath keeps a leading '//'
            if candidate == "/" and not allow_root:
                raise ValueError("%s: '/' would match every process; name the directory that holds the residue"
                                 % option)
            if candidate not in roots:
                roots.append(candidate)
    return roots


def root_of(path, roots):
    """The root that contains path (or equals it), else None; a trailing ' (deleted)' is ignored. A pure
    string test on normalised paths, on component boundaries."""
    if not path:
        return None
    if path.endswith(" (deleted)"):
        path = path[:-len(" (deleted)")]
    for root in roots:
        if path == root or path.startswith(root.rstrip("/") + "/"):
            return root
    return None


def is_below(path, directory):
    """True when path is directory itself or inside it (component boundaries, normalised text)."""
    directory = directory.rstrip("/") or "/"
    return path == directory or path.startswith(directory.rstrip("/") + "/")


# ---------------------------------------------------------------------------------------- canonical

def lexical(path, field="path"):
    """The absolute path with '//' collapsed and '.' components dropped (a trailing '/' too); PathRefused for
    a non-string, an empty path, a NUL byte, a relative path or a '..' component, naming field."""
    if not isinstance(path, str) or not path.strip():
        raise PathRefused("%s: an empty path is refused" % field)
    if "\0" in path:
        raise PathRefused("%s: a path cannot contain a NUL byte: %r" % (field, path))
    if not path.startswith("/"):
        raise PathRefused("%s: %r is not an absolute path" % (field, path))
    parts = [p for p in path.split("/") if p not in ("", ".")]
    if ".." in parts:
        raise PathRefused("%s: %r must not contain '..'" % (field, path))
    return "/" + "/".join(parts)


def _owner(uid):
    from ansible_collections.residue.purge.plugins.module_utils._profiles import user_name  # _profiles uses us
    return user_name(uid)


def trusted_link(st):
    """A symlink the system made: owned by root and not hard-linked elsewhere (a user can neither create a
    root-owned symlink nor, with a second name, plant root's own link in a directory of theirs)."""
    return st.st_uid == 0 and st.st_nlink == 1


def canonical(path, field="path"):
    """path as a location: Canonical(path, exists, st, chain). Spelling first (lexical()), then each component
    with lstat from '/': a trusted (root-owned) symlink is followed (its target's '..' resolved against the
    symlink-free prefix), any other symlink refuses the path (PathRefused naming the link, its owner and the
    path). A missing component (or one that cannot be looked up) ends the lookups: the rest is taken as
    spelled and exists is False."""
    text = lexical(path, field)
    todo = list(reversed([p for p in text.split("/") if p]))
    done = []
    root_st = os.lstat("/")
    chain = [(root_st.st_dev, root_st.st_ino)]
    exists, st, links = True, root_st, 0
    while todo:
        name = todo.pop()
        if name in ("", "."):
            continue
        if name == "..":  # only a trusted link's target brings these; the prefix has no symlink left
            if not exists:
                raise PathRefused("%s: %r: a symlink on the way points through a missing directory" % (field, path))
            if done:
                done.pop()
                chain.pop()
            continue
        current = "/" + "/".join(done + [name])
        if not exists:
            done.append(name)
            continue
        try:
            st = os.lstat(current)
        except OSError as exc:
            if exc.errno not in (errno.ENOENT, errno.ENOTDIR, errno.EACCES):
                raise PathRefused("%s: %s: %s" % (field, current, error_text(exc)))
            exists, st = False, None
            done.append(name)
            continue
        if stat.S_ISLNK(st.st_mode):
            if not trusted_link(st):
                raise PathRefused("%s: %r: %s is a symlink owned by %s (uid %d), not by root; it is not followed"
                                  % (field, path, current, _owner(st.st_uid), st.st_uid))
            links += 1
            if links > MAX_LINKS:
                raise PathRefused("%s: %r: too many levels of symbolic links" % (field, path))
            target = os.readlink(current)
            if target.startswith("/"):
                del done[:]
                del chain[1:]
            todo.extend(reversed([p for p in target.split("/") if p]))
            continue
        done.append(name)
        chain.append((st.st_dev, st.st_ino))
    return Canonical("/" + "/".join(done), exists, st if exists else None, tuple(chain))


def open_parent(path):
    """(descriptor of path's parent directory, last component as bytes) for an absolute path with no '..':
    every directory from '/' is opened relative to the one before with O_NOFOLLOW|O_DIRECTORY, so a component
    that is (or has become) a symlink is never followed: OSError ELOOP/ENOTDIR then. The caller closes the
    descriptor. ValueError for '/' or a relative path."""
    raw = os.fsencode(path)
    if not raw.startswith(b"/"):
        raise ValueError("%r is not an absolute path" % (path,))
    parts = [p for p in raw.split(b"/") if p not in (b"", b".")]
    if not parts:
        raise ValueError("'/' has no parent directory")
    if b".." in parts:
        raise ValueError("%r must not contain '..'" % (path,))
    fd = os.open(b"/", _O_CHAIN)
    try:
        for part in parts[:-1]:
            nfd = os.open(part, _O_CHAIN, dir_fd=fd)
            os.close(fd)
            fd = nfd
    except BaseException:
        os.close(fd)
        raise
    return fd, parts[-1]


def read_all(fd, chunk=1 << 16):
    """Every byte left in an open descriptor, through raw os.read (no buffered file object)."""
    chunks = []
    while True:
        data = os.read(fd, chunk)
        if not data:
            return b"".join(chunks)
        chunks.append(data)


def open_below(root_fd, parts, protect=frozenset()):
    """Descriptor of the directory root_fd/parts[0]/parts[1]/..., each opened relative to the one before with
    O_NOFOLLOW|O_DIRECTORY, never through a link (OSError ELOOP/ENOTDIR then), never into a protected directory
    (protect: (st_dev, st_ino) of _profiles.ProtectedPaths.identities(); a bind mount of /etc as blobs/ is
    refused with EPERM, PROTECTED). The caller closes it."""
    fd = os.dup(root_fd)
    for part in parts:
        try:
            nfd = os.open(part, O_DIR, dir_fd=fd)
        finally:
            os.close(fd)
        fd = nfd
        if protect:
            st = os.fstat(fd)
            if (st.st_dev, st.st_ino) in protect:
                os.close(fd)
                raise OSError(errno.EPERM, PROTECTED)
    return fd


# ---------------------------------------------------------------------------------------- identity

def identities(paths, memo=None):
    """{(st_dev, st_ino): (protected path, itself)} for a set of protected directories: the location of each
    (canonical(): root's symlinks followed, nothing else) and of every directory above it, so that a path is
    known to be a protected directory, or to hold one, whatever it is spelled or mounted as. itself is True
    for the protected directory's own identity, False for an ancestor's. A protected path that does not exist
    adds its existing ancestors; one that passes a user's symlink adds nothing (no walk follows that link).
    memo: a dict shared by the protected sets of one run (one lookup per path, however many users' sets)."""
    index = {}
    memo = {} if memo is None else memo  # path -> canonical() or None, shared by the sets of one run
    for path in sorted(paths):
        if not isinstance(path, str) or not path.startswith("/"):
            continue
        if path not in memo:
            try:
                memo[path] = canonical(path)
            except (PathRefused, OSError):
                memo[path] = None
        found = memo[path]
        if found is None:
            continue
        chain = found.chain
        for i, key in enumerate(chain):
            itself = found.exists and i == len(chain) - 1
            if key not in index or (itself and not index[key][1]):
                index[key] = (path, itself)
    return index


def protected_identity(path, index):
    """(protected path, itself) when path's location (canonical()) is a protected directory or an ancestor of
    one by identity (st_dev, st_ino): a bind mount, a second spelling or a root-owned symlink of it. None
    when it is not, when it does not exist, or when a user's symlink is on the way (a walk never follows it:
    removing such a path removes the link at most)."""
    try:
        found = canonical(path)
    except (PathRefused, OSError):
        return None
    if not found.exists or not stat.S_ISDIR(found.st.st_mode):
        return None
    return index.get((found.st.st_dev, found.st.st_ino))
