# -*- coding: utf-8 -*-
# Copyright: residue.purge contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Real throwaway users (useradd, removed afterwards) with homes in a world-searchable sandbox, for tests of what
root does to a user's files: import the fixtures (`from ...realusers import sandbox, make_user`) and the helpers."""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import hashlib
import os
import pwd
import shutil
import stat
import subprocess
import tempfile
import time
import uuid

import pytest


def write(path, data, mode=None):
    with open(str(path), "wb") as f:
        f.write(data if isinstance(data, bytes) else data.encode())
    if mode is not None:
        os.chmod(str(path), mode)


def digest(root):
    """Every path under root with its type, mode, owner, link count and content: equal means unchanged."""
    root = os.fsencode(str(root))
    found = {}
    for dirpath, dirnames, filenames in os.walk(root):
        for name in dirnames + filenames:
            path = os.path.join(dirpath, name)
            st = os.lstat(path)
            detail = None
            if stat.S_ISREG(st.st_mode):
                with open(path, "rb") as f:
                    detail = hashlib.sha256(f.read()).hexdigest()
            elif stat.S_ISLNK(st.st_mode):
                detail = os.readlink(path)
            found[os.path.relpath(path, root)] = (st.st_mode, st.st_uid, st.st_nlink, detail)
    return found


@pytest.fixture
def sandbox():
    """A world-searchable directory (a real host's homes are reachable from '/'), removed afterwards."""
    path = tempfile.mkdtemp(prefix="rp-stores-", dir="/tmp")
    os.chmod(path, 0o755)
    yield path
    subprocess.run(["umount", "-R", "-l", path], capture_output=True, check=False)
    for line in open("/proc/self/mountinfo").read().splitlines():
        assert (" " + path) not in line, "a test mount was left behind"
    shutil.rmtree(path, ignore_errors=True)


@pytest.fixture
def make_user(sandbox):
    made = []

    def make():
        name = "rps" + uuid.uuid4().hex[:8]
        home = os.path.join(sandbox, "home", name)
        os.makedirs(os.path.dirname(home), exist_ok=True)
        subprocess.run(["useradd", "--home-dir", home, "--create-home", "--shell", "/usr/sbin/nologin", name],
                       check=True, capture_output=True)
        made.append(name)
        return pwd.getpwnam(name)

    yield make
    for name in made:
        end_processes_of(pwd.getpwnam(name).pw_uid)
        done = subprocess.run(["userdel", name], capture_output=True, check=False)
        assert done.returncode == 0, done.stderr


def end_processes_of(uid, timeout=10):
    """Wait for the throwaway user's processes (all started by the test) to end; those still there after
    timeout are killed by pid."""
    deadline, killed = time.time() + timeout, False
    while True:
        pids = []
        for pid in os.listdir("/proc"):
            try:
                if pid.isdigit() and os.stat("/proc/" + pid).st_uid == uid:
                    pids.append(int(pid))
            except OSError:
                continue
        if not pids:
            return
        if time.time() > deadline:
            if killed:
                return  # userdel names what is left
            killed = True
            for pid in pids:
                try:
                    os.kill(pid, 9)
                except OSError:
                    pass
            deadline = time.time() + timeout
        time.sleep(0.1)


def as_user(user, *argv):
    subprocess.run(["runuser", "-u", user.pw_name, "--"] + list(argv), check=True, cwd="/", capture_output=True)


def chown_tree(user, path):
    subprocess.run(["chown", "-R", "-h", "%d:%d" % (user.pw_uid, user.pw_gid), path], check=True)
