# -*- coding: utf-8 -*-
# Copyright: residue.purge contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Deletion plans and their execution: huggingface_hub's DeleteCacheStrategy is the oracle; locks, open
files, budgets and symlink attacks are tried for real."""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import hashlib
import os
import shutil
import subprocess
import sys
import tempfile
import time

import pytest

huggingface_hub = pytest.importorskip("huggingface_hub")
hypothesis = pytest.importorskip("hypothesis")
from hypothesis import given, settings, strategies as st  # noqa: E402

from ansible_collections.residue.purge.plugins.module_utils._hfcache import (  # noqa: E402
    delete as hf_delete, inuse as hf_inuse, plan as hf_plan, run as hf_run, scan as hf_scan)
from ansible_collections.residue.purge.tests.unit.support import hfgen  # noqa: E402


class PickCommits(hf_plan.RepoSelection):
    """A selection of explicit commits, as huggingface_hub's delete_revisions takes them."""

    __slots__ = ("commits",)

    def __init__(self, commits, **kw):
        super(PickCommits, self).__init__(revisions="all", incomplete_older_than=None, **kw)
        self.commits = set(commits)

    def picks(self, rev):
        return rev.commit in self.commits


def never_held(repo, whole):
    return None


def layout_of(repo):
    return hf_scan.scan_repo(repo.path, detail=True)[1]


def plan_and_run(root, selection, held=never_held):
    cache = hf_scan.scan_cache(root)
    plan = hf_plan.plan_cache(cache, selection, layout_of, held)
    failures, late = hf_delete.execute_plan(plan)
    assert failures == [] and late == []
    return plan


def without_locks(listing):
    return [p for p in listing if not p.startswith(".locks" + os.sep)]


@settings(max_examples=30, deadline=None)
@given(seed=st.integers(0, 10 ** 6), repos=st.integers(1, 3), revisions=st.integers(1, 4),
       files=st.integers(1, 6), shared=st.sampled_from([0.0, 0.5, 0.8, 1.0]), windows=st.booleans(),
       data=st.data())
def test_files_left_are_those_huggingface_hub_leaves(seed, repos, revisions, files, shared, windows, data):
    tmp = tempfile.mkdtemp(prefix="hfprop-")
    try:
        ours, theirs = os.path.join(tmp, "ours"), os.path.join(tmp, "theirs")
        made = hfgen.make_cache(ours, repos=repos, revisions_per_repo=revisions, files_per_revision=files,
                                shared_fraction=shared, seed=seed, windows_style=windows, max_file_size=300)
        shutil.copytree(ours, theirs, symlinks=True)
        commits = [c for r in made for c in r.commits]
        chosen = data.draw(st.lists(st.sampled_from(commits), unique=True, max_size=len(commits)))

        strategy = huggingface_hub.scan_cache_dir(theirs).delete_revisions(*chosen)
        strategy.execute()
        plan = plan_and_run(ours, PickCommits(chosen))

        assert without_locks(hfgen.tree_listing(ours)) == without_locks(hfgen.tree_listing(theirs))
        assert sum(rp.freed_bytes for rp in plan.repos) == strategy.expected_freed_size
        for rp in plan.repos:  # a repo that goes whole takes its lock folder with it
            lock_dir = os.path.join(ours, ".locks", rp.repo.folder)
            assert os.path.exists(lock_dir) != rp.whole
        assert sorted(c for rp in plan.repos for c in rp.revisions) == sorted(chosen)
    finally:
        shutil.rmtree(tmp)


def test_shared_blobs_stay_and_are_counted(tmp_path):
    root = str(tmp_path / "hub")
    repo = hfgen.make_cache(root, repos=1, revisions_per_repo=2, files_per_revision=10, shared_fraction=0.8)[0]
    old = repo.commits[0]
    plan = plan_and_run(root, PickCommits([old]))
    (rp,) = plan.repos
    assert rp.blobs_kept_shared == 8 and len(rp.blobs) == 2 and not rp.whole
    left = hf_scan.scan_cache(root)
    assert left.problems == []  # no broken link: the shared blobs are still there
    assert [r.commit for r in left.repos[0].revisions] == [repo.commits[1]]


def _repo_with_atime(root, repo_id, stamp, revisions=1, seed=0):
    import random
    repo = hfgen.add_repo(root, repo_id, "model", revisions=revisions, files_per_revision=3,
                          rng=random.Random(seed))
    for name in os.listdir(os.path.join(repo.path, "blobs")):
        os.utime(os.path.join(repo.path, "blobs", name), (stamp, stamp))
    return repo


def test_budget_evicts_least_recently_used_first(tmp_path):
    root = str(tmp_path / "hub")
    now = time.time()
    _repo_with_atime(root, "a/oldest", now - 3000, seed=1)
    _repo_with_atime(root, "b/middle", now - 2000, seed=2)
    _repo_with_atime(root, "c/newest", now - 1000, seed=3)
    sizes = dict((r.repo_id, r.blob_bytes) for r in hf_scan.scan_cache(root).repos)
    total = sum(sizes.values())
    budget = total - sizes["a/oldest"] - 1  # one byte too many without the middle one as well
    plan = plan_and_run(root, hf_plan.RepoSelection(max_size=budget, now=now))
    assert [rp.repo.repo_id for rp in plan.repos] == ["a/oldest", "b/middle"]
    assert all(rp.reason == ["budget"] and rp.whole for rp in plan.repos)
    assert plan.bytes_after == sizes["c/newest"] <= budget
    assert [r.repo_id for r in hf_scan.scan_cache(root).repos] == ["c/newest"]


def test_budget_never_evicts_kept_repos_and_says_so(tmp_path):
    root = str(tmp_path / "hub")
    now = time.time()
    _repo_with_atime(root, "keep/me", now - 9000, seed=1)
    _repo_with_atime(root, "b/middle", now - 2000, seed=2)
    plan = plan_and_run(root, hf_plan.RepoSelection(max_size=0, keep=["keep/*"], now=now))
    assert [rp.repo.repo_id for rp in plan.repos] == ["b/middle"]
    summary = plan.summary()
    assert summary["over_budget"] and summary["kept_over_budget"] == ["keep/me"]
    assert [r.repo_id for r in hf_scan.scan_cache(root).repos] == ["keep/me"]


def test_budget_drops_old_revision_before_newer_repo(tmp_path):
    root = str(tmp_path / "hub")
    now = time.time()
    repo = hfgen.make_cache(root, repos=1, revisions_per_repo=2, files_per_revision=6, shared_fraction=0.5,
                            now=now, time_spread=10000, seed=4)[0]
    _repo_with_atime(root, "z/recent", now - 10, seed=9)
    cache = hf_scan.scan_cache(root)
    gen = [r for r in cache.repos if r.repo_id == repo.repo_id][0]
    assert gen.revisions  # the older revision of the generated repo is the least recently used
    plan = plan_and_run(root, hf_plan.RepoSelection(max_size=cache.blob_bytes - 1, now=now))
    (rp,) = plan.repos
    assert rp.repo.repo_id == repo.repo_id and rp.revisions == [repo.commits[0]] and not rp.whole
    assert rp.blobs_kept_shared == 3


def test_selection_by_age_pattern_type_and_unreferenced(tmp_path):
    root = str(tmp_path / "hub")
    now = time.time()
    made = hfgen.make_cache(root, repos=3, revisions_per_repo=2, ref_fraction=0.0, now=now, time_spread=100 * 86400,
                            seed=12)
    cache = hf_scan.scan_cache(root)
    sel = hf_plan.RepoSelection(revisions="unreferenced", now=now)
    plan = hf_plan.plan_cache(cache, sel, layout_of, never_held)
    # every repo's older revision is detached (ref_fraction 0): exactly those are picked
    assert sorted(c for rp in plan.repos for c in rp.revisions) == sorted(r.commits[0] for r in made)
    sel = hf_plan.RepoSelection(patterns=[made[1].repo_id], revisions="all", now=now)
    plan = hf_plan.plan_cache(cache, sel, layout_of, never_held)
    assert [rp.repo.repo_id for rp in plan.repos] == [made[1].repo_id] and plan.repos[0].whole
    sel = hf_plan.RepoSelection(repo_type="dataset", revisions="all", now=now)
    plan = hf_plan.plan_cache(cache, sel, layout_of, never_held)
    assert [rp.repo.repo_type for rp in plan.repos] == ["dataset"]
    sel = hf_plan.RepoSelection(revisions="all", older_than=0, now=now + 10 ** 9, keep=[made[0].repo_id])
    plan = hf_plan.plan_cache(cache, sel, layout_of, never_held)
    assert sorted(rp.repo.repo_id for rp in plan.repos) == sorted(r.repo_id for r in made[1:])
    oldest = min(r.last_access for rev in cache.repos for r in rev.revisions)
    sel = hf_plan.RepoSelection(revisions="all", older_than=int(now - oldest) - 1, now=now)
    plan = hf_plan.plan_cache(cache, sel, layout_of, never_held)
    assert [len(rp.revisions) for rp in plan.repos] == [1]


def test_stale_incomplete_goes_fresh_one_stays(tmp_path):
    root = str(tmp_path / "hub")
    repo = hfgen.make_cache(root, repos=1, seed=3)[0]
    stale = hfgen.add_incomplete(repo, name="a" * 64 + ".incomplete", age=3 * 86400)
    fresh = hfgen.add_incomplete(repo, name="b" * 64 + ".incomplete", age=60)
    plan = plan_and_run(root, hf_plan.RepoSelection(incomplete_older_than=86400))
    assert [rp.incomplete for rp in plan.repos] == [[(os.path.basename(stale), 1000)]]
    assert not os.path.exists(stale) and os.path.exists(fresh)


def guard_for(root, force=False, **kw):
    cache = hf_scan.scan_cache(root)
    sel = hf_plan.RepoSelection(patterns=["*"], revisions="all", **kw)
    guard = hf_run._Guard([cache], sel, force)
    return cache, sel, guard


def test_fresh_download_holds_a_whole_repo_back_even_with_force(tmp_path):
    root = str(tmp_path / "hub")
    repo = hfgen.make_cache(root, repos=1, seed=3)[0]
    hfgen.add_incomplete(repo, age=5)
    cache, sel, guard = guard_for(root, force=True)
    plan = hf_plan.plan_cache(cache, sel, layout_of, lambda r, whole: guard.held(cache, r, whole))
    assert plan.repos == [] and plan.held_back[0]["reason"] == "in_use"
    assert "partial download" in plan.held_back[0]["detail"]


def _spawn(code):
    proc = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, text=True)
    assert proc.stdout.readline().strip() == "ready"
    return proc


def test_repo_locked_by_a_running_download_is_held_back(tmp_path):
    root = str(tmp_path / "hub")
    repo, other = hfgen.make_cache(root, repos=2, seed=5)
    lock = hfgen.lock_path(root, repo, "f" * 64)
    # the lock huggingface_hub takes during a download: filelock.FileLock on .locks/<repo>/<etag>.lock
    holder = _spawn("import sys, time\nfrom filelock import FileLock\nl = FileLock(%r)\nl.acquire()\n"
                    "print('ready', flush=True)\ntime.sleep(120)\n" % lock)
    try:
        assert hf_inuse.held_lock(os.path.join(root, ".locks", repo.folder)) == os.path.basename(lock)
        cache, sel, guard = guard_for(root)
        plan = hf_plan.plan_cache(cache, sel, layout_of, lambda r, whole: guard.held(cache, r, whole))
        assert [rp.repo.repo_id for rp in plan.repos] == [other.repo_id]
        assert plan.held_back == [{"cache": cache.path, "repo_id": repo.repo_id, "repo_type": repo.repo_type,
                                   "reason": "locked", "detail": plan.held_back[0]["detail"]}]
        assert lock in plan.held_back[0]["detail"]
        hf_delete.execute_plan(plan)
        assert os.path.isdir(repo.path) and not os.path.exists(other.path)
        # force takes it anyway
        cache, sel, guard = guard_for(root, force=True)
        plan = hf_plan.plan_cache(cache, sel, layout_of, lambda r, whole: guard.held(cache, r, whole))
        assert [rp.repo.repo_id for rp in plan.repos] == [repo.repo_id]
    finally:
        holder.kill()
        holder.wait()
    # released lock: the probe gets it and lets it go
    assert hf_inuse.held_lock(os.path.join(root, ".locks", repo.folder)) is None


def test_probe_creates_no_lock_file_and_ignores_links(tmp_path):
    root = str(tmp_path / "hub")
    repo = hfgen.make_cache(root, repos=1, seed=5, locks=False)[0]
    assert hf_inuse.held_lock(os.path.join(root, ".locks", repo.folder)) is None
    assert not os.path.exists(os.path.join(root, ".locks"))
    lock_dir = os.path.join(root, ".locks", repo.folder)
    os.makedirs(lock_dir)
    fifo = os.path.join(lock_dir, "pipe.lock")
    os.mkfifo(fifo)  # opening a FIFO would block: it must be skipped
    os.symlink("/etc/passwd", os.path.join(lock_dir, "link.lock"))
    assert hf_inuse.held_lock(lock_dir) is None


def test_repo_with_an_open_blob_is_in_use(tmp_path):
    root = str(tmp_path / "hub")
    repo = hfgen.make_cache(root, repos=1, seed=6)[0]
    blob = os.path.join(repo.path, "blobs", sorted(os.listdir(os.path.join(repo.path, "blobs")))[0])
    holder = _spawn("import time\nf = open(%r, 'rb')\nprint('ready', flush=True)\ntime.sleep(120)\n" % blob)
    try:
        found = hf_inuse.open_paths_under([os.path.realpath(root)])
        assert os.path.realpath(blob) in found and found[os.path.realpath(blob)][0][0] == holder.pid
        cache, sel, guard = guard_for(root)
        plan = hf_plan.plan_cache(cache, sel, layout_of, lambda r, whole: guard.held(cache, r, whole))
        assert plan.repos == [] and plan.held_back[0]["reason"] == "in_use"
        assert str(holder.pid) in plan.held_back[0]["detail"]
    finally:
        holder.kill()
        holder.wait()


# ---------------------------------------------------------------------------- trying to break deletion

def checksum_tree(root):
    digest = hashlib.sha256()
    for dirpath, dirnames, filenames in sorted(os.walk(root)):
        dirnames.sort()
        for name in sorted(filenames):
            path = os.path.join(dirpath, name)
            digest.update(path.encode())
            if os.path.islink(path):
                digest.update(os.readlink(path).encode())
            else:
                with open(path, "rb") as f:
                    digest.update(f.read())
    return digest.hexdigest()


@pytest.fixture
def victim(tmp_path):
    """A tree outside the cache that attacks point at; its checksum must never change."""
    outside = tmp_path / "outside"
    (outside / "deep").mkdir(parents=True)
    (outside / "secret").write_bytes(b"secret")
    (outside / "deep" / "data").write_bytes(b"data")
    return str(outside)


def test_links_inside_snapshots_are_removed_not_followed(tmp_path, victim):
    root = str(tmp_path / "hub")
    repo = hfgen.make_cache(root, repos=1, seed=8)[0]
    snap = os.path.join(repo.path, "snapshots", repo.commits[0])
    os.symlink(victim, os.path.join(snap, "dir-link"))
    os.symlink(os.path.join(victim, "secret"), os.path.join(snap, "file-link"))
    before = checksum_tree(victim)
    plan_and_run(root, PickCommits([repo.commits[0]]))
    assert not os.path.exists(snap) and checksum_tree(victim) == before


@pytest.mark.parametrize("swap", ["snapshot", "snapshots", "repo", "blobs", "refs"])
def test_dir_swapped_for_a_link_after_planning(tmp_path, victim, swap):
    root = str(tmp_path / "hub")
    repo = hfgen.make_cache(root, repos=1, revisions_per_repo=2, ref_fraction=1.0, seed=8)[0]
    old = repo.commits[0]
    # give the victim the names the deletion will look for
    os.makedirs(os.path.join(victim, old))
    with open(os.path.join(victim, old, "x"), "w") as f:
        f.write("x")
    for name in os.listdir(os.path.join(repo.path, "blobs")):
        with open(os.path.join(victim, name), "w") as f:
            f.write("victim")
    os.makedirs(os.path.join(victim, "refs", "pr"))
    with open(os.path.join(victim, "refs", "pr", "1"), "w") as f:
        f.write(old)
    before = checksum_tree(victim)
    cache = hf_scan.scan_cache(root)
    plan = hf_plan.plan_cache(cache, PickCommits([old]) if swap != "repo" else PickCommits(repo.commits),
                              layout_of, never_held)
    target = {"snapshot": os.path.join(repo.path, "snapshots", old),
              "snapshots": os.path.join(repo.path, "snapshots"),
              "repo": repo.path,
              "blobs": os.path.join(repo.path, "blobs"),
              "refs": os.path.join(repo.path, "refs")}[swap]
    os.rename(target, target + ".moved")
    os.symlink(victim, target)
    failures, _late = hf_delete.execute_plan(plan)
    assert checksum_tree(victim) == before
    if swap in ("snapshot", "repo"):
        assert not os.path.lexists(target) and failures == []  # the link itself went, nothing behind it
    else:
        assert failures and os.path.islink(target)


def test_other_file_system_inside_a_repo_is_not_removed(tmp_path):
    if os.geteuid() != 0:
        pytest.skip("mounting a tmpfs needs root")
    root = str(tmp_path / "hub")
    repo = hfgen.make_cache(root, repos=1, seed=9)[0]
    mnt = os.path.join(repo.path, ".no_exist", "mnt")
    os.makedirs(mnt)
    subprocess.check_call(["mount", "-t", "tmpfs", "-o", "size=1m", "tmpfs", mnt])
    try:
        with open(os.path.join(mnt, "keep"), "w") as f:
            f.write("other fs")
        cache = hf_scan.scan_cache(root)
        plan = hf_plan.plan_cache(cache, PickCommits(repo.commits), layout_of, never_held)
        failures, _late = hf_delete.execute_plan(plan)
        assert any("another filesystem" in f for f in failures), failures
        with open(os.path.join(mnt, "keep")) as f:
            assert f.read() == "other fs"
        assert not os.path.exists(os.path.join(repo.path, "snapshots"))
    finally:
        subprocess.check_call(["umount", mnt])


def test_second_run_changes_nothing(tmp_path):
    root = str(tmp_path / "hub")
    made = hfgen.make_cache(root, repos=3, seed=21)
    hfgen.add_incomplete(made[0], age=5 * 86400)
    sel = hf_plan.RepoSelection(patterns=[made[0].repo_id], revisions="all")
    first = plan_and_run(root, sel)
    assert first.repos
    second = plan_and_run(root, sel)
    assert second.repos == [] and second.held_back == []


NOBODY_SCRIPT = r"""
import json, sys
sys.path.insert(0, %(path)r)
from ansible_collections.residue.purge.plugins.module_utils._hfcache import plan as hf_plan, run as hf_run
sel = hf_plan.RepoSelection(patterns=["*"], revisions="all", incomplete_older_than=None)
print(json.dumps(hf_run.clean([%(root)r], sel)))
"""


def _python_for(uid, gid):
    """An interpreter the user can run: sys.executable, or the system's python3 where the user cannot
    (pyenv's Python 3.8 under /root: its libpython is out of an unprivileged user's reach)."""
    for python in (sys.executable, "/usr/bin/python3"):
        run = subprocess.run(["setpriv", "--reuid=%d" % uid, "--regid=%d" % gid, "--clear-groups", python, "-c", ""],
                             capture_output=True, check=False)
        if run.returncode == 0:
            return python
    pytest.fail("no Python interpreter that uid %d can run" % uid)


def test_unreadable_and_unwritable_parts_are_reported_as_nobody(tmp_path):
    """As an unprivileged user: an unreadable snapshot is a problem, removals that are refused are listed
    as failures, and what could not be read is not removed."""
    import json
    import pwd
    if os.geteuid() != 0 or not shutil.which("setpriv"):
        pytest.skip("needs root and setpriv to run a scan as another user")
    nobody = pwd.getpwnam("nobody")
    top = tempfile.mkdtemp(prefix="hfnobody-")
    try:
        os.chmod(top, 0o755)
        root = os.path.join(top, "hub")
        mine, theirs = hfgen.make_cache(root, repos=2, seed=13)
        for dirpath, dirnames, filenames in os.walk(root):
            os.lchown(dirpath, nobody.pw_uid, nobody.pw_gid)
            for name in filenames:
                os.lchown(os.path.join(dirpath, name), nobody.pw_uid, nobody.pw_gid)
        os.chmod(root, 0o755)
        # theirs belongs to root and is read-only for nobody; one snapshot of mine is unreadable
        for dirpath, dirnames, filenames in os.walk(theirs.path):
            os.lchown(dirpath, 0, 0)
        secret = os.path.join(mine.path, "snapshots", mine.commits[0])
        os.lchown(secret, 0, 0)
        os.chmod(secret, 0o700)
        before_theirs = hfgen.tree_listing(theirs.path)
        collections = os.path.join(os.path.dirname(os.path.abspath(hf_run.__file__)), "..", "..", "..", "..", "..", "..")
        code = NOBODY_SCRIPT % {"path": os.path.realpath(collections), "root": root}
        out = subprocess.run(["setpriv", "--reuid=%d" % nobody.pw_uid, "--regid=%d" % nobody.pw_gid,
                              "--clear-groups", _python_for(nobody.pw_uid, nobody.pw_gid), "-c", code],
                             capture_output=True, text=True, check=True).stdout
        result = json.loads(out)
        assert any("cannot read" in p and mine.commits[0] in p for p in result["problems"]), result["problems"]
        assert result["failures"], result
        assert any(theirs.folder in f and "Permission denied" in f for f in result["failures"])
        assert any(mine.commits[0] in f for f in result["failures"])
        assert hfgen.tree_listing(theirs.path) == before_theirs
        assert os.path.isdir(secret)  # what nobody could not read is still there
    finally:
        shutil.rmtree(top)


def test_blob_only_memory_mapped_is_in_use(tmp_path):
    """A model loaded with mmap (safetensors) keeps no fd open, only a mapping: still in use."""
    root = str(tmp_path / "hub")
    repo = hfgen.make_cache(root, repos=1, seed=16, max_file_size=8192)[0]
    blobs = os.path.join(repo.path, "blobs")
    blob = max((os.path.join(blobs, n) for n in os.listdir(blobs)), key=os.path.getsize)
    # libc's mmap, then close: Python's mmap module would keep a duplicate fd open
    holder = _spawn("import ctypes, os, time\nlibc = ctypes.CDLL(None, use_errno=True)\n"
                    "libc.mmap.restype = ctypes.c_void_p\n"
                    "libc.mmap.argtypes = [ctypes.c_void_p, ctypes.c_size_t, ctypes.c_int, ctypes.c_int, ctypes.c_int,"
                    " ctypes.c_long]\n"
                    "fd = os.open(%r, os.O_RDONLY)\naddr = libc.mmap(None, os.fstat(fd).st_size, 1, 1, fd, 0)\n"
                    "assert addr not in (None, ctypes.c_void_p(-1).value)\nos.close(fd)\n"
                    "print('ready', flush=True)\ntime.sleep(120)\n" % blob)
    try:
        assert not any(os.path.realpath(blob) == os.path.realpath(os.path.join("/proc", str(holder.pid), "fd", fd))
                       for fd in os.listdir("/proc/%d/fd" % holder.pid))
        found = hf_inuse.open_paths_under([os.path.realpath(root)])
        assert [pid for pid, _name in found[os.path.realpath(blob)]] == [holder.pid]
    finally:
        holder.kill()
        holder.wait()


def test_cache_reached_through_a_link_is_worked_on_in_place(tmp_path):
    """HF_HOME is often a link to a data disk: the cache behind it is scanned and changed, the link stays."""
    real = str(tmp_path / "data" / "hub")
    made = hfgen.make_cache(real, repos=2, seed=17)
    link = str(tmp_path / "hub-link")
    os.symlink(real, link)
    result = hf_run.clean([link], hf_plan.RepoSelection(patterns=[made[0].repo_id], revisions="all"))
    assert [d["repo_id"] for d in result["deleted"]] == [made[0].repo_id] and result["failures"] == []
    assert os.path.islink(link) and not os.path.exists(made[0].path) and os.path.isdir(made[1].path)


def test_a_named_repo_without_snapshots_goes_whole_without_crashing():
    # found by the Windows port's differential test: `patterns or ...` made `whole` a list (unhashable key)
    from ansible_collections.residue.purge.plugins.module_utils._hfcache.model import HFCache, HFRepo, RepoLayout
    from ansible_collections.residue.purge.plugins.module_utils._hfcache.plan import RepoSelection as Selection, plan_cache

    cache = HFCache("/c")
    cache.repos.append(HFRepo("org/x", "model", "/c/models--org--x"))
    plan = plan_cache(cache, Selection(patterns=["org/*"], revisions="all"), lambda repo: RepoLayout(),
                      lambda repo, whole: None)
    assert [(rp.repo.repo_id, rp.whole) for rp in plan.repos] == [("org/x", True)]
