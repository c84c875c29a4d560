# -*- coding: utf-8 -*-
# Copyright: residue.purge contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The options the model-store modules share: their argument spec (ollama_models, modelscope_models,
model_budget), and the reading of the name globs, older_than, max_size and incomplete_older_than (hf_cache,
ollama_models, modelscope_models), each raising ValueError naming the option."""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import time

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
