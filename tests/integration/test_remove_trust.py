"""residue.purge.remove through real ansible-playbook on a shared host: run as root, a real user's residue is
removed with that user's rights (what the user could not remove stays and is named, the task fails); run as
that user (become), the same residue is reached with the same rights. Real throwaway user, real files."""
import hashlib
import os
import pwd
import shutil
import stat
import subprocess
import tempfile
import uuid

import pytest

PROFILE = {"trustit": {"paths": ["{user_cache}/trustit"]}}


@pytest.fixture
def user():
    if os.geteuid() != 0:
        pytest.fail("creating a user and acting as them needs root (the lab runs as root)")
    base = tempfile.mkdtemp(prefix="rp-trustit-", dir="/tmp")
    os.chmod(base, 0o755)
    name = "rpi" + uuid.uuid4().hex[:8]
    home = os.path.join(base, name)
    subprocess.run(["useradd", "--home-dir", home, "--create-home", "--shell", "/bin/sh", name], check=True,
                   capture_output=True)
    try:
        yield pwd.getpwnam(name)
    finally:
        done = subprocess.run(["userdel", name], capture_output=True, check=False)
        shutil.rmtree(base, ignore_errors=True)
        assert done.returncode == 0, done.stderr


def as_user(entry, command):
    subprocess.run(["runuser", "-u", entry.pw_name, "--", "sh", "-c", command], check=True, cwd="/")


def digest(root):
    found = {}
    for dirpath, dirnames, filenames in os.walk(root):
        for name in dirnames + filenames:
            path = os.path.join(dirpath, name)
            st = os.lstat(path)
            data = None
            if stat.S_ISREG(st.st_mode):
                with open(path, "rb") as f:
                    data = hashlib.sha256(f.read()).hexdigest()
            found[path] = (st.st_mode, st.st_uid, data)
    return found


def test_root_removes_a_users_residue_with_the_users_rights(module_runner, user):
    residue = os.path.join(user.pw_dir, ".cache", "trustit")
    as_user(user, "mkdir -p '%s/sub' && head -c 20000 /dev/urandom > '%s/sub/weights' && ln -s /etc '%s/etc-link'"
            % (residue, residue, residue))
    locked = os.path.join(residue, "root-dir")
    os.mkdir(locked, 0o755)
    with open(os.path.join(locked, "root-file"), "w") as f:
        f.write("root's")
    before = digest(locked)
    etc_before = digest("/etc/ssh") if os.path.isdir("/etc/ssh") else None
    args = {"targets": ["trustit"], "profiles": PROFILE, "users": [user.pw_name], "scan_processes": False}

    planned = module_runner("remove", args, check=True)
    assert [(r["path"], r["owner"]) for r in planned["removed"]] == [(residue, user.pw_name)]

    result = module_runner("remove", args)
    assert result["failed"] is True and result["failed_count"] == 1, result
    assert result["failures"] == [{"path": os.path.join(locked, "root-file"), "error": "Permission denied"}]
    assert [(r["path"], r["owner"], r["whole"]) for r in result["removed"]] == [(residue, user.pw_name, False)]
    assert digest(locked) == before
    assert sorted(os.listdir(residue)) == ["root-dir"]
    if etc_before is not None:
        assert digest("/etc/ssh") == etc_before

    # the user themselves (no root): the same residue, the same refusal
    mine = module_runner("remove", args, become_user=user.pw_name, interpreter="/usr/bin/python3")
    assert "failures" in mine, mine
    assert mine["failed"] is True and [f["path"] for f in mine["failures"]] == [os.path.join(locked, "root-file")]
    assert digest(locked) == before
