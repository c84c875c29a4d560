# -*- coding: utf-8 -*-
# Copyright: residue.purge contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""residue.purge.open_deleted through real ansible-playbook, against real processes holding real deleted files.

The oracle is lsof itself: `lsof -nP +L1` for deleted files held through descriptors, and plain `lsof -nP`
(FD "DEL") for deleted files that are only mapped (+L1 does not list those: a mapping has no link count).
Every process here is started by the test under a unique name and killed by its PID.
"""
import json
import os
import pwd
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import uuid

import psutil
import pytest
import yaml
from conftest import REPO, ansible_env, run_tasks

LSOF = "/usr/bin/lsof"

HOLDER = r"""
import ctypes, os, signal, sys, time
libc = ctypes.CDLL(None, use_errno=True)
libc.mmap.restype = ctypes.c_void_p
libc.mmap.argtypes = [ctypes.c_void_p, ctypes.c_size_t, ctypes.c_int, ctypes.c_int, ctypes.c_int, ctypes.c_long]
MAP_FAILED = ctypes.c_void_p(-1).value
keep = []
def create(path, size):
    with open(path, "wb") as f:
        f.write(os.urandom(size))
def mmap(fd, size):
    assert libc.mmap(None, size, 1, 1, fd, 0) not in (None, MAP_FAILED)
for spec in sys.argv[1:]:
    if spec == "noterm":
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
        continue
    if spec.startswith("respawn="):
        continue
    kind, rest = spec.split("=", 1)
    path, _, size = rest.rpartition(":")
    size = int(size)
    if kind == "open":             # the test creates and unlinks it (shared by several holders)
        keep.append(os.open(path, os.O_RDONLY))
        continue
    if kind == "cwd":              # the test removes the directory
        os.chdir(path)
        continue
    create(path, size)
    fd = os.open(path, os.O_RDONLY)
    if kind == "linked":           # another hard link remains: nothing is pinned, nothing reported
        os.link(path, path + ".keep")
    if kind in ("map", "both"):
        mmap(fd, size)
    if kind == "map":
        os.close(fd)
    else:
        keep.append(fd)
    if kind != "plain":            # plain: still linked, never reported
        os.unlink(path)
respawn = [a.split("=", 1)[1].rpartition(":")[0] for a in sys.argv if a.startswith("respawn=")]
if respawn:                        # a supervisor: ignores TERM, keeps one child alive; both hold the fds
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    def child():
        pid = os.fork()
        if pid == 0:
            signal.signal(signal.SIGTERM, signal.SIG_DFL)
            while True:
                time.sleep(60)
        with open(respawn[0], "a") as f:   # so that the test can clean up by PID whatever happens
            f.write("%d\n" % pid)
        return pid
    child()
    sys.stdout.write("ready\n")
    sys.stdout.flush()
    while True:
        os.wait()
        child()
sys.stdout.write("ready\n")
sys.stdout.flush()
while True:
    time.sleep(60)
"""


class Holders(object):
    """Start holder processes under unique names; kill exactly those PIDs at the end."""

    def __init__(self, tmp):
        self.tmp = tmp
        self.procs = []
        self.python = os.path.realpath(sys.executable)

    def start(self, *specs, **kwargs):
        name = "odh-" + uuid.uuid4().hex[:10]       # comm is the basename of the executed path
        exe = os.path.join(self.tmp, name)
        if kwargs.get("copy"):     # a private copy of the interpreter, deleted once running: lsof's "txt"
            shutil.copy2(kwargs.get("python", self.python), exe)
        else:
            os.symlink(kwargs.get("python", self.python), exe)
        proc = subprocess.Popen([exe, "-c", HOLDER] + list(specs), stdout=subprocess.PIPE,
                                stderr=subprocess.DEVNULL, stdin=subprocess.DEVNULL, text=True,
                                **kwargs.get("credentials", {}))
        self.procs.append(proc)
        assert proc.stdout.readline().strip() == "ready", "holder %s did not start" % name
        if kwargs.get("copy"):
            os.unlink(exe)
        proc.comm = name[:15]
        return proc

    def cleanup(self):
        for proc in self.procs:
            if proc.poll() is None:
                proc.kill()
            proc.wait()


@pytest.fixture
def holders(tmp_path):
    h = Holders(str(tmp_path))
    yield h
    h.cleanup()


def lsof_entries(pids, deleted_only):
    """{(pid, fd, path, inode, size)} from lsof's field output (independent of the module's own parser)."""
    cmd = [LSOF, "-nP", "-a", "-p", ",".join(str(p) for p in pids), "-F", "pfsin"]
    if deleted_only:
        cmd.insert(2, "+L1")
    out = subprocess.run(cmd, capture_output=True, text=True, check=False).stdout
    entries, pid, current = set(), None, None

    def flush():
        if current is not None:
            entries.add((pid, current.get("f"), current.get("n", "").replace(" (deleted)", ""),
                         int(current["i"]) if "i" in current else None, int(current["s"]) if "s" in current else None))

    for line in out.splitlines():
        if not line:
            continue
        tag, value = line[0], line[1:]
        if tag == "p":
            flush()
            pid, current = int(value), None
        elif tag == "f":
            flush()
            current = {"f": value}
        elif current is not None:
            current[tag] = value
    flush()
    if deleted_only:
        return entries
    return set(e for e in entries if e[1] == "DEL")


def ours(result, pids, mapped):
    return set((h["pid"], h["fd"], h["path"], h["inode"], None if mapped else h["bytes"])
               for h in result["handles"] if h["pid"] in pids and (h["fd"] == "DEL") == mapped)


def test_report_matches_lsof(module_runner, holders, tmp_path):
    d = str(tmp_path)
    shared = os.path.join(d, "shared weights.bin")       # a space in the name, held by two processes
    with open(shared, "wb") as f:
        f.write(os.urandom(70000))
    a = holders.start("fd=%s/a.bin:123457" % d, "open=%s:0" % shared, "plain=%s/plain.bin:10" % d)
    b = holders.start("map=%s/b.safetensors:65536" % d, "open=%s:0" % shared, "both=%s/c.bin:5000" % d,
                      "linked=%s/linked.bin:999" % d)
    os.mkdir(os.path.join(d, "workdir"))
    c = holders.start("cwd=%s/workdir:0" % d, copy=True)       # deleted executable and working directory
    os.rmdir(os.path.join(d, "workdir"))
    os.unlink(shared)
    pids = {a.pid, b.pid, c.pid}

    result = module_runner("open_deleted", {"under": [d]})
    assert not result.get("failed"), result.get("msg")
    assert result["changed"] is False

    expected_fds = lsof_entries(pids, deleted_only=True)
    expected_maps = lsof_entries(pids, deleted_only=False)
    assert ours(result, pids, mapped=False) == expected_fds
    assert ours(result, pids, mapped=True) == set((p, f, n, i, None) for p, f, n, i, _s in expected_maps)
    # what the test itself set up, so that an empty lsof answer cannot pass
    assert sorted((h["pid"], os.path.basename(h["path"]), h["fd"] == "DEL") for h in result["handles"]
                  if h["pid"] in pids) == sorted([
                      (a.pid, "a.bin", False), (a.pid, "shared weights.bin", False),
                      (b.pid, "b.safetensors", True), (b.pid, "shared weights.bin", False),
                      (b.pid, "c.bin", False), (b.pid, "c.bin", True),
                      (c.pid, "workdir", False), (c.pid, c.comm, False)])
    assert {(h["fd"], h["path"]) for h in result["handles"] if h["pid"] == c.pid} == {
        ("cwd", os.path.join(d, "workdir")), ("txt", os.path.join(d, c.comm))}   # its mappings are "txt" too
    assert {h["name"] for h in result["handles"] if h["pid"] in pids} == {a.comm, b.comm, c.comm}
    assert {h["user"] for h in result["handles"]} == {"root"} if os.geteuid() == 0 else True

    # pinned bytes: each file once (shared is held by two processes, c.bin by an fd and a mapping)
    fs = result["handles"][0]["filesystem"]
    sizes = {"a.bin": 123457, "shared weights.bin": 70000, "b.safetensors": 65536, "c.bin": 5000,
             c.comm: os.path.getsize(holders.python)}
    unique = dict(((h["device"], h["inode"]), h) for h in result["handles"] if h["fd"] != "cwd")
    assert len(unique) == 5
    assert sum(h["bytes"] for h in unique.values()) == sum(sizes.values())
    workdir = [h for h in result["handles"] if h["fd"] == "cwd"][0]
    assert result["pinned_bytes"] == {fs: sum(h["disk_bytes"] for h in unique.values()) + workdir["disk_bytes"]}
    assert result["pinned_bytes"][fs] >= sum(sizes.values())
    assert "fstype" not in result["handles"][0] and result["filesystems"][0]["fstype"]
    # report never signals
    assert a.poll() is None and b.poll() is None and c.poll() is None


def test_filters_under_and_min_bytes(module_runner, holders, tmp_path):
    d = str(tmp_path)
    os.mkdir(os.path.join(d, "models"))
    os.mkdir(os.path.join(d, "models-not"))
    os.symlink(os.path.join(d, "models"), os.path.join(d, "via-link"))
    p = holders.start("fd=%s/models/big.bin:300000" % d, "fd=%s/models/small.bin:100" % d,
                      "fd=%s/models-not/big.bin:300000" % d)
    # a whole residue directory removed with rm -rf: the kernel still names the file by its old path
    gone = os.path.join(d, "removed-cache")
    os.makedirs(os.path.join(gone, "sub"))
    q = holders.start("plain=%s/sub/w.bin:300000" % gone, "plain=%s/sub/tiny.bin:10" % gone)
    shutil.rmtree(gone)
    result = module_runner("open_deleted", {"under": [os.path.join(d, "via-link"), gone], "min_bytes": "200K"})
    assert not result.get("failed"), result.get("msg")
    assert [(h["pid"], h["path"]) for h in result["handles"]] == [
        (p.pid, os.path.join(d, "models", "big.bin")), (q.pid, os.path.join(gone, "sub", "w.bin"))]
    assert result["changed"] is False


def test_hostile_names(module_runner, holders, tmp_path):
    d = str(tmp_path)
    not_utf8 = b"/bad\xffname.bin".decode("utf-8", "surrogateescape")   # raw bytes through argv
    p = holders.start("fd=%s/evil\nname.bin:10" % d, "map=%s/evil\nmap.bin:4096" % d, "fd=%s%s:10" % (d, not_utf8))
    result = module_runner("open_deleted", {"under": [d]})
    assert not result.get("failed"), result.get("msg")      # one such name must not sink the whole result
    assert sorted((h["pid"], h["fd"] == "DEL", h["path"]) for h in result["handles"]) == sorted([
        (p.pid, False, d + "/evil\nname.bin"), (p.pid, True, d + "/evil\nmap.bin"),
        (p.pid, False, d + "/bad\\xffname.bin")])


@pytest.fixture
def tmpfs(tmp_path):
    if os.geteuid() != 0:
        pytest.fail("this test mounts a tmpfs and needs root (the lab runs as root)")
    mnt = str(tmp_path / "mnt")
    os.mkdir(mnt)
    subprocess.run(["mount", "-t", "tmpfs", "-o", "size=64m", "tmpfs", mnt], check=True)
    try:
        yield mnt
    finally:
        subprocess.run(["umount", "-l", mnt], check=False)


def free(mnt):
    st = os.statvfs(mnt)
    return st.f_bavail * st.f_frsize


def test_terminate_frees_the_pinned_space(module_runner, holders, tmpfs):
    quits = holders.start("fd=%s/weights.bin:5000000" % tmpfs, "both=%s/tok.bin:12345" % tmpfs)
    stubborn = holders.start("noterm", "map=%s/mapped.bin:3000000" % tmpfs)
    with open(os.path.join(tmpfs, "live.bin"), "wb") as f:
        f.write(b"x" * 4096)
    bystander = holders.start("open=%s/live.bin:0" % tmpfs)   # holds a file that still exists
    pids = {quits.pid, stubborn.pid}
    args = {"under": [tmpfs], "action": "terminate", "grace": 1}

    free_before = free(tmpfs)
    check = module_runner("open_deleted", args, check=True, diff=True)
    assert not check.get("failed"), check.get("msg")
    assert check["changed"] is True
    assert sorted((t["pid"], t["outcome"]) for t in check["terminated"]) == sorted(
        [(quits.pid, "would_stop"), (stubborn.pid, "would_stop")])
    assert quits.poll() is None and stubborn.poll() is None and free(tmpfs) == free_before
    assert "remaining" not in check and "weights.bin" in check["_stdout"]

    # the real run and the second one in one ansible-playbook (the second changes nothing: asserted below)
    result, again = run_tasks([{"module": "open_deleted", "args": args}] * 2, diff=True)
    free_after = free(tmpfs)
    assert not result.get("failed"), result.get("msg")
    assert result["changed"] is True
    assert {h["pid"] for h in result["handles"]} == pids
    pinned = result["pinned_bytes"][tmpfs]
    assert pinned >= 5000000 + 12345 + 3000000
    assert free_after - free_before == pinned                 # statvfs measured by the test itself
    [fs] = result["filesystems"]
    assert fs["freed_bytes"] == pinned and fs["free_bytes_after"] - fs["free_bytes_before"] == pinned
    assert sorted((t["pid"], t["outcome"], t["signal"]) for t in result["terminated"]) == sorted(
        [(quits.pid, "exited", "TERM"), (stubborn.pid, "killed", "KILL")])
    assert result["survivors"] == [] and result["remaining"] == [] and result["spared"] == []
    assert quits.wait(5) == -signal.SIGTERM and stubborn.wait(5) == -signal.SIGKILL
    assert bystander.poll() is None
    assert "weights.bin" in result["_stdout"]                 # the diff names what was held
    assert not again.get("failed") and again["changed"] is False
    assert again["handles"] == [] and again["terminated"] == []


def test_terminate_outlasts_a_respawning_supervisor(module_runner, holders, tmp_path):
    # the supervisor ignores TERM; when its child dies it forks a new one that inherits the deleted file,
    # which only a fresh scan after the first round can find
    pidfile = str(tmp_path / "children.pids")
    sup = holders.start("respawn=%s:0" % pidfile, "fd=%s/held.bin:65536" % tmp_path)
    try:
        result = module_runner("open_deleted", {"under": [str(tmp_path)], "action": "terminate", "grace": 1})
        assert not result.get("failed"), result.get("msg")
        with open(pidfile) as f:
            children = [int(line) for line in f]
        stopped = dict((t["pid"], t["outcome"]) for t in result["terminated"])
        assert stopped.pop(sup.pid) == "killed"
        assert len(children) >= 2 and sorted(stopped) == sorted(children)   # first and respawned children
        assert set(stopped.values()) == {"exited"}
        assert result["remaining"] == [] and result["survivors"] == []
        assert sup.wait(5) == -signal.SIGKILL
    finally:
        with open(pidfile) as f:
            for pid in (int(line) for line in f):
                try:
                    with open("/proc/%d/comm" % pid) as comm:
                        if comm.read().strip() != sup.comm:
                            continue                      # gone, and the PID now belongs to someone else
                    os.kill(pid, signal.SIGKILL)
                except (OSError, ProcessLookupError):
                    pass


def test_never_signals_its_own_ancestors(module_runner, tmp_path):
    # pytest is an ancestor of the module process (pytest -> ansible-playbook -> ... -> module)
    path = str(tmp_path / "held-by-pytest.bin")
    with open(path, "wb") as f:
        f.write(b"p" * 8192)
    fd = os.open(path, os.O_RDONLY)
    os.unlink(path)
    try:
        result = module_runner("open_deleted", {"under": [str(tmp_path)], "action": "terminate", "grace": 1})
        assert not result.get("failed"), result.get("msg")
        assert [h["pid"] for h in result["handles"]] == [os.getpid()]
        assert [s["pid"] for s in result["spared"]] == [os.getpid()]
        assert result["terminated"] == [] and result["changed"] is False
        assert any("never signalled" in p for p in result["problems"])
        assert os.fstat(fd).st_nlink == 0                      # still here, still holding it
    finally:
        os.close(fd)


@pytest.fixture
def login_user():
    """A throwaway non-root user with a login shell, for the unprivileged run; removed afterwards."""
    name = "rpod" + uuid.uuid4().hex[:8]
    subprocess.run(["useradd", "-M", "-d", "/nonexistent", "-s", "/bin/sh", name], check=True)
    try:
        yield pwd.getpwnam(name)
    finally:
        subprocess.run(["userdel", name], check=False)


def test_unprivileged_user_sees_its_own_processes_and_says_what_it_missed(module_runner, login_user):
    user = login_user
    shared = tempfile.mkdtemp(prefix="odh-shared-", dir="/tmp")   # pytest's tmp_path is closed to others
    os.chmod(shared, 0o1777)
    h = Holders(shared)
    try:
        roots = h.start("fd=%s/root.bin:100" % shared)
        # all of uid, gid and groups: the kernel lets a user read only processes whose credentials all match
        mine = h.start("fd=%s/mine.bin:200" % shared, python="/usr/bin/python3",
                       credentials=dict(user=user.pw_uid, group=user.pw_gid, extra_groups=[]))
        result = module_runner("open_deleted", {"under": [shared]}, become_user=user.pw_name,
                               interpreter="/usr/bin/python3")
        assert not result.get("failed"), result.get("msg")
        assert [(x["pid"], x["user"], x["path"]) for x in result["handles"]] == [
            (mine.pid, user.pw_name, shared + "/mine.bin")]
        assert result["scan"]["denied"] > 0 and roots.pid in result["scan"]["denied_pids"]
        assert any("run with become" in p for p in result["problems"])
        assert roots.poll() is None and mine.poll() is None

        result = module_runner("open_deleted", {"under": [shared], "action": "terminate", "grace": 2},
                               become_user=user.pw_name, interpreter="/usr/bin/python3")
        assert not result.get("failed"), result.get("msg")
        assert [(t["pid"], t["outcome"]) for t in result["terminated"]] == [(mine.pid, "exited")]
        assert mine.wait(5) == -signal.SIGTERM and roots.poll() is None
    finally:
        h.cleanup()
        shutil.rmtree(shared)


def test_without_psutil_reports_but_refuses_to_terminate(module_runner, holders, tmp_path):
    bare = str(tmp_path / "bare-venv")                        # a real interpreter with the stdlib only
    subprocess.run([os.path.realpath(sys.executable), "-m", "venv", "--without-pip", bare], check=True)
    python = os.path.join(bare, "bin", "python")
    assert subprocess.run([python, "-c", "import psutil"], capture_output=True, check=False).returncode != 0
    p = holders.start("fd=%s/x.bin:100" % tmp_path)
    result = module_runner("open_deleted", {"under": [str(tmp_path)]}, interpreter=python)
    assert not result.get("failed"), result.get("msg")
    assert [h["pid"] for h in result["handles"]] == [p.pid]
    result = module_runner("open_deleted", {"under": [str(tmp_path)], "action": "terminate"}, interpreter=python)
    assert result.get("failed") is True
    assert "psutil" in result["msg"] and "pip install psutil" in result["msg"]
    assert "terminated" not in result
    assert p.poll() is None


BAD_INPUT = [
    ({"under": ["relative/dir"]}, "under: 'relative/dir' is not an absolute path"),
    ({"under": [""]}, "under: every entry must be a non-empty absolute path"),
    ({"min_bytes": "lots"}, "min_bytes: expected a size"),
    ({"action": "terminate", "signal": "NOPE"}, "signal: unknown signal 'NOPE'"),
    ({"action": "terminate", "grace": -1}, "grace: expected a number of seconds >= 0"),
    ({"action": "terminate", "under": []}, "under: action=terminate needs the residue directories"),
    ({"action": "terminate", "under": ["/tmp/.."]}, "under: '/' would stop every process"),
]


def test_bad_input_fails_cleanly_and_stops_nothing(module_batch_runner, holders, tmp_path):
    """Every case in one ansible-playbook (a task each): a playbook's start costs more than the module run."""
    p = holders.start("fd=%s/x.bin:100" % tmp_path)
    cases = []
    for args, _message in BAD_INPUT:
        args = dict(args)
        args.setdefault("under", [str(tmp_path)])
        cases.append(args)
    results = module_batch_runner("open_deleted", cases)
    assert len(results) == len(BAD_INPUT)
    for result, (args, message) in zip(results, BAD_INPUT):
        assert result.get("failed") is True, args
        assert message in result["msg"], (args, result["msg"])
        # ansible-core 2.19 marks every fail_json with this placeholder; a crash would carry a real traceback
        assert result.get("exception", "(traceback unavailable)") == "(traceback unavailable)", args
        assert "Traceback (most recent call last)" not in result["_stdout"]
    time.sleep(0.1)
    assert p.poll() is None


def test_over_ssh_on_a_lab_host_with_an_overlay_root(tmp_path):
    """A lab host (own PID/mount/network namespaces, overlay root, sshd; tools/lab/lab.sh): the file lives on
    the overlay's upper layer, whose device no mount table of the host lists; after terminate the free space of
    / as the host sees it grows by exactly the pinned bytes."""
    lab = [os.path.join(REPO, "tools", "lab", "lab.sh"), "--lab", "od" + uuid.uuid4().hex[:6]]
    subprocess.run(lab + ["up", "1"], check=True, capture_output=True, timeout=120)
    try:
        inventory = subprocess.run(lab + ["inventory"], check=True, capture_output=True, text=True).stdout.strip()
        setup = ("mkdir -p /srv/models && head -c 3000000 /dev/urandom > /srv/models/w.bin && "
                 "(setsid sh -c 'exec 3</srv/models/w.bin; exec sleep 300' >/dev/null 2>&1 &) && sleep 0.5 && "
                 "rm /srv/models/w.bin")
        free_cmd = "python3 -c 'import os; s = os.statvfs(\"/\"); print(s.f_bavail * s.f_frsize)'"
        terminate = {"under": ["/srv/models"], "action": "terminate", "grace": 2}
        save = "{{ {'r': r, 'before': before.stdout, 'after': after.stdout} | to_json }}"
        play = [{"name": "lab", "hosts": "all", "gather_facts": False, "tasks": [
            {"name": "hold a deleted file", "ansible.builtin.shell": setup, "changed_when": True},
            {"name": "free before", "ansible.builtin.command": free_cmd, "register": "before",
             "changed_when": False},
            {"name": "terminate", "residue.purge.open_deleted": terminate, "register": "r"},
            {"name": "free after", "ansible.builtin.command": free_cmd, "register": "after", "changed_when": False},
            {"name": "save", "ansible.builtin.copy": {"content": save, "dest": str(tmp_path / "out.json")},
             "delegate_to": "localhost"},
        ]}]
        playbook = tmp_path / "play.yml"
        playbook.write_text(yaml.safe_dump(play))
        proc = subprocess.run(["ansible-playbook", "-i", inventory, str(playbook)], env=ansible_env(),
                              capture_output=True, text=True, timeout=300, check=False)
        assert proc.returncode == 0, proc.stdout + proc.stderr
        out = json.loads((tmp_path / "out.json").read_text())
        r = out["r"]
        [handle] = r["handles"]
        assert (handle["path"], handle["bytes"], handle["filesystem"], handle["name"]) == (
            "/srv/models/w.bin", 3000000, "/", "sleep")
        assert r["filesystems"][0]["fstype"] == "overlay"
        pinned = r["pinned_bytes"]["/"]
        assert [(t["pid"], t["outcome"]) for t in r["terminated"]] == [(handle["pid"], "exited")]
        assert r["remaining"] == [] and r["filesystems"][0]["freed_bytes"] == pinned
        assert int(out["after"]) - int(out["before"]) == pinned        # measured by the play itself
    finally:
        subprocess.run(lab + ["down"], check=False, capture_output=True, timeout=120)


def test_terminate_leaves_a_holder_of_another_pid_namespace_unless_asked(module_runner, holders, tmp_path):
    """A holder started as PID 1 of its own PID namespace (unshare, as a container's process): terminate lists it
    in other_namespaces with what it holds, does not signal it and does not fail; namespaces=all stops it."""
    name = "odh-" + uuid.uuid4().hex[:10]
    exe = os.path.join(str(tmp_path), name)
    os.symlink(holders.python, exe)
    inside = subprocess.Popen(["unshare", "--pid", "--fork", "--mount-proc", exe, "-c", HOLDER,
                               "fd=%s/contained.bin:65536" % tmp_path], stdout=subprocess.PIPE,
                              stderr=subprocess.DEVNULL, stdin=subprocess.DEVNULL, text=True)
    holders.procs.append(inside)
    assert inside.stdout.readline().strip() == "ready"
    [holder] = [p.pid for p in psutil.Process(inside.pid).children() if p.name() == name[:15]]
    assert os.readlink("/proc/%d/ns/pid" % holder) != os.readlink("/proc/self/ns/pid")
    result = module_runner("open_deleted", {"under": [str(tmp_path)], "action": "terminate", "grace": 1})
    assert not result.get("failed"), result.get("msg")
    assert result["terminated"] == [] and result["survivors"] == []
    [other] = result["other_namespaces"]
    assert other["pid"] == holder and other["paths"] == ["%s/contained.bin" % tmp_path]
    assert other["namespace"] == os.readlink("/proc/%d/ns/pid" % holder)
    assert any("another PID namespace" in p for p in result["problems"])
    assert inside.poll() is None and psutil.Process(holder).is_running()
    result = module_runner("open_deleted", {"under": [str(tmp_path)], "action": "terminate", "grace": 1,
                                            "namespaces": "all"})
    assert not result.get("failed"), result.get("msg")
    assert [(t["pid"], t["outcome"]) for t in result["terminated"]] == [(holder, "killed")]  # init: TERM ignored
    assert result["other_namespaces"] == [] and result["remaining"] == []
    inside.wait(10)
