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


@pytest.mark.parametrize("locate,option,message", [
    (_ollama.store_locations, "models_dirs", "models_dirs: 'rel' must be an absolute path to an Ollama models dir, "
                                             "without '..'"),
    (_modelscope.cache_locations, "cache_dirs", "cache_dirs: 'rel' must be an absolute path to a ModelScope cache, "
                                                "without '..'"),
    (hf_run.cache_dirs_from, "cache_dirs", "cache_dirs: 'rel' must be an absolute path to a hub cache, without '..'"),
])
def test_a_bad_given_dir_names_the_option_and_what_it_should_be(locate, option, message):
    with pytest.raises(ValueError) as err:
        locate(hf_params(**{option: ["/ok", "rel"]}))
    assert str(err.value) == message


def test_given_dirs_kept_once_each_as_given_by_ollama_and_real_by_modelscope(tmp_path):
    real = tmp_path / "store"
    real.mkdir()
    (tmp_path / "link").symlink_to(real)
    (tmp_path / "file").write_text("x")
    given = [str(tmp_path / "link"), str(real), str(tmp_path / "file"), str(tmp_path / "missing")]
    assert _ollama.store_locations({"models_dirs": given}) == [(str(tmp_path / "link"), None, "option models_dirs")]
    assert _modelscope.cache_locations({"cache_dirs": given}) == [(str(real), None, "option cache_dirs")]


def test_close_result_fails_the_task_naming_the_first_failed_removal():
    result = {"held_back": [], "failures": ["/c/a: EPERM", "/c/b: EPERM"]}
    _stores.close_result(result, "ollama_models", "name", "store", ["s a"], [], ["x", "dir y stays over its budget"])
    assert result["failure"] == "ollama_models: 2 removal(s) failed, first: /c/a: EPERM"
    assert result["diff"] == {"before": "s a\n", "after": ""}
    assert result["_warnings"] == ["dir y stays over its budget"]
