# -*- coding: utf-8 -*-
# Copyright: residue.purge contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The options every model-store topic (hf_cache, ollama_models, modelscope_models) reads the same way: the name
globs, older_than, max_size and incomplete_older_than. Each raises ValueError naming the option."""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

from ansible_collections.residue.purge.plugins.module_utils._units import parse_duration, parse_size


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
