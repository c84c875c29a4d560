# -*- coding: utf-8 -*-
# Copyright: residue.purge contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""discover as root sizes a user's residue with that user's rights (docs/trust.md rule 4): real throwaway users,
real bind mounts and root-only directories inside their caches. What the user cannot read is reported, never
counted with root's rights; a user who stops the child that sizes for them gets their residue left out, never
sized by root instead."""
from __future__ import absolute_import, division, print_function

__metaclass__ = type

import os
import subprocess

from ansible_collections.residue.purge.plugins.module_utils import _discover, _fork
from ansible_collections.residue.purge.tests.unit.support import realusers
from ansible_collections.residue.purge.tests.unit.support.realusers import as_user, seed_as, stopper, write

# the shared fixtures (need_root is autouse)
make_user = realusers.make_user
need_root = realusers.need_root
sandbox = realusers.sandbox

PROFILE = {"trusttool": {"paths": ["{user_cache}/trusttool"]}}
SECRET = 1 << 20  # bytes of root's file: large enough to tell apart from the user's own few KiB


def discover(users, profiles=None):
    return _discover.run(dict(targets=sorted(profiles or PROFILE), profiles=profiles or PROFILE, homes=[],
                              users=[u.pw_name for u in users], extra_hf_caches=[], scan_processes=False,
                              older_than=None, one_file_system=True, search_roots=[]))


def residue_of(result, path):
    (found,) = [r for r in result["residues"] if r["path"] == path]
    return found


def root_only(sandbox, name="root-only"):
    """A root directory (0700) holding one SECRET-byte file: what no user may size."""
    path = os.path.join(sandbox, name)
    os.mkdir(path, 0o700)
    write(os.path.join(path, "secret"), os.urandom(SECRET), 0o600)
    return path


def test_a_bind_mount_of_a_root_only_directory_in_a_users_cache_is_reported_not_sized(make_user, sandbox):
    """Same filesystem, so `du -x` would enter it: root counted root's secret as the user's residue (the old code
    did: its bytes held the SECRET bytes and no problem was named)."""
    alice = make_user()
    residue = os.path.join(alice.pw_dir, ".cache", "trusttool")
    seed_as(alice, residue)
    secret = root_only(sandbox)
    mnt = os.path.join(residue, "mnt")
    as_user(alice, "mkdir", mnt)
    subprocess.run(["mount", "--bind", secret, mnt], check=True)
    try:
        result = discover([alice])
    finally:
        subprocess.run(["umount", mnt], check=True)
    found = residue_of(result, residue)
    assert found["bytes"] < SECRET, found
    assert found["files"] == 3  # the user's three files; the link is not a regular file; the secret is not seen
    assert "%s: Permission denied" % mnt in result["problems"], result["problems"]


def test_a_root_only_directory_inside_a_users_cache_is_reported_not_sized(make_user, sandbox):
    alice = make_user()
    residue = os.path.join(alice.pw_dir, ".cache", "trusttool")
    seed_as(alice, residue)
    hidden = os.path.join(residue, "sub", "roots")
    os.mkdir(hidden, 0o700)
    write(os.path.join(hidden, "secret"), os.urandom(SECRET), 0o600)
    result = discover([alice])
    found = residue_of(result, residue)
    assert found["bytes"] < SECRET and found["files"] == 3, found
    assert "%s: Permission denied" % hidden in result["problems"], result["problems"]


def test_a_symlink_to_a_root_directory_is_sized_as_a_link(make_user, sandbox):
    """Never followed, as root or as the user (this one passed on the old code too: the walk never follows)."""
    alice = make_user()
    residue = os.path.join(alice.pw_dir, ".cache", "trusttool")
    seed_as(alice, residue)
    secret = root_only(sandbox)
    as_user(alice, "ln", "-s", secret, os.path.join(residue, "to-root"))
    found = residue_of(discover([alice]), residue)
    assert found["bytes"] < SECRET and found["files"] == 3, found


def test_root_and_system_residue_is_still_sized_by_root(make_user, sandbox):
    """An absolute system path in a profile is root's residue: root's rights size it, root-only files counted."""
    alice = make_user()
    system = root_only(sandbox, "system-residue")
    profiles = {"trusttool": {"paths": ["{user_cache}/trusttool", system]}}
    seed_as(alice, os.path.join(alice.pw_dir, ".cache", "trusttool"))
    result = discover([alice], profiles)
    assert residue_of(result, system)["bytes"] >= SECRET
    assert residue_of(result, system)["files"] == 1


def test_a_user_who_stops_their_sizing_child_gets_their_residue_left_out(make_user, monkeypatch):
    """alice SIGSTOPs every process of hers: the child sizing as her is killed, her residue is named as not
    sized and left out (root never walks it instead; the old code sized it as root); bob's is sized."""
    monkeypatch.setattr(_fork, "STALL_CHECK_SECONDS", 0.3)
    alice, bob = make_user(), make_user()
    for user in (alice, bob):
        seed_as(user, os.path.join(user.pw_dir, ".cache", "trusttool"))
    many = os.path.join(alice.pw_dir, ".cache", "trusttool", "many")
    as_user(alice, "sh", "-c", "mkdir -p '%s' && cd '%s' && seq 1 20000 | xargs touch" % (many, many))
    proc = stopper(alice)
    try:
        import time
        time.sleep(1)
        result = discover([alice, bob])
    finally:
        proc.wait(timeout=30)
    paths = [r["path"] for r in result["residues"]]
    assert paths == [os.path.join(bob.pw_dir, ".cache", "trusttool")], result
    named = [p for p in result["problems"] if p.startswith(os.path.join(alice.pw_dir, ".cache", "trusttool"))]
    assert named and all("not sized" in p and "acting as %s" % alice.pw_name in p for p in named), result["problems"]


# ------------------------------------------------------------------------------------------ HF hub caches

HUB_PROFILE = {"trusttool": {"paths": ["{user_cache}/trusttool"], "hf_repos": ["org/*"]}}


def users_hub(user, repo_id="org/a"):
    """A hub cache at the user's default location, made and owned by them: (cache, GenRepo)."""
    from ansible_collections.residue.purge.tests.unit.support import hfgen
    hub = os.path.join(user.pw_dir, ".cache", "huggingface", "hub")
    repo = hfgen.add_repo(hub, repo_id, revisions=1, files_per_revision=3)
    realusers.chown_tree(user, os.path.join(user.pw_dir, ".cache"))
    return hub, repo


def test_a_users_hub_cache_is_scanned_as_the_user_a_root_only_bind_mount_is_not_sized(make_user, sandbox):
    """alice's repo's blobs/ is a bind mount of a root-only directory holding a SECRET-byte blob: discover scans her
    cache in a child acting as her (as hf_cache does), so the blobs are not listed (named in problems) and their
    bytes are not counted. The old code scanned every hub cache as root: the repo's residue held the SECRET."""
    alice, bob = make_user(), make_user()
    hub, repo = users_hub(alice)
    bobs_hub, bobs_repo = users_hub(bob, "org/b")
    secret = root_only(sandbox)
    mnt = os.path.join(repo.path, "blobs")
    subprocess.run(["mount", "--bind", secret, mnt], check=True)
    try:
        result = discover([alice, bob], HUB_PROFILE)
    finally:
        subprocess.run(["umount", mnt], check=True)
    found = residue_of(result, repo.path)
    assert found["kind"] == "hf_repo" and found["bytes"] < SECRET and found["blob_bytes"] < SECRET, found
    assert any(mnt in p and "Permission denied" in p for p in result["problems"]), result["problems"]
    assert residue_of(result, bobs_repo.path)["bytes"] > 0  # bob's, scanned as bob
    assert result["total_bytes"] < SECRET


def test_a_user_who_stops_the_child_scanning_her_hub_cache_gets_it_left_out(make_user, monkeypatch):
    """alice stops every process of hers: the child scanning her hub cache is killed, the cache is named as not
    scanned and none of its repos is listed (root never scans it instead); bob's is listed."""
    monkeypatch.setattr(_fork, "STALL_CHECK_SECONDS", 0.3)
    alice, bob = make_user(), make_user()
    hub, repo = users_hub(alice)
    _bobs_hub, bobs_repo = users_hub(bob, "org/b")
    snapshots = os.path.join(repo.path, "snapshots")
    many = os.path.join(snapshots, os.listdir(snapshots)[0], "many")
    as_user(alice, "sh", "-c", "mkdir -p '%s' && cd '%s' && seq 1 20000 | xargs touch" % (many, many))
    proc = stopper(alice)
    try:
        import time
        time.sleep(1)
        result = discover([alice, bob], {"trusttool": {"paths": [], "hf_repos": ["org/*"]}})
    finally:
        proc.wait(timeout=30)
    assert [r["path"] for r in result["residues"]] == [bobs_repo.path], result["residues"]
    assert any(p.startswith("HF hub cache %s: not scanned" % hub) and "acting as %s" % alice.pw_name in p
               for p in result["problems"]), result["problems"]
