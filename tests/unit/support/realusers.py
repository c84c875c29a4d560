# -*- coding: utf-8 -*-
# Copyright: residue.purge contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Real throwaway users (useradd, removed afterwards) with homes in a world-searchable sandbox, for the tests of
what root does to a user's files (the one home of these fixtures): commands run as them, residues they made, a
digest of a tree, a process of theirs that stops the child acting as them.

A test module binds the fixtures as its own attributes (pytest finds fixtures by module attribute; an unused
import would be a lint error):

    from ansible_collections.residue.purge.tests.unit.support import realusers
    make_user = realusers.make_user
    need_root = realusers.need_root  # autouse: the module fails, not skips, without root
    sandbox = realusers.sandbox
"""
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


@pytest.fixture(autouse=True)
def need_root():
    if os.geteuid() != 0:
        pytest.fail("these tests create users and mounts and act as them: they need root (the lab runs as root)")


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
    path = tempfile.mkdtemp(prefix="rp-users-", dir="/tmp")
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
        name = "rpu" + uuid.uuid4().hex[:8]
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
    """Wait for the throwaway user's processes (all started by the test) to end; those still there after timeout
    are killed by pid."""
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


def seed_as(user, path, files=3, size=5000):
    """A residue the user made themselves (their own files and directories, a link to /etc/passwd)."""
    as_user(user, "mkdir", "-p", os.path.join(path, "sub", "deep"))
    for i in range(files):
        as_user(user, "sh", "-c", "head -c %d /dev/urandom > '%s'" % (size + i, os.path.join(path, "sub", "f%d" % i)))
    as_user(user, "ln", "-s", "/etc/passwd", os.path.join(path, "sub", "link-to-passwd"))


def stopper(user, seconds=8):
    """A process of user's that SIGSTOPs every other process of theirs for `seconds` (the user signalling the
    child that acts as them). Popen; the caller waits for it."""
    script = ("import os, time\n"
              "end = time.time() + %d\n"
              "while time.time() < end:\n"
              "    for pid in os.listdir('/proc'):\n"
              "        if pid.isdigit() and int(pid) != os.getpid():\n"
              "            try:\n"
              "                if os.stat('/proc/' + pid).st_uid == os.getuid():\n"
              "                    os.kill(int(pid), 19)\n"
              "            except OSError:\n"
              "                pass\n" % seconds)
    return subprocess.Popen(["runuser", "-u", user.pw_name, "--", "python3", "-c", script], cwd="/")


def chown_tree(user, path):
    subprocess.run(["chown", "-R", "-h", "%d:%d" % (user.pw_uid, user.pw_gid), path], check=True)
