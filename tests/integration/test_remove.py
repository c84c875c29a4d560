"""residue.purge.remove through real ansible-playbook: check/diff = real run, idempotence, failed items fail
the task, refused input changes nothing, backup restores, hostile trees leave everything outside intact."""
import hashlib
import os
import stat
import subprocess
import threading
import time

import pytest

from conftest import assert_clean_failure, run_tasks

IS_ROOT = os.geteuid() == 0


def write(path, data):
    with open(path if isinstance(path, bytes) else str(path), "wb") as f:
        f.write(data if isinstance(data, bytes) else data.encode())


def snapshot(root, skip=()):
    root = os.fsencode(str(root))
    skip = set(os.fsencode(str(s)) for s in skip)
    found = {}
    for dirpath, dirnames, filenames in os.walk(root):
        dirnames[:] = [d for d in dirnames if os.path.join(dirpath, d) not in skip]
        for name in dirnames + filenames:
            path = os.path.join(dirpath, name)
            st = os.lstat(path)
            detail = None
            if stat.S_ISREG(st.st_mode):
                with open(path, "rb") as f:
                    detail = hashlib.sha256(f.read()).hexdigest()
            elif stat.S_ISLNK(st.st_mode):
                detail = os.readlink(path)
            found[os.path.relpath(path, root)] = (stat.S_IFMT(st.st_mode), stat.S_IMODE(st.st_mode), detail)
    return found


@pytest.fixture
def world(tmp_path):
    """outside/ (plus another user's home) and target/ full of traps pointing outside."""
    outside = tmp_path / "outside"
    (outside / "sub").mkdir(parents=True)
    write(outside / "data", "outside " * 500)
    write(outside / "sub" / "more", "more")
    write(outside / "shared", "hard linked into the target")
    bob = tmp_path / "home_bob"
    (bob / ".cache").mkdir(parents=True)
    write(bob / ".cache" / "bobs", "bob")
    target = tmp_path / "target"
    (target / "a" / "b").mkdir(parents=True)
    write(target / "a" / "f", "x" * 30000)
    write(target / "a" / "b" / "g", "y" * 5000)
    os.symlink("/", str(target / "to_root"))
    os.symlink(str(bob), str(target / "to_bob"))
    os.link(str(outside / "shared"), str(target / "a" / "hard"))
    weird = os.fsencode(str(target)) + b"/line\nbreak\xff"
    os.mkdir(weird)
    write(weird + b"/in\nside", "odd")
    return tmp_path, target


def test_check_diff_then_real_run_then_idempotent(module_runner, world):
    base, target = world
    outside_before = snapshot(base, skip=[target])
    everything = snapshot(base)
    checked = module_runner("remove", {"paths": [str(target)]}, check=True, diff=True)
    assert checked["changed"] is True and not checked.get("failed")
    assert snapshot(base) == everything  # check mode touched nothing
    assert "-%s (" % target in checked["_stdout"]  # the diff names the residue
    # the real run and the second one in one ansible-playbook (the second changes nothing: asserted below)
    done, again = run_tasks([{"module": "remove", "args": {"paths": [str(target)]}}] * 2, diff=True)
    assert done["changed"] is True and not done.get("failed")
    assert done["removed"] == checked["removed"]
    assert done["removed"][0]["whole"] is True and done["removed"][0]["owner"] == "root"
    assert done["freed_bytes"] == checked["freed_bytes"] > 30000
    assert not os.path.lexists(str(target))
    assert snapshot(base) == outside_before
    assert [f["mount"] for f in done["filesystems"]] and all(
        set(f) == {"mount", "free_before", "free_after", "freed"} for f in done["filesystems"])
    assert again["changed"] is False and again["removed"] == [] and not again.get("failed")


def test_immutable_file_is_listed_the_rest_removed_and_the_task_fails(module_runner, world):
    base, target = world
    stuck = target / "a" / "b" / "stuck"
    write(stuck, "immutable")
    proc = subprocess.run(["chattr", "+i", str(stuck)], capture_output=True, text=True, check=False)
    if proc.returncode != 0:
        pytest.skip("this filesystem refuses chattr +i: %s" % proc.stderr.strip())
    outside_before = snapshot(base, skip=[target])
    try:
        result = module_runner("remove", {"paths": [str(target)]})
        assert result["failed"] is True and result["changed"] is True
        assert result["failed_count"] == 1
        assert result["failures"] == [{"path": str(stuck), "error": "Operation not permitted"}]
        assert "1 entries could not be removed" in result["msg"] and str(stuck) in result["msg"]
        assert "Traceback" not in result.get("module_stderr", "")
        assert sorted(os.listdir(str(target))) == ["a"] and os.listdir(str(target / "a" / "b")) == ["stuck"]
        assert snapshot(base, skip=[target]) == outside_before
    finally:
        subprocess.run(["chattr", "-i", str(stuck)], check=True)
    rerun = module_runner("remove", {"paths": [str(target)]})
    assert rerun["changed"] is True and not rerun.get("failed") and not os.path.lexists(str(target))


def test_refused_input_changes_nothing(module_batch_runner, world, tmp_path):
    base, target = world
    before = snapshot(base)
    cases = [
        ({"paths": [""]}, "empty"),
        ({"paths": ["/"]}, "root of a filesystem"),
        ({"paths": ["relative/x"]}, "not an absolute path"),
        ({"paths": [str(target) + "/../outside"]}, "'..'"),
        ({"paths": [str(base) + "/*"]}, "glob"),
        ({"paths": ["/usr"]}, "protected"),
        ({"paths": ["/root"]}, "protected"),
        ({"paths": [str(target), "/root/.cache"]}, "protected"),
        ({"paths": ["~bob/x"]}, "only '~'"),
        ({"paths": [str(target)], "backup": str(target / "a")}, "inside"),
        ({"paths": [str(target)], "older_than": "whenever"}, "older_than"),
        ({"paths": [str(target)], "keep": [""]}, "keep"),
        ({"paths": [str(target)], "backup": "rel/dir"}, "backup"),
        ({"targets": ["no_such_profile"]}, "no_such_profile"),
        ({"targets": ["evil"], "profiles": {"evil": {"paths": ["{home}"]}}, "homes": [str(base / "home_bob")]},
         "protected"),
    ]
    results = module_batch_runner("remove", [c[0] for c in cases])
    for (args, message), result in zip(cases, results):
        assert_clean_failure(result, message, case=args)
    assert snapshot(base) == before


def test_tilde_without_home_is_refused(module_runner, world):
    base, target = world
    before = snapshot(base)
    result = module_runner("remove", {"paths": ["~/x"]}, env={"HOME": ""})
    assert_clean_failure(result, "HOME is not set")
    assert snapshot(base) == before


def test_backup_then_restore_gives_identical_files(module_runner, world, tmp_path):
    base, target = world
    before = snapshot(target)
    result = module_runner("remove", {"paths": [str(target)], "backup": str(tmp_path / "bk"),
                                      "backup_format": "tar.xz"})
    assert result["changed"] and not result.get("failed")
    backup = result["backup"]
    assert backup["entries"] == len(before) + 1 and backup["bytes"] == os.path.getsize(backup["path"])
    with open(backup["path"], "rb") as f:
        assert hashlib.sha256(f.read()).hexdigest() == backup["sha256"]
    restore = tmp_path / "restore"
    restore.mkdir()
    subprocess.run(["tar", "-xJf", backup["path"], "-C", str(restore)], check=True)
    assert snapshot(str(restore) + str(target)) == before


def test_profile_targets_with_older_than_and_keep(tmp_path):
    home = tmp_path / "home_carol"
    cache = home / ".cache" / "toolx"
    (cache / "models").mkdir(parents=True)
    old = time.time() - 90 * 86400
    for name in ("a.bin", "b.bin", "settings.yaml"):
        write(cache / "models" / name, name * 100)
        os.utime(str(cache / "models" / name), (old, old))
    write(cache / "fresh.bin", "new")
    args = {"targets": ["toolx"], "profiles": {"toolx": {"paths": ["{user_cache}/toolx"]}},
            "homes": [str(home)], "older_than": "30d", "keep": ["*.yaml"], "scan_processes": False}
    # check mode, the real run and the second run in one ansible-playbook
    checked, done, again = run_tasks([{"module": "remove", "args": args, "check_mode": True},
                                      {"module": "remove", "args": args}, {"module": "remove", "args": args}])
    assert checked["removed"] == done["removed"]
    assert done["removed"][0]["target"] == "toolx" and done["removed"][0]["files"] == 2
    assert again["changed"] is False
    assert sorted(os.listdir(str(cache / "models"))) == ["settings.yaml"]
    assert (cache / "fresh.bin").exists()


@pytest.mark.skipif(not IS_ROOT, reason="mount --bind needs root")
def test_bind_mount_inside_the_target_is_not_entered(module_runner, world):
    base, target = world
    mnt = target / "a" / "mnt"
    mnt.mkdir()
    outside_before = snapshot(base / "outside")
    subprocess.run(["mount", "--bind", str(base / "outside"), str(mnt)], check=True)
    try:
        result = module_runner("remove", {"paths": [str(target)]})
        assert not result.get("failed") and result["changed"]
        assert any("mount point" in p for p in result["problems"])
        assert subprocess.run(["mountpoint", "-q", str(mnt)], check=False).returncode == 0
    finally:
        subprocess.run(["umount", str(mnt)], check=True)
    assert snapshot(base / "outside") == outside_before


def test_racing_swaps_during_module_run(module_runner, tmp_path):
    """While the module runs, a thread swaps target directories for symlinks to outside, over and over."""
    outside = tmp_path / "outside"
    outside.mkdir()
    for i in range(10):
        write(outside / ("o%d" % i), "outside %d" % i)
    before = snapshot(outside)
    target = tmp_path / "target"
    for d in range(300):
        (target / ("d%d" % d)).mkdir(parents=True)
        for f in range(20):
            write(target / ("d%d" % d) / ("f%d" % f), "x")
    stop, swaps = [], [0]

    def swapper():
        n = 0
        while not stop:
            victim = str(target / ("d%d" % (n % 300)))
            try:
                os.rename(victim, victim + ".aside")
                os.symlink(str(outside), victim)
                swaps[0] += 1
                os.unlink(victim)
                os.rename(victim + ".aside", victim)
            except OSError:
                pass
            n += 1

    thread = threading.Thread(target=swapper)
    thread.start()
    try:
        module_runner("remove", {"paths": [str(target)]})
    finally:
        stop.append(True)
        thread.join()
    assert swaps[0] > 0
    assert snapshot(outside) == before


@pytest.mark.skipif(not IS_ROOT, reason="a tmpfs for the deep tree needs root (this disk deletes 10,000 dirs slowly)")
def test_ten_thousand_levels_through_the_module(module_runner, tmp_path):
    mnt = tmp_path / "fs"
    mnt.mkdir()
    subprocess.run(["mount", "-t", "tmpfs", "-o", "size=256m", "tmpfs", str(mnt)], check=True)
    try:
        (mnt / "outside").mkdir()
        write(mnt / "outside" / "keep", "outside")
        (mnt / "deep").mkdir()
        fd = os.open(str(mnt / "deep"), os.O_RDONLY | os.O_DIRECTORY)
        try:
            for _level in range(10000):
                os.mkdir("d", dir_fd=fd)
                child = os.open("d", os.O_RDONLY | os.O_DIRECTORY, dir_fd=fd)
                os.close(fd)
                fd = child
            os.symlink(str(mnt / "outside"), "to_outside", dir_fd=fd)
        finally:
            os.close(fd)
        before = snapshot(mnt / "outside")
        result = module_runner("remove", {"paths": [str(mnt / "deep")], "scan_processes": False})
        assert not result.get("failed") and result["changed"]
        assert result["removed"][0]["dirs"] == 10001 and result["removed"][0]["files"] == 1
        assert os.listdir(str(mnt)) == ["outside"]
        assert snapshot(mnt / "outside") == before
    finally:
        subprocess.run(["umount", "-l", str(mnt)], check=True)
