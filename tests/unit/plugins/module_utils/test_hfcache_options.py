# -*- coding: utf-8 -*-
# Copyright: residue.purge contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""hf_cache's option handling: every bad input is a ValueError with a message naming the option."""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import pytest

from ansible_collections.residue.purge.plugins.module_utils._hfcache import run as hf_run


def params(**kw):
    base = dict(cache_dirs=["/tmp/hub"], discover=None, repos=[], repo_type="any", revisions=None, older_than=None,
                age_by="accessed", max_size=None, keep=[], incomplete_older_than="1d", force=False,
                one_file_system=True, targets=[], profiles={}, homes=[], users="all")
    base.update(kw)
    return base


@pytest.mark.parametrize("kw,message", [
    (dict(older_than="banana"), "older_than"),
    (dict(older_than="-3d"), "older_than"),
    (dict(max_size="-5"), "max_size"),
    (dict(max_size="lots"), "max_size"),
    (dict(repos=[""]), "repos"),
    (dict(repos=["  "]), "repos"),
    (dict(keep=[" x"]), "keep"),
    (dict(revisions="all"), "would empty every cache"),
    (dict(incomplete_older_than="soon"), "incomplete_older_than"),
    (dict(targets=["no_such_profile"]), "no_such_profile"),
])
def test_bad_selection_is_refused(kw, message):
    with pytest.raises(ValueError) as err:
        hf_run.selection_from(params(**kw))
    assert message in str(err.value)


@pytest.mark.parametrize("path", ["relative/hub", "/", "/tmp/../etc", "//"])
def test_bad_cache_dir_is_refused(path):
    with pytest.raises(ValueError) as err:
        hf_run.cache_dirs_from(params(cache_dirs=[path]))
    assert "cache_dirs" in str(err.value)


def test_defaults():
    sel = hf_run.selection_from(params())
    assert sel.revisions is None and sel.incomplete_older_than == 86400 and sel.max_size is None
    sel = hf_run.selection_from(params(repos=["zai-org/*"]))
    assert sel.revisions == "all" and sel.patterns == ["zai-org/*"]
    sel = hf_run.selection_from(params(older_than="30d"))
    assert sel.revisions == "all" and sel.older_than == 30 * 86400 and sel.patterns == []
    sel = hf_run.selection_from(params(max_size="10G", incomplete_older_than="never"))
    assert sel.revisions is None and sel.max_size == 10 * 1024 ** 3 and sel.incomplete_older_than is None
    sel = hf_run.selection_from(params(targets=["open_autoglm"], repos=["x/y"]))
    assert sel.patterns == ["x/y", "zai-org/AutoGLM-*"]
    assert hf_run.cache_dirs_from(params(cache_dirs=["/data/hf/hub/"])) == ["/data/hf/hub"]
