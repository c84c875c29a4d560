# -*- coding: utf-8 -*-
# Copyright: residue.purge contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The store modules' shared option reading (_stores): each module's message names its option and its own example."""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import pytest

from ansible_collections.residue.purge.plugins.module_utils import _modelscope, _ollama, _stores
from ansible_collections.residue.purge.plugins.module_utils._hfcache import run as hf_run


def hf_params(**kw):
    base = dict(cache_dirs=["/tmp/hub"], discover=None, repos=[], repo_type="any", revisions=None, older_than=None,
                age_by="accessed", max_size=None, keep=[], incomplete_older_than="1d", force=False,
                one_file_system=True, targets=[], profiles={}, homes=[], users="all")
    base.update(kw)
    return base


@pytest.mark.parametrize("selection_from,params,message", [
    (_ollama.selection_from, {"models": ["llama3", " x"]},
     "models: ' x' is not a model pattern such as llama3:8b, llama3 or hf.co/*"),
    (_ollama.selection_from, {"keep": [3]}, "keep: 3 is not a model pattern such as llama3:8b, llama3 or hf.co/*"),
    (_modelscope.selection_from, {"keep": [""]}, "keep: '' is not a model pattern such as qwen/Qwen2.5-7B or qwen/*"),
    (hf_run.selection_from, hf_params(repos=["a/b", "c/d "]),
     "repos: 'c/d ' is not a repo pattern such as org/name or org/*"),
])
def test_a_bad_glob_names_the_option_and_the_modules_example(selection_from, params, message):
    with pytest.raises(ValueError) as err:
        selection_from(params)
    assert str(err.value) == message


def test_age_size_and_incomplete_age():
    assert _stores.age_and_size({}) == (None, None)
    assert _stores.age_and_size({"older_than": "2d", "max_size": "1K"}) == (2 * 86400, 1024)
    assert _stores.age_and_size({"older_than": "", "max_size": "0"}) == (None, 0)  # a budget of 0 is a budget
    assert _stores.incomplete_age(" Never ") is None
    assert _stores.incomplete_age("1h") == 3600
    with pytest.raises(ValueError, match="^incomplete_older_than: "):
        _stores.incomplete_age("soon")
    sel = _modelscope.selection_from({"incomplete_older_than": "never"})
    assert sel.incomplete_older_than is None
