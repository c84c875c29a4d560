# -*- coding: utf-8 -*-
# Copyright: residue.purge contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""What the controller sends a Windows host: merged profiles, and process patterns refused as POSIX hosts refuse
them (a pattern that selects every process never reaches win_reap.ps1)."""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import pytest

from ansible_collections.residue.purge.plugins.module_utils._profiles import ProfileError
from ansible_collections.residue.purge.plugins.module_utils._procs import compile_patterns
from ansible_collections.residue.purge.plugins.plugin_utils._windows_action import windows_args


@pytest.mark.parametrize("pattern", [".*", "^", "", "x?|", ".", "\\S", "(", 7])
def test_a_pattern_posix_refuses_is_refused_for_windows(pattern):
    with pytest.raises(ValueError):
        compile_patterns([pattern], "cmdline")  # what a POSIX host does with it
    with pytest.raises(ProfileError, match=r"cmdline\[1\]"):
        windows_args({"cmdline": ["ollama\\.exe serve", pattern]})


def test_selective_patterns_and_profiles_pass():
    args = windows_args({"cmdline": ["(^|/)ollama( |$)", "open_autoglm"], "names": ["ollama"], "targets": ["ollama"]})
    assert args["cmdline"] == ["(^|/)ollama( |$)", "open_autoglm"] and args["names"] == ["ollama"]
    assert "ollama" in args["profiles"] and "processes" in args["profiles"]["ollama"]
    assert windows_args({})["profiles"]  # the built-ins, normalised
