# -*- coding: utf-8 -*-
# Copyright: residue.purge contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The users scope of a run bounds whose residue is touched (docs/trust.md): with `users: [alice]` a running
process of bob's, whose environment moves bob's cache to a directory of his own, adds nothing (the old code
removed bob's residue there: the process's context was bob's, vetted and accepted). With `users: all` the same
process still counts. Real throwaway users and a real process of bob's."""
from __future__ import absolute_import, division, print_function

__metaclass__ = type

import contextlib
import os
import subprocess
import time

import pytest

from ansible_collections.residue.purge.plugins.module_utils import _discover, _profiles, _remove
from ansible_collections.residue.purge.tests.unit.support import realusers
from ansible_collections.residue.purge.tests.unit.support.realusers import seed_as

# the shared fixtures (need_root is autouse)
make_user = realusers.make_user
need_root = realusers.need_root
sandbox = realusers.sandbox

PROFILE = {"trusttool": {"paths": ["{user_cache}/trusttool"]}}


def params(users, **kw):
    base = dict(paths=[], targets=["trusttool"], profiles=PROFILE, homes=[], users=users, older_than=None,
                time_field="atime", keep=[], backup=None, backup_format="tar.gz", cross_filesystems=False,
                scan_processes=True)
    base.update(kw)
    return base


@contextlib.contextmanager
def process_of(user, **environ):
    """A process of user's (runuser ... env K=V sleep) with environ, there until the block ends."""
    proc = subprocess.Popen(["runuser", "-u", user.pw_name, "--", "env"]
                            + ["%s=%s" % kv for kv in sorted(environ.items())] + ["sleep", "120"], cwd="/")
    try:
        deadline = time.time() + 10
        while time.time() < deadline:  # until the sleep (the user's) is there with its environment
            if any(c.source.startswith("process") and c.user.name == user.pw_name
                   for c in _profiles.user_environments(_profiles.list_users(users=[user.pw_name]), problems=[])):
                break
            time.sleep(0.05)
        yield proc
    finally:
        for pid in _children_of(proc.pid) + [proc.pid]:
            try:
                os.kill(pid, 9)
            except OSError:
                pass
        proc.wait(timeout=10)


@pytest.fixture
def bobs_process(make_user):
    """alice and bob; bob runs a process with XDG_CACHE_HOME at ~/elsewhere (his own: the value is accepted for
    him), holding a residue there. Yields (alice, bob, bob's residue there)."""
    alice, bob = make_user(), make_user()
    elsewhere = os.path.join(bob.pw_dir, "elsewhere")
    residue = os.path.join(elsewhere, "trusttool")
    seed_as(alice, os.path.join(alice.pw_dir, ".cache", "trusttool"))
    seed_as(bob, residue)
    with process_of(bob, XDG_CACHE_HOME=elsewhere):
        yield alice, bob, residue


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


def test_a_users_own_environment_protecting_her_own_default_path_fails_nobodys_run(make_user):
    """mallory's process sets TMPDIR to her own {user_cache}/trusttool (hers: the value is accepted for her), so
    her protected set holds her own default residue. The old code raised ProfileError for the whole task there:
    any user could fail every purge of the host. Now that path of hers is left out and named, alice's goes."""
    alice, mallory = make_user(), make_user()
    mine = os.path.join(mallory.pw_dir, ".cache", "trusttool")
    alices = os.path.join(alice.pw_dir, ".cache", "trusttool")
    seed_as(alice, alices)
    seed_as(mallory, mine)
    before = sorted(os.listdir(mine))
    with process_of(mallory, TMPDIR=mine):
        for check_mode in (True, False):
            result = _remove.run(params([alice.pw_name, mallory.pw_name]), check_mode=check_mode, environ={})
            assert [r["path"] for r in result["removed"]] == [alices], result
            named = [p for p in result["problems"] if mine in p and "left out" in p]
            assert named and "by the environment of user %s" % mallory.pw_name in named[0], result["problems"]
        found = _discover.run(dict(targets=["trusttool"], profiles=PROFILE, homes=[],
                                   users=[alice.pw_name, mallory.pw_name], extra_hf_caches=[], scan_processes=True,
                                   older_than=None, one_file_system=True, search_roots=[]))
        assert mine not in [r["path"] for r in found["residues"]]
        assert any(mine in p for p in found["problems"]), found["problems"]
    assert not os.path.exists(alices) and sorted(os.listdir(mine)) == before
    # a profile whose default names a protected path is still a bad profile, whoever runs it
    with pytest.raises(_profiles.ProfileError, match="protected directory"):
        _remove.run(params([alice.pw_name], profiles={"trusttool": {"paths": ["{user_cache}"]}}), environ={})
