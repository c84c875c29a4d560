# -*- coding: utf-8 -*-
# Copyright: residue.purge contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""huggingface_hub 2.x's shared blob store: caches built by huggingface_hub's own code, its
delete_revisions().execute() on a copy as the oracle for the tree left and expected_freed_size for the bytes."""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import fcntl
import os
import shutil
import tempfile
import time

import pytest

huggingface_hub = pytest.importorskip("huggingface_hub")
hypothesis = pytest.importorskip("hypothesis")
from hypothesis import given, settings, strategies as st  # noqa: E402

from ansible_collections.residue.purge.plugins.module_utils._hfcache import (  # noqa: E402
    delete as hf_delete, plan as hf_plan, run as hf_run, scan as hf_scan, shared as hf_shared)
from ansible_collections.residue.purge.tests.unit.support import hfgen, hfshared  # noqa: E402


class PickCommits(hf_plan.RepoSelection):
    __slots__ = ("commits",)

    def __init__(self, commits, **kw):
        super(PickCommits, self).__init__(revisions="all", incomplete_older_than=None, **kw)
        self.commits = set(commits)

    def picks(self, rev):
        return rev.commit in self.commits


def only(linked):
    """The one xet hash of a share() result."""
    assert len(linked) == 1, linked
    return list(linked)[0]


def layout_of(repo):
    return hf_scan.scan_repo(repo.path, detail=True)[1]


def plan(root, selection, check=False):
    cache = hf_scan.scan_cache(root)
    store = hf_shared.Store(cache.path, cache.repos)
    made = hf_plan.plan_cache(cache, selection, layout_of, lambda repo, whole: None, store=store)
    if not check:
        failures, late = hf_delete.execute_plan(made)
        assert failures == [] and late == []
    return made


def without_repo_locks(listing):
    return [p for p in listing if not p.startswith(".locks" + os.sep)]


def payload_bytes(root):
    """{relative path: size} of the regular files of the store (what the file system gives back)."""
    out = {}
    store = os.path.join(root, "blobs")
    for dirpath, _d, files in os.walk(store):
        for name in files:
            full = os.path.join(dirpath, name)
            if len(name) == 64 and not os.path.islink(full):
                out[os.path.relpath(full, root)] = os.lstat(full).st_size
    return out


def regular_bytes(root):
    """{(dev, ino): size} of the blobs and store payloads under root (refs, locks, manifests aside)."""
    out = {}
    for dirpath, _d, files in os.walk(root):
        if os.sep + "blobs" not in dirpath:
            continue
        for name in files:
            full = os.path.join(dirpath, name)
            if not os.path.islink(full) and not name.endswith((".lock", ".refs", "-blobs")):
                st = os.lstat(full)
                out[(st.st_dev, st.st_ino)] = st.st_size
    return out


def every_file_reads(root):
    """Read every snapshot file of every repo left (through its links); returns how many."""
    n = 0
    for dirpath, _d, files in os.walk(root):
        if os.sep + "snapshots" + os.sep not in dirpath + os.sep:
            continue
        for name in files:
            with open(os.path.join(dirpath, name), "rb") as f:
                f.read()
            n += 1
    return n


def build(root, seed, repos=3, revisions=3, files=5, payloads=6, fraction=0.7, shared=0.5):
    made = hfgen.make_cache(root, repos=repos, revisions_per_repo=revisions, files_per_revision=files,
                            shared_fraction=shared, seed=seed, max_file_size=400)
    hfshared.share(root, made, payloads=payloads, fraction=fraction, seed=seed)
    return made


@settings(max_examples=40, deadline=None)
@given(seed=st.integers(0, 10 ** 6), repos=st.integers(1, 4), revisions=st.integers(1, 3),
       files=st.integers(1, 6), payloads=st.integers(1, 8), fraction=st.sampled_from([0.3, 0.7, 1.0]),
       data=st.data())
def test_tree_and_bytes_are_huggingface_hubs(seed, repos, revisions, files, payloads, fraction, data):
    tmp = tempfile.mkdtemp(prefix="hfshared-")
    try:
        ours, theirs = os.path.join(tmp, "ours"), os.path.join(tmp, "theirs")
        made = build(ours, seed, repos, revisions, files, payloads, fraction)
        shutil.copytree(ours, theirs, symlinks=True)
        commits = [c for r in made for c in r.commits]
        chosen = data.draw(st.lists(st.sampled_from(commits), unique=True, max_size=len(commits)))

        expected = plan(ours, PickCommits(chosen), check=True)
        strategy = huggingface_hub.scan_cache_dir(theirs).delete_revisions(*chosen)
        before = regular_bytes(ours)
        strategy.execute()
        done = plan(ours, PickCommits(chosen))
        after = regular_bytes(ours)

        assert without_repo_locks(hfshared.listing(ours)) == without_repo_locks(hfshared.listing(theirs))
        freed = sum(rp.freed_bytes for rp in done.repos)
        assert sum(rp.freed_bytes for rp in expected.repos) == strategy.expected_freed_size == freed
        # the file system's own accounting: what is gone, each inode once
        assert freed == sum(size for key, size in before.items() if key not in after)
        assert done.bytes_after == expected.bytes_after
        every_file_reads(ours)
        assert hf_scan.scan_cache(ours).problems == []
    finally:
        shutil.rmtree(tmp)


def test_cache_size_is_huggingface_hubs_physical_size(tmp_path):
    root = str(tmp_path / "hub")
    build(root, seed=3, repos=4, payloads=3)
    cache = hf_scan.scan_cache(root)
    p = hf_plan.plan_cache(cache, PickCommits([]), layout_of, lambda r, w: None,
                           store=hf_shared.Store(cache.path, cache.repos))
    assert p.bytes_before == huggingface_hub.scan_cache_dir(root).size_on_disk
    # per repo, blob_bytes stays huggingface_hub's logical size_on_disk
    theirs = dict((r.repo_path.name, r.size_on_disk) for r in huggingface_hub.scan_cache_dir(root).repos)
    assert dict((r.folder, r.blob_bytes) for r in cache.repos) == theirs


def test_payload_shared_by_two_repos_goes_with_the_second(tmp_path):
    root = str(tmp_path / "hub")
    a = hfgen.add_repo(root, "org/a", revisions=1, files_per_revision=2)
    b = hfgen.add_repo(root, "org/b", revisions=1, files_per_revision=2)
    linked = hfshared.share(root, [a, b], payloads=1, fraction=1.0)
    xet = only(linked)
    store = os.path.join(root, "blobs", xet[:2], xet)
    size = os.path.getsize(store)
    first = plan(root, hf_plan.RepoSelection(patterns=["org/a"], revisions="all"))
    assert first.repos[0].store_bytes == 0 and os.path.isfile(store)
    with open(store + ".refs") as f:  # rewritten to the live references: b's two blobs
        assert sorted(f.read().splitlines()) == sorted("models--org--b/blobs/" + os.path.basename(p)
                                                       for p in linked[xet] if "org--b" in p)
    assert every_file_reads(root) == 2
    second = plan(root, hf_plan.RepoSelection(patterns=["org/b"], revisions="all"))
    assert second.repos[0].store_bytes == size and second.repos[0].payloads == [xet[:2] + "/" + xet]
    assert not os.path.exists(store) and not os.path.exists(store + ".refs")
    assert os.path.exists(store + ".lock")  # huggingface_hub leaves its lock file too


def test_missing_or_unreadable_manifest_keeps_the_payload(tmp_path):
    root = str(tmp_path / "hub")
    a = hfgen.add_repo(root, "org/a", revisions=1, files_per_revision=1)
    xet = only(hfshared.share(root, [a], payloads=1, fraction=1.0))
    store = os.path.join(root, "blobs", xet[:2], xet)
    os.unlink(store + ".refs")
    check = plan(root, hf_plan.RepoSelection(patterns=["org/a"], revisions="all"), check=True)
    assert check.repos[0].store_bytes == 0
    plan(root, hf_plan.RepoSelection(patterns=["org/a"], revisions="all"))
    assert os.path.isfile(store) and not os.path.exists(a.path)
    # a manifest that is not text: kept too
    b = hfgen.add_repo(root, "org/b", revisions=1, files_per_revision=1)
    xet2 = only(hfshared.share(root, [b], payloads=1, fraction=1.0, seed=9))
    store2 = os.path.join(root, "blobs", xet2[:2], xet2)
    with open(store2 + ".refs", "wb") as f:
        f.write(b"\xff\xfe models--org--b/blobs/x\n")
    plan(root, hf_plan.RepoSelection(patterns=["org/b"], revisions="all"))
    assert os.path.isfile(store2)


def test_a_link_the_manifest_forgot_still_protects_the_payload(tmp_path):
    root = str(tmp_path / "hub")
    a = hfgen.add_repo(root, "org/a", revisions=1, files_per_revision=1)
    b = hfgen.add_repo(root, "org/b", revisions=1, files_per_revision=1)
    xet = only(hfshared.share(root, [a, b], payloads=1, fraction=1.0))
    store = os.path.join(root, "blobs", xet[:2], xet)
    with open(store + ".refs", "w") as f:  # forget b's link
        kept = ["models--org--a/blobs/" + os.path.basename(p) for p in hfshared_links(root, xet) if "org--a" in p]
        f.write("".join(line + "\n" for line in kept))
    done = plan(root, hf_plan.RepoSelection(patterns=["org/a"], revisions="all"))
    assert done.repos[0].store_bytes == 0 and os.path.isfile(store)
    assert every_file_reads(root) == 1


def hfshared_links(root, xet):
    out = []
    for folder in os.listdir(root):
        blobs = os.path.join(root, folder, "blobs")
        if folder.startswith("models--") and os.path.isdir(blobs):
            for name in os.listdir(blobs):
                if os.readlink(os.path.join(blobs, name)).endswith(xet) if os.path.islink(
                        os.path.join(blobs, name)) else False:
                    out.append(os.path.join(blobs, name))
    return out


def test_hard_linked_payload_counts_only_at_its_last_link(tmp_path):
    root = str(tmp_path / "hub")
    a = hfgen.add_repo(root, "org/a", revisions=1, files_per_revision=1)
    xet = only(hfshared.share(root, [a], payloads=1, fraction=1.0))
    store = os.path.join(root, "blobs", xet[:2], xet)
    os.link(store, str(tmp_path / "elsewhere"))
    check = plan(root, hf_plan.RepoSelection(patterns=["org/a"], revisions="all"), check=True)
    assert check.repos[0].freed_bytes == 0
    done = plan(root, hf_plan.RepoSelection(patterns=["org/a"], revisions="all"))
    assert done.repos[0].freed_bytes == 0 and not os.path.exists(store)
    assert os.path.getsize(str(tmp_path / "elsewhere")) > 0


def test_a_held_payload_lock_keeps_the_payload_and_says_so(tmp_path, monkeypatch):
    root = str(tmp_path / "hub")
    a = hfgen.add_repo(root, "org/a", revisions=1, files_per_revision=1)
    xet = only(hfshared.share(root, [a], payloads=1, fraction=1.0))
    store = os.path.join(root, "blobs", xet[:2], xet)
    monkeypatch.setattr(hf_shared, "LOCK_TIMEOUT", 0.2)
    fd = os.open(store + ".lock", os.O_RDWR)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        cache = hf_scan.scan_cache(root)
        s = hf_shared.Store(cache.path, cache.repos)
        p = hf_plan.plan_cache(cache, hf_plan.RepoSelection(patterns=["org/a"], revisions="all"), layout_of,
                               lambda r, w: None, store=s)
        failures, _late = hf_delete.execute_plan(p)
        assert failures == [] and os.path.isfile(store)
        assert p.repos[0].store_bytes == 0
        assert any("held by another process" in x for x in s.problems)
    finally:
        os.close(fd)
    # once free, an unreferenced sweep collects it
    res = hf_run.clean([root], hf_plan.RepoSelection(revisions="unreferenced", store_orphans=True))
    assert not os.path.exists(store)
    assert res["store_swept"][0]["payloads"] == 1 and res["freed_bytes"] >= res["store_swept"][0]["bytes"] > 0


def test_unreferenced_sweep_is_hf_cache_prunes(tmp_path):
    root = str(tmp_path / "hub")
    made = build(root, seed=5, repos=3, payloads=4, fraction=1.0)
    shutil.rmtree(made[0].path)  # deleted by hand: its payloads are left behind
    theirs = str(tmp_path / "theirs")
    shutil.copytree(root, theirs, symlinks=True)
    from huggingface_hub.utils import _shared_blobs
    orphans = _shared_blobs.unreferenced_shared_blobs(theirs)
    for path in orphans:
        _shared_blobs.sweep_shared_blob(path, cache_dir=theirs)
    check = hf_run.clean([root], hf_plan.RepoSelection(revisions=None, store_orphans=True), check_mode=True)
    res = hf_run.clean([root], hf_plan.RepoSelection(revisions=None, store_orphans=True))
    assert check["store_swept"] == res["store_swept"]
    swept = res["store_swept"][0] if res["store_swept"] else {"payloads": 0, "bytes": 0}
    assert swept["payloads"] == len(orphans) and swept["bytes"] == sum(orphans.values())
    assert hfshared.listing(root) == hfshared.listing(theirs)
    assert res["deleted"] == []
    every_file_reads(root)


def test_repo_whose_payload_is_open_is_held_back(tmp_path):
    root = str(tmp_path / "hub")
    a = hfgen.add_repo(root, "org/a", revisions=1, files_per_revision=1)
    xet = only(hfshared.share(root, [a], payloads=1, fraction=1.0))
    import subprocess
    import sys
    store = os.path.join(root, "blobs", xet[:2], xet)
    proc = subprocess.Popen([sys.executable, "-c", "import sys,time; f=open(sys.argv[1],'rb'); print(1, flush=True);"
                             " time.sleep(60)", store], stdout=subprocess.PIPE)
    try:
        proc.stdout.readline()
        res = hf_run.clean([root], hf_plan.RepoSelection(patterns=["org/a"], revisions="all"))
        assert res["deleted"] == [] and res["held_back"][0]["reason"] == "in_use"
        assert os.path.isdir(a.path) and os.path.isfile(store)
    finally:
        proc.kill()
        proc.wait()


def test_budget_counts_shared_payloads_once(tmp_path):
    root = str(tmp_path / "hub")
    now = time.time()
    a = hfgen.add_repo(root, "org/a", revisions=1, files_per_revision=2)
    b = hfgen.add_repo(root, "org/b", revisions=1, files_per_revision=2)
    hfshared.share(root, [a, b], payloads=1, fraction=1.0)
    for i, repo in enumerate((a, b)):
        os.utime(os.path.join(repo.path, "blobs"), (now - 1000 * (2 - i),) * 2)
    total = huggingface_hub.scan_cache_dir(root).size_on_disk
    # a budget below the one payload: both repos must go (removing one frees nothing)
    res = hf_run.clean([root], hf_plan.RepoSelection(max_size=0))
    assert res["freed_bytes"] == total and sorted(d["repo_id"] for d in res["deleted"]) == ["org/a", "org/b"]
    assert res["caches"][0]["bytes_after"] == 0
    assert payload_bytes(root) == {}


def test_store_swapped_for_links_outside_is_never_followed(tmp_path):
    """A prefix dir swapped for a link to a dir outside, and a manifest naming paths outside: nothing outside goes."""
    root = str(tmp_path / "hub")
    a = hfgen.add_repo(root, "org/a", revisions=1, files_per_revision=1)
    xet = only(hfshared.share(root, [a], payloads=1, fraction=1.0))
    prefix = os.path.join(root, "blobs", xet[:2])
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / xet).write_bytes(b"precious")
    (outside / (xet + ".refs")).write_text("../../../outside/victim\n/etc/passwd\n")
    cache = hf_scan.scan_cache(root)
    s = hf_shared.Store(cache.path, cache.repos)
    p = hf_plan.plan_cache(cache, hf_plan.RepoSelection(patterns=["org/a"], revisions="all"), layout_of,
                           lambda r, w: None, store=s)
    shutil.rmtree(prefix)
    os.symlink(str(outside), prefix)  # swapped after the plan
    failures, _late = hf_delete.execute_plan(p)
    assert (outside / xet).read_bytes() == b"precious" and (outside / (xet + ".refs")).exists()
    assert not os.path.exists(str(outside / (xet + ".lock")))
    assert failures and all(xet[:2] in f for f in failures)


def test_manifest_entries_outside_the_cache_are_no_references(tmp_path):
    root = str(tmp_path / "hub")
    a = hfgen.add_repo(root, "org/a", revisions=1, files_per_revision=1)
    xet = only(hfshared.share(root, [a], payloads=1, fraction=1.0))
    name = xet[:2] + "/" + xet
    store = os.path.join(root, "blobs", xet[:2], xet)
    with open(store + ".refs", "a") as f:
        f.write("/etc/passwd\n../models--org--a/blobs/x\nmodels--org--a/blobs/../../x\nnot-a-repo/blobs/y\n")
    refs = hf_shared.live_references(root, name, None)
    assert refs == frozenset("models--org--a/blobs/" + n for n in os.listdir(os.path.join(a.path, "blobs")))


def test_references_from_the_scan_equal_references_checked_on_disk(tmp_path):
    """Store.references takes the links the scan read as checked; the manifest's other entries are still
    checked on the file system. On a cache with stale, redirected, forgotten and unscanned entries it must
    give what checking every candidate on disk gives."""
    root = str(tmp_path / "hub")
    made = build(root, seed=21, repos=4, payloads=3, fraction=1.0)
    cache = hf_scan.scan_cache(root)
    names = sorted(hf_shared.Store(cache.path, cache.repos).payloads())
    assert len(names) >= 2
    first, second = names[0], names[1]
    # a repo blob redirected to another payload: its old manifest still lists it
    victim = sorted(e for e in hf_shared.live_references(root, first, None) if e.startswith(made[0].folder))[0]
    link = os.path.join(root, victim)
    os.unlink(link)
    os.symlink("../../blobs/" + second, link)
    # a repo deleted by hand: the manifests keep naming its blobs
    shutil.rmtree(made[1].path)
    # a link the manifest forgot
    with open(os.path.join(root, "blobs", second + ".refs")) as f:
        lines = f.read().splitlines()
    forgotten = lines[-1]
    with open(os.path.join(root, "blobs", second + ".refs"), "w") as f:
        f.write("".join(line + "\n" for line in lines[:-1]))
    cache = hf_scan.scan_cache(root)
    for repos in (cache.repos, cache.repos[:1]):  # all repos scanned, and only some (the rest checked on disk)
        store = hf_shared.Store(cache.path, repos)
        for name in names:
            on_disk = hf_shared.live_references(root, name, None, store.seen_links.get(name, ()))
            assert store.references(name) == on_disk, name
    store = hf_shared.Store(cache.path, cache.repos)
    assert victim not in store.references(first) and victim in store.references(second)
    assert forgotten in store.references(second)
    assert not any(e.startswith(made[1].folder + "/") for n in names for e in store.references(n))
    # and without the scan's links: the manifest alone, every entry checked
    assert forgotten not in hf_shared.live_references(root, second, None)


def test_hard_links_between_payloads_count_once_at_the_last(tmp_path):
    """Two store payloads that are one inode (hard links of each other): removing the repo of one frees
    nothing, removing both frees the inode's bytes once (the file system's own accounting)."""
    root = str(tmp_path / "hub")
    a = hfgen.add_repo(root, "org/a", revisions=1, files_per_revision=1)
    b = hfgen.add_repo(root, "org/b", revisions=1, files_per_revision=1)
    xa = only(hfshared.share(root, [a], payloads=1, fraction=1.0, seed=1))
    xb = only(hfshared.share(root, [b], payloads=1, fraction=1.0, seed=2))
    assert xa != xb
    pa, pb = (os.path.join(root, "blobs", x[:2], x) for x in (xa, xb))
    os.unlink(pb)
    os.link(pa, pb)
    size = os.path.getsize(pa)
    cache = hf_scan.scan_cache(root)
    store = hf_shared.Store(cache.path, cache.repos)
    links = dict((r.folder, [(p, "%s/blobs/%s" % (r.folder, e)) for e, p in r.shared_links.items()])
                 for r in cache.repos)
    tally = hf_shared.Tally(store)
    assert tally.gain(links[os.path.basename(a.path)])[0] == 0
    assert tally.add(links[os.path.basename(a.path)]) == (0, [xa[:2] + "/" + xa])
    assert tally.add(links[os.path.basename(b.path)]) == (size, [xb[:2] + "/" + xb])
    before = regular_bytes(root)
    done = plan(root, hf_plan.RepoSelection(patterns=["org/*"], revisions="all"))
    after = regular_bytes(root)
    assert sum(rp.freed_bytes for rp in done.repos) == sum(s for k, s in before.items() if k not in after)
