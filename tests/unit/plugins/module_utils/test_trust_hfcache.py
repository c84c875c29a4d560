# -*- coding: utf-8 -*-
# Copyright: residue.purge contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""hf_cache as root on a shared host (docs/trust.md rules 3 and 4): its deletions and the shared store's
collection never enter or remove a protected directory under another name (a bind mount of a user's home inside
root's cache), with real users, real mounts. On the old code both tests emptied alice's home: root's own cache
is deleted with root's rights, so only the identity check stands between a bind mount and the home."""
from __future__ import absolute_import, division, print_function

__metaclass__ = type

import os
import subprocess

from ansible_collections.residue.purge.plugins.module_utils._hfcache import run as hf_run
from ansible_collections.residue.purge.tests.unit.support import hfgen
from ansible_collections.residue.purge.tests.unit.support import realusers
from ansible_collections.residue.purge.tests.unit.support.realusers import as_user, digest, seed_as, write

# the shared fixtures (need_root is autouse)
make_user = realusers.make_user
need_root = realusers.need_root
sandbox = realusers.sandbox

HASH = "ab" + "0" * 62  # a payload name of the shared store (xx/<64 hex>)


def params(**kw):
    base = dict(cache_dirs=[], discover=False, repos=[], repo_type="any", revisions=None, older_than=None,
                age_by="accessed", max_size=None, keep=[], incomplete_older_than="1d", force=False,
                one_file_system=True, targets=[], profiles={}, homes=[], users="all", store_orphans=None)
    base.update(kw)
    return base


def test_a_bind_mount_of_a_home_inside_a_repo_is_not_entered(make_user, sandbox):
    alice = make_user()
    seed_as(alice, os.path.join(alice.pw_dir, "work"))
    before = digest(alice.pw_dir)
    hub = os.path.join(sandbox, "srv", "hub")
    repo = hfgen.add_repo(hub, "org/a", revisions=1, files_per_revision=2)
    snapshot = os.path.join(repo.path, "snapshots", os.listdir(os.path.join(repo.path, "snapshots"))[0])
    mnt = os.path.join(snapshot, "mnt")
    os.mkdir(mnt)
    subprocess.run(["mount", "--bind", alice.pw_dir, mnt], check=True)
    try:
        result = hf_run.run(params(cache_dirs=[hub], repos=["org/a"], revisions="all", users=[alice.pw_name]))
        assert digest(alice.pw_dir) == before
        assert any(f.startswith(mnt + ": ") and "protected directory" in f for f in result["failures"]), result
    finally:
        subprocess.run(["umount", mnt], check=True)
    assert digest(alice.pw_dir) == before


def test_the_store_collection_does_not_collect_in_a_bind_mounted_home(make_user, sandbox):
    """blobs/ab of root's cache is a bind mount of alice's home, where alice has files named like an orphan payload
    and its (empty) manifest: the collection keeps them and names the protected directory."""
    alice = make_user()
    hub = os.path.join(sandbox, "srv", "hub")
    os.makedirs(os.path.join(hub, "blobs", "ab"))
    write(os.path.join(hub, "blobs", ".huggingface-shared-blobs"), "1\n")
    mine = os.path.join(alice.pw_dir, HASH)
    as_user(alice, "sh", "-c", "echo mine > '%s' && : > '%s.refs'" % (mine, mine))
    before = digest(alice.pw_dir)
    mnt = os.path.join(hub, "blobs", "ab")
    subprocess.run(["mount", "--bind", alice.pw_dir, mnt], check=True)
    try:
        result = hf_run.run(params(cache_dirs=[hub], revisions="unreferenced", users=[alice.pw_name]))
        assert digest(alice.pw_dir) == before
        assert result["store_swept"] == [] and any("protected directory" in f for f in result["failures"]), result
    finally:
        subprocess.run(["umount", mnt], check=True)
    assert digest(alice.pw_dir) == before


SECRET = 1 << 20


def users_cache(user, repo_id="org/a"):
    """A hub cache in user's home (the default location), made and owned by them: (cache, GenRepo)."""
    hub = os.path.join(user.pw_dir, ".cache", "huggingface", "hub")
    repo = hfgen.add_repo(hub, repo_id, revisions=1, files_per_revision=3)
    subprocess.run(["chown", "-R", "%s:%s" % (user.pw_uid, user.pw_gid), os.path.join(user.pw_dir, ".cache")],
                   check=True)
    return hub, repo


def test_a_users_cache_is_scanned_as_the_user_a_root_only_bind_mount_is_not_sized(make_user, sandbox):
    """alice's repo's blobs/ is a bind mount of a root-only directory holding a SECRET-byte blob: scanned as alice it
    cannot be listed (named in problems), its bytes are not counted, and nothing of it is removed. The old code
    scanned as root: the plan counted the secret blob in freed_bytes."""
    alice = make_user()
    hub, repo = users_cache(alice)
    secret = os.path.join(sandbox, "root-only")
    os.mkdir(secret, 0o700)
    write(os.path.join(secret, "f" * 40), os.urandom(SECRET), 0o600)
    before = digest(secret)
    mnt = os.path.join(repo.path, "blobs")
    subprocess.run(["mount", "--bind", secret, mnt], check=True)
    try:
        checked = hf_run.run(params(discover=True, repos=["org/a"], revisions="all", users=[alice.pw_name]),
                             check_mode=True)
        done = hf_run.run(params(discover=True, repos=["org/a"], revisions="all", users=[alice.pw_name]))
        assert digest(secret) == before
    finally:
        subprocess.run(["umount", mnt], check=True)
    assert digest(secret) == before
    assert all(c["bytes_before"] < SECRET for c in checked["caches"]), checked["caches"]
    assert all(d["freed_bytes"] < SECRET for d in checked["deleted"] + done["deleted"])
    assert any(mnt in p and "Permission denied" in p for p in checked["problems"]), checked["problems"]


def test_a_user_who_stops_the_child_gets_nothing_planned_by_root(make_user, monkeypatch):
    """alice stops every process of hers: the child scanning her cache is killed, her cache is named as failed,
    and nothing of it is planned (check mode) or removed; the old code planned it with root's rights."""
    from ansible_collections.residue.purge.plugins.module_utils import _fork
    monkeypatch.setattr(_fork, "STALL_CHECK_SECONDS", 0.3)
    alice = make_user()
    hub, repo = users_cache(alice)
    snapshots = os.path.join(repo.path, "snapshots")
    many = os.path.join(snapshots, os.listdir(snapshots)[0], "many")
    as_user(alice, "sh", "-c", "mkdir -p '%s' && cd '%s' && seq 1 20000 | xargs touch" % (many, many))
    proc = realusers.stopper(alice)
    try:
        import time
        time.sleep(1)
        checked = hf_run.run(params(discover=True, repos=["org/a"], revisions="all", users=[alice.pw_name]),
                             check_mode=True)
    finally:
        proc.wait(timeout=30)
    assert checked["deleted"] == [] and checked["caches"] == []
    assert any(f.startswith(hub) and "acting as %s" % alice.pw_name in f for f in checked["failures"]), checked
    assert os.path.isdir(repo.path)


def test_a_file_a_root_process_holds_open_in_a_users_cache_still_holds_the_repo_back(make_user):
    """The in-use guard reads every process's /proc as root (alice's child could not see a root process's
    descriptors): a repo whose blob a root process has open is held back, not removed."""
    alice = make_user()
    hub, repo = users_cache(alice)
    blobs = os.path.join(repo.path, "blobs")
    blob = os.path.join(blobs, sorted(os.listdir(blobs))[0])
    holder = subprocess.Popen(["python3", "-c", "import sys, time\nf = open(sys.argv[1], 'rb')\nprint('open', "
                               "flush=True)\ntime.sleep(60)\n", blob], stdout=subprocess.PIPE, cwd="/")
    try:
        assert holder.stdout.readline().strip() == b"open"
        done = hf_run.run(params(discover=True, repos=["org/a"], revisions="all", users=[alice.pw_name]))
    finally:
        holder.kill()
        holder.wait(timeout=10)
    assert done["deleted"] == [] and os.path.isfile(blob)
    assert [h["reason"] for h in done["held_back"]] == ["in_use"], done["held_back"]
    assert "process %d" % holder.pid in done["held_back"][0]["detail"]
