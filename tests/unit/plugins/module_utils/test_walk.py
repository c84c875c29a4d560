"""usage() against the real `du -sB1` / `du -sxB1` on real trees (hostile names, hard links, mounts, depth)."""
from __future__ import absolute_import, division, print_function

__metaclass__ = type

import ast
import os
import subprocess
import sys
import tempfile
import time

import pytest

from ansible_collections.residue.purge.plugins.module_utils._walk import WalkError, usage
from ansible_collections.residue.purge.tests.unit.support import tmpfs

IS_ROOT = os.geteuid() == 0
NOBODY = 65534


def du(path, *flags):
    out = subprocess.run(["du", "-sB1"] + list(flags) + ["--", path], capture_output=True, check=False).stdout
    return int(out.split()[0])


def write(path, size, char=b"x"):
    with open(path, "wb") as f:
        f.write(char * size)


def make_deep(base, depth, leaf_size=5000):
    """A chain of `depth` nested dirs named d, built with dir fds (the path is longer than PATH_MAX)."""
    flags = os.O_RDONLY | os.O_DIRECTORY
    fd = os.open(base, flags)
    try:
        for _level in range(depth):
            os.mkdir("d", dir_fd=fd)
            child = os.open("d", flags, dir_fd=fd)
            os.close(fd)
            fd = child
        leaf = os.open("leaf", os.O_WRONLY | os.O_CREAT, 0o644, dir_fd=fd)
        os.write(leaf, b"y" * leaf_size)
        os.close(leaf)
    finally:
        os.close(fd)


@pytest.fixture
def hostile_tree(tmp_path):
    root = tmp_path / "tree"
    (root / "a" / "b" / "c").mkdir(parents=True)
    (root / "empty").mkdir()
    for i, size in enumerate([0, 1, 4095, 4096, 4097, 70000, 1 << 20]):
        write(str(root / "a" / ("f%d" % i)), size)
    write(str(root / "a" / "b" / "c" / "deep"), 12345)
    # hard links inside the walk count once; the sparse file counts only its allocated blocks
    os.link(str(root / "a" / "f5"), str(root / "a" / "b" / "hardlink"))
    os.link(str(root / "a" / "f5"), str(root / "hardlink2"))
    with open(str(root / "sparse"), "wb") as f:
        f.seek(50 << 20)
        f.write(b"end")
    os.symlink("/", str(root / "to_root"))
    os.symlink("../../..", str(root / "a" / "up"))
    os.symlink("missing", str(root / "dangling"))
    os.symlink(".", str(root / "a" / "loop"))
    os.mkfifo(str(root / "fifo"))
    bad = os.fsencode(str(root)) + b"/bad\xff\xfename\nwith newline"
    os.mkdir(bad)
    write(bad + b"/inner\n", 3000)
    return str(root)


def test_usage_matches_du_on_hostile_tree(hostile_tree):
    result = usage(hostile_tree)
    assert result.bytes == du(hostile_tree)
    assert result.problems == []
    # regular files: f0..f6, deep, f5's links counted once, sparse, inner\n
    assert result.files == 7 + 1 + 1 + 1
    assert result.dirs == 6  # tree, a, b, c, empty, bad\xff...
    assert usage(os.fsencode(hostile_tree)).bytes == result.bytes


def test_usage_of_file_and_symlink_counts_the_entry_itself(hostile_tree):
    f = os.path.join(hostile_tree, "a", "f6")
    assert usage(f).bytes == du(f) == os.lstat(f).st_blocks * 512
    assert usage(f).files == 1
    link = os.path.join(hostile_tree, "to_root")
    assert usage(link).bytes == du(link)
    assert usage(link).files == 0 and usage(link).dirs == 0


def test_usage_of_missing_path_is_a_problem_not_a_crash(tmp_path):
    result = usage(str(tmp_path / "nope"))
    assert result.bytes == 0
    assert len(result.problems) == 1 and "No such file" in result.problems[0]


def test_usage_times_and_old_counts(tmp_path):
    now = 2000000000
    root = tmp_path / "aged"
    (root / "sub").mkdir(parents=True)
    ages = {"old1": 40, "old2": 31, "new1": 29, "sub/new2": 1, "sub/old3": 100}  # days
    for name, days in ages.items():
        write(str(root / name), 10000)
        t = now - days * 86400
        os.utime(str(root / name), (t, t + 3600))  # atime, mtime one hour later
    os.utime(str(root), (now - 5 * 86400, now - 5 * 86400))
    result = usage(str(root), older_than=30 * 86400, time_field="atime", now=now)
    assert result.old_files == 3
    assert result.old_bytes == sum(os.lstat(str(root / n)).st_blocks * 512 for n in ("old1", "old2", "sub/old3"))
    assert result.last_access == now - 86400
    assert result.newest_mtime == now - 86400 + 3600
    # mtime is an hour younger: the file at 31 days counts as old either way, none moves across 30 days
    assert usage(str(root), older_than=30 * 86400, time_field="mtime", now=now).old_files == 3
    # ctime is now-ish (set by utime): nothing is old
    assert usage(str(root), older_than=30 * 86400, time_field="ctime").old_files == 0
    assert usage(str(root)).old_files is None


def test_usage_empty_dir_times_fall_back_to_the_dir(tmp_path):
    os.utime(str(tmp_path), (1000, 2000))
    result = usage(str(tmp_path))
    assert (result.last_access, result.newest_mtime, result.files, result.dirs) == (1000, 2000, 0, 1)


@pytest.mark.parametrize("kwargs,message", [
    ({"time_field": "birth"}, "time_field"),
    ({"older_than": -1}, "older_than"),
    ({"older_than": "30d"}, "older_than"),
    ({"older_than": True}, "older_than"),
])
def test_usage_rejects_bad_arguments(tmp_path, kwargs, message):
    with pytest.raises(WalkError, match=message):
        usage(str(tmp_path), **kwargs)


def test_usage_rejects_non_path():
    with pytest.raises(WalkError, match="path"):
        usage(None)


@pytest.mark.skipif(not IS_ROOT, reason="mounting a tmpfs needs root")
def test_usage_one_file_system_matches_du_x(tmp_path):
    root = tmp_path / "cache"
    mnt = root / "mnt"
    mnt.mkdir(parents=True)
    write(str(root / "here"), 20000)
    subprocess.run(["mount", "-t", "tmpfs", "-o", "size=8m", "tmpfs", str(mnt)], check=True)
    try:
        write(str(mnt / "there"), 1 << 20)
        (mnt / "sub").mkdir()
        one_fs = usage(str(root))
        assert one_fs.bytes == du(str(root), "-x")
        assert one_fs.dirs == 1  # like du -x, the mount point is neither counted nor entered
        every_fs = usage(str(root), one_file_system=False)
        assert every_fs.bytes == du(str(root))
        assert every_fs.bytes - one_fs.bytes >= 1 << 20
    finally:
        subprocess.run(["umount", str(mnt)], check=True)


@pytest.fixture
def fast_dir(tmp_path):
    with tmpfs.private_tmpfs(tmp_path) as where:
        yield where


def test_usage_deep_tree_with_few_descriptors(fast_dir):
    """10,000 levels, walked in a child process limited to 100 open files: no recursion or fd limit hit."""
    tmp_path = fast_dir
    make_deep(str(tmp_path), 10000)
    try:
        code = (
            "import resource, sys\n"
            "resource.setrlimit(resource.RLIMIT_NOFILE, (100, 100))\n"
            "from ansible_collections.residue.purge.plugins.module_utils._walk import usage\n"
            "u = usage(sys.argv[1])\n"
            "print(u.bytes, u.files, u.dirs, len(u.problems))\n"
        )
        child_env = dict(os.environ, PYTHONPATH=os.pathsep.join(p for p in sys.path if p))  # ansible-test's paths
        out = subprocess.run([sys.executable, "-c", code, str(tmp_path / "d")], capture_output=True, text=True,
                             check=True, timeout=120, env=child_env).stdout.split()
        assert [int(x) for x in out] == [du(str(tmp_path / "d")), 1, 10000, 0]
    finally:
        subprocess.run(["rm", "-rf", "--", str(tmp_path / "d")], check=True)


def test_usage_closes_every_descriptor(hostile_tree):
    before = len(os.listdir("/proc/self/fd"))
    usage(hostile_tree)
    usage(os.path.join(hostile_tree, "missing"))
    assert len(os.listdir("/proc/self/fd")) == before


def as_user(uid, func, *args):
    """Run func(*args) in a forked child with uid/gid dropped; return its repr()'d result."""
    read_end, write_end = os.pipe()
    pid = os.fork()
    if pid == 0:  # child
        try:
            os.close(read_end)
            os.setgroups([])
            os.setgid(uid)
            os.setuid(uid)
            data = repr(func(*args)).encode()
            os.write(write_end, data)
        except BaseException as exc:  # the parent's assertion shows what went wrong
            os.write(write_end, repr("child failed: %r" % exc).encode())
        finally:
            os._exit(0)
    os.close(write_end)
    chunks = []
    while True:
        chunk = os.read(read_end, 65536)
        if not chunk:
            break
        chunks.append(chunk)
    os.close(read_end)
    os.waitpid(pid, 0)
    return b"".join(chunks).decode()


def bytes_and_problems(path):
    walked = usage(path)
    return walked.bytes, walked.problems


@pytest.fixture
def world_tmp():
    """A temp dir other users can traverse (pytest's tmp_path lives under a 0700 dir)."""
    path = tempfile.mkdtemp(prefix="residue-walk-", dir="/tmp")
    os.chmod(path, 0o755)
    try:
        yield path
    finally:
        subprocess.run(["chmod", "-R", "u+rwx", path], check=False)
        subprocess.run(["rm", "-rf", "--", path], check=False)


@pytest.mark.skipif(not IS_ROOT, reason="needs root to drop to another user")
def test_usage_unreadable_dir_is_a_problem_and_matches_du(world_tmp):
    root = os.path.join(world_tmp, "shared")
    os.makedirs(os.path.join(root, "closed", "inner"))
    os.makedirs(os.path.join(root, "open"))
    write(os.path.join(root, "closed", "inner", "secret"), 50000)
    write(os.path.join(root, "open", "visible"), 7000)
    os.chmod(os.path.join(root, "closed"), 0o700)
    out = as_user(NOBODY, bytes_and_problems, root)
    result = ast.literal_eval(out)
    assert isinstance(result, tuple), result
    nobody_bytes, problems = result
    nobody_du = subprocess.run(["setpriv", "--reuid=%d" % NOBODY, "--regid=%d" % NOBODY, "--clear-groups",
                                "du", "-sB1", root], capture_output=True, text=True, check=False)
    assert nobody_du.returncode == 1 and "Permission denied" in nobody_du.stderr
    assert nobody_bytes == int(nobody_du.stdout.split()[0])
    assert problems == ["%s: Permission denied" % os.path.join(root, "closed")]
    assert usage(root).bytes == du(root) > nobody_bytes  # root reads it all


def test_usage_counts_hard_links_once_but_files_outside_not_at_all(tmp_path):
    outside = tmp_path / "outside"
    write(str(outside), 100000)
    (tmp_path / "t").mkdir()
    os.link(str(outside), str(tmp_path / "t" / "link"))
    assert usage(str(tmp_path / "t")).bytes == du(str(tmp_path / "t"))
    assert usage(str(tmp_path)).bytes == du(str(tmp_path))


def test_usage_is_not_confused_by_concurrent_changes(tmp_path):
    """Entries vanishing mid-walk are skipped or reported, never a crash."""
    root = tmp_path / "busy"
    for i in range(200):
        (root / str(i)).mkdir(parents=True)
        write(str(root / str(i) / "f"), 100)
    import threading
    stop = []

    def churn():
        i = 0
        while not stop:
            p = root / str(i % 200)
            subprocess.run(["rm", "-rf", str(p)], check=False)
            i += 1
            time.sleep(0.001)

    full = usage(str(root)).bytes
    worker = threading.Thread(target=churn)
    worker.start()
    try:
        for _round in range(5):
            result = usage(str(root))
            assert 0 < result.bytes <= full
            assert all(p.startswith(str(root) + "/") for p in result.problems)
    finally:
        stop.append(True)
        worker.join()


def test_parallel_walk_equals_serial_and_du(hostile_tree):
    """The forked half and the parent's half share hard links: still counted once, same answer as du."""
    root = hostile_tree
    for d in ("x1", "x2", "x3"):
        os.mkdir(os.path.join(root, d))
    write(os.path.join(root, "x1", "big"), 200000)
    os.link(os.path.join(root, "x1", "big"), os.path.join(root, "x2", "big_link"))
    os.link(os.path.join(root, "x1", "big"), os.path.join(root, "x3", "big_link"))
    os.utime(os.path.join(root, "x3", "big_link"), (1000, 1000))
    serial = usage(root, parallel=False, older_than=86400)
    parallel = usage(root, parallel=True, older_than=86400)
    assert parallel.to_dict() == serial.to_dict()
    assert parallel.bytes == du(root)
    assert parallel.old_files == 1 and parallel.old_bytes == os.lstat(os.path.join(root, "x1", "big")).st_blocks * 512
