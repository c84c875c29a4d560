"""remove_tree() tried against hostile trees; every file outside the target is checksummed before and after."""
from __future__ import absolute_import, division, print_function

__metaclass__ = type

import hashlib
import os
import stat
import subprocess
import sys
import threading
import time
import uuid

import pytest

from ansible_collections.residue.purge.plugins.module_utils._walk import WalkError, remove_tree, usage
from ansible_collections.residue.purge.tests.unit.support import tmpfs

IS_ROOT = os.geteuid() == 0


def write(path, data):
    with open(path, "wb") as f:
        f.write(data if isinstance(data, bytes) else data.encode())


def snapshot(root, skip=None):
    """{relative path: (kind, mode, sha256 or link target)} of everything under root (bytes paths)."""
    root = os.fsencode(str(root))
    skip = os.fsencode(str(skip)) if skip else None
    found = {}
    for dirpath, dirnames, filenames in os.walk(root):
        if skip is not None:
            dirnames[:] = [d for d in dirnames if os.path.join(dirpath, d) != skip]
        for name in dirnames + filenames:
            path = os.path.join(dirpath, name)
            st = os.lstat(path)
            if stat.S_ISREG(st.st_mode):
                with open(path, "rb") as f:
                    detail = hashlib.sha256(f.read()).hexdigest()
            elif stat.S_ISLNK(st.st_mode):
                detail = os.readlink(path)
            else:
                detail = None
            found[os.path.relpath(path, root)] = (stat.S_IFMT(st.st_mode), stat.S_IMODE(st.st_mode), detail)
    return found


@pytest.fixture
def sentinel():
    """A file outside every test tree (in /tmp itself) that a runaway removal would hit."""
    path = "/tmp/residue-sentinel-%s" % uuid.uuid4().hex
    write(path, "do not remove")
    yield path
    assert open(path).read() == "do not remove"
    os.unlink(path)


@pytest.fixture
def lab(tmp_path, sentinel):
    """base/outside (+ another user's home), base/target with every kind of trap pointing out."""
    outside = tmp_path / "outside"
    (outside / "sub").mkdir(parents=True)
    write(str(outside / "keepme"), "outside content " * 100)
    write(str(outside / "sub" / "deep"), "deeper")
    write(str(outside / "linked"), "hard linked from inside")
    other_home = tmp_path / "home_bob"
    (other_home / ".cache").mkdir(parents=True)
    write(str(other_home / ".cache" / "bobs"), "bob's data")
    target = tmp_path / "target"
    (target / "a" / "b").mkdir(parents=True)
    write(str(target / "a" / "f1"), "x" * 5000)
    write(str(target / "a" / "b" / "f2"), "y" * 70000)
    os.symlink("/", str(target / "to_root"))
    os.symlink(str(other_home), str(target / "a" / "to_bob"))
    os.symlink("../../outside", str(target / "a" / "b" / "rel_out"))
    os.symlink(sentinel, str(target / "to_sentinel"))
    os.link(str(outside / "linked"), str(target / "hard"))
    weird = os.fsencode(str(target)) + b"/new\nline\xff\xfe"
    os.mkdir(weird)
    write(weird + b"/file\nwith newline", "nl")
    os.mkfifo(str(target / "fifo"))
    return tmp_path, target


def test_removes_everything_and_nothing_outside(lab):
    base, target = lab
    before = snapshot(base, skip=target)
    expected = usage(str(target))
    result = remove_tree(str(target))
    assert not os.path.lexists(str(target))
    assert result.failed == [] and result.root_removed
    assert result.bytes == expected.bytes
    assert result.dirs == expected.dirs
    assert result.files == 9  # f1, f2, 4 symlinks, the hard link, the fifo, "file\\nwith newline"
    assert snapshot(base) == before


def test_dry_run_changes_nothing_and_predicts_the_real_run(lab):
    base, target = lab
    before = snapshot(base)
    planned = remove_tree(str(target), dry_run=True)
    assert snapshot(base) == before
    done = remove_tree(str(target))
    for field in ("bytes", "files", "dirs", "kept", "failed_count", "root_removed"):
        assert getattr(planned, field) == getattr(done, field), field
    again = remove_tree(str(target))
    assert not again.changed and again.failed == []  # idempotent: nothing left, nothing failed


def test_a_symlink_root_is_removed_not_followed(lab):
    base, target = lab
    before = snapshot(base, skip=target)
    result = remove_tree(str(target / "a" / "to_bob"))
    assert result.files == 1 and result.root_removed
    assert snapshot(base, skip=target) == before
    assert os.path.isdir(str(target / "a"))


def test_keep_globs_by_name_and_by_path(lab):
    base, target = lab
    write(str(target / "a" / "b" / "config.yaml"), "keep")
    write(str(target / "a" / "keep_dir_marker"), "x")
    (target / "kept_dir" / "inner").mkdir(parents=True)
    write(str(target / "kept_dir" / "inner" / "x"), "x")
    result = remove_tree(str(target), keep=["*.yaml", str(target / "kept_dir")])
    assert (target / "a" / "b" / "config.yaml").read_text() == "keep"
    assert (target / "kept_dir" / "inner" / "x").read_text() == "x"
    assert not (target / "a" / "f1").exists() and not (target / "a" / "b" / "f2").exists()
    assert sorted(os.listdir(str(target))) == ["a", "kept_dir"]
    assert sorted(os.listdir(str(target / "a"))) == ["b"]
    assert result.kept == 2 and not result.root_removed and result.failed == []


def test_older_than_removes_old_files_and_the_dirs_they_leave_empty(tmp_path):
    now = int(time.time())  # real time: listing a directory (the dry run) may set its atime to now
    t = tmp_path / "aged"
    (t / "old_only").mkdir(parents=True)
    (t / "mixed").mkdir()
    (t / "fresh_empty").mkdir()
    (t / "old_empty").mkdir()
    for rel, days in (("old_only/a", 40), ("old_only/b", 31), ("mixed/old", 60), ("mixed/new", 1), ("top_new", 2)):
        write(str(t / rel), "data")
        os.utime(str(t / rel), (now - days * 86400, now - days * 86400))
    os.utime(str(t / "fresh_empty"), (now - 3600, now - 3600))
    os.utime(str(t / "old_empty"), (now - 90 * 86400, now - 90 * 86400))
    os.utime(str(t), (now, now))
    for d in ("old_only", "mixed"):
        os.utime(str(t / d), (now, now))
    plan = remove_tree(str(t), older_than=30 * 86400, time_field="atime", now=now, dry_run=True)
    result = remove_tree(str(t), older_than=30 * 86400, time_field="atime", now=now)
    assert sorted(os.listdir(str(t))) == ["fresh_empty", "mixed", "top_new"]
    assert os.listdir(str(t / "mixed")) == ["new"]
    assert (result.files, result.dirs) == (3, 2) == (plan.files, plan.dirs)
    assert not result.root_removed
    # a second run removes nothing
    assert not remove_tree(str(t), older_than=30 * 86400, now=now).changed


@pytest.mark.parametrize("kwargs,message", [
    ({"time_field": "birth"}, "time_field"),
    ({"older_than": -5}, "older_than"),
    ({"keep": [""]}, "keep"),
    ({"keep": [None]}, "keep"),
])
def test_bad_arguments_are_refused_before_anything_is_removed(lab, kwargs, message):
    base, target = lab
    before = snapshot(base)
    with pytest.raises(WalkError, match=message):
        remove_tree(str(target), **kwargs)
    assert snapshot(base) == before


def test_immutable_file_fails_alone_and_the_rest_goes(lab):
    base, target = lab
    stuck = target / "a" / "b" / "stuck"
    write(str(stuck), "immutable")
    proc = subprocess.run(["chattr", "+i", str(stuck)], capture_output=True, text=True, check=False)
    if proc.returncode != 0:
        pytest.skip("this filesystem refuses chattr +i: %s" % proc.stderr.strip())
    try:
        before = snapshot(base, skip=target)
        result = remove_tree(str(target))
        assert result.failed_count == 1
        assert result.failed[0][0] == str(stuck) and "Operation not permitted" in result.failed[0][1]
        assert sorted(os.listdir(str(target))) == ["a"]  # only the chain holding the stuck file is left
        assert os.listdir(str(target / "a")) == ["b"] and os.listdir(str(target / "a" / "b")) == ["stuck"]
        assert snapshot(base, skip=target) == before
    finally:
        subprocess.run(["chattr", "-i", str(stuck)], check=True)
    assert remove_tree(str(target)).root_removed  # a re-run picks up what is left


@pytest.mark.skipif(not IS_ROOT, reason="mount --bind needs root")
def test_bind_mount_inside_is_not_entered(lab):
    base, target = lab
    mnt = target / "a" / "mnt"
    mnt.mkdir()
    subprocess.run(["mount", "--bind", str(base / "outside"), str(mnt)], check=True)
    try:
        before = snapshot(base / "outside")
        planned = remove_tree(str(target), dry_run=True)
        result = remove_tree(str(target))
        assert snapshot(base / "outside") == before
        assert subprocess.run(["mountpoint", "-q", str(mnt)], check=False).returncode == 0
        assert any("mount point" in p and str(mnt) in p for p in result.problems)
        assert result.failed == [] and not result.root_removed
        assert (planned.files, planned.dirs) == (result.files, result.dirs)
    finally:
        subprocess.run(["umount", str(mnt)], check=True)
    assert sorted(os.listdir(str(target))) == ["a"]
    assert snapshot(base / "outside") == before


@pytest.mark.skipif(not IS_ROOT, reason="mounting a tmpfs needs root")
def test_other_filesystem_inside_is_not_entered_unless_asked(lab):
    base, target = lab
    mnt = target / "mnt"
    mnt.mkdir()
    subprocess.run(["mount", "-t", "tmpfs", "-o", "size=4m", "tmpfs", str(mnt)], check=True)
    try:
        write(str(mnt / "on_tmpfs"), "other fs")
        result = remove_tree(str(target))
        assert (mnt / "on_tmpfs").read_text() == "other fs"
        assert any("another filesystem" in p for p in result.problems)
        crossing = remove_tree(str(target), one_file_system=False)
        assert not (mnt / "on_tmpfs").exists()
        assert crossing.failed and "busy" in crossing.failed[0][1].lower()  # the mount point itself stays
    finally:
        subprocess.run(["umount", str(mnt)], check=True)


def test_racing_symlink_swaps_never_lead_outside(tmp_path, sentinel):
    """A thread keeps swapping directories of the target for symlinks to outside while removal runs."""
    outside = tmp_path / "outside"
    (outside / "sub").mkdir(parents=True)
    for i in range(20):
        write(str(outside / ("o%d" % i)), "outside %d" % i)
        write(str(outside / "sub" / ("s%d" % i)), "sub %d" % i)
    before = snapshot(outside)
    swaps_total = 0
    for round_ in range(25):
        target = tmp_path / ("target%d" % round_)
        for d in range(30):
            (target / ("d%d" % d) / "inner").mkdir(parents=True)
            for f in range(5):
                write(str(target / ("d%d" % d) / "inner" / ("f%d" % f)), "x")
        stop = []
        swaps = [0]

        def swapper():
            n = 0
            while not stop:
                victim = str(target / ("d%d" % (n % 30)))
                aside = victim + ".aside"
                try:
                    os.rename(victim, aside)
                    os.symlink(str(outside), victim)
                    swaps[0] += 1
                    time.sleep(0)
                    os.unlink(victim)
                    os.rename(aside, victim)
                except OSError:
                    pass
                n += 1

        thread = threading.Thread(target=swapper)
        thread.start()
        try:
            remove_tree(str(target))
        finally:
            stop.append(True)
            thread.join()
        swaps_total += swaps[0]
        assert snapshot(outside) == before, "round %d" % round_
        subprocess.run(["rm", "-rf", "--", str(target)], check=True)
    assert swaps_total > 25  # the race really ran
    assert snapshot(outside) == before


def test_a_symlink_on_the_way_to_the_root_is_never_followed(tmp_path, sentinel):
    """remove_tree reaches its root from '/' with O_NOFOLLOW at every component: a directory on the way that is
    (or became, after the path was checked) a symlink stops it, with a failure that says so."""
    outside = tmp_path / "outside"
    (outside / "victim").mkdir(parents=True)
    write(str(outside / "victim" / "data"), "must stay")
    home = tmp_path / "home"
    (home / "cache" / "victim").mkdir(parents=True)
    planned = os.lstat(str(home / "cache" / "victim"))
    # the user swaps ~/cache for a symlink to outside after the path was planned
    os.rename(str(home / "cache"), str(home / "cache.aside"))
    os.symlink(str(outside), str(home / "cache"))
    before = snapshot(outside)
    for kwargs in ({}, {"dry_run": True}, {"expect": (planned.st_dev, planned.st_ino)}):
        result = remove_tree(str(home / "cache" / "victim"), **kwargs)
        assert not result.changed and result.failed_count == 1, kwargs
        assert "is a symlink or not a directory" in result.failed[0][1]
        assert usage(str(home / "cache" / "victim")).bytes == 0
    assert snapshot(outside) == before


def test_what_was_planned_is_what_is_removed(tmp_path):
    """expect=(dev, ino): a directory replaced by another one since it was planned is not touched."""
    target = tmp_path / "target"
    target.mkdir()
    planned = os.lstat(str(target))
    os.rename(str(target), str(tmp_path / "aside"))
    target.mkdir()
    write(str(target / "new"), "arrived later")
    result = remove_tree(str(target), expect=(planned.st_dev, planned.st_ino))
    assert result.failed_count == 1 and "is not what was planned" in result.failed[0][1]
    assert (target / "new").read_text() == "arrived later"
    now = os.lstat(str(target))
    assert remove_tree(str(target), expect=(now.st_dev, now.st_ino)).root_removed


def _run_limited(code, *args):
    """Run code in a child with at most 100 open files; return stdout."""
    prelude = ("import resource, sys\nresource.setrlimit(resource.RLIMIT_NOFILE, (100, 100))\n"
               "from ansible_collections.residue.purge.plugins.module_utils._walk import remove_tree, usage\n")
    child_env = dict(os.environ, PYTHONPATH=os.pathsep.join(p for p in sys.path if p))  # ansible-test's paths
    return subprocess.run([sys.executable, "-c", prelude + code] + list(args), capture_output=True, text=True,
                          check=True, timeout=300, env=child_env).stdout


@pytest.fixture
def fast_dir(tmp_path):
    with tmpfs.private_tmpfs(tmp_path) as where:
        yield where


def make_deep(base, depth):
    """A chain of `depth` nested dirs named d (longer than PATH_MAX), built with dir fds, a file at the bottom."""
    fd = os.open(base, os.O_RDONLY | os.O_DIRECTORY)
    try:
        for _level in range(depth):
            os.mkdir("d", dir_fd=fd)
            child = os.open("d", os.O_RDONLY | os.O_DIRECTORY, dir_fd=fd)
            os.close(fd)
            fd = child
        os.close(os.open("leaf", os.O_WRONLY | os.O_CREAT, 0o644, dir_fd=fd))
    finally:
        os.close(fd)


def test_deep_tree_removed_with_few_descriptors(fast_dir):
    make_deep(str(fast_dir), 10000)
    write(str(fast_dir / "outside"), "stays")
    out = _run_limited("r = remove_tree(sys.argv[1], dry_run=True)\nprint(r.files, r.dirs, r.failed_count)\n"
                       "r = remove_tree(sys.argv[1])\nprint(r.files, r.dirs, r.failed_count, r.root_removed)\n",
                       str(fast_dir / "d"))
    assert out.split("\n")[:2] == ["1 10000 0", "1 10000 0 True"]
    assert os.listdir(str(fast_dir)) == ["outside"]


def test_missing_path_is_nothing_to_do(tmp_path):
    result = remove_tree(str(tmp_path / "absent"))
    assert not result.changed and result.failed == []


@pytest.mark.skipif(not IS_ROOT, reason="mount --bind needs root")
def test_cross_filesystems_never_walks_in_circles(lab):
    """A bind mount of the target inside itself, with cross_filesystems: the loop is noticed, not walked."""
    base, target = lab
    loop = target / "a" / "loop"
    loop.mkdir()
    outside_before = snapshot(base, skip=target)
    subprocess.run(["mount", "--bind", str(target), str(loop)], check=True)
    try:
        result = remove_tree(str(target), one_file_system=False)
        assert any("directory loop" in p and str(loop) in p for p in result.problems)
        assert sorted(os.listdir(str(target))) == ["a"] and os.listdir(str(target / "a")) == ["loop"]
        assert result.failed == []
    finally:
        subprocess.run(["umount", str(loop)], check=True)
    assert snapshot(base, skip=target) == outside_before


def _twin_tree(root):
    for top in ("p", "q", "r", "s"):
        for sub in range(3):
            os.makedirs(os.path.join(root, top, str(sub)))
            write(os.path.join(root, top, str(sub), "f"), top * (1000 * (sub + 1)))
    write(os.path.join(root, "p", "shared"), "z" * 50000)
    for top in ("q", "r", "s"):  # hard links across the halves the parent and the child take
        os.link(os.path.join(root, "p", "shared"), os.path.join(root, top, "shared"))
    write(os.path.join(root, "top_file"), "t")


def test_parallel_removal_matches_serial(tmp_path):
    results = {}
    for parallel in (False, True):
        root = str(tmp_path / ("tree-%s" % parallel))
        _twin_tree(root)
        expected = usage(root, parallel=False)
        planned = remove_tree(root, dry_run=True, parallel=parallel)
        stuck = os.path.join(root, "s", "1", "f")
        subprocess.run(["chattr", "+i", stuck], check=True)
        try:
            done = remove_tree(root, parallel=parallel)
        finally:
            subprocess.run(["chattr", "-i", stuck], check=True)
        assert planned.bytes == expected.bytes and planned.dirs == expected.dirs and planned.root_removed
        assert done.failed == [(stuck, "Operation not permitted")] and done.failed_count == 1
        assert not done.root_removed and sorted(os.listdir(root)) == ["s"]
        results[parallel] = (planned.to_dict(), done.bytes, done.files, done.dirs)
    assert results[True] == results[False]
