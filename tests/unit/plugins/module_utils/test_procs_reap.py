# -*- coding: utf-8 -*-
# Copyright: residue.purge contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""reap's option handling (_procs.selection_from, ProcessSelection): every bad input is refused before anything runs."""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import os
import pwd

import pytest

from ansible_collections.residue.purge.plugins.module_utils import _procs


def params(**kwargs):
    base = dict(targets=[], profiles={}, homes=[], users="all", names=[], cmdline=[], holding=[], signal="TERM",
                grace=10)
    base.update(kwargs)
    return base


@pytest.mark.parametrize("kwargs,message", [
    (dict(names=["x"], signal="BOGUS"), "signal: unknown signal"),
    (dict(names=["x"], signal="0"), "signal: '0' is not a signal"),
    (dict(names=["x"], grace=-1), "grace"),
    (dict(names=["x"], grace=True), "grace"),
    (dict(names=[""]), "names"),
    (dict(names=["  "]), "names"),
    (dict(cmdline=["(unclosed"]), "cmdline: '(unclosed' is not a valid regular expression"),
    (dict(holding=["/"]), "holding: '/' would match every process"),
    (dict(holding=["/../"]), "holding: '/' would match every process"),
    (dict(holding=["relative/dir"]), "holding: 'relative/dir' is not an absolute path"),
    (dict(holding=[""]), "holding"),
    (dict(targets=["no_such_profile_rp"]), "unknown target(s) no_such_profile_rp"),
    (dict(names=["x"], users=5), "users"),
    (dict(names=["x"], users=["no-such-user-rp"]), "users: no such user(s) no-such-user-rp"),
    (dict(names=["rp-no-such-process-zz"], users=["root"]), None),  # a valid filter
    (dict(targets=["bad"], profiles={"bad": {"processes": {"cmdline": ["(oops"]}}}), "bad"),
    (dict(targets=["bad"], profiles={"bad": {"processes": {"nmes": ["x"]}}}), "bad"),
    (dict(names=["x"], homes=["relative"]), "homes"),
    (dict(names=["x"], homes=["/no/such/home/rp"]), "homes"),
])
def test_bad_input_is_refused_with_the_option_named(kwargs, message):
    if message is None:
        selection = _procs.selection_from(params(**kwargs))
        assert selection.find() == []
        return
    with pytest.raises(ValueError) as err:
        _procs.selection_from(params(**kwargs))
    assert message in str(err.value)


def test_direct_selectors_without_targets_use_no_profile():
    selection = _procs.selection_from(params(names=["rp-x"]))
    assert selection.per_target == {} and selection.names == ["rp-x"]


def test_no_selector_at_all_means_every_profile():
    selection = _procs.selection_from(params())
    assert "open_autoglm" in selection.per_target and "ollama" in selection.per_target
    assert "open-autoglm" in selection.names and "ollama" in selection.names


def test_targets_add_profile_patterns_to_direct_selectors():
    profiles = {"rp_tool": {"processes": {"names": ["rp-tool"], "cmdline": ["rp-tool serve$"]}}}
    selection = _procs.selection_from(params(targets=["rp_tool"], profiles=profiles, names=["rp-extra"]))
    assert selection.names == ["rp-extra", "rp-tool"]
    assert [r.pattern for r in selection.regexes] == ["rp-tool serve$"]
    assert selection.targets_of({"name": "rp-tool", "cmdline": ["rp-tool"]}) == ["rp_tool"]
    assert selection.targets_of({"name": "python3", "cmdline": ["/opt/rp-tool", "serve"]}) == ["rp_tool"]
    assert selection.targets_of({"name": "rp-extra", "cmdline": ["rp-extra"]}) == []


def test_homes_restrict_to_their_owners(tmp_path):
    selection = _procs.selection_from(params(names=["x"], homes=[str(tmp_path)]))
    assert selection.users == [pwd.getpwuid(os.stat(str(tmp_path)).st_uid).pw_name]


def test_a_profile_without_processes_matches_nothing():
    selection = _procs.selection_from(params(targets=["huggingface"]))
    assert selection.empty() and selection.find() == []


def test_describe_processes_one_line_each():
    text = _procs.describe_processes([{"pid": 12, "user": "bob", "name": "b", "cmdline": ["b", "-x"]},
                                      {"pid": 3, "user": "al", "name": "a", "cmdline": []}])
    assert text == "3 al a: \n12 bob b: b -x\n"


@pytest.mark.parametrize("cgroup,expected", [
    ("/system.slice/docker-3f2a9c1b7d4e5f60718293a4b5c6d7e8f9a0b1c2d3e4f5a6b7c8d9e0f1a2b3c4.scope",
     ("docker", "3f2a9c1b7d4e5f60718293a4b5c6d7e8f9a0b1c2d3e4f5a6b7c8d9e0f1a2b3c4")),
    ("/docker/3f2a9c1b7d4e", ("docker", "3f2a9c1b7d4e")),
    ("/kubepods.slice/kubepods-burstable.slice/kubepods-burstable-pod1234.slice/cri-containerd-"
     "abcdef0123456789.scope", ("containerd", "abcdef0123456789")),
    ("/machine.slice/libpod-0123456789abcdef.scope/container", ("podman", "0123456789abcdef")),
    ("/lxc.payload.web1/init.scope", ("lxc", "web1")),
    ("/user.slice/user-1000.slice/session-3.scope", (None, None)),
    (None, (None, None)),
])
def test_container_runtime_and_id_from_the_cgroup(cgroup, expected):
    from ansible_collections.residue.purge.plugins.module_utils import _procfs  # pylint: disable=import-outside-toplevel
    assert _procfs.container_of(cgroup) == expected


def test_namespaces_option_is_validated():
    with pytest.raises(ValueError, match="namespaces"):
        _procs.selection_from({"names": ["x"], "namespaces": "host", "users": "all"})
