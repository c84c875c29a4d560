# -*- coding: utf-8 -*-
# Copyright: residue.purge contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""_procs: matching rules (pure) and stopping real processes this test starts.

Every process started here runs under a name with a random suffix (a symlink to /bin/sleep or python3), so
the patterns can only match these; teardown kills only the PIDs started here.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import json
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import uuid

import psutil
import pytest

from ansible_collections.residue.purge.plugins.module_utils import _paths, _procs

SLEEP = shutil.which("sleep")


class Spawner(object):
    """Starts processes under unique names and kills exactly those at the end."""

    def __init__(self):
        self.dir = tempfile.mkdtemp(prefix="rp-procs-")
        self.tag = "rp-test-" + uuid.uuid4().hex[:6]
        self.popens = []

    def name(self, role):
        return "%s-%s" % (self.tag, role)

    def link(self, role, target=SLEEP):
        path = os.path.join(self.dir, self.name(role))
        if not os.path.exists(path):
            os.symlink(target, path)
        return path

    def sleeper(self, role, ignore_term=False, cwd=None, seconds=600):
        exe = self.link(role)
        # an ignored signal stays ignored across exec, so `sleep` itself ignores TERM
        script = "%sexec %s %d" % ("trap '' TERM; " if ignore_term else "", exe, seconds)
        popen = subprocess.Popen(["/bin/sh", "-c", script], cwd=cwd)
        self.popens.append(popen)
        wait_for(lambda: _name(popen.pid) == os.path.basename(exe))
        return popen

    def shell(self, role, script):
        """/bin/sh running script with argv[0] = the unique name (so only its cmdline carries the tag)."""
        popen = subprocess.Popen(["/bin/bash", "-c", "exec -a %s /bin/bash -c %s" % (
            self.name(role), _quote(script))])
        self.popens.append(popen)
        wait_for(lambda: _cmd(popen.pid)[:1] == [self.name(role)])
        return popen

    def cleanup(self):
        for popen in self.popens:
            try:
                for child in psutil.Process(popen.pid).children(recursive=True):
                    if self.tag in " ".join(_cmd(child.pid)) or self.tag in _name(child.pid):
                        child.kill()
            except psutil.Error:
                pass
            if popen.poll() is None:
                popen.kill()
            popen.wait()
        shutil.rmtree(self.dir, ignore_errors=True)


def _quote(text):
    return "'" + text.replace("'", "'\\''") + "'"


def _name(pid):
    try:
        return psutil.Process(pid).name()
    except psutil.Error:
        return ""


def _cmd(pid):
    try:
        return psutil.Process(pid).cmdline()
    except psutil.Error:
        return []


def wait_for(predicate, timeout=10.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.01)
    raise AssertionError("condition not reached in %ss" % timeout)


def alive(popen):
    return popen.poll() is None


@pytest.fixture
def spawn():
    spawner = Spawner()
    yield spawner
    spawner.cleanup()


# ---------------------------------------------------------------------------------------------- pure rules

@pytest.mark.parametrize("path,roots,expected", [
    ("/data/models/x.bin", ["/data/models"], "/data/models"),
    ("/data/models", ["/data/models"], "/data/models"),
    ("/data/models-old/x.bin", ["/data/models"], None),
    ("/data/models/x.bin (deleted)", ["/data/models"], "/data/models"),
    ("/data", ["/data/models"], None),
    ("", ["/data/models"], None),
])
def test_is_under(path, roots, expected):
    assert _paths.root_of(path, roots) == expected


@pytest.mark.parametrize("bad", ["", "  ", "relative/dir", "/", "//", None, 5])
def test_normalise_roots_refuses_bad_paths(bad):
    with pytest.raises(ValueError, match="holding"):
        _paths.normalise_roots([bad], "holding")


def test_normalise_roots_adds_the_resolved_path(tmp_path):
    real = tmp_path / "real"
    real.mkdir()
    (tmp_path / "link").symlink_to(real)
    roots = _paths.normalise_roots([str(tmp_path / "link") + "/"], "holding")
    assert roots == [str(tmp_path / "link"), str(real.resolve())]


def test_match_name_uses_name_argv0_and_exe():
    assert _procs.match_name({"ollama"}, "ollama", [], "")
    assert _procs.match_name({"open-autoglm"}, "python3", ["/opt/bin/open-autoglm", "serve"], "/usr/bin/python3.11")
    assert _procs.match_name({"python3.11"}, "python3", [], "/usr/bin/python3.11")
    assert not _procs.match_name({"ollama"}, "ollama-helper", ["ollama-helper"], "/usr/bin/ollama-helper")
    assert not _procs.match_name(set(), "ollama", [], "")


def test_match_cmdline_searches_joined_argv():
    regexes = _procs.compile_patterns([r" -m open_autoglm( |$)"])
    assert _procs.match_cmdline(regexes, ["python3", "-m", "open_autoglm", "--port", "1"])
    assert not _procs.match_cmdline(regexes, ["less", "/home/a/.config/open_autoglm/log"])
    assert not _procs.match_cmdline(regexes, [])


@pytest.mark.parametrize("bad", ["(unclosed", "", None])
def test_compile_patterns_names_the_bad_pattern(bad):
    with pytest.raises(ValueError, match="cmdline"):
        _procs.compile_patterns([bad])


@pytest.mark.parametrize("given,expected", [
    ("TERM", signal.SIGTERM), ("sigkill", signal.SIGKILL), ("HUP", signal.SIGHUP), (15, signal.SIGTERM),
    ("9", signal.SIGKILL)])
def test_signal_number(given, expected):
    assert _procs.signal_number(given) == expected


@pytest.mark.parametrize("bad", ["NOPE", "SIG_IGN", 0, "0", 999, True, ""])
def test_signal_number_refuses(bad):
    with pytest.raises(ValueError, match="signal"):
        _procs.signal_number(bad)


def test_profile_matchers():
    profile = {"processes": {"names": ["ollama"], "cmdline": ["(^|/)ollama serve"]}, "paths": []}
    assert _procs.profile_matchers(profile) == (["ollama"], ["(^|/)ollama serve"])
    assert _procs.profile_matchers({"processes": {"names": [], "cmdline": []}}) == ([], [])
    assert _procs.profile_matchers({}) == ([], [])


def test_install_hint_names_every_way():
    for way in ("apt install python3-psutil", "dnf install python3-psutil", "pip install psutil"):
        assert way in _procs.PSUTIL_INSTALL_HINT


# ---------------------------------------------------------------------------------------------- guards

def test_kernel_threads_are_detected_and_never_matched():
    kthreads = [p for p in psutil.process_iter(["name", "ppid"]) if p.info["ppid"] == 2]
    if not kthreads:
        pytest.skip("no kernel threads visible (not Linux or a PID namespace)")
    assert _procs.is_kernel_thread(kthreads[0].pid)
    assert not _procs.is_kernel_thread(os.getpid())
    names = [p.info["name"] for p in kthreads[:20]]
    assert _procs.find_processes(names=names) == []


def test_pid1_self_and_ancestors_are_never_matched():
    me = psutil.Process()
    ancestry = [me] + me.parents()
    names = [p.name() for p in ancestry] + [psutil.Process(1).name()]
    # a pattern that matches this test runner's own command line, and the names of every ancestor
    own = re.escape(" ".join(me.cmdline())[:60])
    found = _procs.find_processes(names=names, cmdline=[own])
    protected = {p.pid for p in ancestry} | {1}
    assert not protected.intersection(p.pid for p in found)


def test_stop_refuses_to_signal_self_or_ancestors():
    me = psutil.Process()
    given = [{"pid": p.pid, "create_time": p.create_time(), "name": p.name()} for p in [me] + me.parents()]
    terminated, survivors = _procs.stop_processes(given, grace=0.2)
    assert terminated == [] and survivors == []
    assert me.is_running()


# ---------------------------------------------------------------------------------------------- matching

def test_find_by_name_cmdline_and_user(spawn):
    a = spawn.sleeper("a")
    b = spawn.sleeper("b")
    unrelated = spawn.sleeper("other")
    found = _procs.find_processes(names=[spawn.name("a")], cmdline=[re.escape(spawn.name("b")) + " 600$"])
    by_pid = {p.pid: p for p in found}
    assert set(by_pid) == {a.pid, b.pid}
    assert by_pid[a.pid].matched_by == "name" and by_pid[b.pid].matched_by == "cmdline"
    assert by_pid[a.pid].user == psutil.Process().username()
    assert by_pid[a.pid].ppid == os.getpid() and by_pid[a.pid].cmdline[1:] == ["600"]
    assert unrelated.pid not in by_pid
    assert _procs.find_processes(names=[spawn.name("a")], users=["no-such-user-rp"]) == []
    assert [p.pid for p in _procs.find_processes(names=[spawn.name("a")], users="all")] == [a.pid]


def test_result_of_a_process_with_an_undecodable_argv_is_utf8_text(spawn):
    # a hostile argument (bytes that are not UTF-8) must not make Ansible refuse the whole module result
    exe = spawn.link("argv", os.path.realpath(sys.executable))
    popen = subprocess.Popen([os.fsencode(exe), b"-c", b"import time; time.sleep(600)", b"x\xc3\x28\xff\n<b>"])
    spawn.popens.append(popen)
    wait_for(lambda: _name(popen.pid) == os.path.basename(exe))
    [found] = _procs.find_processes(names=[spawn.name("argv")])
    entry = found.to_dict()
    assert entry["cmdline"] == [exe, "-c", "import time; time.sleep(600)", "x\\xc3(\\xff\n<b>"]
    json.dumps(entry).encode("utf-8")  # what Ansible does with the result: no surrogate left


def test_find_by_holding_cwd_open_file_and_deleted_file(spawn, tmp_path):
    tree = tmp_path / "models"
    tree.mkdir()
    in_cwd = spawn.sleeper("cwd", cwd=str(tree))
    weights = tree / "w.bin"
    weights.write_bytes(b"x" * 100)
    holder = subprocess.Popen([spawn.link("fd", sys.executable), "-c",
                               "import sys,time; f=open(sys.argv[1]); print('ok', flush=True); time.sleep(600)",
                               str(weights)], stdout=subprocess.PIPE)
    spawn.popens.append(holder)
    assert holder.stdout.readline().strip() == b"ok"
    elsewhere = spawn.sleeper("elsewhere", cwd=str(tmp_path))
    found = {p.pid: p.matched_by for p in _procs.find_processes(holding=[str(tree)])}
    assert found.get(in_cwd.pid) == "holding:" + str(tree)
    assert found.get(holder.pid) == "holding:" + str(tree)
    assert elsewhere.pid not in found
    weights.unlink()  # deleted but still open: still pins the tree's disk space
    found = {p.pid for p in _procs.find_processes(holding=[str(tree)])}
    assert holder.pid in found


def test_zombies_are_not_matched(spawn):
    popen = subprocess.Popen([spawn.link("zombie"), "0"])
    spawn.popens.append(popen)
    wait_for(lambda: psutil.Process(popen.pid).status() == psutil.STATUS_ZOMBIE)
    assert _procs.find_processes(names=[spawn.name("zombie")]) == []


# ---------------------------------------------------------------------------------------------- stopping

def test_check_mode_sends_nothing(spawn):
    victim = spawn.sleeper("check")
    child_host = spawn.shell("tree", "%s 600 & wait" % spawn.link("treechild"))
    wait_for(lambda: len(psutil.Process(child_host.pid).children()) == 1)
    procs = _procs.find_processes(names=[spawn.name("check")], cmdline=["^" + re.escape(spawn.name("tree"))])
    terminated, survivors = _procs.stop_processes(procs, check_mode=True)
    assert survivors == []
    assert {t["outcome"] for t in terminated} == {"would_stop"}
    assert {t["name"] for t in terminated} >= {spawn.name("check"), spawn.name("treechild")}
    time.sleep(0.2)
    assert alive(victim) and alive(child_host)
    assert psutil.Process(child_host.pid).children()


def test_term_then_kill_for_processes_that_ignore_term(spawn):
    polite = spawn.sleeper("polite")
    stubborn = spawn.sleeper("stubborn", ignore_term=True)
    bystander = spawn.sleeper("bystander")
    procs = _procs.find_processes(names=[spawn.name("polite"), spawn.name("stubborn")])
    started = time.monotonic()
    terminated, survivors = _procs.stop_processes(procs, grace=1)
    elapsed = time.monotonic() - started
    outcomes = {t["pid"]: (t["outcome"], t["signal"]) for t in terminated}
    assert survivors == []
    assert outcomes == {polite.pid: ("exited", "TERM"), stubborn.pid: ("killed", "KILL")}
    assert polite.wait(5) == -signal.SIGTERM and stubborn.wait(5) == -signal.SIGKILL
    assert 0.9 < elapsed < 10  # the grace is waited, and not much more (bounds wide enough for a loaded machine)
    assert alive(bystander)


def test_without_kill_after_grace_the_stubborn_one_is_a_survivor(spawn):
    stubborn = spawn.sleeper("stubborn", ignore_term=True)
    terminated, survivors = _procs.stop_processes(_procs.find_processes(names=[spawn.name("stubborn")]),
                                                  grace=0.3, kill_after_grace=False)
    assert terminated == []
    assert [(s["pid"], s["outcome"]) for s in survivors] == [(stubborn.pid, "survived")]
    assert "grace" in survivors[0]["error"]
    assert alive(stubborn)


def test_waiting_is_parallel(spawn):
    popens = [spawn.sleeper("p%d" % i, ignore_term=True) for i in range(20)]
    procs = _procs.find_processes(names=[spawn.name("p%d" % i) for i in range(20)])
    assert len(procs) == 20
    started = time.monotonic()
    terminated, survivors = _procs.stop_processes(procs, grace=1)
    elapsed = time.monotonic() - started
    assert survivors == [] and len(terminated) == 20
    # waited one after another, the graces alone would take 20 s; the bound leaves room for a loaded machine
    assert elapsed < 10, "20 processes ignoring TERM with grace 1 s took %.1f s" % elapsed
    assert all(p.wait(5) == -signal.SIGKILL for p in popens)


def test_pid_reuse_guard_refuses_a_changed_create_time(spawn):
    victim = spawn.sleeper("reuse")
    real = psutil.Process(victim.pid)
    stale = {"pid": victim.pid, "create_time": real.create_time() - 100, "name": real.name()}
    terminated, survivors = _procs.stop_processes([stale], grace=0.2)
    assert terminated == [] and survivors == []
    time.sleep(0.1)
    assert alive(victim)


def test_tree_stops_children_and_not_without_tree(spawn):
    parent = spawn.shell("parent", "%s 600 & wait" % spawn.link("child"))
    wait_for(lambda: len(psutil.Process(parent.pid).children()) == 1)
    child_pid = psutil.Process(parent.pid).children()[0].pid
    procs = _procs.find_processes(cmdline=["^" + re.escape(spawn.name("parent"))])
    assert [p.pid for p in procs] == [parent.pid]
    terminated, survivors = _procs.stop_processes(procs, grace=2, tree=False)
    assert [t["pid"] for t in terminated] == [parent.pid] and survivors == []
    assert psutil.pid_exists(child_pid) and psutil.Process(child_pid).ppid() != parent.pid  # orphaned, alive
    psutil.Process(child_pid).kill()

    parent = spawn.shell("parent2", "%s 600 & wait" % spawn.link("child2"))
    wait_for(lambda: len(psutil.Process(parent.pid).children()) == 1)
    child = psutil.Process(parent.pid).children()[0]
    terminated, survivors = _procs.stop_processes(
        _procs.find_processes(cmdline=["^" + re.escape(spawn.name("parent2"))]), grace=2)
    assert survivors == []
    expected = {parent.pid: "cmdline", child.pid: "child-of:%d" % parent.pid}
    assert {t["pid"]: t["matched_by"] for t in terminated} == expected
    wait_for(lambda: not child.is_running() or child.status() == psutil.STATUS_ZOMBIE)


def test_respawning_supervisor_is_stopped_too(spawn):
    target = spawn.link("daemon")
    supervisor = spawn.shell("supervisor", "while true; do %s 600; sleep 0.1; done" % target)
    wait_for(lambda: any(_name(c.pid) == spawn.name("daemon") for c in psutil.Process(supervisor.pid).children()))
    procs = _procs.find_processes(names=[spawn.name("daemon")])
    assert len(procs) == 1 and procs[0].ppid == supervisor.pid
    terminated, survivors = _procs.stop_processes(procs, grace=3)
    assert survivors == []
    matched = [t["matched_by"] for t in terminated]
    assert "supervisor-of:%d" % [t for t in terminated if t["matched_by"].startswith("respawned")][0]["pid"] \
        in matched
    assert supervisor.wait(5) is not None
    time.sleep(0.5)
    assert _procs.find_processes(names=[spawn.name("daemon")]) == []


def test_rematch_reports_what_keeps_coming_back(spawn):
    """A target restarted by a parent it may not stop (here: the test itself) is returned as respawned."""
    restarts = []

    def rematch():  # a restarter that starts a new one whenever none runs
        if not _procs.find_processes(names=[spawn.name("phoenix")]):
            restarts.append(spawn.sleeper("phoenix"))
        return _procs.find_processes(names=[spawn.name("phoenix")])

    spawn.sleeper("phoenix")
    terminated, survivors = _procs.stop_processes(_procs.find_processes(names=[spawn.name("phoenix")]),
                                                  grace=1, rematch=rematch, max_rounds=2, respawn_window=0.5)
    assert len(terminated) == 2 and {t["outcome"] for t in terminated} == {"exited"}
    assert [s["outcome"] for s in survivors] == ["respawned"]
    assert survivors[0]["pid"] == restarts[-1].pid and "started again by" in survivors[0]["error"]


@pytest.mark.parametrize("kwargs,match", [({"signal": "BOGUS"}, "signal"), ({"grace": -1}, "grace"),
                                          ({"grace": "10"}, "grace"), ({"max_rounds": 0}, "max_rounds")])
def test_bad_parameters_are_refused_before_any_signal(spawn, kwargs, match):
    victim = spawn.sleeper("bad")
    with pytest.raises(ValueError, match=match):
        _procs.stop_processes(_procs.find_processes(names=[spawn.name("bad")]), **kwargs)
    assert alive(victim)
