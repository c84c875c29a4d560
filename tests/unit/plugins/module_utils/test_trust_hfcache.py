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
from ansible_collections.residue.purge.tests.unit.support import trust_users
from ansible_collections.residue.purge.tests.unit.support.trust_users import as_user, digest, seed_as, write

# the shared fixtures (need_root is autouse)
make_user = trust_users.make_user
need_root = trust_users.need_root
sandbox = trust_users.sandbox

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
