# -*- coding: utf-8 -*-
# Copyright: residue.purge contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""scan_cache against huggingface_hub.scan_cache_dir (the oracle) and du -sB1, on generated caches."""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import os
import subprocess

import pytest

huggingface_hub = pytest.importorskip("huggingface_hub")

from ansible_collections.residue.purge.plugins.module_utils._hfcache import (  # noqa: E402
    model as hf_model, scan as hf_scan)
from ansible_collections.residue.purge.tests.unit.support import hfgen  # noqa: E402


def du_bytes(path):
    return int(subprocess.check_output(["du", "-sB1", path]).split()[0])


def oracle(cache_dir):
    info = huggingface_hub.scan_cache_dir(cache_dir)
    return dict((r.repo_path.name, r) for r in info.repos), info.warnings


def assert_same_as_oracle(cache, oracle_repos):
    ours = dict((r.folder, r) for r in cache.repos)
    assert set(oracle_repos) <= set(ours)
    for folder, expected in oracle_repos.items():
        repo = ours[folder]
        assert (repo.repo_id, repo.repo_type) == (expected.repo_id, expected.repo_type)
        assert repo.blob_bytes == expected.size_on_disk, folder
        assert repo.blob_count == expected.nb_files, folder
        assert repo.last_access == expected.last_accessed, folder
        assert repo.last_modified == expected.last_modified, folder
        revisions = dict((r.commit_hash, r) for r in expected.revisions)
        assert sorted(revisions) == [r.commit for r in repo.revisions]
        for rev in repo.revisions:
            want = revisions[rev.commit]
            assert rev.bytes == want.size_on_disk, (folder, rev.commit)
            assert rev.files == want.nb_files, (folder, rev.commit)
            assert rev.refs == sorted(want.refs), (folder, rev.commit)
            assert rev.last_modified == want.last_modified, (folder, rev.commit)


@pytest.mark.parametrize("windows_style", [False, True], ids=["symlinks", "windows-copies"])
@pytest.mark.parametrize("seed", [0, 1, 2])
def test_numbers_match_huggingface_hub_and_du(tmp_path, seed, windows_style):
    root = str(tmp_path / "hub")
    hfgen.make_cache(root, repos=5, revisions_per_repo=1 + seed, files_per_revision=7, seed=seed,
                     windows_style=windows_style)
    expected, warnings = oracle(root)
    assert not warnings and len(expected) == 5
    cache = hf_scan.scan_cache(root)
    assert cache.problems == []
    assert_same_as_oracle(cache, expected)
    for repo in cache.repos:
        assert repo.disk_bytes == du_bytes(repo.path)
        assert repo.files == int(subprocess.check_output(
            "find %s -type f | wc -l" % repo.path, shell=True).strip())


def test_detached_revision_no_exist_incomplete_and_hard_links(tmp_path):
    root = str(tmp_path / "hub")
    repos = hfgen.make_cache(root, repos=3, seed=7, ref_fraction=0.0)
    detached = hfgen.add_detached_revision(repos[0])
    inc = hfgen.add_incomplete(repos[1], size=5000, age=10)
    hfgen.add_no_exist(repos[2])
    blobs = os.path.join(repos[2].path, "blobs")
    first = sorted(os.listdir(blobs))[0]
    os.link(os.path.join(blobs, first), os.path.join(repos[2].path, "hardlinked-copy"))
    expected, warnings = oracle(root)
    assert not warnings
    cache = hf_scan.scan_cache(root)
    assert cache.problems == []
    assert_same_as_oracle(cache, expected)
    by_folder = dict((r.folder, r) for r in cache.repos)
    rev = [r for r in by_folder[repos[0].folder].revisions if r.commit == detached][0]
    assert rev.refs == []
    assert [x[0] for x in by_folder[repos[1].folder].incomplete] == [os.path.basename(inc)]
    assert by_folder[repos[1].folder].incomplete[0][1] == 5000
    for repo in cache.repos:
        assert repo.disk_bytes == du_bytes(repo.path)


def test_broken_entries_are_problems_not_crashes(tmp_path):
    root = str(tmp_path / "hub")
    repos = hfgen.make_cache(root, repos=3, seed=11)
    sizes_before = dict((r.folder, r.blob_bytes) for r in hf_scan.scan_cache(root).repos)
    missing = hfgen.add_missing_ref(repos[0], "refs/pr/77", "e" * 40)
    link = hfgen.add_broken_symlink(repos[1])
    os.makedirs(os.path.join(root, "models--nosnapshots--x", "blobs"))
    with open(os.path.join(root, "stray-file"), "w") as f:
        f.write("x")
    expected, warnings = oracle(root)
    assert len(warnings) == 4  # huggingface_hub drops these repos; we keep them, with problems
    cache = hf_scan.scan_cache(root)
    by_folder = dict((r.folder, r) for r in cache.repos)
    assert by_folder[repos[0].folder].dangling_refs == [("refs/pr/77", missing)]
    assert any("missing snapshot" in p for p in by_folder[repos[0].folder].problems)
    assert any(link in p and "broken" in p for p in by_folder[repos[1].folder].problems)
    assert any("no snapshots dir" in p for p in by_folder["models--nosnapshots--x"].problems)
    assert any("stray-file" in p for p in cache.problems)
    assert by_folder[repos[2].folder].problems == []
    assert_same_as_oracle(cache, expected)
    # a broken link adds nothing: sizes are those of the good links
    for repo in repos:
        assert by_folder[repo.folder].blob_bytes == sizes_before[repo.folder]


def test_link_out_of_the_tree_is_not_followed(tmp_path):
    root = str(tmp_path / "hub")
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "secret").write_bytes(b"s" * 100000)
    repos = hfgen.make_cache(root, repos=1, seed=5)
    before = hf_scan.scan_cache(root).repos[0].blob_bytes
    snap = os.path.join(repos[0].path, "snapshots", repos[0].commits[-1])
    os.symlink(str(outside / "secret"), os.path.join(snap, "escape.bin"))
    os.symlink("../../blobs/../../../outside/secret", os.path.join(snap, "escape2.bin"))
    cache = hf_scan.scan_cache(root)
    repo = cache.repos[0]
    assert repo.blob_bytes == before
    assert sum("outside blobs/" in p for p in repo.problems) == 2


def test_other_file_system_is_not_entered(tmp_path):
    if os.geteuid() != 0:
        pytest.skip("mounting a tmpfs needs root")
    root = str(tmp_path / "hub")
    repos = hfgen.make_cache(root, repos=1, seed=9)
    mnt = os.path.join(repos[0].path, ".no_exist", "mnt")
    os.makedirs(mnt)
    subprocess.check_call(["mount", "-t", "tmpfs", "-o", "size=1m", "tmpfs", mnt])
    try:
        with open(os.path.join(mnt, "big"), "wb") as f:
            f.write(b"x" * 500000)
        repo = hf_scan.scan_cache(root).repos[0]
        assert any("another file system" in p for p in repo.problems)
        assert repo.disk_bytes == int(subprocess.check_output(["du", "-xsB1", repos[0].path]).split()[0])
        crossing = hf_scan.scan_cache(root, one_file_system=False).repos[0]
        assert crossing.disk_bytes > repo.disk_bytes
    finally:
        subprocess.check_call(["umount", mnt])


def test_is_hub_cache(tmp_path):
    root = str(tmp_path / "hub")
    assert not hf_model.is_hub_cache(root)
    os.makedirs(root)
    assert not hf_model.is_hub_cache(root)
    os.makedirs(os.path.join(root, "notes--x"))
    assert not hf_model.is_hub_cache(root)
    hfgen.make_cache(root, repos=1, repo_types=("dataset",))
    assert hf_model.is_hub_cache(root)
    assert not hf_model.is_hub_cache(os.path.join(root, "missing"))


@pytest.mark.parametrize("name,expected", [
    ("models--zai-org--AutoGLM-Phone-9B", ("model", "zai-org/AutoGLM-Phone-9B")),
    ("datasets--squad", ("dataset", "squad")),
    ("spaces--a--b", ("space", "a/b")),
    ("model--a--b", None),
    ("models--", None),
    (".locks", None),
])
def test_parse_repo_folder(name, expected):
    assert hf_model.parse_repo_folder(name) == expected
    if expected:
        assert hf_model.repo_folder(*expected) == name


def test_hub_cache_candidates_follow_huggingface_hub_order():
    env = {"HF_HUB_CACHE": "/data/hub", "HUGGINGFACE_HUB_CACHE": "~/legacy", "HF_HOME": "/srv/hf",
           "XDG_CACHE_HOME": "/xdg", "TRANSFORMERS_CACHE": "/t/cache", "PYTORCH_TRANSFORMERS_CACHE": "rel/ignored"}
    assert hf_model.hub_cache_candidates(env, "/home/u") == [
        "/data/hub", "/home/u/legacy", "/srv/hf/hub", "/xdg/huggingface/hub", "/home/u/.cache/huggingface/hub",
        "/t/cache"]
    assert hf_model.hub_cache_candidates({}, "/home/u") == ["/home/u/.cache/huggingface/hub"]
    assert hf_model.hub_cache_candidates({"HF_HOME": "/home/u/.cache/huggingface/"}, "/home/u") == [
        "/home/u/.cache/huggingface/hub"]
    assert hf_model.hub_cache_candidates({}, None) == []


def test_huggingface_hub_resolution_agrees(monkeypatch, tmp_path):
    """The first candidate is the dir huggingface_hub itself would use with that environment."""
    import importlib
    from huggingface_hub import constants
    env = {"HF_HOME": str(tmp_path / "hfhome"), "XDG_CACHE_HOME": str(tmp_path / "xdg")}
    for name in ("HF_HUB_CACHE", "HUGGINGFACE_HUB_CACHE", "HF_HOME", "XDG_CACHE_HOME"):
        monkeypatch.delenv(name, raising=False)
    for k, v in env.items():
        monkeypatch.setenv(k, v)
    try:
        fresh = importlib.reload(constants)
        assert hf_model.hub_cache_candidates(env, os.path.expanduser("~"))[0] == fresh.HF_HUB_CACHE
    finally:
        monkeypatch.undo()
        importlib.reload(constants)


def test_problems_are_capped_per_repo(tmp_path):
    root = str(tmp_path / "hub")
    repo = hfgen.make_cache(root, repos=1, seed=2)[0]
    for i in range(hf_model.MAX_PROBLEMS_PER_REPO + 15):
        hfgen.add_broken_symlink(repo, name="broken%d.bin" % i)
    scanned = hf_scan.scan_cache(root).repos[0]
    assert len(scanned.problems) == hf_model.MAX_PROBLEMS_PER_REPO + 1
    assert scanned.problems[-1].startswith("... and 15 more problems")
