# -*- coding: utf-8 -*-
# Copyright: residue.purge contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The options the model-store modules share: their argument spec (ollama_models, modelscope_models,
model_budget), and the reading of the name globs, older_than, max_size and incomplete_older_than (hf_cache,
ollama_models, modelscope_models), each raising ValueError naming the option; the given store dirs
(given_dirs), where the stores are and whose rights each is handled with (locations), and the end of a store
module's result (close_result)."""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import os
import time

from ansible_collections.residue.purge.plugins.module_utils import _privileges, _profiles
from ansible_collections.residue.purge.plugins.module_utils._units import parse_duration, parse_size

# The options ollama_models, modelscope_models and model_budget share, merged into each one's argument spec:
# homes and users documented by the residue.purge.model_stores doc fragment, scan_processes and force by each
# module (what they read and what they hold back differ per store).
STORE_ARGUMENT_SPEC = dict(
    homes=dict(type="list", elements="path", default=[]),
    users=dict(type="raw", default="all"),
    scan_processes=dict(type="bool", default=True),
    force=dict(type="bool", default=False),
)


class ModelSelection(object):
    """What the name globs (patterns, keep), older_than and max_size select, for stores whose models have
    matches(glob) and last_used. A model is in scope unless kept, and when patterns are given only if one
    matches; it is picked (removed outright) when patterns or older_than are given and it is old enough.
    max_size is for the store's budget pass (least recently used first, among the models in scope)."""

    __slots__ = ("patterns", "keep", "older_than", "max_size", "now")

    def __init__(self, patterns=(), keep=(), older_than=None, max_size=None, now=None):
        self.patterns = list(patterns)
        self.keep = list(keep)
        self.older_than = older_than
        self.max_size = max_size
        self.now = time.time() if now is None else now

    def in_scope(self, model):
        if any(model.matches(p) for p in self.keep):
            return False
        return not self.patterns or any(model.matches(p) for p in self.patterns)

    def picks(self, model):
        if not self.patterns and self.older_than is None:
            return False  # only a budget (or nothing) selects
        return self.older_than is None or model.last_used < self.now - self.older_than


def check_globs(option_globs, example):
    """Refuse a glob that is not a non-empty string without surrounding blanks. option_globs: ((option, [globs]),
    ...); example: what a good one looks like ('model pattern such as qwen/*'), shown in the message."""
    for option, globs in option_globs:
        for glob in globs:
            if not isinstance(glob, str) or not glob.strip() or glob != glob.strip():
                raise ValueError("%s: %r is not a %s" % (option, glob, example))


def age_and_size(params):
    """(older_than in seconds or None, max_size in bytes or None)."""
    older_than = parse_duration(params["older_than"], "older_than") if params.get("older_than") else None
    max_size = parse_size(params["max_size"], "max_size") if params.get("max_size") is not None else None
    return older_than, max_size


def incomplete_age(value):
    """incomplete_older_than in seconds; None for V(never) (a partial download is never old enough)."""
    if str(value).strip().lower() == "never":
        return None
    return parse_duration(value, "incomplete_older_than")


def close_result(result, module, name_key, place_key, before_lines, after_lines, problems):
    """The end of a store module's result (ollama_models, modelscope_models): the diff (a line per model before
    and after), a warning per held back entry (named by its name_key, in its place_key) and per store left over
    its budget, and the task's failure naming the first failed removal."""
    result["diff"] = {"before": "".join(line + "\n" for line in before_lines),
                      "after": "".join(line + "\n" for line in after_lines)}
    result["_warnings"] = ["%s: %s in %s held back (%s): %s" % (
        module, h[name_key], h[place_key], h["reason"], h["detail"]) for h in result["held_back"]]
    result["_warnings"].extend(p for p in problems if "over its budget" in p)
    if result["failures"]:
        result["failure"] = "%s: %d removal(s) failed, first: %s" % (
            module, len(result["failures"]), result["failures"][0])
    return result


def given_dirs(paths, option, what):
    """The store dirs given in option, normalised; ValueError naming the option for one that is relative, has a
    '..' or is '/' (what: the kind of dir, 'an Ollama models dir')."""
    dirs = []
    for path in paths or []:
        if not os.path.isabs(path) or ".." in path.split("/") or not os.path.normpath(path).strip("/"):
            raise ValueError("%s: %r must be an absolute path to %s, without '..'" % (option, path, what))
        dirs.append(os.path.normpath(path))
    return dirs


def locations(params, option, what, profile, found_at, problems=None, actors=None, real=False):
    """[(path, user, source)] of a kind of store (ollama_models' models dirs, modelscope_models' caches): the
    dirs given in params[option] (given_dirs), and when params' discover (by default: when none is given) the
    paths of the collection profile named profile in every user's home and environment (running processes
    included, a process's value only for its own user's paths, as the profiles resolve them; refused values
    reported in problems). found_at(resolved) -> (path, source) of a resolved profile path. Each store once
    (existing directories only): by where it really is when real, else by the first name it was found by.
    actors: a dict filled with {path: user} whose rights each store is read and emptied with (docs/trust.md):
    the user whose home holds it (as found, or where it really is), else the user whose environment named it,
    else root (a given dir outside every home, a system path of the profile)."""
    root = _privileges.root_user()
    found = [(path, None, "option " + option, root) for path in given_dirs(params.get(option), option, what)]
    discover = params.get("discover")
    if discover is None:
        discover = not found
    users = None
    if discover or actors is not None:
        users = _profiles.list_users(params.get("homes") or None, params.get("users", "all"))
    if discover:
        profiles = {profile: _profiles.load_profiles(params.get("profiles"))[profile]}
        contexts = _profiles.user_environments(users, scan_processes=params.get("scan_processes", True),
                                               problems=problems)
        by_name = {}
        for context in contexts:
            by_name.setdefault(context.user.name, context.user)
        for r in _profiles.resolve_all(profiles, users, contexts, problems):
            owner = by_name.get(r.user)
            claim = root if r.template.startswith("/") or owner is None else owner  # a system path: root's
            path, source = found_at(r)
            found.append((path, r.user, source, claim))
    return stores_of(found, users, actors, real)


def located(locate, params, actors=None):
    """(locations, actors, problems) a store module's run starts from: locate(params, problems, actors)'s stores
    (its store_locations or cache_locations); the actors found for them, except where actors (model_budget's)
    names one for the same store; the environment values not used, as the first problems."""
    problems, found = [], {}
    locations = locate(params, problems, found)
    if actors:
        found.update((p, actors[p]) for p, _u, _s in locations if p in actors)
    return locations, found, problems


def stores_of(found, users, actors=None, real=False):
    """[(path, user, source)] of the stores found ([(path, user, source, claim)]; claim: the user whose home or
    environment named it, root for a given dir or a system path): each existing directory once, by where it
    really is when real, else by the first name it was found by. actors: a dict filled with {path: user} whose
    rights each is handled with, as locations says; users: the users whose homes count."""
    out, kept, claims, names = [], {}, {}, {}
    for path, user, source, claim in found:
        if not os.path.isdir(path):
            continue
        where = os.path.realpath(path)
        if where not in kept:
            kept[where] = where if real else path
            out.append((kept[where], user, source))
        key = kept[where]
        claims.setdefault(key, {})[claim.uid] = claim
        for name in (path, where):
            if name not in names.setdefault(key, []):
                names[key].append(name)
    if actors is not None:
        homes = _privileges.HomeIndex(users)
        for key, _user, _source in out:
            actors[key] = _privileges.actor_of_any(names[key], claims[key], homes)
    return out
