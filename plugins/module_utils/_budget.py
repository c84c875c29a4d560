# -*- coding: utf-8 -*-
# Copyright: residue.purge contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""One size budget per host across model stores: Hugging Face hub caches, Ollama, ModelScope, torch hub.

Every model of every store is one candidate with its last use; the least recently used go first, whatever store
they are in, until the stores together fit. What removing a candidate frees is each store's own accounting,
updated as candidates are chosen: a shared blob store payload (huggingface_hub 2.x) or an Ollama layer counts when
its last reference goes. Removal is then done by each store's own code (hf_cache, ollama_models,
modelscope_models, _walk for torch hub), which checks locks and open files again right before; a candidate that
check holds back is replaced by the next least recently used ones until the stores fit or none are left.

A store in a non-root user's home (or one that user's environment named) is sized and emptied with that user's
rights, by the store's own code in a child that dropped to them (docs/trust.md); root's own and system stores stay
with root. Candidates are chosen by identity, not by pattern: an HF repo by type and id, an Ollama model by its
full name, a ModelScope model and a torch hub entry by path.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import os
import re
import time

from ansible_collections.residue.purge.plugins.module_utils import (
    _modelscope, _ollama, _privileges, _profiles, _stores, _walk)
from ansible_collections.residue.purge.plugins.module_utils._blobs import BlobStat
from ansible_collections.residue.purge.plugins.module_utils._hfcache import model as hf_model
from ansible_collections.residue.purge.plugins.module_utils._hfcache import plan as hf_plan, run as hf_run
from ansible_collections.residue.purge.plugins.module_utils._hfcache import scan as hf_scan, shared as hf_shared
from ansible_collections.residue.purge.plugins.module_utils._hfcache.inuse import open_paths_under
from ansible_collections.residue.purge.plugins.module_utils._units import parse_size


class Candidate(object):
    __slots__ = ("store", "kind", "name", "path", "last_used", "gain", "take", "watch", "repo_type", "key")

    def __init__(self, store, kind, name, path, last_used, gain, take, watch, repo_type=None, key=None):
        self.repo_type = repo_type  # HF: model | dataset | space (one id may be all three in one cache)
        self.key = key  # torch hub: the (st_dev, st_ino) scanned; nothing else found there is removed
        self.store = store
        self.kind = kind  # hf_repo | ollama_model | modelscope_model | torch_hub
        self.name = name
        self.path = path
        self.last_used = last_used
        self.gain = gain  # () -> bytes removing it frees now
        self.take = take  # () -> marks it removed (later gains see it)
        self.watch = watch  # paths whose being open holds it back


def _hf_scan(path, one_fs):
    """One HF hub cache as the budget needs it, as plain data (it runs in the child acting as the cache's owner,
    as hf_cache's scan does): its bytes, problems, each repo's (id, type, path, last access, bytes of its own,
    links into the shared store, payloads it reads) and, for the payloads those links name, their live
    references and stats (what hf_shared.Tally asks)."""
    cache = hf_scan.scan_cache(path, one_file_system=one_fs)
    store = hf_shared.Store(cache.path, cache.repos)
    plan = hf_plan.CachePlan(cache, store)
    repos, payloads = [], {}
    for repo in cache.repos:
        links = [[p, "%s/blobs/%s" % (repo.folder, e)] for e, p in sorted(repo.shared_links.items())]
        repos.append([repo.repo_id, repo.repo_type, repo.path, repo.last_access, repo.blob_bytes - repo.shared_bytes,
                      links, sorted(set(repo.shared_links.values()))])
        for name, _entry in links if store.marked else ():
            if name not in payloads:
                refs, blob = store.references(name), store.payload(name)
                payloads[name] = [None if refs is None else sorted(refs), None if blob is None else blob.plain()]
    return {"bytes": plan.bytes_before, "problems": cache.problems + store.problems, "repos": repos,
            "marked": store.marked, "store": store.path, "payloads": payloads}


class _StoreView(object):
    """What hf_shared.Tally reads of a store (references, payload stats), from _hf_scan's plain data."""

    def __init__(self, payloads):
        self._payloads = payloads

    def references(self, name):
        refs = self._payloads.get(name, [None, None])[0]
        return None if refs is None else frozenset(refs)

    def payload(self, name):
        stats = self._payloads.get(name, [None, None])[1]
        return None if stats is None else BlobStat.from_plain(stats)


def _hf_candidates(path, one_fs, actor=None, failures=None):
    """The repos of one HF hub cache, scanned and sized with its owner's rights (_hf_scan in a child acting as
    them): a root-only directory in a user's cache is not counted. A child that failed reads nothing: a failure
    naming the cache (nothing of it is chosen)."""
    data, unread = _read_store_as(actor, _hf_scan, path, one_fs, failures)
    if unread is not None:
        return unread
    tally = hf_shared.Tally(_StoreView(data["payloads"])) if data["marked"] else None
    out = []
    for repo_id, repo_type, repo_path, last_access, local, links, read in data["repos"]:
        links = [tuple(link) for link in links]

        def gain(local=local, links=links):
            return local + (tally.gain(links)[0] if tally is not None else 0)

        def take(links=links):
            if tally is not None:
                tally.add(links)
        watch = [repo_path + "/"] + ["%s/%s" % (data["store"], p) for p in read]
        out.append(Candidate(path, "hf_repo", repo_id, repo_path, last_access, gain, take, watch,
                             repo_type=repo_type))
    return data["bytes"], out, list(data["problems"])


def _ollama_candidates(path, actor=None, failures=None):
    """The models of one Ollama store, its manifests read and layers stat'ed with its user's rights (_ollama's
    scan in a child acting as them): a root-only directory in a user's store is not counted. A child that failed
    reads nothing: a failure naming the store (nothing of it is chosen)."""
    data, unread = _read_store_as(actor, _ollama.scan_plain, path, None, failures)
    if unread is not None:
        return unread
    store = _ollama.from_plain(data, path)
    counts = store.refcounts()
    gone = []
    out = []
    size = store.blob_bytes() + sum(b.size for _n, b in store.partials)
    if store.unreadable:
        # no layer may go while a manifest cannot be read: removing its models would free nothing, only lose them
        return size, [], store.problems + [
            "Ollama models dir %s: no model there is a budget candidate: %d manifest(s) could not be read, so no "
            "layer could be freed (first: %s)" % (path, len(store.unreadable), store.unreadable[0])]
    for m in store.models:
        def freed(m=m):
            return [store.blobs[b] for b in m.blobs if b in store.blobs and counts.get(b) == 1]

        def gain(m=m, freed=freed):
            return _ollama._freed_bytes(freed(), gone)

        def take(m=m, freed=freed):
            gone.extend(freed())
            for b in m.blobs:
                counts[b] -= 1
        watch = ["%s/blobs/%s" % (path, b) for b in m.blobs]
        out.append(Candidate(path, "ollama_model", m.full, path + "/" + m.manifest, m.last_used, gain, take, watch))
    return size, out, store.problems


def _modelscope_candidates(path, one_fs, actor=None, failures=None):
    problems = []
    out = []
    models = _modelscope.find_models_as(actor, path, problems, failures if failures is not None else problems,
                                        one_fs)
    for m in models:
        if m.downloading:
            continue  # a download in progress is never a candidate
        out.append(Candidate(path, "modelscope_model", m.model_id, m.path, m.last_used, lambda m=m: m.bytes,
                             lambda: None, [m.path + "/"]))
    return sum(m.bytes for m in models), out, problems


def _torch_entries(path, one_fs):
    """[(path, bytes, last used, (st_dev, st_ino))] of the torch hub dir's entries, and problems (plain data: it
    runs in the child acting as the store's user)."""
    problems, entries, out = [], [], []
    for sub in ("checkpoints", ""):
        base = os.path.join(path, sub) if sub else path
        try:
            with os.scandir(base) as it:
                for e in it:
                    if sub == "" and (e.name == "checkpoints" or not e.is_dir(follow_symlinks=False)):
                        continue  # hub/trusted_list and hub/<branch>.zip are not models; a checkout is a dir
                    if e.is_symlink():
                        continue
                    entries.append(e.path)
        except OSError:
            continue
    for p in sorted(entries):
        try:
            st = os.lstat(p)
        except OSError:
            continue
        use = _walk.usage(p, one_file_system=one_fs, parallel=False)
        problems.extend(use.problems)
        out.append((p, use.bytes, max(use.last_access or 0, use.newest_mtime or 0), (st.st_dev, st.st_ino)))
    return out, problems


def _torch_candidates(path, one_fs, actor=None, failures=None):
    """torch hub: each checkpoint file (hub/checkpoints/*) and each hub checkout dir (hub/<owner>_<repo>_<ref>),
    sized with the store's user's rights. A child that failed reads nothing: a failure naming the dir."""
    read, unread = _read_store_as(actor, _torch_entries, path, one_fs, failures)
    if unread is not None:
        return unread
    entries, problems = read
    out = []
    for p, size, last, key in entries:
        out.append(Candidate(path, "torch_hub", os.path.relpath(p, path), p, last, lambda b=size: b, lambda: None,
                             [p, p + "/"], key=tuple(key)))
    return sum(e[1] for e in entries), out, problems


def _read_store_as(actor, work, path, one_fs, failures):
    """(work(path, one_fs) run with actor's rights, None), or (None, the candidates answer for a store not read):
    a child that failed reads nothing, and a failure names the store (in failures, or without that list in the
    answer's problems)."""
    try:
        return _as(actor, work, path, one_fs), None
    except (_privileges.ChildFailed, _privileges.NotReachable) as exc:
        text = "%s: %s (not read, nothing removed there)" % (path, exc)
        if failures is None:
            return None, (0, [], [text])
        failures.append(text)
        return None, (0, [], [])


def _as(actor, work, *args):
    """work(*args) with actor's rights: in a child that dropped to them when we are root and they are not."""
    if not _privileges.acts_for(actor):
        return work(*args)
    return _privileges.call_as(actor, work, *args)


def _locations(params, problems=None, actors=None):
    """(hf, ollama, modelscope, torch) store paths; actors (a dict) is filled with {path: user} whose rights each
    is sized and emptied with: the user whose home holds it (as found, or where it really is), else the user whose
    environment named it, else root (docs/trust.md)."""
    users = params.get("users", "all")
    scan = params.get("scan_processes", True)
    base = {"homes": params.get("homes") or [], "users": users, "scan_processes": scan,
            "profiles": params.get("profiles") or {}, "discover": True}
    actors = {} if actors is None else actors
    ollama = [p for p, _u, _s in _ollama.store_locations(dict(base, models_dirs=[]), problems, actors)]
    modelscope = [p for p, _u, _s in _modelscope.cache_locations(dict(base, cache_dirs=[]), problems, actors)]
    torch = [p for p, _u, _s in _stores.locations(dict(base, torch_dirs=[]), "torch_dirs", "a torch hub",
                                                  "torch_hub", lambda r: (r.path, r.source), problems, actors,
                                                  real=True)]
    users_list = _profiles.list_users(params.get("homes") or None, users)
    found = []
    # environment values and cache roots vetted per user as everywhere (docs/trust.md); what is refused is
    # reported (each store module's own refusals once: duplicates are dropped by run)
    for context in _profiles.user_environments(users_list, scan_processes=scan, problems=problems):
        for path, source in _profiles.hub_cache_locations(context):  # as hf_cache finds them
            if not hf_model.is_hub_cache(path):
                continue
            real, why = _profiles.vet_location(context.user, path)
            if real is None:
                if problems is not None:
                    problems.append("HF hub cache of user %s (%s) is not used: %s" % (context.user.name, source, why))
                continue
            found.append((path, context.user.name, source, context.user))
    hf = [p for p, _u, _s in _stores.stores_of(found, users_list, actors, real=True)]
    return hf, ollama, modelscope, torch


_GLOB = re.compile(r"([*?\[])")


def exact(name):
    """A glob that matches name only (the stores select by glob; a name may hold '*', '?' or '[')."""
    return _GLOB.sub(r"[\1]", name)


def _holder(opened):
    """holder(candidate) -> why it is held back (one of its files is open), from opened ({path: [(pid, name)]})."""
    open_paths = sorted(opened)

    def holder(c):
        for w in c.watch:
            real = os.path.realpath(os.path.dirname(w.rstrip("/"))) + "/" + os.path.basename(w.rstrip("/")) + (
                "/" if w.endswith("/") else "")
            for p in open_paths:
                if p == real.rstrip("/") or (real.endswith("/") and p.startswith(real)):
                    return "%s is open in process %d (%s)" % (p, opened[p][0][0], opened[p][0][1])
        return None
    return holder


def run(params, check_mode=False, now=None):
    max_size = parse_size(params["max_size"], "max_size")
    now = time.time() if now is None else now
    one_fs = params.get("one_file_system", True)
    force = params.get("force", False)
    env_problems = []
    actors = {}
    hf, ollama, modelscope, torch = _locations(params, env_problems, actors)
    problems, candidates, stores = sorted(set(env_problems), key=env_problems.index), [], []
    failed = []  # a store whose sizing child failed (the user killed it): nothing of it is chosen
    for kind, paths, collect in (
            ("hf", hf, lambda p: _hf_candidates(p, one_fs, actors.get(p), failed)),
            ("ollama", ollama, lambda p: _ollama_candidates(p, actors.get(p), failed)),
            ("modelscope", modelscope, lambda p: _modelscope_candidates(p, one_fs, actors.get(p), failed)),
            ("torch_hub", torch, lambda p: _torch_candidates(p, one_fs, actors.get(p), failed))):
        for path in paths:
            size, found, probs = collect(path)
            stores.append({"kind": kind, "path": path, "bytes_before": size})
            candidates.extend(found)
            problems.extend(probs)
    total = sum(s["bytes_before"] for s in stores)
    roots = sorted(set(os.path.realpath(s["path"]) for s in stores))
    holder = _holder({} if force else (open_paths_under(roots) or {}))

    held_back = []
    queue = sorted(candidates, key=lambda c: (c.last_used, c.kind, c.name, c.path))

    def choose(after):
        """The next least recently used candidates, until after (bytes) fits the budget or none are left."""
        picked = []
        while queue and after > max_size:
            c = queue.pop(0)
            why = holder(c)
            if why:
                held_back.append({"store": c.store, "kind": c.kind, "name": c.name, "reason": "in_use",
                                  "detail": why})
                continue
            gain = c.gain()
            c.take()
            picked.append((c, gain))
            after -= gain
        return picked, after

    chosen, after = choose(total)
    result = {"changed": False, "removed": [], "held_back": held_back, "stores": stores, "max_size": max_size,
              "bytes_before": total, "bytes_after": after, "over_budget": after > max_size, "freed_bytes": 0,
              "problems": problems, "failures": failed}
    if check_mode:
        for c, gain in chosen:
            result["removed"].append({"store": c.store, "kind": c.kind, "name": c.name, "path": c.path,
                                      "last_used": c.last_used, "freed_bytes": gain})
        result["freed_bytes"] = sum(g for _c, g in chosen)
    else:
        pending, done = chosen, []
        # what hf_cache protects (docs/trust.md rule 3): a home or system dir bind-mounted into a cache stays
        protect = _profiles.protected_paths(_profiles.list_users(params.get("homes") or None,
                                                                 params.get("users", "all"))).identities()
        while pending:
            held_before, failed_before = len(held_back), len(result["failures"])
            _execute(pending, result, one_fs, force, actors, protect)
            done.extend(pending)
            after = total - result["freed_bytes"]
            if after <= max_size or len(result["failures"]) > failed_before or len(held_back) == held_before:
                break
            # the store's own check held some back right before removal (opened since the choice): the next
            # least recently used take their place
            pending, _est = choose(after)
        chosen = done
        rank = dict((c.path, i) for i, (c, _g) in enumerate(chosen))  # least recently used first
        result["removed"].sort(key=lambda r: rank.get(r["path"], len(rank)))
        result["bytes_after"] = total - result["freed_bytes"]
        result["over_budget"] = result["bytes_after"] > max_size
    result["changed"] = bool(result["removed"])
    if result["over_budget"]:
        problems.append("the host's model stores stay over the budget (%d > %d bytes): what is left is held back or "
                        "in use" % (result["bytes_after"], max_size))
    result["diff"] = {"before": "".join("%s %s %s\n" % (c.kind, c.store, c.name) for c, _g in chosen), "after": ""}
    if result["failures"]:
        result["failure"] = "model_budget: %d removal(s) failed, first: %s" % (
            len(result["failures"]), result["failures"][0])
    return result


def _execute(chosen, result, one_fs, force, actors, protect=frozenset()):
    """Remove the chosen candidates with each store's own code and its user's rights; account what really went.
    protect: the protected directories' identities, never entered nor removed in an HF cache (hf_cache's rule)."""
    by_store = {}
    for c, gain in chosen:
        by_store.setdefault((c.kind, c.store), []).append(c)
    common = {"homes": [], "users": "all", "scan_processes": False, "force": force, "discover": False,
              "profiles": {}, "targets": []}
    for (kind, store), items in sorted(by_store.items()):
        last = dict((c.path, c.last_used) for c in items)
        actor = actors.get(store)
        held, failures, problems, freed = [], [], [], 0
        if kind == "hf_repo":
            by_type = {}
            for c in items:  # a model and a dataset may share an id: each type is selected on its own
                by_type.setdefault(c.repo_type, []).append(c)
            for repo_type, group in sorted(by_type.items()):
                sel = hf_plan.RepoSelection(patterns=[exact(c.name) for c in group], repo_type=repo_type,
                                            revisions="all")
                res = hf_run.clean([store], sel, force=force, one_file_system=one_fs, actors={store: actor},
                                   protect=protect)
                for d in res["deleted"]:
                    result["removed"].append({"store": store, "kind": kind, "name": d["repo_id"], "path": d["path"],
                                              "last_used": last.get(d["path"]), "freed_bytes": d["freed_bytes"]})
                held.extend(res["held_back"])
                failures.extend(res["failures"])
                problems.extend(res["problems"])
                freed += res["freed_bytes"]
        elif kind == "ollama_model":
            res = _ollama.run(dict(common, models_dirs=[store], models=[exact(c.name) for c in items], keep=[],
                                   older_than=None, max_size=None, orphans=False, orphans_older_than="1d"),
                              actors={store: actor})
            paths = dict((c.name, c.path) for c in items)
            for h in res["held_back"]:  # ollama_models names a model as `ollama list` does; here it is the full name
                h["name"] = dict((_ollama_list_name(c.name), c.name) for c in items).get(h["name"], h["name"])
            for r in res["removed"]:
                result["removed"].append({"store": store, "kind": kind, "name": r["model"], "path": r["manifest"],
                                          "last_used": last.get(paths.get(r["model"])),
                                          "freed_bytes": r["freed_bytes"]})
            held, failures, problems, freed = res["held_back"], res["failures"], res["problems"], res["freed_bytes"]
        elif kind == "modelscope_model":
            res = _modelscope.run(dict(common, cache_dirs=[store], models=["*"], keep=[], older_than=None,
                                       max_size=None, incomplete_older_than="1d", one_file_system=one_fs),
                                  actors={store: actor}, only=set(c.path for c in items))
            for r in res["removed"]:
                result["removed"].append({"store": store, "kind": kind, "name": r["model_id"], "path": r["path"],
                                          "last_used": last.get(r["path"]), "freed_bytes": r["bytes"]})
            held, failures, problems, freed = res["held_back"], res["failures"], res["problems"], res["freed_bytes"]
        else:
            freed = _remove_torch(store, items, actor, one_fs, force, result, held, failures, problems)
        for h in held:
            result["held_back"].append({"store": store, "kind": kind, "name": h.get("repo_id") or h.get("name") or
                                        h.get("model_id"), "reason": h.get("reason"), "detail": h.get("detail")})
        result["failures"].extend(failures)
        result["problems"].extend(problems)
        result["freed_bytes"] += freed


def _ollama_list_name(full):
    """The name `ollama list` shows for a full registry/namespace/model:tag name."""
    registry, namespace, rest = full.split("/", 2)
    model, tag = rest.rsplit(":", 1)
    return _ollama.Model(registry, namespace, model, tag, 0, []).name


def _remove_torch(store, items, actor, one_fs, force, result, held, failures, problems):
    """torch hub entries: open files asked again right before (with root's sight of every process), then each
    entry removed whole with the store's user's rights, only if it is still the inode scanned. Returns bytes."""
    holder = _holder({} if force else (open_paths_under([os.path.realpath(store)]) or {}))
    todo = []
    for c in items:
        why = holder(c)
        if why:
            held.append({"name": c.name, "reason": "in_use", "detail": why})
        else:
            todo.append(c)

    def work():
        return [_walk.remove_tree(c.path, one_file_system=one_fs, expect=c.key).to_dict() for c in todo]

    if not todo:
        return 0
    try:
        outcomes = _as(actor, work)
    except (_privileges.ChildFailed, _privileges.NotReachable) as exc:
        failures.extend("%s: %s" % (c.path, exc) for c in todo)
        return 0
    freed = 0
    for c, done in zip(todo, outcomes):
        failures.extend("%s: %s" % (p, e) for p, e in done["failed"])
        problems.extend(done["problems"])
        if done["files"] or done["dirs"]:
            freed += done["bytes"]
            result["removed"].append({"store": store, "kind": "torch_hub", "name": c.name, "path": c.path,
                                      "last_used": c.last_used, "freed_bytes": done["bytes"]})
    return freed
