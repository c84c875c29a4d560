# -*- coding: utf-8 -*-
# Copyright: residue.purge contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""One hf_cache run: scan, guard (locks, open files, fresh downloads), plan and delete."""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import os

from ansible_collections.residue.purge.plugins.module_utils._hfcache.delete import execute_plan
from ansible_collections.residue.purge.plugins.module_utils._hfcache.inuse import held_lock, open_paths_under
from ansible_collections.residue.purge.plugins.module_utils._hfcache.model import MAX_LISTED_FAILURES
from ansible_collections.residue.purge.plugins.module_utils._hfcache.plan import diff_lines, plan_cache
from ansible_collections.residue.purge.plugins.module_utils._hfcache.scan import scan_cache, scan_repo


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
