# -*- coding: utf-8 -*-
# Copyright: residue.purge contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Check mode names the refusals the real run meets (docs/trust.md rule 4): remove's dry run in the user's own
child checks each unlink and rmdir as the kernel would for that user (write and search permission on the
directory, the sticky-bit rule, immutable and append-only flags). Real throwaway users; the check-mode result and
the real run's are compared whole. On the old code check mode listed no failure at all and counted the refused
files as removed."""
from __future__ import absolute_import, division, print_function

__metaclass__ = type

import os
import subprocess

import pytest

from ansible_collections.residue.purge.plugins.module_utils._remove import run
from ansible_collections.residue.purge.tests.unit.support import realusers
from ansible_collections.residue.purge.tests.unit.support.realusers import as_user, seed_as, write

# the shared fixtures (need_root is autouse)
make_user = realusers.make_user
need_root = realusers.need_root
sandbox = realusers.sandbox

PROFILE = {"trusttool": {"paths": ["{user_cache}/trusttool"]}}


def params(users, **kw):
    base = dict(paths=[], targets=["trusttool"], profiles=PROFILE, homes=[], users=[u.pw_name for u in users] or "all",
                older_than=None, time_field="atime", keep=[], backup=None, backup_format="tar.gz",
                cross_filesystems=False, scan_processes=False)
    base.update(kw)
    return base


def chattr(flag, path):
    done = subprocess.run(["chattr", flag, path], capture_output=True, text=True, check=False)
    if done.returncode != 0:
        pytest.fail("chattr %s is not supported here (%s): the immutable cases cannot be tested" % (flag, done.stderr))


def outcome(result):
    return (sorted((f["path"], f["error"]) for f in result["failures"]), result["failed_count"],
            [(r["path"], r["owner"], r["files"], r["dirs"], r["kept"], r["whole"]) for r in result["removed"]])


def test_check_mode_names_the_kernels_refusals_and_matches_the_real_run(make_user, sandbox):
    alice, bob = make_user(), make_user()
    residue = os.path.join(alice.pw_dir, ".cache", "trusttool")
    seed_as(alice, residue)
    # root's directory in her residue (she cannot write it): EACCES on its file
    locked = os.path.join(residue, "rootdir")
    os.mkdir(locked, 0o755)
    write(os.path.join(locked, "root-file"), "root's", 0o644)
    # a sticky world-writable directory (root's) with bob's file and hers: EPERM for bob's, hers goes
    sticky = os.path.join(residue, "sticky")
    os.mkdir(sticky)
    os.chmod(sticky, 0o1777)
    as_user(bob, "sh", "-c", "echo bob > '%s'" % os.path.join(sticky, "bobs"))
    as_user(alice, "sh", "-c", "echo alice > '%s'" % os.path.join(sticky, "hers"))
    # her own directory without write permission: EACCES on her own file in it
    readonly = os.path.join(residue, "readonly")
    as_user(alice, "mkdir", readonly)
    as_user(alice, "sh", "-c", "echo x > '%s'" % os.path.join(readonly, "f"))
    as_user(alice, "chmod", "0555", readonly)
    # her own file made immutable, her own directory made append-only: EPERM
    pinned = os.path.join(residue, "sub", "pinned")
    as_user(alice, "sh", "-c", "echo x > '%s'" % pinned)
    appendonly = os.path.join(residue, "appendonly")
    as_user(alice, "mkdir", appendonly)
    as_user(alice, "sh", "-c", "echo x > '%s'" % os.path.join(appendonly, "log"))
    chattr("+i", pinned)
    chattr("+a", appendonly)
    try:
        planned = run(params([alice]), check_mode=True)
        assert os.path.isfile(os.path.join(residue, "sub", "f0"))  # check mode changed nothing
        done = run(params([alice]))
    finally:
        chattr("-i", pinned)
        chattr("-a", appendonly)
    expected = {os.path.join(locked, "root-file"): "Permission denied",
                os.path.join(sticky, "bobs"): "Operation not permitted",
                os.path.join(readonly, "f"): "Permission denied",
                pinned: "Operation not permitted",
                os.path.join(appendonly, "log"): "Operation not permitted"}
    assert dict((f["path"], f["error"]) for f in done["failures"]) == expected
    assert outcome(planned) == outcome(done)
    assert not os.path.lexists(os.path.join(sticky, "hers")) and os.path.isfile(os.path.join(sticky, "bobs"))


def test_check_mode_of_a_residue_the_user_may_wholly_remove_has_no_failures(make_user):
    alice = make_user()
    residue = os.path.join(alice.pw_dir, ".cache", "trusttool")
    seed_as(alice, residue)
    planned = run(params([alice]), check_mode=True)
    done = run(params([alice]))
    assert planned["failures"] == [] and outcome(planned) == outcome(done)
    assert not os.path.lexists(residue)


def test_the_residue_itself_in_a_directory_the_user_cannot_write(make_user, sandbox):
    """The residue's own parent is root's (a root-owned ~/.cache): its rmdir is refused, and check mode says so."""
    alice = make_user()
    cache = os.path.join(alice.pw_dir, ".cache")
    residue = os.path.join(cache, "trusttool")
    seed_as(alice, residue)
    os.chown(cache, 0, 0)
    os.chmod(cache, 0o755)
    planned = run(params([alice]), check_mode=True)
    done = run(params([alice]))
    assert [(f["path"], f["error"]) for f in done["failures"]] == [(residue, "Permission denied")]
    assert outcome(planned) == outcome(done)
    assert os.path.isdir(residue) and os.listdir(residue) == []


def test_roots_own_residue_check_mode_names_an_immutable_file(sandbox):
    """Root's rights pass every permission check but not an immutable flag: check mode says so too."""
    residue = os.path.join(sandbox, "srv-residue")
    os.makedirs(os.path.join(residue, "a"))
    write(os.path.join(residue, "a", "free"), "x")
    stuck = os.path.join(residue, "a", "stuck")
    write(stuck, "x")
    chattr("+i", stuck)
    try:
        planned = run(params([], paths=[residue], targets=[]), check_mode=True)
        done = run(params([], paths=[residue], targets=[]))
    finally:
        chattr("-i", stuck)
    assert [(f["path"], f["error"]) for f in done["failures"]] == [(stuck, "Operation not permitted")]
    assert outcome(planned) == outcome(done)
    assert "would be refused" in planned["failure"] and "could not be removed" in done["failure"]


# ------------------------------------------------------------------------------------------ hf_cache

def hf_params(users, **kw):
    base = dict(cache_dirs=[], discover=True, repos=["*"], repo_type="any", revisions="all", older_than=None,
                age_by="accessed", max_size=None, keep=[], incomplete_older_than="1d", force=False,
                one_file_system=True, targets=[], profiles={}, homes=[], users=[u.pw_name for u in users],
                store_orphans=None)
    base.update(kw)
    return base


def hf_outcome(result):
    return (sorted(result["failures"]), result["freed_bytes"], result["blobs_deleted"],
            sorted((d["repo_id"], d["freed_bytes"]) for d in result["deleted"]),
            [(s["payloads"], s["bytes"]) for s in result["store_swept"]])


def test_hf_cache_check_mode_names_the_kernels_refusals_and_matches_the_real_run(make_user, sandbox):
    """alice's hub cache, scanned and planned in her child (hf_cache's rule): a root directory planted in a
    snapshot, an immutable blob, a sticky directory with bob's file, and a shared-store prefix directory that is
    root's (the payload her repo's removal orphans cannot be unlinked by her). Check mode lists exactly the
    failures the real run then meets, and the same bytes; on the old code it listed none and counted all."""
    from ansible_collections.residue.purge.plugins.module_utils._hfcache import run as hf_run
    from ansible_collections.residue.purge.tests.unit.support import hfgen, hfshared

    alice, bob = make_user(), make_user()
    hub = os.path.join(alice.pw_dir, ".cache", "huggingface", "hub")
    repos = hfgen.make_cache(hub, repos=3, seed=11, max_file_size=4096)
    (xet,) = list(hfshared.share(hub, [repos[2]], payloads=1, fraction=1.0, seed=11))
    realusers.chown_tree(alice, os.path.join(alice.pw_dir, ".cache"))
    snapshot = os.path.join(repos[0].path, "snapshots", repos[0].commits[0])
    locked = os.path.join(snapshot, "rootdir")
    os.mkdir(locked, 0o755)
    write(os.path.join(locked, "root-file"), "root's", 0o644)
    sticky = os.path.join(snapshot, "sticky")
    os.mkdir(sticky)
    os.chmod(sticky, 0o1777)
    as_user(bob, "sh", "-c", "echo bob > '%s'" % os.path.join(sticky, "bobs"))
    blobs = os.path.join(repos[1].path, "blobs")
    pinned = os.path.join(blobs, sorted(os.listdir(blobs))[0])
    prefix = os.path.join(hub, "blobs", xet[:2])
    os.chown(prefix, 0, 0)
    chattr("+i", pinned)
    try:
        planned = hf_run.run(hf_params([alice]), check_mode=True)
        assert all(os.path.isdir(r.path) for r in repos)  # check mode changed nothing
        done = hf_run.run(hf_params([alice]))
    finally:
        chattr("-i", pinned)
    assert hf_outcome(planned) == hf_outcome(done)
    failures = planned["failures"]
    for path, error in ((os.path.join(locked, "root-file"), "Permission denied"),
                        (os.path.join(sticky, "bobs"), "Operation not permitted"),
                        (pinned, "Operation not permitted")):
        assert any(f.startswith(path + ": ") and error in f for f in failures), (path, failures)
    assert any(os.path.join(prefix, xet) in f and "Permission denied" in f for f in failures), failures
    assert "failure" in planned and "failure" in done
