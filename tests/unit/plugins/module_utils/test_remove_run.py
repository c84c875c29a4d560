"""_remove.run: refused input, verified backup (restore gives identical files; corruption stops removal),
free-space check, check mode = real run, statvfs per filesystem. Real files, real tar, real mounts."""
from __future__ import absolute_import, division, print_function

__metaclass__ = type

import hashlib
import os
import stat
import subprocess

import pytest

from ansible_collections.residue.purge.plugins.module_utils._profiles import ProfileError
from ansible_collections.residue.purge.plugins.module_utils._remove import RemoveError, run, verify_backup

IS_ROOT = os.geteuid() == 0


def write(path, data):
    with open(path if isinstance(path, bytes) else str(path), "wb") as f:
        f.write(data if isinstance(data, bytes) else data.encode())


def snapshot(root):
    root = os.fsencode(str(root))
    found = {}
    for dirpath, dirnames, filenames in os.walk(root):
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


def params(**kw):
    base = dict(paths=[], targets=[], profiles={}, homes=[], users="all", older_than=None, time_field="atime",
                keep=[], backup=None, backup_format="tar.gz", cross_filesystems=False, scan_processes=False)
    base.update(kw)
    return base


@pytest.fixture
def residue(tmp_path):
    target = tmp_path / "residue"
    (target / "models" / "snap").mkdir(parents=True)
    (target / "empty").mkdir()
    write(target / "models" / "weights.bin", os.urandom(300000))
    write(target / "models" / "snap" / "config.json", '{"a": 1}')
    os.symlink("../weights.bin", str(target / "models" / "snap" / "weights.bin"))
    os.symlink("/", str(target / "to_root"))
    write(os.fsencode(str(target)) + b"/odd\nname\xff", "non-utf8 and newline")
    os.mkfifo(str(target / "fifo"))
    os.chmod(str(target / "models" / "weights.bin"), 0o640)
    return target


@pytest.mark.parametrize("fmt,flag", [("tar.gz", "-xzf"), ("tar.xz", "-xJf")])
def test_backup_is_verified_and_restores_identical_files(tmp_path, residue, fmt, flag):
    before = snapshot(residue)
    result = run(params(paths=[str(residue)], backup=str(tmp_path / "bk"), backup_format=fmt))
    assert not residue.exists()
    backup = result["backup"]
    assert backup["path"].endswith("." + fmt) and backup["entries"] == len(before) + 1
    with open(backup["path"], "rb") as f:
        assert hashlib.sha256(f.read()).hexdigest() == backup["sha256"]
    assert verify_backup(backup["path"], backup["manifest"]) == backup["entries"]
    restore = tmp_path / "restore"
    restore.mkdir()
    subprocess.run(["tar", flag, backup["path"], "-C", str(restore)], check=True)
    assert snapshot(str(restore) + str(residue)) == before


def _flip_byte(path, offset_fraction):
    with open(path, "r+b") as f:
        f.seek(0, 2)
        offset = int(f.tell() * offset_fraction)
        f.seek(offset)
        byte = f.read(1)
        f.seek(offset)
        f.write(bytes([byte[0] ^ 0xFF]))


# a flipped byte anywhere (a gzip header, a stored block's length, compressed data, the trailer) is a RemoveError
@pytest.mark.parametrize("fraction", [i / 40.0 for i in range(1, 40)])
def test_corrupted_archive_stops_the_removal(tmp_path, residue, fraction):
    before = snapshot(residue)
    with pytest.raises(RemoveError, match="backup"):
        run(params(paths=[str(residue)], backup=str(tmp_path / "bk")),
            before_verify=lambda archive: _flip_byte(archive, fraction))
    assert snapshot(residue) == before


def test_manifest_mismatch_stops_the_removal(tmp_path, residue):
    before = snapshot(residue)

    def tamper(archive):
        manifest = archive[:-len(".tar.gz")] + ".manifest.jsonl"
        with open(manifest) as f:
            text = f.read()
        with open(manifest, "w") as f:
            f.write(text.replace('"sha256": "', '"sha256": "0', 1))

    with pytest.raises(RemoveError, match="sha256"):
        run(params(paths=[str(residue)], backup=str(tmp_path / "bk")), before_verify=tamper)
    assert snapshot(residue) == before


@pytest.mark.skipif(not IS_ROOT, reason="a small tmpfs for the backup needs root")
def test_not_enough_space_for_backup_fails_first(tmp_path, residue):
    write(residue / "big", os.urandom(2 << 20))
    small = tmp_path / "small"
    small.mkdir()
    subprocess.run(["mount", "-t", "tmpfs", "-o", "size=1m", "tmpfs", str(small)], check=True)
    try:
        before = snapshot(residue)
        with pytest.raises(RemoveError, match="free"):
            run(params(paths=[str(residue)], backup=str(small / "bk")))
        assert snapshot(residue) == before
        assert os.listdir(str(small)) == []  # nothing written either
    finally:
        subprocess.run(["umount", str(small)], check=True)


def test_check_mode_lists_exactly_what_the_real_run_removes(tmp_path, residue):
    other = tmp_path / "second"
    (other / "x").mkdir(parents=True)
    write(other / "x" / "keep.yaml", "k")
    write(other / "x" / "drop.bin", "d" * 9000)
    p = params(paths=[str(residue), str(other), str(tmp_path / "absent")], keep=["*.yaml"])
    before = snapshot(tmp_path)
    planned = run(p, check_mode=True)
    assert snapshot(tmp_path) == before
    done = run(p)
    assert planned["removed"] == done["removed"]
    assert [r["path"] for r in done["removed"]] == [str(residue), str(other)]
    assert done["changed"] and planned["changed"]
    assert (other / "x" / "keep.yaml").exists()
    again = run(p)
    assert not again["changed"] and again["removed"] == [] and again["failures"] == []


@pytest.mark.skipif(not IS_ROOT, reason="a private tmpfs (free space nobody else changes) needs root")
def test_filesystems_report_the_space_that_came_back(tmp_path):
    mnt = tmp_path / "fs"
    mnt.mkdir()
    subprocess.run(["mount", "-t", "tmpfs", "-o", "size=32m", "tmpfs", str(mnt)], check=True)
    try:
        (mnt / "res").mkdir()
        write(mnt / "res" / "blob", os.urandom(8 << 20))
        result = run(params(paths=[str(mnt / "res")]))
        fs = [f for f in result["filesystems"] if f["mount"] == str(mnt)]
        assert len(fs) == 1
        st = os.statvfs(str(mnt))
        assert fs[0]["free_after"] == st.f_bavail * st.f_frsize
        assert fs[0]["freed"] == fs[0]["free_after"] - fs[0]["free_before"] == result["freed_bytes"] == 8 << 20
    finally:
        subprocess.run(["umount", str(mnt)], check=True)


@pytest.mark.parametrize("paths,message", [
    ([""], "empty"),
    (["/"], "root of a filesystem"),
    (["relative/dir"], "not an absolute path"),
    (["/tmp/../etc"], "'..'"),
    (["/tmp/models/*"], "glob"),
    (["/usr"], "protected"),
    (["/etc"], "protected"),
    (["/root"], "protected"),
    (["/root/.cache"], "protected"),
    (["~otheruser/x"], "only '~'"),
])
def test_refused_paths_change_nothing(tmp_path, residue, paths, message):
    before = snapshot(tmp_path)
    with pytest.raises((RemoveError, ProfileError), match=message.replace("*", r"\*")):
        run(params(paths=[str(residue)] + paths))  # the good path is not removed either
    assert snapshot(tmp_path) == before


def test_tilde_without_home_is_refused(residue):
    with pytest.raises(RemoveError, match="HOME is not set"):
        run(params(paths=["~/.cache/x"]), environ={})
    with pytest.raises(RemoveError, match="HOME is not set"):
        run(params(paths=["~"]), environ={"HOME": ""})


def test_tilde_with_home_is_the_home(tmp_path, residue):
    result = run(params(paths=["~/residue"]), environ={"HOME": str(tmp_path)}, check_mode=True)
    assert [r["path"] for r in result["removed"]] == [str(residue)]


@pytest.mark.parametrize("bad,message", [
    (dict(backup="relative"), "backup"),
    (dict(backup_format="zip", backup="/tmp/bk"), "backup_format"),
    (dict(older_than="soon"), "older_than"),
    (dict(time_field="btime"), "time_field"),
    (dict(keep=[""]), "keep"),
])
def test_bad_options_change_nothing(tmp_path, residue, bad, message):
    before = snapshot(tmp_path)
    with pytest.raises(ValueError, match=message):
        run(params(paths=[str(residue)], **bad))
    assert snapshot(tmp_path) == before


def test_backup_inside_the_residue_is_refused(tmp_path, residue):
    before = snapshot(tmp_path)
    with pytest.raises(RemoveError, match="inside"):
        run(params(paths=[str(residue)], backup=str(residue / "models" / "bk")))
    assert snapshot(tmp_path) == before


def test_profiles_resolve_per_home_and_report_owner(tmp_path):
    home = tmp_path / "home_alice"
    (home / ".cache" / "mytool" / "sub").mkdir(parents=True)
    write(home / ".cache" / "mytool" / "sub" / "data", "z" * 10000)
    (home / ".config" / "mytool").mkdir(parents=True)
    if IS_ROOT:  # the user's residue is removed with the user's rights: the whole home is theirs
        for dirpath, dirnames, filenames in os.walk(str(home)):
            for name in [dirpath] + [os.path.join(dirpath, n) for n in dirnames + filenames]:
                os.lchown(name, 4321, 4321)
    profiles = {"mytool": {"paths": ["{user_cache}/mytool", "{user_config}/mytool", "{user_data}/mytool"]}}
    p = params(targets=["mytool"], profiles=profiles, homes=[str(home)])
    planned = run(p, check_mode=True)
    done = run(p)
    assert planned["removed"] == done["removed"]
    assert sorted(r["path"] for r in done["removed"]) == [str(home / ".cache" / "mytool"),
                                                          str(home / ".config" / "mytool")]
    assert all(r["target"] == "mytool" for r in done["removed"])
    if IS_ROOT:
        assert [r["owner"] for r in done["removed"] if r["path"].endswith(".cache/mytool")] == ["4321"]
    assert (home / ".cache").is_dir() and (home / ".config").is_dir()


@pytest.mark.parametrize("breaker", ["corrupt", "interrupt"])
def test_a_failed_backup_leaves_no_archive_and_no_directory_it_made(tmp_path, residue, breaker):
    before = snapshot(residue)
    seen = []

    def fail(archive):
        seen.append(archive)
        assert os.path.getsize(archive) > 0  # the archive was written: the failure comes after
        if breaker == "interrupt":
            raise KeyboardInterrupt()
        _flip_byte(archive, 0.5)

    backups = tmp_path / "backups"
    backups.mkdir()
    with pytest.raises(KeyboardInterrupt if breaker == "interrupt" else RemoveError):
        run(params(paths=[str(residue)], backup=str(backups / "new" / "bk")), before_verify=fail)
    assert seen and not os.path.exists(seen[0])
    assert os.listdir(str(backups)) == []  # new/bk made for this backup, removed with it
    assert snapshot(residue) == before


def test_a_failed_backup_keeps_an_existing_backup_directory_and_its_archives(tmp_path, residue):
    backups = tmp_path / "bk"
    backups.mkdir()
    write(backups / "older.tar.gz", "an earlier run's archive")
    with pytest.raises(RemoveError):
        run(params(paths=[str(residue)], backup=str(backups)), before_verify=lambda a: _flip_byte(a, 0.5))
    assert os.listdir(str(backups)) == ["older.tar.gz"]


def test_profile_targets_with_a_backup_are_archived_and_removed(tmp_path):
    home = tmp_path / "home"
    (home / ".cache" / "bktool" / "m").mkdir(parents=True)
    write(home / ".cache" / "bktool" / "m" / "w.bin", b"w" * 1000)
    result = run(params(targets=["bktool"], profiles={"bktool": {"paths": ["{user_cache}/bktool"]}},
                        homes=[str(home)], backup=str(tmp_path / "bk")))
    assert [r["path"] for r in result["removed"]] == [str(home / ".cache" / "bktool")]
    assert result["backup"]["entries"] == 3 and not (home / ".cache" / "bktool").exists()
    with pytest.raises(RemoveError, match="^backup: .* is a protected directory"):
        run(params(targets=["bktool"], profiles={"bktool": {"paths": ["{user_cache}/bktool"]}},
                   homes=[str(home)], backup=str(home / ".cache")))
