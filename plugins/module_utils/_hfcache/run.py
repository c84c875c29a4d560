# -*- coding: utf-8 -*-
# Copyright: residue.purge contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""One hf_cache run: scan, guard (locks, open files, fresh downloads), plan and delete."""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import os

from ansible_collections.residue.purge.plugins.module_utils import _privileges, _profiles, _stores
from ansible_collections.residue.purge.plugins.module_utils._hfcache.delete import execute_plan
from ansible_collections.residue.purge.plugins.module_utils._hfcache.inuse import (
    OpenFiles, held_lock, held_lock_file)
from ansible_collections.residue.purge.plugins.module_utils._hfcache.model import MAX_LISTED_FAILURES, is_hub_cache
from ansible_collections.residue.purge.plugins.module_utils._hfcache.plan import RepoSelection, diff_lines, plan_cache
from ansible_collections.residue.purge.plugins.module_utils._hfcache.scan import scan_cache, scan_repo
from ansible_collections.residue.purge.plugins.module_utils._hfcache.shared import LOCK_SUFFIX, STORE_DIR, Store


# ------------------------------------------------------------------------------------------ one run

class _Guard(object):
    """Answers 'may this repo be touched now?': held locks, open files, fresh downloads. Which processes have
    files open is read by root (every process's /proc) in clean(); the rest in the cache owner's process."""

    def __init__(self, caches, selection, force):
        self.selection = selection
        self.force = force
        self.problems = []
        self.open_files = OpenFiles([c.path for c in caches], self.problems, "could not check which processes have "
                                    "cache files open (no /proc here, or lsof failed)")

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
        if repo.shared_links:
            # a process reading this repo's model through its links holds the shared store's payload
            store = os.path.realpath(cache.path) + "/" + STORE_DIR + "/"
            open_files = self.open_files()
            for payload in sorted(set(repo.shared_links.values())):
                procs = open_files.get(store + payload)
                if procs:
                    return ("in_use", "%s%s (shared blob of this repo) is open in process %d (%s)" % (
                        store, payload, procs[0][0], procs[0][1]))
        return None

    def payload_held(self, cache, payload):
        if self.force:
            return None
        path = os.path.realpath(cache.path) + "/" + STORE_DIR + "/" + payload
        procs = self.open_files().get(path)
        if procs:
            return ("in_use", "%s is open in process %d (%s)" % (path, procs[0][0], procs[0][1]))
        if held_lock_file(path + LOCK_SUFFIX):
            return ("locked", "%s%s is held by a running process" % (path, LOCK_SUFFIX))
        return None


def _clean_one(path, selection, force, one_file_system, check_mode, open_files, protect):
    """Scan, plan and (unless check_mode) delete one cache, in the process acting as its owner: plain data for
    clean() to merge. open_files is root's reading of every process's /proc (the in-use guard: a user cannot
    read other users' /proc/PID/fd), made before this process started; lock probes and everything below the
    cache are read with this process's rights."""
    cache = scan_cache(path, one_file_system=one_file_system)
    problems = list(cache.problems)
    guard = _Guard([cache], selection, force)
    guard.open_files = lambda: open_files  # root's answer (clean): this process may not read others' /proc
    layouts = {}

    def layout_of(repo):
        if repo.path not in layouts:
            layouts[repo.path] = scan_repo(repo.path, one_file_system=one_file_system, detail=True)[1]
        return layouts[repo.path]

    store = Store(cache.path, cache.repos)
    plan = plan_cache(cache, selection, layout_of, lambda repo, whole: guard.held(cache, repo, whole),
                      store=store, payload_held=lambda name: guard.payload_held(cache, name))
    failures = []
    if check_mode and (plan.repos or plan.orphans):
        # the same deletions, nothing changed: each unlink and rmdir checked as the kernel would for this
        # process (the cache's owner), so check mode names the refusals the real run meets (remove's rule)
        failures = execute_plan(plan, protect=protect, dry_run=True)[0]
        plan.bytes_after = plan.bytes_before - plan.freed()
    elif plan.repos or plan.orphans:
        failures, late = execute_plan(plan, recheck=None if force else (lambda repo, whole: guard.lock(cache, repo)),
                                      protect=protect)
        for rp, reason in late:
            plan.held_back.append({"cache": cache.path, "repo_id": rp.repo.repo_id, "repo_type": rp.repo.repo_type,
                                   "reason": reason[0], "detail": reason[1]})
            plan.repos.remove(rp)
        plan.bytes_after = plan.bytes_before - plan.freed()
    before, after = diff_lines(plan)
    out = {"before": before, "after": after, "failures": list(failures), "held_back": plan.held_back,
           "deleted": [rp.to_result(cache.path) for rp in plan.repos],
           "freed_bytes": sum(rp.freed_bytes + sum(size for _n, size in rp.incomplete) for rp in plan.repos),
           "blobs_deleted": sum(len(rp.blobs) for rp in plan.repos),
           "blobs_kept_shared": sum(rp.blobs_kept_shared for rp in plan.repos),
           "store_swept": None, "summary": plan.summary()}
    if plan.orphans:
        swept = sum(size for _n, size in plan.orphans)
        out["store_swept"] = {"cache": cache.path, "path": store.path, "payloads": len(plan.orphans), "bytes": swept}
        out["freed_bytes"] += swept
    problems.extend(store.problems)
    if out["summary"]["over_budget"]:
        problems.append("cache %s stays over its budget (%d > %d bytes): what is left is kept, held back or "
                        "out of scope (%s)" % (cache.path, plan.bytes_after, plan.max_size,
                                               ", ".join(plan.kept_over_budget) or "nothing"))
    problems.extend(guard.problems)
    out["problems"] = problems
    return out


def _clean_as(actor, *args):
    """_clean_one with actor's rights (_privileges: a child dropped to the cache's owner when we are root and
    the cache is a user's; here otherwise). None and the reason when that child failed (root never redoes it)."""
    if actor is None or _privileges.effective_uid() != 0 or actor.uid == 0:
        return _clean_one(*args), None
    try:
        return _privileges.call_as(actor, _clean_one, *args), None
    except _privileges.ChildFailed as exc:
        return None, str(exc)


def clean(cache_dirs, selection, force=False, one_file_system=True, check_mode=False, actors=None, protect=None):
    """Scan, plan and (unless check_mode) carry out the deletions on every cache. Returns the module result.
    actors: {cache dir: user} whose rights each cache is scanned, planned and deleted with (see cache_actors;
    one child dropped to that user per cache); root's when absent. Only the in-use guard's reading of every
    process's /proc stays with root (docs/trust.md). protect: (st_dev, st_ino) of the protected directories
    (remove's rule, docs/trust.md rule 3): never entered nor removed by a deletion or the shared store's
    collection, under whatever name."""
    actors = actors or {}
    protect = frozenset(protect or ())
    problems = []
    seen = set()
    todo = []
    for path in cache_dirs:
        real = os.path.realpath(path)
        if real in seen:
            continue
        seen.add(real)
        if not os.path.isdir(path):
            problems.append("cache dir %s does not exist" % path)
            continue
        todo.append((path, real))
    # root reads which processes hold files under the caches (every process's /proc: a user cannot read other
    # users' /proc/PID/fd), before any child starts; the children get the answer
    reader = OpenFiles([real for _path, real in todo], problems, "could not check which processes have cache "
                       "files open (no /proc here, or lsof failed)")
    open_files = reader() if todo and not force else {}

    result = {"changed": False, "deleted": [], "held_back": [], "caches": [], "freed_bytes": 0,
              "blobs_deleted": 0, "blobs_kept_shared": 0, "store_swept": [], "problems": problems, "failures": [],
              "diff": {"before": "", "after": ""}}
    before_all, after_all = [], []
    for path, _real in todo:
        out, error = _clean_as(actors.get(path), path, selection, force, one_file_system, check_mode,
                               open_files, protect)
        if out is None:
            result["failures"].append("%s: %s" % (path, error))
            continue
        problems.extend(out["problems"])
        result["failures"].extend(out["failures"])
        before_all.extend(out["before"])
        after_all.extend(out["after"])
        result["deleted"].extend(out["deleted"])
        result["held_back"].extend(out["held_back"])
        result["caches"].append(out["summary"])
        for key in ("freed_bytes", "blobs_deleted", "blobs_kept_shared"):
            result[key] += out[key]
        if out["store_swept"]:
            result["store_swept"].append(out["store_swept"])
    failed = result["failures"]
    if len(failed) > MAX_LISTED_FAILURES:  # output size must not grow with the number of files
        more = len(failed) - MAX_LISTED_FAILURES
        del failed[MAX_LISTED_FAILURES:]
        failed.append("... and %d more failures" % more)
    result["changed"] = bool(result["deleted"] or result["store_swept"])
    result["diff"] = {"before": "\n".join(before_all) + ("\n" if before_all else ""),
                      "after": "\n".join(after_all) + ("\n" if after_all else "")}
    return result


def selection_from(params):
    """The RepoSelection the options describe; ValueError with a clear message for bad input."""
    patterns = list(params["repos"])
    if params["targets"]:
        chosen = _profiles.select_targets(_profiles.load_profiles(params["profiles"]), params["targets"])
        for name in sorted(chosen):
            patterns.extend(chosen[name].get("hf_repos") or [])
    _stores.check_globs((("repos", patterns), ("keep", params["keep"])), "repo pattern such as org/name or org/*")
    older_than, max_size = _stores.age_and_size(params)
    incomplete = _stores.incomplete_age(params["incomplete_older_than"])
    revisions = params["revisions"]
    if revisions is None and (patterns or older_than is not None):
        revisions = "all"
    if revisions == "all" and not patterns and older_than is None and params["repo_type"] == "any":
        raise ValueError("revisions=all with no repos and no older_than would empty every cache; "
                         "name the repos (repos: ['*'] for all of them)")
    return RepoSelection(patterns=patterns, repo_type=params["repo_type"], keep=params["keep"],
                         revisions=revisions, older_than=older_than, age_by=params["age_by"],
                         max_size=max_size, incomplete_older_than=incomplete,
                         store_orphans=params.get("store_orphans"))


def cache_dirs_from(params, problems=None):
    """Given cache dirs (checked), plus those of the users' environments when discovering (environment values
    that were not used are described in problems)."""
    return _cache_dirs(params, problems)[0]


def cache_actors(params, dirs, claims=None):
    """{cache dir: user} whose rights its deletions run with: the user whose home holds it, else the user
    whose environment named it (claims: {dir: {uid: user}}), else root (given dirs outside every home)."""
    users = _profiles.list_users(homes=params["homes"] or None, users=params["users"])
    homes = _privileges.HomeIndex(users)
    return dict((path, _privileges.actor_of(path, (claims or {}).get(path) or {}, homes)) for path in dirs)


def _cache_dirs(params, problems=None):
    """(dirs, {dir: {uid: user}} of the environments that named each discovered dir)."""
    claims = {}
    dirs = _stores.given_dirs(params["cache_dirs"], "cache_dirs", "a hub cache")
    discover = params["discover"]
    if discover is None:
        discover = not dirs
    if discover:
        users = _profiles.list_users(homes=params["homes"] or None, users=params["users"])
        for context in _profiles.user_environments(users, problems=problems):
            for path, source in _profiles.hub_cache_locations(context):
                if not is_hub_cache(path):
                    continue
                # a user's cache root counts where it really is, if that is theirs (docs/trust.md)
                real, why = _profiles.vet_location(context.user, path)
                if real is None:
                    if problems is not None:
                        problems.append("HF hub cache of user %s (%s) is not used: %s" % (
                            context.user.name, source, why))
                    continue
                claims.setdefault(real, {})[context.user.uid] = context.user
                if real not in dirs:
                    dirs.append(real)
    return dirs, claims


def run(params, check_mode=False):
    """hf_cache with validated module params: the module's result. ValueError for bad options (nothing read)."""
    selection = selection_from(params)
    env_problems = []
    dirs, claims = _cache_dirs(params, env_problems)
    users = _profiles.list_users(homes=params["homes"] or None, users=params["users"])
    result = clean(dirs, selection, force=params["force"], one_file_system=params["one_file_system"],
                   check_mode=check_mode, actors=cache_actors(params, dirs, claims),
                   protect=_profiles.protected_paths(users).identities())
    result["problems"][:0] = env_problems
    warnings = ["hf_cache: %s %s in %s held back (%s): %s" % (
        entry["repo_type"], entry["repo_id"], entry["cache"], entry["reason"], entry["detail"])
        for entry in result["held_back"]]
    warnings.extend("hf_cache: %s is still over its budget of %d bytes (%d bytes)" % (
        cache["path"], cache["max_size"], cache["bytes_after"]) for cache in result["caches"] if cache["over_budget"])
    result["_warnings"] = warnings
    if result["failures"]:
        result["failure"] = "hf_cache: %d removal(s) failed, first: %s" % (
            len(result["failures"]), result["failures"][0])
    return result
