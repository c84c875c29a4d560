# -*- coding: utf-8 -*-
# Copyright: residue.purge contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""One size budget per host across model stores: Hugging Face hub caches, Ollama, ModelScope, torch hub.

Every model of every store is one candidate with its last use; the least recently used go first, whatever store
they are in, until the stores together fit. What removing a candidate frees is each store's own accounting,
updated as candidates are chosen: a shared blob store payload (huggingface_hub 2.x) or an Ollama layer counts when
its last reference goes. Removal is then done by each store's own code (hf_cache, ollama_models,
modelscope_models, _walk for torch hub), which checks locks and open files again right before.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import os
import time

from ansible_collections.residue.purge.plugins.module_utils import _modelscope, _ollama, _profiles, _walk
from ansible_collections.residue.purge.plugins.module_utils._hfcache import model as hf_model
from ansible_collections.residue.purge.plugins.module_utils._hfcache import plan as hf_plan, run as hf_run
from ansible_collections.residue.purge.plugins.module_utils._hfcache import scan as hf_scan, shared as hf_shared
from ansible_collections.residue.purge.plugins.module_utils._hfcache.inuse import open_paths_under
from ansible_collections.residue.purge.plugins.module_utils._units import parse_size


class Candidate(object):
    __slots__ = ("store", "kind", "name", "path", "last_used", "gain", "take", "watch")

    def __init__(self, store, kind, name, path, last_used, gain, take, watch):
        self.store = store
        self.kind = kind  # hf_repo | ollama_model | modelscope_model | torch_hub
        self.name = name
        self.path = path
        self.last_used = last_used
        self.gain = gain  # () -> bytes removing it frees now
        self.take = take  # () -> marks it removed (later gains see it)
        self.watch = watch  # paths whose being open holds it back


def _hf_candidates(path, one_fs):
    cache = hf_scan.scan_cache(path, one_file_system=one_fs)
    store = hf_shared.Store(cache.path, cache.repos)
    plan = hf_plan.CachePlan(cache, store)
    tally = hf_shared.Tally(store) if store.marked else None
    out = []
    for repo in cache.repos:
        links = [(p, "%s/blobs/%s" % (repo.folder, e)) for e, p in sorted(repo.shared_links.items())]
        local = repo.blob_bytes - repo.shared_bytes

        def gain(local=local, links=links):
            return local + (tally.gain(links)[0] if tally is not None else 0)

        def take(links=links):
            if tally is not None:
                tally.add(links)
        watch = [repo.path + "/"] + ["%s/%s" % (store.path, p) for p in sorted(set(repo.shared_links.values()))]
        out.append(Candidate(path, "hf_repo", repo.repo_id, repo.path, repo.last_access, gain, take, watch))
    return plan.bytes_before, out, cache.problems + store.problems


def _ollama_candidates(path):
    store = _ollama.scan_store(path)
    counts = store.refcounts()
    gone = []
    out = []
    for m in store.models:
        def freed(m=m):
            return [store.blobs[b] for b in m.blobs if b in store.blobs and counts.get(b) == 1]

        def gain(m=m, freed=freed):
            return 0 if store.unreadable else _ollama._freed_bytes(freed(), gone)

        def take(m=m, freed=freed):
            gone.extend(freed())
            for b in m.blobs:
                counts[b] -= 1
        watch = ["%s/blobs/%s" % (path, b) for b in m.blobs]
        out.append(Candidate(path, "ollama_model", m.full, path + "/" + m.manifest, m.last_used, gain, take, watch))
    return store.blob_bytes() + sum(b.size for _n, b in store.partials), out, store.problems


def _modelscope_candidates(path, one_fs):
    problems = []
    out = []
    models = _modelscope.find_models(path, problems, one_fs)
    for m in models:
        if m.downloading:
            continue  # a download in progress is never a candidate
        out.append(Candidate(path, "modelscope_model", m.model_id, m.path, m.last_used, lambda m=m: m.bytes,
                             lambda: None, [m.path + "/"]))
    return sum(m.bytes for m in models), out, problems


def _torch_candidates(path, one_fs):
    """torch hub: each checkpoint file (hub/checkpoints/*) and each hub checkout dir (hub/<owner>_<repo>_<ref>)."""
    problems, out, total = [], [], 0
    entries = []
    for sub in ("checkpoints", ""):
        base = os.path.join(path, sub) if sub else path
        try:
            with os.scandir(base) as it:
                for e in it:
                    if sub == "" and e.name == "checkpoints":
                        continue
                    if e.is_symlink():
                        continue
                    entries.append(e.path)
        except OSError:
            continue
    for p in sorted(entries):
        use = _walk.usage(p, one_file_system=one_fs, parallel=False)
        problems.extend(use.problems)
        total += use.bytes
        out.append(Candidate(path, "torch_hub", os.path.relpath(p, path), p,
                             max(use.last_access or 0, use.newest_mtime or 0), lambda b=use.bytes: b, lambda: None,
                             [p, p + "/"]))
    return total, out, problems


def _locations(params, problems=None):
    homes, users = params.get("homes") or None, params.get("users", "all")
    scan = params.get("scan_processes", True)
    base = {"homes": params.get("homes") or [], "users": users, "scan_processes": scan,
            "profiles": params.get("profiles") or {}, "discover": True}
    ollama = [p for p, _u, _s in _ollama.store_locations(dict(base, models_dirs=[]), problems)]
    modelscope = [p for p, _u, _s in _modelscope.cache_locations(dict(base, cache_dirs=[]), problems)]
    torch, hf = [], []
    profile = _profiles.load_profiles(params.get("profiles"))["torch_hub"]
    users_list = _profiles.list_users(homes, users)
    # environment values and cache roots vetted per user as everywhere (docs/trust.md); what is refused is
    # reported (each store module's own refusals once: duplicates are dropped below)
    contexts = _profiles.user_environments(users_list, scan_processes=scan, problems=problems)
    for context in contexts:  # as hf_cache finds them, with scan_processes honoured
        for path, source in _profiles.hub_cache_locations(context):
            if not hf_model.is_hub_cache(path):
                continue
            real, why = _profiles.vet_location(context.user, path)
            if real is None:
                if problems is not None:
                    problems.append("HF hub cache of user %s (%s) is not used: %s" % (context.user.name, source, why))
                continue
            if real not in hf:
                hf.append(real)
    for r in _profiles.resolve_all({"torch_hub": profile}, users_list, contexts, problems):
        if os.path.isdir(r.path) and os.path.realpath(r.path) not in torch:
            torch.append(os.path.realpath(r.path))
    return hf, ollama, modelscope, torch


def run(params, check_mode=False, now=None):
    max_size = parse_size(params["max_size"], "max_size")
    now = time.time() if now is None else now
    one_fs = params.get("one_file_system", True)
    force = params.get("force", False)
    env_problems = []
    hf, ollama, modelscope, torch = _locations(params, env_problems)
    problems, candidates, stores = sorted(set(env_problems), key=env_problems.index), [], []
    for kind, paths, collect in (("hf", hf, lambda p: _hf_candidates(p, one_fs)),
                                 ("ollama", ollama, _ollama_candidates),
                                 ("modelscope", modelscope, lambda p: _modelscope_candidates(p, one_fs)),
                                 ("torch_hub", torch, lambda p: _torch_candidates(p, one_fs))):
        for path in paths:
            size, found, probs = collect(path)
            stores.append({"kind": kind, "path": path, "bytes_before": size})
            candidates.extend(found)
            problems.extend(probs)
    total = sum(s["bytes_before"] for s in stores)
    roots = sorted(set(os.path.realpath(s["path"]) for s in stores))
    opened = {} if force else (open_paths_under(roots) or {})
    open_paths = sorted(opened)

    def holder(c):
        for w in c.watch:
            real = os.path.realpath(os.path.dirname(w.rstrip("/"))) + "/" + os.path.basename(w.rstrip("/")) + (
                "/" if w.endswith("/") else "")
            for p in open_paths:
                if p == real.rstrip("/") or (real.endswith("/") and p.startswith(real)):
                    return "%s is open in process %d (%s)" % (p, opened[p][0][0], opened[p][0][1])
        return None

    chosen, held_back = [], []
    after = total
    for c in sorted(candidates, key=lambda c: (c.last_used, c.kind, c.name)):
        if after <= max_size:
            break
        why = holder(c)
        if why:
            held_back.append({"store": c.store, "kind": c.kind, "name": c.name, "reason": "in_use", "detail": why})
            continue
        gain = c.gain()
        c.take()
        chosen.append((c, gain))
        after -= gain

    result = {"changed": False, "removed": [], "held_back": held_back, "stores": stores, "max_size": max_size,
              "bytes_before": total, "bytes_after": after, "over_budget": after > max_size, "freed_bytes": 0,
              "problems": problems, "failures": []}
    if check_mode:
        for c, gain in chosen:
            result["removed"].append({"store": c.store, "kind": c.kind, "name": c.name, "path": c.path,
                                      "last_used": c.last_used, "freed_bytes": gain})
        result["freed_bytes"] = sum(g for _c, g in chosen)
    else:
        _execute(chosen, params, result, one_fs, force)
        rank = dict(((c.kind, c.name), i) for i, (c, _g) in enumerate(chosen))  # least recently used first
        result["removed"].sort(key=lambda r: rank.get((r["kind"], r["name"]), len(rank)))
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


def _execute(chosen, params, result, one_fs, force):
    """Remove the chosen candidates with each store's own code; account what really went."""
    by_store = {}
    for c, gain in chosen:
        by_store.setdefault((c.kind, c.store), []).append(c)
    common = {"homes": [], "users": "all", "scan_processes": False, "force": force, "discover": False,
              "profiles": {}, "targets": []}
    for (kind, store), items in sorted(by_store.items()):
        last = dict((c.name, c.last_used) for c in items)
        if kind == "hf_repo":
            sel = hf_plan.RepoSelection(patterns=[c.name for c in items], revisions="all")
            res = hf_run.clean([store], sel, force=force, one_file_system=one_fs)
            for d in res["deleted"]:
                result["removed"].append({"store": store, "kind": kind, "name": d["repo_id"], "path": d["path"],
                                          "last_used": last.get(d["repo_id"]), "freed_bytes": d["freed_bytes"]})
            held = list(res["held_back"])
            failures = res["failures"]
            problems = res["problems"]
            freed = res["freed_bytes"]
        elif kind == "ollama_model":
            res = _ollama.run(dict(common, models_dirs=[store], models=[c.name for c in items], keep=[],
                                   older_than=None, max_size=None, orphans=False, orphans_older_than="1d"))
            for r in res["removed"]:
                result["removed"].append({"store": store, "kind": kind, "name": r["model"], "path": r["manifest"],
                                          "last_used": last.get(r["model"]), "freed_bytes": r["freed_bytes"]})
            held, failures, problems, freed = res["held_back"], res["failures"], res["problems"], res["freed_bytes"]
        elif kind == "modelscope_model":
            res = _modelscope.run(dict(common, cache_dirs=[store], models=[c.name for c in items], keep=[],
                                       older_than=None, max_size=None, incomplete_older_than="1d",
                                       one_file_system=one_fs))
            for r in res["removed"]:
                result["removed"].append({"store": store, "kind": kind, "name": r["model_id"], "path": r["path"],
                                          "last_used": last.get(r["model_id"]), "freed_bytes": r["bytes"]})
            held, failures, problems, freed = res["held_back"], res["failures"], res["problems"], res["freed_bytes"]
        else:
            held, failures, problems, freed = [], [], [], 0
            for c in items:
                st = os.lstat(c.path)
                done = _walk.remove_tree(c.path, one_file_system=one_fs, expect=(st.st_dev, st.st_ino))
                failures.extend("%s: %s" % (p, e) for p, e in done.failed)
                problems.extend(done.problems)
                if done.changed:
                    freed += done.bytes
                    result["removed"].append({"store": store, "kind": kind, "name": c.name, "path": c.path,
                                              "last_used": c.last_used, "freed_bytes": done.bytes})
        for h in held:
            result["held_back"].append({"store": store, "kind": kind, "name": h.get("repo_id") or h.get("name") or
                                        h.get("model_id"), "reason": h.get("reason"), "detail": h.get("detail")})
        result["failures"].extend(failures)
        result["problems"].extend(problems)
        result["freed_bytes"] += freed
