# -*- coding: utf-8 -*-
# Copyright: residue.purge contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""residue.purge.reap through real ansible-playbook against real processes.

Every process started here has a random tag in its name; patterns only match the tag, and teardown kills only
the PIDs started here (other people's processes on this machine are never at risk).
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import os
import pwd
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
import yaml
from conftest import ansible_env

SLEEP = shutil.which("sleep")
PYTHON = "/usr/bin/python3"
# a child that writes down every signal it gets: proof that check mode sent nothing
RECORDER = ("import signal, sys, time\n"
            "log = open(sys.argv[1], 'a')\n"
            "def note(num, frame):\n"
            "    log.write('%d\\n' % num); log.flush(); sys.exit(0)\n"
            "signal.signal(signal.SIGTERM, note)\n"
            "print('ready', flush=True)\n"
            "time.sleep(600)\n")


def wait_for(predicate, timeout=10.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(0.01)
    raise AssertionError("condition not reached in %ss" % timeout)


def name_of(pid):
    try:
        return psutil.Process(pid).name()
    except psutil.Error:
        return ""


class Procs(object):
    def __init__(self):
        self.dir = tempfile.mkdtemp(prefix="rp-reap-")
        os.chmod(self.dir, 0o755)  # other users run links from here
        self.tag = "rp-test-" + uuid.uuid4().hex[:8]
        self.popens = []

    def name(self, role):
        return "%s-%s" % (self.tag, role)

    def link(self, role, target=SLEEP):
        path = os.path.join(self.dir, self.name(role))
        if not os.path.lexists(path):
            os.symlink(target, path)
        return path

    def start(self, argv, expect_name=None, **kwargs):
        popen = subprocess.Popen(argv, **kwargs)
        self.popens.append(popen)
        if expect_name:
            wait_for(lambda: any(name_of(p.pid) == expect_name
                                 for p in [psutil.Process(popen.pid)] + psutil.Process(popen.pid).children(True)))
        return popen

    def sleeper(self, role, ignore_term=False, cwd=None, user=None):
        exe = self.link(role)
        script = "%sexec %s 600" % ("trap '' TERM; " if ignore_term else "", exe)
        argv = ["/bin/sh", "-c", script]
        if user:
            argv = ["runuser", "-u", user, "--"] + argv
        return self.start(argv, expect_name=os.path.basename(exe), cwd=cwd)

    def script(self, role, text):
        path = os.path.join(self.dir, "%s.sh" % self.name(role))
        with open(path, "w") as f:
            f.write(text)
        return path

    def tagged(self, role):
        """PIDs of the live (not zombie) processes named after role."""
        out = []
        for proc in psutil.process_iter(["name", "status"]):
            if proc.info["name"] == self.name(role) and proc.info["status"] != psutil.STATUS_ZOMBIE:
                out.append(proc.pid)
        return out

    def recorder(self, role, log):
        popen = self.start([self.link(role, PYTHON), "-c", RECORDER, log], stdout=subprocess.PIPE)
        assert popen.stdout.readline().strip() == b"ready"
        return popen

    def cleanup(self):
        for popen in self.popens:
            try:
                for child in psutil.Process(popen.pid).children(recursive=True):
                    child.kill()  # every descendant of a process started here is ours
            except psutil.Error:
                pass
            if popen.poll() is None:
                popen.kill()
            popen.wait()
        shutil.rmtree(self.dir, ignore_errors=True)


@pytest.fixture
def procs():
    p = Procs()
    yield p
    p.cleanup()


def assert_no_traceback(result):
    # ansible-core 2.19 registers failures with exception='(traceback unavailable)' when the module gave none
    assert "Traceback (most recent call last)" not in result["_stdout"]
    assert result.get("exception", "(traceback unavailable)") == "(traceback unavailable)", result["exception"]


def alive(popen):
    return popen.poll() is None


def by_pid(entries):
    return dict((e["pid"], e) for e in entries)


def test_stops_polite_and_stubborn_processes_and_spares_the_rest(module_runner, procs):
    polite = procs.sleeper("polite")
    stubborn = procs.sleeper("stubborn", ignore_term=True)
    bystander = procs.sleeper("bystander")
    r = module_runner("reap", {"names": [procs.name("polite"), procs.name("stubborn")], "grace": 1})
    assert not r.get("failed"), r.get("msg")
    assert r["changed"] is True
    got = by_pid(r["terminated"])
    assert set(got) == {polite.pid, stubborn.pid}
    assert (got[polite.pid]["outcome"], got[polite.pid]["signal"]) == ("exited", "TERM")
    assert (got[stubborn.pid]["outcome"], got[stubborn.pid]["signal"]) == ("killed", "KILL")
    assert got[polite.pid]["user"] == pwd.getpwuid(os.getuid()).pw_name and got[polite.pid]["ppid"] == os.getpid()
    assert got[polite.pid]["cmdline"] == [procs.link("polite"), "600"]
    assert polite.wait(5) == -signal.SIGTERM and stubborn.wait(5) == -signal.SIGKILL
    assert r["survivors"] == [] and alive(bystander)
    again = module_runner("reap", {"names": [procs.name("polite"), procs.name("stubborn")], "grace": 1})
    assert again["changed"] is False and again["terminated"] == [] and again["matched"] == []


def test_check_mode_sends_no_signal_and_diff_lists_the_processes(module_runner, procs, tmp_path):
    log = str(tmp_path / "signals.log")
    victim = procs.recorder("recorder", log)
    r = module_runner("reap", {"names": [procs.name("recorder")]}, check=True, diff=True)
    assert not r.get("failed"), r.get("msg")
    assert r["changed"] is True
    assert [(t["pid"], t["outcome"], t["signal"]) for t in r["terminated"]] == [(victim.pid, "would_stop", "TERM")]
    assert "%d " % victim.pid in r["_stdout"] and procs.name("recorder") in r["_stdout"]
    time.sleep(0.3)
    assert alive(victim)
    assert os.path.getsize(log) == 0
    # the real run: the recorder sees exactly one TERM
    r = module_runner("reap", {"names": [procs.name("recorder")]})
    assert [(t["pid"], t["outcome"]) for t in r["terminated"]] == [(victim.pid, "exited")]
    victim.wait(5)
    with open(log) as f:
        assert f.read() == "%d\n" % signal.SIGTERM


def test_holding_matches_only_processes_using_the_tree(module_runner, procs, tmp_path):
    tree = tmp_path / "models"
    tree.mkdir()
    (tree / "w.bin").write_bytes(b"w" * 4096)
    holder = procs.start([procs.link("holder", PYTHON), "-c",
                          "import sys,time; f=open(sys.argv[1],'rb'); print('ok', flush=True); time.sleep(600)",
                          str(tree / "w.bin")], stdout=subprocess.PIPE)
    assert holder.stdout.readline().strip() == b"ok"
    in_tree = procs.sleeper("cwd", cwd=str(tree))
    outside = procs.sleeper("outside", cwd=str(tmp_path))
    # reach the tree through a symlink: the kernel reports real paths, the module resolves the option
    link = tmp_path / "via-link"
    link.symlink_to(tree)
    r = module_runner("reap", {"holding": [str(link)], "grace": 2})
    assert not r.get("failed"), r.get("msg")
    assert set(by_pid(r["terminated"])) == {holder.pid, in_tree.pid}
    assert {m["matched_by"] for m in r["matched"]} == {"holding:" + str(tree)}
    assert alive(outside)
    assert (tree / "w.bin").exists()


def test_zombies_are_ignored(module_runner, procs):
    zombie = procs.start([procs.link("z"), "0"])
    wait_for(lambda: psutil.Process(zombie.pid).status() == psutil.STATUS_ZOMBIE)
    live = procs.sleeper("z")
    r = module_runner("reap", {"names": [procs.name("z")], "grace": 2})
    assert not r.get("failed"), r.get("msg")
    assert [t["pid"] for t in r["terminated"]] == [live.pid]
    assert psutil.Process(zombie.pid).status() == psutil.STATUS_ZOMBIE


@pytest.mark.parametrize("restart_delay", ["0.2", "1.5"])  # a quick loop, and one that waits like `sleep 1`
def test_respawning_supervisor_loop_is_stopped(module_runner, procs, restart_delay):
    target = procs.link("daemon")
    supervisor = procs.start(["/bin/bash", "-c", "exec -a %s /bin/bash -c 'while true; do %s 600; sleep %s; done'"
                              % (procs.name("loop"), target, restart_delay)], expect_name=procs.name("daemon"))
    r = module_runner("reap", {"names": [procs.name("daemon")], "grace": 3})
    assert not r.get("failed"), r.get("msg")
    kinds = [t["matched_by"].split(":")[0] for t in r["terminated"]]
    assert "supervisor-of" in kinds and "respawned-by" in kinds and "name" in kinds
    assert supervisor.pid in by_pid(r["terminated"])
    assert supervisor.wait(5) is not None
    time.sleep(0.5)
    leftovers = [p.pid for p in psutil.process_iter(["name"]) if p.info["name"] == procs.name("daemon")
                 and p.status() != psutil.STATUS_ZOMBIE]
    assert leftovers == []


@pytest.mark.parametrize("delay", ["0.1", "1", "3"])
def test_term_ignoring_daemon_restarted_by_a_while_loop_after_sigkill(module_runner, procs, delay):
    """The daemon only dies at the SIGKILL after grace, and the loop restarts it `delay` seconds later: the
    window counts from that death, not from the first signal, so the loop is found and stopped too."""
    daemon = procs.link("daemon")
    loop = procs.script("loop", "while true; do\n  ( trap '' TERM; exec %s 600 )\n  sleep %s\ndone\n"
                        % (daemon, delay))
    supervisor = procs.start(["/bin/bash", loop], expect_name=procs.name("daemon"))
    first = procs.tagged("daemon")
    assert len(first) == 1
    r = module_runner("reap", {"names": [procs.name("daemon")], "grace": 1})
    assert not r.get("failed"), r.get("msg")
    assert r["survivors"] == []
    got = by_pid(r["terminated"])
    assert (got[first[0]]["matched_by"], got[first[0]]["outcome"], got[first[0]]["signal"]) == (
        "name", "killed", "KILL")
    assert (got[supervisor.pid]["matched_by"].split(":")[0], got[supervisor.pid]["outcome"]) == (
        "supervisor-of", "exited")
    again = [t for t in r["terminated"] if t["name"] == procs.name("daemon") and t["pid"] != first[0]]
    assert [(t["matched_by"], t["outcome"]) for t in again] == [("respawned-by:%d" % supervisor.pid, "killed")]
    assert supervisor.wait(5) == -signal.SIGTERM
    time.sleep(float(delay) + 0.5)  # past the loop's sleep: nothing may come back
    assert procs.tagged("daemon") == []


def test_supervisor_two_levels_up_is_found_by_ancestry(module_runner, procs):
    """A shell loop runs a shell that runs the daemon: the daemon's parent dies with it, the loop starts a new
    one; the restarter is the nearest ancestor the old and the new daemon share (the loop)."""
    daemon = procs.link("daemon")
    inner = procs.script("inner", "( trap '' TERM; exec %s 600 )\nstatus=$?\n" % daemon)
    outer = procs.script("outer", "while true; do\n  /bin/bash %s\n  sleep 0.5\ndone\n" % inner)
    supervisor = procs.start(["/bin/bash", outer], expect_name=procs.name("daemon"))
    first = procs.tagged("daemon")
    middle = psutil.Process(first[0]).ppid()
    assert middle != supervisor.pid and psutil.Process(middle).ppid() == supervisor.pid
    r = module_runner("reap", {"names": [procs.name("daemon")], "grace": 1, "respawn_window": 2})
    assert not r.get("failed"), r.get("msg")
    assert r["survivors"] == []
    got = by_pid(r["terminated"])
    assert got[first[0]]["outcome"] == "killed"
    assert got[supervisor.pid]["matched_by"].startswith("supervisor-of:")
    again = [t for t in r["terminated"] if t["name"] == procs.name("daemon") and t["pid"] != first[0]]
    assert [t["matched_by"] for t in again] == ["respawned-by:%d" % supervisor.pid]
    assert supervisor.wait(5) == -signal.SIGTERM
    time.sleep(1)
    assert procs.tagged("daemon") == []


def test_a_system_manager_that_restarts_the_target_is_never_stopped_and_the_task_fails(module_runner, procs):
    """The restarting loop runs under a system manager's name (runsv): reap never stops it; the target keeps
    coming back, and the final re-match after the last round reports it as respawned, with its parent chain and
    what restarted it."""
    runsv = os.path.join(procs.dir, "runsv")
    os.symlink("/bin/bash", runsv)
    loop = procs.script("loop", "while true; do %s 600; sleep 0.1; done\n" % procs.link("daemon"))
    supervisor = procs.start([runsv, loop], expect_name=procs.name("daemon"))
    assert name_of(supervisor.pid) == "runsv"
    r = module_runner("reap", {"names": [procs.name("daemon")], "grace": 0.5, "respawn_window": 1})
    assert r.get("failed") is True
    assert alive(supervisor)
    assert [(s["outcome"], s["restarted_by"]) for s in r["survivors"]] == [
        ("respawned", {"pid": supervisor.pid, "name": "runsv"})]
    survivor = r["survivors"][0]
    assert survivor["parents"][0] == {"pid": supervisor.pid, "name": "runsv"}
    assert survivor["parents"][1]["pid"] == os.getpid()
    assert "never stopped by reap" in survivor["error"] and "parent chain: runsv (pid %d)" % supervisor.pid in r["msg"]
    assert survivor["pid"] in procs.tagged("daemon")
    assert len(r["terminated"]) == 3 and supervisor.pid not in by_pid(r["terminated"])


def test_without_tree_the_supervisor_wins_and_the_task_fails(module_runner, procs):
    target = procs.link("daemon")
    procs.start(["/bin/bash", "-c", "exec -a %s /bin/bash -c 'while true; do %s 600; sleep 0.05; done'"
                 % (procs.name("loop"), target)], expect_name=procs.name("daemon"))
    r = module_runner("reap", {"names": [procs.name("daemon")], "grace": 1, "tree": False, "respawn_window": 1})
    assert r.get("failed") is True
    assert [s["outcome"] for s in r["survivors"]] == ["respawned"]
    assert "still running" in r["msg"] and procs.name("daemon") in r["msg"] and "started again by" in r["msg"]
    assert len(r["terminated"]) == 3  # one per round


@pytest.fixture
def other_user():
    name = "rpu" + uuid.uuid4().hex[:8]
    subprocess.run(["useradd", "--no-create-home", "--shell", "/bin/sh", name], check=True)
    yield name
    subprocess.run(["userdel", name], check=False)


def test_users_restricts_to_that_users_processes(module_runner, procs, other_user):
    theirs = procs.sleeper("shared", user=other_user)
    mine = procs.sleeper("shared")
    their_pid = [p.pid for p in psutil.Process(theirs.pid).children(True) + [psutil.Process(theirs.pid)]
                 if name_of(p.pid) == procs.name("shared")][0]
    r = module_runner("reap", {"names": [procs.name("shared")], "users": [other_user], "grace": 2})
    assert not r.get("failed"), r.get("msg")
    assert [(t["pid"], t["user"]) for t in r["terminated"]] == [(their_pid, other_user)]
    theirs.wait(5)
    assert alive(mine)


def test_unprivileged_run_cannot_stop_another_users_process_and_fails(module_runner, procs, other_user):
    victim = procs.sleeper("root-owned")
    r = module_runner("reap", {"names": [procs.name("root-owned")], "grace": 1}, become_user=other_user,
                      interpreter=PYTHON if _system_psutil() else None)
    if "psutil" in r.get("msg", "") and not _system_psutil():
        pytest.skip("the unprivileged user cannot import the venv's psutil")
    assert r.get("failed") is True, r
    assert [(s["pid"], s["outcome"], s["error"]) for s in r.get("survivors", [])] == [
        (victim.pid, "survived", "permission denied")]
    assert alive(victim)


def _system_psutil():
    return subprocess.run([PYTHON, "-c", "import psutil"], capture_output=True, check=False).returncode == 0


def test_pattern_matching_ansible_and_the_module_itself_kills_neither(module_runner, procs, tmp_path):
    """The interpreter path carries the tag, and so does an extra var, so the pattern matches ansible-playbook's
    command line (an ancestor of the module) and the module's own command line. Only the tagged sleeper may die."""
    alias = tmp_path / "venv-alias"
    (alias / "bin").mkdir(parents=True)
    venv = os.path.dirname(os.path.dirname(sys.executable))
    shutil.copy(os.path.join(venv, "pyvenv.cfg"), str(alias / "pyvenv.cfg"))
    (alias / "lib").symlink_to(os.path.join(venv, "lib"))
    interpreter = alias / "bin" / procs.name("python")
    interpreter.symlink_to(os.path.realpath(sys.executable))
    victim = procs.sleeper("victim")
    r = module_runner("reap", {"cmdline": [re.escape(procs.tag)], "grace": 2}, interpreter=str(interpreter),
                      extra_vars={"reap_test_tag": procs.tag})  # the tag on ansible-playbook's own command line
    assert not r.get("failed"), r.get("msg")
    assert [t["pid"] for t in r["terminated"]] == [victim.pid]
    assert victim.wait(5) == -signal.SIGTERM
    # the pattern did match the module itself and ansible-playbook: they are reported as spared
    spared = [" ".join(s["cmdline"]) for s in r["spared"]]
    assert any(cmd.startswith(str(interpreter)) for cmd in spared), spared  # the module's own process
    assert any("ansible-playbook" in cmd for cmd in spared), spared


def test_targets_and_profiles_select_by_profile(module_runner, procs):
    daemon = procs.sleeper("agent")
    by_cmd = procs.start([procs.link("cli", PYTHON), "-c", "import time; print('ok', flush=True); time.sleep(600)",
                          "serve"], stdout=subprocess.PIPE)
    assert by_cmd.stdout.readline().strip() == b"ok"
    profiles = {"rp_tool": {"processes": {"names": [procs.name("agent")],
                                          "cmdline": ["/" + re.escape(procs.name("cli")) + " .* serve$"]}}}
    r = module_runner("reap", {"targets": ["rp_tool"], "profiles": profiles, "grace": 2})
    assert not r.get("failed"), r.get("msg")
    got = by_pid(r["matched"])
    assert set(got) == {daemon.pid, by_cmd.pid}
    assert got[daemon.pid]["targets"] == ["rp_tool"] and got[by_cmd.pid]["matched_by"] == "cmdline"
    assert {t["targets"][0] for t in r["terminated"] if t["pid"] in got} == {"rp_tool"}


@pytest.mark.parametrize("args,message", [
    ({"names": ["x"], "signal": "BOGUS"}, "signal: unknown signal"),
    ({"holding": ["/"]}, "holding: '/' would match every process"),
    ({"targets": ["bad"], "profiles": {"bad": {"processes": {"cmdline": ["(oops"]}}}}, "bad"),
    ({"cmdline": ["|x"]}, "matches the empty string, so it would match every process"),
    ({"targets": ["bad"], "profiles": {"bad": {"processes": {"cmdline": ["."]}}}}, "matches every command line"),
])  # the other bad inputs are covered without Ansible in tests/unit/plugins/module_utils/test_procs_reap.py
def test_bad_input_fails_clearly_and_signals_nothing(module_runner, procs, args, message):
    victim = procs.sleeper("x")
    args = dict(args)
    if args.get("names") == ["x"]:
        args["names"] = [procs.name("x")]
    r = module_runner("reap", args)
    assert r.get("failed") is True
    assert message in r["msg"]
    assert_no_traceback(r)
    assert alive(victim)


def test_missing_psutil_fails_with_one_clear_sentence(module_runner, procs, tmp_path):
    bare = tmp_path / "bare"  # a Python without psutil, whatever the system has installed
    subprocess.run([PYTHON, "-m", "venv", "--without-pip", str(bare)], check=True)
    interpreter = str(bare / "bin" / "python")
    assert subprocess.run([interpreter, "-c", "import psutil"], capture_output=True, check=False).returncode != 0
    victim = procs.sleeper("nopsutil")
    r = module_runner("reap", {"names": [procs.name("nopsutil")]}, interpreter=interpreter)
    assert r.get("failed") is True
    assert "apt install python3-psutil" in r["msg"] and "pip install psutil" in r["msg"]
    assert_no_traceback(r)
    assert alive(victim)


def test_a_process_of_another_pid_namespace_is_reported_not_signalled_unless_asked(module_runner, procs):
    """`unshare --pid --fork --mount-proc` runs the tagged daemon as PID 1 of a namespace of its own (as a
    container would): reap lists it in other_namespaces and leaves it running; namespaces=all stops it."""
    daemon = procs.link("contained")
    outside = procs.sleeper("contained")  # the same program in our own namespace: stopped either way
    inside = procs.start(["unshare", "--pid", "--fork", "--mount-proc", daemon, "600"], expect_name=procs.name(
        "contained"))
    contained = [pid for pid in procs.tagged("contained") if pid != outside.pid]
    assert len(contained) == 1
    contained = contained[0]
    assert os.readlink("/proc/%d/ns/pid" % contained) != os.readlink("/proc/self/ns/pid")
    r = module_runner("reap", {"names": [procs.name("contained")], "grace": 1, "respawn_window": 0.5})
    assert not r.get("failed"), r.get("msg")
    assert [t["pid"] for t in r["terminated"]] == [outside.pid]
    assert [(o["pid"], o["namespace"]) for o in r["other_namespaces"]] == [
        (contained, os.readlink("/proc/%d/ns/pid" % contained))]
    entry = r["other_namespaces"][0]
    assert entry["name"] == procs.name("contained") and entry["matched_by"] == "name" and "cgroup" in entry
    assert any("another PID namespace" in p and str(contained) in p for p in r["problems"])
    assert alive(inside) and psutil.Process(contained).status() != psutil.STATUS_ZOMBIE
    # asked for: stopped (as PID 1 of its namespace it ignores TERM from outside, so it gets the SIGKILL)
    r = module_runner("reap", {"names": [procs.name("contained")], "grace": 1, "respawn_window": 0.5,
                               "namespaces": "all"})
    assert not r.get("failed"), r.get("msg")
    assert [(t["pid"], t["outcome"]) for t in r["terminated"]] == [(contained, "killed")]
    assert r["other_namespaces"] == []
    inside.wait(10)


def test_verify_fails_the_host_naming_a_target_that_came_back_its_parent_chain_and_restarter(procs, tmp_path):
    """The purge's verify phase looks at the processes again: a target restarted after the stop phase (here: by a
    shell loop, through a wrapper shell born with it) fails the host with its PID, parent chain and restarter."""
    daemon = procs.link("daemon")
    loop = procs.script("loop", "while true; do\n  /bin/sh -c '%s 600; true'\n  sleep 0.1\ndone\n" % daemon)
    supervisor = procs.start(["/bin/bash", loop], expect_name=procs.name("daemon"))
    time.sleep(1.5)  # the loop runs well before the restart: it is the restarter, not the wrapper born with it
    [first] = procs.tagged("daemon")
    os.kill(first, signal.SIGKILL)  # the stop phase did its work ...
    wait_for(lambda: [p for p in procs.tagged("daemon") if p != first])  # ... and the loop brought it back
    [again] = procs.tagged("daemon")
    wrapper = psutil.Process(again).ppid()
    assert psutil.Process(wrapper).ppid() == supervisor.pid
    home = tmp_path / "home"
    home.mkdir()
    play = [{"hosts": "localhost", "gather_facts": True, "tasks": [{"ansible.builtin.include_role": {
        "name": "residue.purge.verify"}}], "vars": {
            "ansible_python_interpreter": sys.executable, "residue_targets": ["rp_daemon"],
            "residue_profiles": {"rp_daemon": {"processes": {"names": [procs.name("daemon")]}}},
            "residue_homes": [str(home)], "verify_roots": []}}]
    playbook = tmp_path / "verify.yml"
    playbook.write_text(yaml.safe_dump(play))
    proc = subprocess.run(["ansible-playbook", "-i", "localhost,", "-c", "local", str(playbook)], env=ansible_env(),
                          capture_output=True, text=True, timeout=600, check=False)
    msg = proc.stdout
    assert "TASK [residue.purge.verify : Record why verification failed]" in msg, msg
    assert "came back after the sweep: pid %d %s" % (again, procs.name("daemon")) in msg, msg
    assert "parent chain sh (pid %d) < bash (pid %d) < " % (wrapper, supervisor.pid) in msg, msg
    assert "restarted by bash (pid %d))" % supervisor.pid in msg, msg
