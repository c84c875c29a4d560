# -*- coding: utf-8 -*-
# Copyright: residue.purge contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Deletion plans for a hub cache: which revisions, refs and blobs go, with huggingface_hub's accounting."""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import fnmatch
import time

from ansible_collections.residue.purge.plugins.module_utils._hfcache.shared import Tally


# ------------------------------------------------------------------------------------------ planning

class RepoSelection(object):
    """What to delete, from the module's options (already parsed and validated).

    patterns: globs on org/name (empty: every repo); repo_type: model|dataset|space|any; keep: globs
    never touched; revisions: 'all' | 'unreferenced' | None (only the budget selects); older_than:
    seconds or None; age_by: 'accessed' | 'modified'; max_size: bytes or None; incomplete_older_than:
    seconds or None (never); now: epoch seconds; store_orphans: sweep shared store payloads no live reference
    names (None: when revisions is 'unreferenced').
    """

    __slots__ = ("patterns", "repo_type", "keep", "revisions", "older_than", "age_by", "max_size",
                 "incomplete_older_than", "now", "store_orphans")

    def __init__(self, patterns=(), repo_type="any", keep=(), revisions=None, older_than=None,
                 age_by="accessed", max_size=None, incomplete_older_than=86400, now=None, store_orphans=None):
        self.patterns = list(patterns)
        self.repo_type = repo_type
        self.keep = list(keep)
        self.revisions = revisions
        self.older_than = older_than
        self.age_by = age_by
        self.max_size = max_size
        self.incomplete_older_than = incomplete_older_than
        self.now = time.time() if now is None else now
        # sweep shared store payloads nothing references (huggingface_hub's `hf cache prune`)
        self.store_orphans = (revisions == "unreferenced") if store_orphans is None else bool(store_orphans)

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
                 "incomplete", "reason", "local_bytes", "store_bytes", "payloads")

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
        self.local_bytes = 0  # freed in the repo dir itself (blobs that are files, copies in snapshots)
        self.store_bytes = 0  # freed in the shared store (payloads whose last reference this plan removes)
        self.payloads = []  # shared store payloads ('xx/<hash>') this plan frees

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
        shared = layout.shared
        self.local_bytes = copy_bytes + sum(layout.blob_sizes.get(b, 0) for b in self.blobs if b not in shared)
        self.freed_bytes = self.local_bytes + self.store_bytes
        return self

    def store_links(self):
        """[(payload, '<folder>/blobs/<etag>')] of the repo's shared store links this plan removes: all of
        them when the repo goes whole (orphaned links too), else those of the blobs no kept revision uses."""
        shared = self.layout.shared
        folder = self.repo.folder
        names = sorted(shared) if self.whole else [b for b in self.blobs if b in shared]
        return [(shared[n], "%s/blobs/%s" % (folder, n)) for n in names]

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
            "store_payloads_deleted": len(self.payloads), "store_bytes": self.store_bytes,
        }


class CachePlan(object):
    __slots__ = ("cache", "repos", "held_back", "bytes_before", "bytes_after", "max_size", "kept_over_budget",
                 "store", "orphans")

    def __init__(self, cache, store=None):
        self.cache = cache
        self.repos = []
        self.held_back = []  # dicts: cache, repo_id, repo_type, reason, detail
        self.store = store if store is not None and store.marked else None
        self.orphans = []  # (payload, bytes) of store payloads no live reference names, to sweep
        if self.store is None:
            self.bytes_before = cache.blob_bytes
        else:
            # huggingface_hub's physical size: repo blobs once per repo, every store payload once
            self.bytes_before = sum(r.blob_bytes - r.shared_bytes for r in cache.repos) + self.store.total_bytes()
        self.bytes_after = self.bytes_before
        self.max_size = None
        self.kept_over_budget = []

    def freed(self):
        return sum(p.freed_bytes for p in self.repos) + sum(size for _name, size in self.orphans)

    def summary(self):
        out = {"path": self.cache.path, "bytes_before": self.bytes_before, "bytes_after": self.bytes_after,
               "max_size": self.max_size,
               "over_budget": self.max_size is not None and self.bytes_after > self.max_size,
               "kept_over_budget": list(self.kept_over_budget)}
        out["shared_store"] = None if self.store is None else {
            "path": self.store.path, "payloads_deleted": sum(len(p.payloads) for p in self.repos) + len(self.orphans),
            "bytes_freed": sum(p.store_bytes for p in self.repos) + sum(size for _n, size in self.orphans),
            "unreferenced_deleted": len(self.orphans)}
        return out


def attribute_store(plan):
    """Give each payload the plan frees to the first repo (in plan order) whose links complete its removal."""
    if plan.store is None:
        return
    tally = Tally(plan.store)
    for rp in plan.repos:
        rp.store_bytes, rp.payloads = tally.add(rp.store_links())
        rp.freed_bytes = rp.local_bytes + rp.store_bytes
    return tally


def plan_cache(cache, selection, layout_of, held_of, store=None, payload_held=None):
    """Plan one cache's deletions. Pure given its inputs:

    layout_of(repo) -> RepoLayout (which blobs each revision uses); held_of(repo, whole) -> None or
    (reason, detail) when the repo must not be touched (locked, in use, fresh download).
    Revisions chosen by the selection go first; then, with max_size, the least recently used
    revisions (by selection.age_by) of the repos in scope and not kept, until the cache fits.
    store: the cache's shared.Store (huggingface_hub 2.x): a payload is freed when the plan removes its last
    live reference, and with selection.store_orphans the payloads nothing references go too (unless
    payload_held(name) -> (reason, detail) says one is in use).
    """
    plan = CachePlan(cache, store)
    tally = Tally(plan.store) if plan.store is not None else None
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
        whole_empty = bool(not repo.revisions and selection.revisions == "all" and selection.older_than is None
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
        if tally is not None:
            rp.store_bytes = tally.add(rp.store_links())[0]
            rp.freed_bytes = rp.local_bytes + rp.store_bytes

    if tally is not None and selection.store_orphans:
        # payloads no live reference names: no repo's plan can touch them, so they go before any budget choice
        for name in tally.orphans():
            reason = payload_held(name) if payload_held else None
            if reason:
                entry = {"cache": cache.path, "repo_id": name, "repo_type": "shared_blob", "reason": reason[0],
                         "detail": reason[1]}
                if entry not in plan.held_back:
                    plan.held_back.append(entry)
                continue
            payload = plan.store.payload(name)
            plan.orphans.append((name, payload.size if payload.nlink <= 1 else 0))

    after = plan.bytes_before - sum(p.freed_bytes for p in plans.values()) - sum(s for _n, s in plan.orphans)
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
            had = set(rp.store_links())
            rp.revisions = trial.revisions
            rp.compute()
            if tally is not None:
                rp.store_bytes += tally.add([link for link in rp.store_links() if link not in had])[0]
                rp.freed_bytes = rp.local_bytes + rp.store_bytes
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
    attribute_store(plan)
    plan.bytes_after = plan.bytes_before - plan.freed()
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
        for name in rp.payloads:
            before.append("%s/blobs/%s (shared blob)" % (plan.cache.path, name))
    for name, _size in plan.orphans:
        before.append("%s/blobs/%s (shared blob, unreferenced)" % (plan.cache.path, name))
    return before, after
