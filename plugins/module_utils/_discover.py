# -*- coding: utf-8 -*-
# Copyright: residue.purge contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""discover: resolve the targets' profiles on this host and inventory every residue, read-only.

Sizes come from one walk per residue location (_walk.usage) and one pass per HF hub cache
(hf_scan.scan_cache); the result grows with the number of residues, never with the number of files.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import errno
import os
import time

from ansible_collections.residue.purge.plugins.module_utils import (
    _apfs, _paths, _platform, _privileges, _procs, _profiles, _pyenvs, _walk)
from ansible_collections.residue.purge.plugins.module_utils._hfcache import scan as hf_scan
from ansible_collections.residue.purge.plugins.module_utils._hfcache import shared as hf_shared
from ansible_collections.residue.purge.plugins.module_utils._text import error_text, printable
from ansible_collections.residue.purge.plugins.module_utils._units import parse_duration

PROBLEM_LIMIT = 100


class Problems(object):
    """Bounded list of human-readable problems, so output size never follows file count."""

    def __init__(self, limit=PROBLEM_LIMIT):
        self.items = []
        self.dropped = 0
        self.limit = limit

    def add(self, text):
        text = printable(text)
        if text in self.items:
            return
        if len(self.items) < self.limit:
            self.items.append(text)
        else:
            self.dropped += 1

    def extend(self, texts):
        for text in texts:
            self.add(text)

    def as_list(self):
        if self.dropped:
            return self.items + ["... and %d more problems" % self.dropped]
        return list(self.items)


def last_use(item):
    return max(item.get("last_access") or 0, item.get("newest_mtime") or 0)


def _path_residue(target, path, usage):
    return {
        "target": target,
        "kind": "path",
        "path": path,
        "user": _profiles.owner_name(path),
        "bytes": usage.bytes,
        "files": usage.files,
        "newest_mtime": usage.newest_mtime,
        "last_access": usage.last_access,
    }


def apfs_shared(path, usage, one_fs, problems, sharing=False):
    """macOS: bytes of path that APFS clones or local snapshots share (removing it frees that much less), with a
    problem line saying so; None when no file's sharing could be read. A second, read-only pass (_apfs), made
    by size_as_owners in the owner's child (sharing: its answer; read here when not given)."""
    if sharing is False:
        sharing = _apfs.shared_bytes(path, one_file_system=one_fs)
    if sharing is None:
        problems.add("%s: APFS clone and snapshot sharing not read" % path)
        return None
    shared, known, unknown = sharing
    if unknown:
        problems.add("%s: APFS clone and snapshot sharing of %d of %d files not read (getattrlist "
                     "ATTR_CMNEXT_PRIVATESIZE, macOS 10.15+ on APFS)" % (path, unknown, known + unknown))
    if not known and unknown:
        return None
    if shared:
        problems.add("%s: %d of its %d bytes are shared with APFS clones or kept by local snapshots: removing it "
                     "frees that much less" % (path, shared, usage.bytes))
    return shared


def _repo_residue(target, repo, store):
    return {
        "target": target,
        "kind": "hf_repo",
        "path": repo.path,
        "user": _profiles.owner_name(repo.path),
        "bytes": repo.disk_bytes,
        "files": repo.files,
        "newest_mtime": repo.newest_mtime,
        "last_access": repo.last_access,
        "repo_id": repo.repo_id,
        "repo_type": repo.repo_type,
        "blob_bytes": repo.blob_bytes,
        # what removing this repo alone frees, huggingface_hub's accounting: its own blobs and the shared
        # store payloads no other repo references
        "exclusive_bytes": repo.blob_bytes - repo.shared_bytes + hf_shared.Tally(store).gain(_store_links(repo))[0],
        "revisions": [
            {"commit": r.commit, "refs": sorted(r.refs), "bytes": r.bytes, "last_modified": r.last_modified}
            for r in repo.revisions
        ],
    }


def _store_links(repo):
    return [(payload, "%s/blobs/%s" % (repo.folder, etag)) for etag, payload in sorted(repo.shared_links.items())]


def find_hub_caches(contexts, extra_caches, problems):
    """Every HF hub cache the contexts imply, plus explicit ones: [{path, user, source, sources, configured_as,
    claims}] by real path; claims: {uid: user} of the users whose contexts named it."""
    found = {}
    candidates = []
    for context in contexts:
        candidates.extend((path, source, context.user) for path, source in _profiles.hub_cache_locations(context))
    candidates.extend((path, "option extra_hf_caches", None) for path in extra_caches)
    for path, source, user in candidates:
        if not os.path.isdir(path):
            if source.startswith("option"):
                problems.add("extra_hf_caches: %s is not a directory" % path)
            continue
        # The configured cache root may itself be a symlink (a cache moved to a data disk); inside it nothing
        # is ever followed. A user's cache root counts only where it really is that user's (docs/trust.md).
        real = os.path.realpath(path)
        if user is not None:
            real, why = _profiles.vet_location(user, path)
            if real is None:
                problems.add("HF hub cache of user %s (%s) is not used: %s" % (user.name, source, why))
                continue
        entry = found.get(real)
        if entry is None:
            entry = found[real] = {"path": real, "user": _profiles.owner_name(real), "source": source,
                                   "sources": [source], "configured_as": [path], "claims": {}}
        else:
            if source not in entry["sources"]:
                entry["sources"].append(source)
            if path not in entry["configured_as"]:
                entry["configured_as"].append(path)
            if entry["source"] == "default" and source != "default":
                entry["source"] = source
        if user is not None:  # whose environment (or defaults) named it: {uid: user}, for its actor
            entry["claims"][user.uid] = user
    return [found[k] for k in sorted(found)]


def _scan_hub(path, repo_targets, one_fs, cutoff):
    """In the process acting as the cache's owner (hf_cache's rule, _hfcache.run._clean_one): scan one hub cache and
    list the repos the targets name, as plain data: {problems, store_bytes, residues (last used before cutoff),
    store_extra_bytes (the shared store payloads removing every listed repo frees: allocated bytes, each payload
    once, its last hard link only)}."""
    scan = hf_scan.scan_cache(path, one_file_system=one_fs)
    problems = list(scan.problems)
    store = hf_shared.Store(scan.path, scan.repos)
    store_bytes = None
    if store.marked:
        store_bytes = sum(p.disk for p in store.payloads().values())
    residues, extra, tally, counted = [], 0, hf_shared.Tally(store), set()
    for repo in scan.repos:
        for name in sorted(repo_targets):
            if not _profiles.repo_matches(repo_targets[name], repo.repo_id):
                continue
            residue = _repo_residue(name, repo, store)
            if cutoff is not None and last_use(residue) >= cutoff:
                continue
            residues.append(residue)
            if repo.path not in counted:
                counted.add(repo.path)
                extra += tally.add(_store_links(repo), attr="disk")[0]
    problems.extend(store.problems)
    return {"problems": problems, "store_bytes": store_bytes, "residues": residues, "store_extra_bytes": extra}


def scan_hub_caches(caches, repo_targets, users, one_fs, cutoff, problems):
    """{cache path: _scan_hub's answer}: each hub cache scanned and sized with its owner's rights, as hf_cache
    does (docs/trust.md rule 4): the owner is hf_cache's (_privileges.actor_of: whose home holds it, else whose
    environment named it, else root), and the scan runs in one child dropped to that user, so a root-only
    directory bind-mounted into a user's cache is named in problems, never counted with root's rights. A child
    its user stops or kills leaves that cache out, named; root never scans it instead. Nothing is scanned when
    no target names a repo (store_bytes stays unknown)."""
    if not repo_targets:
        return {}
    homes = _privileges.HomeIndex(users)
    out = {}
    for cache in caches:
        path = cache["path"]
        actor = _privileges.runner_for(_privileges.actor_of(path, cache["claims"], homes))
        try:
            found = _privileges.call_as(actor, _scan_hub, path, repo_targets, one_fs, cutoff)
        except (_privileges.ChildFailed, _privileges.NotReachable) as exc:
            problems.add("HF hub cache %s: not scanned: %s" % (path, exc))
            continue
        problems.extend(found["problems"])
        out[path] = found
    return out


class _Usages(dict):
    """{path: _walk.Usage} of the path residues that exist, and sharing: {path: _apfs.shared_bytes answer}."""

    def __init__(self):
        dict.__init__(self)
        self.sharing = {}


def _size_paths(jobs, one_fs, macos):
    """In the acting process (a user's dropped child, or this one): [(path, Usage dict or None when it does not
    exist, APFS sharing or None)] for each (path, parent fd, name). Plain data."""
    out = []
    for path, fd, name in jobs:
        try:
            os.lstat(name, dir_fd=fd)
        except OSError as exc:
            if exc.errno == errno.ENOENT:
                out.append((path, None, None))
            else:
                usage = _walk.Usage()
                usage.problems.append("%s: %s" % (printable(path), error_text(exc)))
                out.append((path, usage.to_dict(), None))
            continue
        usage = _walk.usage_at(fd, name, path, one_file_system=one_fs)
        sharing = _apfs.shared_bytes(path, one_file_system=one_fs) if macos else None
        out.append((path, usage.to_dict(), sharing))
    return out


def _open_parents(paths, problems):
    """Root's side: [(path, parent fd, last name)] of the paths whose parent was reached from '/' with
    O_NOFOLLOW at every component (_paths.open_parent); a symlink on the way is named in problems."""
    opened = []
    for path in paths:
        try:
            fd, name = _paths.open_parent(path)
        except OSError as exc:
            if exc.errno in (errno.ELOOP, errno.ENOTDIR):
                problems.add("%s: a directory on the way is a symlink or not a directory; not sized" % path)
            elif exc.errno != errno.ENOENT:
                problems.add("%s: %s" % (path, error_text(exc)))
            continue
        opened.append((path, fd, name))
    return opened


def size_as_owners(paths, users, claims, one_fs, macos, problems):
    """Size each path residue with its owner's rights (docs/trust.md rule 4): the paths are grouped by actor
    (_privileges.actor_of: whose home holds it, else whose environment named it, else root) and each group is
    walked by one child that dropped to that user (or here, for root's and system residue, or when we are not
    root). So a user's residue is sized as that user sees it: a bind mount or a root-only directory inside it
    is reported as unreadable (in problems), never counted with root's rights. A child that fails (killed or
    stopped by its user) leaves that user's residues out, named in problems; root never sizes them instead.
    Returns _Usages."""
    homes = _privileges.HomeIndex(users)
    actors = dict((path, _privileges.actor_of(path, claims.get(path) or {}, homes)) for path in paths)
    usages = _Usages()
    for runner, group in _privileges.by_runner(paths, lambda path: actors[path]):
        jobs = _open_parents([path for _i, path in group], problems)
        try:
            out = _privileges.call_as(runner, _size_paths, jobs, one_fs, macos) if jobs else []
        except (_privileges.ChildFailed, _privileges.NotReachable) as exc:
            for path, _fd, _name in jobs:
                problems.add("%s: not sized: %s" % (path, exc))
            continue
        finally:
            for _path, fd, _name in jobs:
                os.close(fd)
        for path, data, sharing in out:
            if data is None:
                continue
            usage = _walk.Usage()
            for key in _walk.Usage.__slots__:
                setattr(usage, key, data.get(key))
            usage.problems = list(data.get("problems") or [])
            problems.extend(usage.problems)
            usages[path] = usage
            usages.sharing[path] = sharing
    return usages


def run(params, check_mode=False, now=None):
    """discover with validated module params: the result dict. Read-only, so check_mode changes nothing."""
    now = time.time() if now is None else now
    for option in ("extra_hf_caches", "search_roots"):
        for path in params.get(option) or []:
            if not path or not os.path.isabs(path):
                raise ValueError("%s: %r is not an absolute path" % (option, path))
    cutoff = now - parse_duration(params["older_than"]) if params.get("older_than") else None
    one_fs = params.get("one_file_system", True)
    problems = Problems()

    profiles = _profiles.load_profiles(params.get("profiles"))
    selected = _profiles.select_targets(profiles, params.get("targets"))
    users = _profiles.list_users(params.get("homes"), params.get("users", "all"))
    env_problems = []
    contexts = _profiles.user_environments(users, scan_processes=params.get("scan_processes", True),
                                           problems=env_problems)
    for user in users:
        if not os.access(user.home, os.R_OK | os.X_OK):
            problems.add("home %s of user %s is not readable here: its residues are not listed (run with become)"
                         % (user.home, user.name))

    # Resolve every path first, so a bad profile fails the task before any walking.
    resolved = dict(((r.target, r.path), r) for r in _profiles.resolve_all(selected, users, contexts, env_problems))
    problems.extend(env_problems)

    residues = []
    shared = {}  # macOS: path -> bytes APFS clones or snapshots share (apfs_shared)
    macos = _platform.is_macos()
    usages = size_as_owners(sorted(set(path for _name, path in resolved)), users,
                            _privileges.claims_of(resolved.values(), contexts), one_fs, macos, problems)
    for (name, path) in sorted(resolved):
        usage = usages.get(path)
        if usage is None:
            continue
        if macos and path not in shared:
            shared[path] = apfs_shared(path, usage, one_fs, problems, usages.sharing.get(path))
        residue = _path_residue(name, path, usage)
        if macos:
            residue["apfs_shared_bytes"] = shared[path]
        residues.append(residue)

    caches = find_hub_caches(contexts, params.get("extra_hf_caches") or [], problems)
    repo_targets = dict((n, p["hf_repos"]) for n, p in selected.items() if p["hf_repos"])
    store_extra = {}  # cache -> the shared store bytes its listed repos free (each payload once)
    scanned = scan_hub_caches(caches, repo_targets, users, one_fs, cutoff, problems)
    for cache in caches:
        cache["store_bytes"] = None
        out = scanned.get(cache["path"])
        if out is None:
            continue
        cache["store_bytes"] = out["store_bytes"]
        residues.extend(out["residues"])
        store_extra[cache["path"]] = out["store_extra_bytes"]

    if cutoff is not None:
        residues = [r for r in residues if r["kind"] == "hf_repo" or last_use(r) < cutoff]

    counted = set()
    total = sum(store_extra.values())
    for r in residues:
        if r["path"] not in counted:
            counted.add(r["path"])
            total += r["bytes"]

    return {
        "changed": False,
        "residues": residues,
        "processes": find_target_processes(selected, problems),
        "packages": find_packages(selected, users, params.get("search_roots"), problems),
        "hf_caches": [dict((k, c[k]) for k in ("path", "user", "source", "sources", "store_bytes")) for c in caches],
        "users": [u.name for u in users],
        "targets": sorted(selected),
        "total_bytes": total,
        "problems": problems.as_list(),
    }


def find_target_processes(selected, problems):
    try:
        _procs.require_psutil()
    except Exception as e:  # psutil missing: the inventory is still useful, and says what it could not see
        problems.add("processes not listed: %s" % e)
        return []
    found = []
    table = None
    for name in sorted(selected):
        names, cmdline = _procs.profile_matchers(selected[name])
        if not names and not cmdline:
            continue
        for p in _procs.find_processes(names=names, cmdline=cmdline):
            table = table if table is not None else _procs.process_table()
            by = _procs.restarter_in(p.pid, table)
            found.append({"pid": p.pid, "ppid": p.ppid, "name": p.name, "user": p.user,
                          "cmdline": [printable(a) for a in p.cmdline], "target": name,
                          # where it came from: verify names what brought a stopped target back
                          "parents": [{"pid": a_pid, "name": printable(a_name)}
                                      for a_pid, _ctime, a_name in _procs.lineage(p.pid, table)],
                          "restarted_by": {"pid": by[0], "name": printable(by[2])} if by else None})
    return found


def find_packages(selected, users, search_roots, problems):
    wanted = {}
    for name in sorted(selected):
        for dist in selected[name]["pip"]:
            wanted.setdefault(_pyenvs.normalize_name(dist), []).append(name)
    if not wanted:
        return []
    roots = search_roots if search_roots else _pyenvs.default_search_roots(users)
    with _pyenvs.one_home_index(users):  # whose home holds each environment, read once
        listed = []  # a user's home is listed as that user; a failed child is named here
        envs = _pyenvs.find_environments(search_roots=roots, users=users, problems=listed)
        problems.extend(listed)
        return _packages_in(envs, wanted, problems)


def _packages_in(envs, wanted, problems):
    found = []
    for env in envs:
        try:
            dists = _pyenvs.distributions_of(env)  # a user's environment read as that user
        except Exception as e:  # one broken environment must not hide the others
            problems.add("%s: %s" % (env.path, e))
            continue
        for dist in dists:
            for target in wanted.get(dist.name, []):
                found.append({"target": target, "name": dist.name, "version": dist.version,
                              "environment": env.path, "python": env.python, "kind": env.kind,
                              "user": env.user})
    return found
