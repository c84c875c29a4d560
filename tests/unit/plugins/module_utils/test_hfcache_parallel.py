from __future__ import absolute_import, division, print_function

__metaclass__ = type

import os

from ansible_collections.residue.purge.plugins.module_utils._hfcache import scan as hf_scan
from ansible_collections.residue.purge.tests.unit.support import hfgen


def as_data(cache):
    return ([dict(r.to_dict(), revisions=sorted((v.commit, v.bytes, v.files, tuple(v.refs)) for v in r.revisions))
             for r in cache.repos], cache.problems)


def test_forked_scan_gives_the_serial_result(tmp_path):
    root = str(tmp_path / "hub")
    repos = hfgen.make_cache(root, repos=40, revisions_per_repo=2, files_per_revision=5, seed=11)
    hfgen.add_missing_ref(repos[3])
    hfgen.add_broken_symlink(repos[7])
    os.makedirs(os.path.join(root, "not-a-repo"))
    serial = hf_scan.scan_cache(root, parallel=False)
    forked = hf_scan.scan_cache(root, parallel=True)
    assert len(serial.repos) == 40
    assert [r.folder for r in forked.repos] == sorted(r.folder for r in forked.repos)
    assert as_data(forked) == as_data(serial)
    assert any("not-a-repo" in p for p in forked.problems)
