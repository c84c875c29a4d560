# -*- coding: utf-8 -*-
# Copyright: residue.purge contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Carrying out a deletion plan, descriptor-based from the cache dir, never through a link."""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import errno
import os

from ansible_collections.residue.purge.plugins.module_utils._hfcache.model import _IFDIR, _IFMT, _O_DIR, _err
from ansible_collections.residue.purge.plugins.module_utils._hfcache.shared import collect_plan
from ansible_collections.residue.purge.plugins.module_utils._paths import open_below
from ansible_collections.residue.purge.plugins.module_utils._walk import refusal, remove_at


# ------------------------------------------------------------------------------------------ deletion

class DeletionError(Exception):
    pass


def _rmtree_at(parent_fd, name, dev, failures, path, protect=frozenset(), dry_run=False):
    """rm -rf of parent_fd/name with the collection's one removal engine (_walk), never through a link and
    never into another file system; what stays is a failure (the plan counted it as freed). dry_run: nothing
    removed, each unlink and rmdir checked as the kernel would (_walk's predict mode)."""
    try:
        st = os.stat(name, dir_fd=parent_fd, follow_symlinks=False)
    except OSError as e:
        if e.errno != errno.ENOENT:
            failures.append("%s: %s" % (path, _err(e)))
        return
    if st.st_mode & _IFMT == _IFDIR and st.st_dev != dev:
        failures.append("%s: on another file system, not removed" % path)
        return
    result = remove_at(parent_fd, name, path, parallel=False, protect=protect, dry_run=dry_run,
                       predict=dry_run)  # serial as before: one fork per repo would cost more than it saves
    failures.extend("%s: %s" % (where, text) for where, text in result.failed)
    if result.failed_count > len(result.failed):
        failures.append("%s: %d more failures not listed" % (path, result.failed_count - len(result.failed)))
    failures.extend(result.problems)


def _unlink_at(parent_fd, name, failures, path, dry_run=False):
    try:
        st = os.stat(name, dir_fd=parent_fd, follow_symlinks=False)
        if st.st_mode & _IFMT == _IFDIR:
            failures.append("%s: is a directory, not removed" % path)
            return
        if dry_run:
            refused = refusal(parent_fd, name, st)
            if refused is not None:
                raise refused
            return
        os.unlink(name, dir_fd=parent_fd)
    except OSError as e:
        if e.errno != errno.ENOENT:
            failures.append("%s: %s" % (path, _err(e)))


def execute_plan(plan, recheck=None, protect=frozenset(), dry_run=False):
    """Carry out a CachePlan. Every path is opened from the cache dir's descriptor, one component at a
    time without following links, so nothing outside the cache can be reached. Order as huggingface_hub:
    snapshots and refs before the blobs they point to. recheck(repo, whole) -> None or (reason, detail) is
    asked again right before each repo (a download may have started since the plan was made).
    protect: (st_dev, st_ino) of protected directories, never entered nor removed under any name (remove's
    rule: a repo, its snapshots or blobs, or the shared store bind-mounted from a protected directory).
    dry_run (check mode): the same walk, nothing changed; each unlink and rmdir is checked as the kernel's
    may_delete() would check it for this process (_walk.refusal, remove's predict mode), so the failures are
    the ones the real run meets.
    Returns (failures, held_back): failures is empty when everything planned went."""
    failures = []
    late = []
    cache = plan.cache
    try:
        root_fd = os.open(cache.path, _O_DIR & ~getattr(os, "O_NOFOLLOW", 0))
    except OSError as e:
        return ["%s: %s" % (cache.path, _err(e))], late
    done = []
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
            done.append(rp)
            if rp.whole:
                _rmtree_at(root_fd, folder, dev, failures, base, protect, dry_run)
                try:
                    locks_fd = open_below(root_fd, [".locks"], protect)
                except OSError:
                    locks_fd = None
                if locks_fd is not None:
                    try:
                        _rmtree_at(locks_fd, folder, dev, failures, cache.path + "/.locks/" + folder, protect,
                                   dry_run)
                    finally:
                        os.close(locks_fd)
                continue
            try:
                repo_fd = open_below(root_fd, [folder], protect)
            except OSError as e:
                if e.errno != errno.ENOENT:  # vanished since the plan: gone, not failed
                    failures.append("%s: %s" % (base, _err(e)))
                continue
            try:
                if rp.revisions:
                    try:
                        snaps_fd = open_below(repo_fd, ["snapshots"], protect)
                    except OSError as e:
                        if e.errno != errno.ENOENT:
                            failures.append("%s/snapshots: %s" % (base, _err(e)))
                            continue  # its snapshots may still point at the blobs: keep them
                        snaps_fd = None  # no snapshots left at all: nothing points at the blobs any more
                    if snaps_fd is not None:
                        try:
                            for commit in rp.revisions:
                                _rmtree_at(snaps_fd, commit, dev, failures, base + "/snapshots/" + commit, protect,
                                           dry_run)
                        finally:
                            os.close(snaps_fd)
                for ref in rp.refs:
                    parts = ref.split("/")
                    try:
                        ref_fd = open_below(repo_fd, ["refs"] + parts[:-1], protect)
                    except OSError as e:
                        if e.errno != errno.ENOENT:
                            failures.append("%s/refs/%s: %s" % (base, ref, _err(e)))
                        continue
                    try:
                        _unlink_at(ref_fd, parts[-1], failures, base + "/refs/" + ref, dry_run)
                    finally:
                        os.close(ref_fd)
                if rp.blobs or rp.incomplete:
                    snapshot_failed = any(f.startswith(base + "/snapshots/") for f in failures)
                    try:
                        blobs_fd = open_below(repo_fd, ["blobs"], protect)
                    except OSError as e:
                        if e.errno != errno.ENOENT:
                            failures.append("%s/blobs: %s" % (base, _err(e)))
                        continue
                    try:
                        # a snapshot that could not go may still point at these blobs: keep them then
                        for name in ([] if snapshot_failed else rp.blobs):
                            _unlink_at(blobs_fd, name, failures, base + "/blobs/" + name, dry_run)
                        for name, _size in rp.incomplete:
                            _unlink_at(blobs_fd, name, failures, base + "/blobs/" + name, dry_run)
                    finally:
                        os.close(blobs_fd)
            finally:
                os.close(repo_fd)
        # huggingface_hub 2.x: payloads whose last reference went, collected under their locks
        failures.extend(collect_plan(plan, root_fd, done, protect, dry_run))
    finally:
        os.close(root_fd)
    return failures, late
