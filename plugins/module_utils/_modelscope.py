# -*- coding: utf-8 -*-
# Copyright: residue.purge contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""ModelScope model caches: list models, remove them by pattern, age or size budget.

Layouts (MODELSCOPE_CACHE, default ~/.cache/modelscope/hub; the profile's {modelscope_cache} and its hub/):

    <cache>/models/<org>/<name>/...      current layout (a '.' of the name is written '___')
    <cache>/<org>/<name>/...             older flat layout: a dir with ModelScope's metadata (.msc, .mdl, .mv)
    <cache>/._____temp/<org>/<name>/...  a download in progress: that model is kept while it is fresh

The metadata files (.msc, .mdl are pickles) are never unpickled: only their presence identifies a flat-layout
model. A model dir goes whole (_walk.remove_tree: no link followed, the planned inode only); one a process has
open or a fresh download is writing is held back.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import fnmatch
import os

from ansible_collections.residue.purge.plugins.module_utils import _privileges, _stores, _walk
from ansible_collections.residue.purge.plugins.module_utils._hfcache.inuse import OpenFiles

TEMP_DIR = "._____temp"
METADATA = (".msc", ".mdl", ".mv")
_NOT_ORGS = frozenset(("models", "datasets", TEMP_DIR, "hub", "ast_indexer", ".lock", "modelscope_modules"))


class MSModel(object):
    __slots__ = ("cache", "org", "folder", "layout", "path", "bytes", "files", "last_used", "key", "downloading")

    def __init__(self, cache, org, folder, layout, path):
        self.cache = cache
        self.org = org
        self.folder = folder
        self.layout = layout  # 'models' or 'flat'
        self.path = path
        self.bytes = 0
        self.files = 0
        self.last_used = 0.0
        self.key = None
        self.downloading = None

    @property
    def model_id(self):
        return "%s/%s" % (self.org, self.folder.replace("___", "."))

    def matches(self, pattern):
        return fnmatch.fnmatchcase(self.model_id, pattern) or fnmatch.fnmatchcase(
            "%s/%s" % (self.org, self.folder), pattern)


def _dirs(path):
    try:
        with os.scandir(path) as it:
            return sorted(e.name for e in it if e.is_dir(follow_symlinks=False))
    except OSError:
        return []


def _has_metadata(path):
    return any(os.path.lexists(os.path.join(path, name)) for name in METADATA)


def find_models(cache, problems, one_file_system=True):
    """Every model dir of one cache, both layouts, sized (du's bytes) with its last use."""
    found = []
    for org in _dirs(os.path.join(cache, "models")):
        for folder in _dirs(os.path.join(cache, "models", org)):
            found.append(MSModel(cache, org, folder, "models", os.path.join(cache, "models", org, folder)))
    for org in _dirs(cache):
        if org in _NOT_ORGS or org.startswith("."):
            continue
        for folder in _dirs(os.path.join(cache, org)):
            path = os.path.join(cache, org, folder)
            if _has_metadata(path):
                found.append(MSModel(cache, org, folder, "flat", path))
    for m in found:
        use = _walk.usage(m.path, one_file_system=one_file_system, parallel=False)
        problems.extend(use.problems)
        m.bytes, m.files = use.bytes, use.files
        m.last_used = max(use.last_access or 0, use.newest_mtime or 0)
        st = os.lstat(m.path)
        m.key = (st.st_dev, st.st_ino)
        temp = os.path.join(cache, TEMP_DIR, m.org, m.folder)
        if os.path.isdir(temp) and not os.path.islink(temp):
            tuse = _walk.usage(temp, one_file_system=True, parallel=False)
            m.downloading = (temp, max(tuse.newest_mtime or 0, os.lstat(temp).st_mtime))
    return found


def find_models_as(actor, cache, problems, failures, one_file_system=True):
    """find_models with actor's rights (docs/trust.md): a user's cache is walked and sized by a child that
    dropped to them. A child that failed reads nothing: the cache's models are not planned, and that is a
    failure naming the cache."""
    if not _privileges.acts_for(actor):
        return find_models(cache, problems, one_file_system)

    def work():
        found = []
        models = find_models(cache, found, one_file_system)
        return [[getattr(m, k) for k in MSModel.__slots__] for m in models], found

    try:
        rows, found = _privileges.call_as(actor, work)
    except (_privileges.ChildFailed, _privileges.NotReachable) as exc:
        failures.append("%s: %s (not read, nothing removed there)" % (cache, exc))
        return []
    problems.extend(found)
    models = []
    for row in rows:
        m = MSModel.__new__(MSModel)
        for key, value in zip(MSModel.__slots__, row):
            setattr(m, key, tuple(value) if isinstance(value, list) else value)
        models.append(m)
    return models


def remove_models_as(actor, models, one_file_system=True):
    """Remove each model dir whole (_walk.remove_tree: no link followed, the planned inode only) with actor's
    rights, in one child for the cache when it is a user's: ([RemovalResult dict per model], None), or
    (None, why) when that child failed (killed, stopped, refused the drop): then none of them was removed by
    anyone else."""
    def work():
        return [_walk.remove_tree(m.path, one_file_system=one_file_system, expect=m.key).to_dict() for m in models]

    if not models:
        return [], None
    if not _privileges.acts_for(actor):
        return work(), None
    try:
        return _privileges.call_as(actor, work), None
    except (_privileges.ChildFailed, _privileges.NotReachable) as exc:
        return None, str(exc)


class ModelScopeSelection(_stores.ModelSelection):
    """_stores.ModelSelection, and the age a download in progress must have before it stops holding its model
    back (None: never)."""

    __slots__ = ("incomplete_older_than",)

    def __init__(self, patterns=(), keep=(), older_than=None, max_size=None, incomplete_older_than=86400, now=None):
        super(ModelScopeSelection, self).__init__(patterns, keep, older_than, max_size, now)
        self.incomplete_older_than = incomplete_older_than


def plan_cache(models, selection, held_of):
    """[(model, reason)] to remove from one cache, and held_back entries. Budget: least recently used first."""
    chosen, held_back = [], []
    total = sum(m.bytes for m in models)

    def take(m, reason):
        held = held_of(m)
        if held:
            held_back.append({"cache": m.cache, "model_id": m.model_id, "path": m.path, "reason": held[0],
                              "detail": held[1]})
            return 0
        chosen.append((m, reason))
        return m.bytes

    scope = [m for m in models if selection.in_scope(m)]
    for m in scope:
        if selection.picks(m):
            total -= take(m, "selected")
    if selection.max_size is not None and total > selection.max_size:
        taken = set(id(m) for m, _r in chosen) | set(e["path"] for e in held_back)
        for m in sorted((m for m in scope if id(m) not in taken and m.path not in taken),
                        key=lambda m: (m.last_used, m.path)):
            if total <= selection.max_size:
                break
            total -= take(m, "budget")
    return chosen, held_back, total


def _found_at(resolved):
    """(path, source) of a resolved profile path: modelscope's own default is <cache>/hub, the models are there
    when it exists."""
    hub = os.path.join(resolved.path, "hub")
    return (hub if os.path.isdir(hub) and not os.path.islink(hub) else resolved.path), resolved.source


def cache_locations(params, problems=None, actors=None):
    """[(path, user, source)] of the ModelScope caches, each where it really is, and actors filled as
    _stores.locations says."""
    return _stores.locations(params, "cache_dirs", "a ModelScope cache", "modelscope", _found_at, problems, actors,
                             real=True)


def selection_from(params, now=None):
    _stores.check_globs([(option, params.get(option) or []) for option in ("models", "keep")],
                        "model pattern such as qwen/Qwen2.5-7B or qwen/*")
    older_than, max_size = _stores.age_and_size(params)
    incomplete = _stores.incomplete_age(params.get("incomplete_older_than") or "1d")
    return ModelScopeSelection(params.get("models") or [], params.get("keep") or [], older_than, max_size, incomplete,
                               now)


def run(params, check_mode=False, now=None, actors=None, only=None):
    """The module's result. actors: {cache: user} whose rights each cache's sizing and removals run with
    (model_budget passes the ones it found); found by cache_locations when not given. only: the model dirs to
    consider, by path (model_budget's chosen ones: one model id may be in both layouts)."""
    selection = selection_from(params, now)
    locations, found_actors, env_problems = _stores.located(cache_locations, params, actors)
    force = params.get("force", False)
    one_fs = params.get("one_file_system", True)
    problems = env_problems  # environment values not used come first
    opened = OpenFiles([p for p, _u, _s in locations], problems,
                       "could not check which processes have model files open (no /proc here)")

    def held_of(m):
        if m.downloading:
            temp, mtime = m.downloading
            if selection.incomplete_older_than is None or mtime >= selection.now - selection.incomplete_older_than:
                return ("in_use", "%s is a download in progress (modified %d s ago)" % (
                    temp, max(0, int(selection.now - mtime))))
        if force:
            return None
        prefix = m.path + "/"
        for path, procs in sorted(opened().items()):
            if path.startswith(prefix):
                return ("in_use", "%s is open in process %d (%s)" % (path, procs[0][0], procs[0][1]))
        return None

    result = {"changed": False, "models": [], "removed": [], "held_back": [], "caches": [], "freed_bytes": 0,
              "problems": problems, "failures": []}
    before_lines, after_lines = [], []
    for path, user, source in locations:
        actor = found_actors.get(path)
        models = find_models_as(actor, path, problems, result["failures"], one_fs)
        if only is not None:
            models = [m for m in models if m.path in only]
        chosen, held_back, after = plan_cache(models, selection, held_of)
        gone = set()
        todo = []
        for m, reason in chosen:
            entry = {"cache": path, "model_id": m.model_id, "path": m.path, "layout": m.layout, "bytes": m.bytes,
                     "files": m.files, "reason": reason}
            if not check_mode:
                held = held_of(m)  # asked again right before: a download may have started
                if held:
                    held_back.append({"cache": path, "model_id": m.model_id, "path": m.path,
                                      "reason": held[0], "detail": held[1]})
                    after += m.bytes
                    continue
            todo.append((m, entry))
        if not check_mode:
            outcomes, error = remove_models_as(actor, [m for m, _e in todo], one_fs)
            if error is not None:
                result["failures"].extend("%s: %s" % (m.path, error) for m, _e in todo)
                after += sum(m.bytes for m, _e in todo)
                todo = []
            else:
                kept = []
                for (m, entry), done in zip(todo, outcomes):
                    entry["bytes"], entry["files"] = done["bytes"], done["files"]
                    after += m.bytes - done["bytes"]
                    result["failures"].extend("%s: %s" % (p, e) for p, e in done["failed"])
                    problems.extend(done["problems"])
                    if done["files"] or done["dirs"]:
                        kept.append((m, entry))
                todo = kept
        for m, entry in todo:
            gone.add(m.path)
            result["removed"].append(entry)
            result["freed_bytes"] += entry["bytes"]
        for m in models:
            result["models"].append({"cache": path, "model_id": m.model_id, "path": m.path, "layout": m.layout,
                                     "bytes": m.bytes, "files": m.files, "last_used": m.last_used,
                                     "downloading": bool(m.downloading)})
            before_lines.append("%s %s" % (path, m.model_id))
            if m.path not in gone:
                after_lines.append("%s %s" % (path, m.model_id))
        result["held_back"].extend(held_back)
        summary = {"path": path, "user": user, "source": source, "bytes_before": sum(m.bytes for m in models),
                   "bytes_after": after, "max_size": selection.max_size,
                   "over_budget": selection.max_size is not None and after > selection.max_size}
        result["caches"].append(summary)
        if summary["over_budget"]:
            problems.append("ModelScope cache %s stays over its budget (%d > %d bytes): what is left is kept, held "
                            "back or out of scope" % (path, after, selection.max_size))
    result["changed"] = bool(result["removed"])
    return _stores.close_result(result, "modelscope_models", "model_id", "cache", before_lines, after_lines, problems)
