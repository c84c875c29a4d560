# -*- coding: utf-8 -*-
# Copyright: residue.purge contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""A user's residue is acted on with that user's rights: work runs in a forked child that dropped to them.

On a shared host root must never be a lever for an unprivileged user: whatever a user controls (symlinks,
hard links, bind-mountable names, racing renames in their home) must meet the kernel's permission checks for
*that user*. So every read, walk, backup read and removal of a path resolved for a user (their home, their
environment, their processes' environment) runs in a child process that has dropped to the user's uid, gid
and supplementary groups; root's own and system residue stay with root.

API (used by remove, discover, hf_cache, pip_remove; stores for Ollama/ModelScope use the same):

    actor = root_user()                          # User(name, uid, gid, home) of uid 0
    creds = credentials(user)                    # Credentials(uid, gid, groups, name): from passwd/group
    result = call_as(user, work, *args)          # work(*args) with user's rights; its return value must be plain
                                                 # data (dict, list, tuple, set, str, bytes, numbers, None)
    for message in stream_as(user, produce):     # produce(send) in the child; each send(obj) reaches the
        ...                                      # parent as one message, in order (plain data), while it runs
    preexec_fn=dropper(user)                     # subprocess.Popen(..., preexec_fn=...): the same drop before exec
    homes = HomeIndex(users)                     # whose home holds a path: homes.owner(path) -> user or None
    user = actor_of(path, claims, homes)         # whose rights a path resolved for `claims` ({uid: user}) is acted on with
    user = actor_of_any(names, claims, homes)    # the same for a location known by several names (given, real)
    acts_for(user)                               # True when acting as user takes a child (we are root, user is not)
    claims = claims_of(resolved, contexts)       # {path: {uid: user}} of _profiles.resolve_all's paths
    runner = runner_for(actor)                   # who does the work: the actor as root; ourselves unprivileged
    for runner, group in by_runner(items, actor_fn): ...   # items grouped by runner, first appearance first

call_as runs work in this process when `user` is who we already are (no fork), in a child that drops to the
user when we are root, and raises NotReachable when we are neither root nor that user (an unprivileged run
reaches only the connecting user's residue). A failure in the child (an exception, a refused drop, a signal)
raises ChildFailed with the child's message; the parent never redoes that work with its own rights.
stream_as always forks (the stream needs two processes), dropping when we are root and the user is not.

The drop, in the child, in this order: os.setgroups(the user's groups: os.getgrouplist(name, gid)),
os.setresgid(gid, gid, gid), os.setresuid(uid, uid, uid); then it is verified (getresuid, getresgid,
getgroups), and that setuid(0) now fails: there is no way back. Where there is no setresuid (macOS),
drop_portable does the same with setgroups, setgid and setuid, verified with seteuid(0) failing too. The kernel makes such a child non-dumpable,
so the user cannot ptrace it or read its descriptors; the user can signal it (same real uid), so a child that
is stopped is killed by its parent rather than waited for (_fork.STALL_CHECK_SECONDS).
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import os
from collections import namedtuple

from ansible_collections.residue.purge.plugins.module_utils import _fork, _paths

try:
    import pwd
except ImportError:  # Windows
    pwd = None

Credentials = namedtuple("Credentials", "uid gid groups name")
# The group a user without a passwd entry runs with (a uid seen only on a process): the overflow group.
NO_GROUP = 65534


class NotReachable(Exception):
    """The module does not run as root and the residue belongs to another user."""


class ChildFailed(Exception):
    """The child that acted with a user's rights failed; the message says how."""


class User(namedtuple("User", "name uid gid home")):
    """A user of the host (gid None when unknown); _profiles.User. Any object with name, uid, gid, home will do
    where a user is taken."""


def passwd_user(uid):
    """uid's passwd entry as a User (its home as the entry has it), or None when it has none (or the host has no
    passwd database)."""
    if pwd is None:
        return None
    try:
        e = pwd.getpwuid(uid)
    except KeyError:
        return None
    return User(e.pw_name, e.pw_uid, e.pw_gid, e.pw_dir)


def root_user():
    """The user root's and system residue is acted on as (uid 0)."""
    user = passwd_user(0)
    if user is None:
        return User("root", 0, 0, "/root")
    return user._replace(home=user.home or "/")


def effective_uid():
    return os.geteuid() if hasattr(os, "geteuid") else None


def credentials(user):
    """uid, gid and supplementary groups of user, from the passwd and group databases. A uid without a passwd
    entry gets its own uid, the overflow group and no supplementary groups."""
    entry = passwd_user(user.uid)
    if entry is None:
        gid = user.gid if user.gid is not None else NO_GROUP
        return Credentials(user.uid, gid, (gid,), str(user.uid))
    gid = entry.gid
    try:
        groups = os.getgrouplist(entry.name, gid)
    except (OSError, AttributeError):
        groups = [gid]
    return Credentials(entry.uid, gid, tuple(sorted(set(groups))), entry.name)


def drop(creds):
    """Become creds for good (in a child). Raises OSError/ChildFailed when any step does not hold."""
    if not hasattr(os, "setresuid"):  # macOS and the BSDs have no setresuid/getresuid
        return drop_portable(creds)
    os.setgroups(list(creds.groups))
    os.setresgid(creds.gid, creds.gid, creds.gid)
    os.setresuid(creds.uid, creds.uid, creds.uid)
    if os.getresuid() != (creds.uid,) * 3 or os.getresgid() != (creds.gid,) * 3:
        raise ChildFailed("the switch to uid %d gid %d did not hold" % (creds.uid, creds.gid))
    if set(os.getgroups()) != set(creds.groups):
        raise ChildFailed("the supplementary groups of %s did not hold" % creds.name)
    _no_way_back(creds)


# macOS keeps at most 16 groups in a process's credential (NGROUPS_MAX); membership beyond them is resolved by
# the directory service when a file's group is checked.
_BSD_NGROUPS = 16


def drop_portable(creds):
    """drop() with POSIX calls only (where there is no setresuid): setgroups, then setgid and setuid, which set
    the real, effective and saved ids together when called by root. Verified by the real and effective ids and
    by seteuid(0) and setuid(0) failing (the saved uid is not 0 any more)."""
    groups = [creds.gid] + [g for g in creds.groups if g != creds.gid]
    try:
        os.setgroups(groups)
    except OSError:
        if len(groups) <= _BSD_NGROUPS:
            raise
        os.setgroups(groups[:_BSD_NGROUPS])  # fewer groups: never more rights than the user has
    os.setgid(creds.gid)
    os.setuid(creds.uid)
    if (os.getuid(), os.geteuid(), os.getgid(), os.getegid()) != (creds.uid, creds.uid, creds.gid, creds.gid):
        raise ChildFailed("the switch to uid %d gid %d did not hold" % (creds.uid, creds.gid))
    if creds.gid not in os.getgroups() and os.getegid() != creds.gid:
        raise ChildFailed("the groups of %s did not hold" % creds.name)
    if creds.uid != 0:
        try:
            os.seteuid(0)
        except OSError:
            pass
        else:
            raise ChildFailed("after dropping to uid %d, seteuid(0) still succeeded" % creds.uid)
    _no_way_back(creds)


def _no_way_back(creds):
    if creds.uid != 0:
        try:
            os.setuid(0)
        except OSError:
            return
        raise ChildFailed("after dropping to uid %d, setuid(0) still succeeded" % creds.uid)


def dropper(user):
    """preexec_fn for subprocess: the same drop, for a program run as user (None when no drop is needed)."""
    if effective_uid() != 0 or user.uid == 0:
        return None
    creds = credentials(user)

    def preexec():
        drop(creds)
    return preexec


def needs_child(user):
    """True when acting as user takes a child that drops (we are root, the user is not); NotReachable when we
    are neither root nor that user."""
    euid = effective_uid()
    if euid is None or euid == user.uid:
        return False
    if euid == 0:
        return True
    raise NotReachable("the residue of %s (uid %d) is not reachable without root (run with become)"
                       % (user.name, user.uid))


def _guarded(creds, work, args, kwargs):
    """In the child: drop (when creds), then work; ('ok', value) or ('error', text)."""
    def run():
        try:
            if creds is not None:
                drop(creds)
            return ("ok", work(*args, **kwargs))
        except BaseException as exc:  # everything goes back to the parent as text
            return ("error", "%s: %s" % (type(exc).__name__, exc))
    return run


def call_as(user, work, *args, **kwargs):
    """work(*args, **kwargs) with user's rights; see the module docstring."""
    if not needs_child(user):
        return work(*args, **kwargs)
    creds = credentials(user)
    handle = _fork.fork_call(_guarded(creds, work, args, kwargs)) if _fork.can_fork() else None
    if handle is None:
        raise ChildFailed("could not start a process as %s (fork failed or threads are running)" % creds.name)
    outcome = _fork.fork_result(handle, plain=True)
    if not isinstance(outcome, tuple) or len(outcome) != 2:
        raise ChildFailed("the process acting as %s ended without a result (killed, stopped or failed)"
                          % creds.name)
    if outcome[0] != "ok":
        raise ChildFailed("as %s: %s" % (creds.name, outcome[1]))
    return outcome[1]


def stream_as(user, produce):
    """Messages that produce(send) sends from a child acting with user's rights; see the module docstring.
    ChildFailed when the child fails or ends early (every message it sent before is yielded first)."""
    creds = credentials(user) if needs_child(user) else None
    name = creds.name if creds is not None else user.name

    def child(send):
        try:
            if creds is not None:
                drop(creds)
            produce(send)
            send(("__end__", None))
        except BaseException as exc:
            send(("__error__", "%s: %s" % (type(exc).__name__, exc)))

    if not _fork.can_fork():
        raise ChildFailed("could not start a process as %s (threads are running)" % name)
    try:
        messages = _fork.fork_stream(child)
    except OSError as exc:
        raise ChildFailed("could not start a process as %s: %s" % (name, exc))
    return _checked(messages, name)


def _checked(messages, name):
    try:
        for message in messages:
            if isinstance(message, tuple) and len(message) == 2 and message[0] in ("__end__", "__error__"):
                if message[0] == "__error__":
                    raise ChildFailed("as %s: %s" % (name, message[1]))
                return
            yield message
    except EOFError as exc:
        raise ChildFailed("the process acting as %s: %s" % (name, exc))
    finally:
        messages.close()
    raise ChildFailed("the process acting as %s ended before it was done (killed, stopped or failed)" % name)


# ---------------------------------------------------------------------------------------- whose residue

class HomeIndex(object):
    """The homes of the users that are not root, deepest first: owner(path) is the user whose home holds path,
    by spelling or by identity (a directory on path's way that is that home under another name)."""

    def __init__(self, users):
        found = []
        for user in users:
            if user.uid == 0 or not user.home or not user.home.startswith("/") or user.home.strip("/") == "":
                continue
            try:
                home = _paths.canonical(user.home)
                key = (home.st.st_dev, home.st.st_ino) if home.exists else None
            except (_paths.PathRefused, OSError):
                key = None
            try:
                found.append((_paths.lexical(user.home), key, user))
            except _paths.PathRefused:
                continue
        self.homes = sorted(found, key=lambda h: -len(h[0]))

    def owner(self, path):
        try:
            text = _paths.lexical(path)
        except _paths.PathRefused:
            return None
        chain = None
        for home, key, user in self.homes:
            if _paths.is_below(text, home):
                return user
        for home, key, user in self.homes:
            if key is None:
                continue
            if chain is None:
                try:
                    chain = set(_paths.canonical(text).chain)
                except (_paths.PathRefused, OSError):
                    chain = set()
            if key in chain:
                return user
        return None


def actor_of(path, claims, homes):
    """Whose rights a path is acted on with: the user whose home holds it; else root when root (or a system
    path, claimed as uid 0) named it; else the user it was resolved for (the lowest uid when several users'
    environments name the same place). claims: {uid: user} of who resolved the path."""
    user = homes.owner(path)
    if user is not None:
        return user
    if 0 in claims or not claims:
        return claims.get(0) or root_user()
    return claims[min(claims)]


def actor_of_any(names, claims, homes):
    """actor_of for a location known by several names (as it was found or given, and where it really is, for a
    model store that may be a link): the user whose home holds the first of them that is in a home; else as
    actor_of."""
    for name in names:
        user = homes.owner(name)
        if user is not None:
            return user
    return actor_of(names[-1], claims, homes)


def acts_for(user):
    """True when work for user runs in a child that drops to them: we are root and user is someone else. An
    unprivileged run acts with its own rights (the kernel decides what it reaches); root's own residue with
    root's."""
    return user is not None and effective_uid() == 0 and user.uid != 0


def claims_of(resolved, contexts):
    """{path: {uid: user}} of who resolved each of _profiles.resolve_all's paths: the context's user, or root
    for an absolute system path in a profile (root's, for everyone) or a user without a context."""
    root = root_user()
    by_name = {}
    for context in contexts:
        by_name.setdefault(context.user.name, context.user)
    claims = {}
    for r in resolved:
        owner = by_name.get(r.user)
        system_path = r.template.startswith("/")
        user = root if system_path or owner is None or owner.uid == 0 else owner
        claims.setdefault(r.path, {})[user.uid] = user
    return claims


def runner_for(actor):
    """Who does an actor's work: the actor when we are root (a child that drops when the actor is not root);
    ourselves otherwise (an unprivileged run acts with its own rights on everything, as the kernel allows)."""
    euid = effective_uid()
    if euid is None or euid == 0:
        return actor
    home = os.environ.get("HOME") or "/"
    gid = os.getegid() if hasattr(os, "getegid") else None
    entry = passwd_user(euid)
    return User(str(euid) if entry is None else entry.name, euid, gid, home)


def by_runner(items, actor_fn):
    """[(runner, [(index, item)])]: items grouped by runner_for(actor_fn(item)), in order of first appearance."""
    groups, order = {}, []
    for i, item in enumerate(items):
        runner = runner_for(actor_fn(item))
        if runner.uid not in groups:
            groups[runner.uid] = (runner, [])
            order.append(runner.uid)
        groups[runner.uid][1].append((i, item))
    return [groups[uid] for uid in order]
