# -*- coding: utf-8 -*-
# Copyright: residue.purge contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The users scope of a run bounds whose residue is touched (docs/trust.md): with `users: [alice]` a running
process of bob's, whose environment moves bob's cache to a directory of his own, adds nothing (the old code
removed bob's residue there: the process's context was bob's, vetted and accepted). With `users: all` the same
process still counts. Real throwaway users and a real process of bob's."""
from __future__ import absolute_import, division, print_function

__metaclass__ = type

import os
import subprocess
import time

import pytest

from ansible_collections.residue.purge.plugins.module_utils import _discover, _profiles, _remove
from ansible_collections.residue.purge.tests.unit.support import trust_users
from ansible_collections.residue.purge.tests.unit.support.trust_users import seed_as

# the shared fixtures (need_root is autouse)
make_user = trust_users.make_user
need_root = trust_users.need_root
sandbox = trust_users.sandbox

PROFILE = {"trusttool": {"paths": ["{user_cache}/trusttool"]}}


def params(users, **kw):
    base = dict(paths=[], targets=["trusttool"], profiles=PROFILE, homes=[], users=users, older_than=None,
                time_field="atime", keep=[], backup=None, backup_format="tar.gz", cross_filesystems=False,
                scan_processes=True)
    base.update(kw)
    return base


@pytest.fixture
def bobs_process(make_user):
    """alice and bob; bob runs a process with XDG_CACHE_HOME at ~/elsewhere (his own: the value is accepted for
    him), holding a residue there. Yields (alice, bob, bob's residue there)."""
    alice, bob = make_user(), make_user()
    elsewhere = os.path.join(bob.pw_dir, "elsewhere")
    residue = os.path.join(elsewhere, "trusttool")
    seed_as(alice, os.path.join(alice.pw_dir, ".cache", "trusttool"))
    seed_as(bob, residue)
    proc = subprocess.Popen(["runuser", "-u", bob.pw_name, "--", "env", "XDG_CACHE_HOME=" + elsewhere,
                             "sleep", "120"], cwd="/")
    try:
        deadline = time.time() + 10
        while time.time() < deadline:  # until the sleep (bob's) is there with its environment
            if any(c.source.startswith("process") and c.user.name == bob.pw_name
                   for c in _profiles.user_environments(_profiles.list_users(users=[bob.pw_name]), problems=[])):
                break
            time.sleep(0.05)
        yield alice, bob, residue
    finally:
        for pid in _children_of(proc.pid) + [proc.pid]:
            try:
                os.kill(pid, 9)
            except OSError:
                pass
        proc.wait(timeout=10)


def _children_of(pid):
    out = subprocess.run(["pgrep", "-P", str(pid)], capture_output=True, text=True, check=False).stdout
    return [int(p) for p in out.split()]


def test_a_process_of_a_user_outside_the_scope_adds_nothing(bobs_process):
    alice, bob, residue = bobs_process
    before = sorted(os.listdir(residue))
    found = _discover.run(dict(targets=["trusttool"], profiles=PROFILE, homes=[], users=[alice.pw_name],
                               extra_hf_caches=[], scan_processes=True, older_than=None, one_file_system=True,
                               search_roots=[]))
    assert [r["path"] for r in found["residues"]] == [os.path.join(alice.pw_dir, ".cache", "trusttool")]
    named = [p for p in found["problems"] if "(user %s) is not used" % bob.pw_name in p]
    assert named and "not among the users of this run" in named[0], found["problems"]
    result = _remove.run(params([alice.pw_name]), environ={})
    assert [r["path"] for r in result["removed"]] == [os.path.join(alice.pw_dir, ".cache", "trusttool")]
    assert sorted(os.listdir(residue)) == before


def test_homes_scope_the_run_too(bobs_process):
    alice, bob, residue = bobs_process
    result = _remove.run(params("all", homes=[alice.pw_dir]), check_mode=True, environ={})
    assert [r["path"] for r in result["removed"]] == [os.path.join(alice.pw_dir, ".cache", "trusttool")]
    assert os.path.isdir(residue)


def test_with_every_user_in_scope_the_process_still_counts(bobs_process):
    alice, bob, residue = bobs_process
    result = _remove.run(params([alice.pw_name, bob.pw_name]), check_mode=True, environ={})
    assert residue in [r["path"] for r in result["removed"]]
    users = _profiles.list_users(users="all")
    assert users.scoped is False and _profiles.list_users(users=[alice.pw_name]).scoped is True
