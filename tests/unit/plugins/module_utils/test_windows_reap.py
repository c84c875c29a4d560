# -*- coding: utf-8 -*-
# Copyright: residue.purge contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Issue 12 item 1 on Windows: win_reap's rounds (_WinProcs.Stopper), run under Mono against a simulated host.

The simulation (Driver.cs SimHost) has a clock that moves only when the stopper sleeps, processes with or without
a window that honour WM_CLOSE or not, TerminateProcess, and supervisors (a script loop, or services.exe) that start
the target again some seconds after it died. The real host side (Win32_Process, OpenProcess, WM_CLOSE,
TerminateProcess) only compiles here.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import glob
import json
import os
import shutil
import subprocess

import pytest

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", "..", "..", ".."))
UTILS = os.path.join(ROOT, "plugins", "module_utils")
DRIVER = os.path.join(os.path.dirname(__file__), "windows", "Driver.cs")
RESTORE_CS = os.path.join(ROOT, "playbooks", "files", "ResidueRestore.cs")  # restore.yml on Windows
ANSIBLE_CSHARP = os.path.join(os.path.dirname(__import__("ansible").__file__), "module_utils", "csharp")


@pytest.fixture(scope="module")
def stop(tmp_path_factory):
    mcs, mono = shutil.which("mcs"), shutil.which("mono")
    assert mcs and mono, "mcs/mono not found: tools/bootstrap.sh installs Debian's mono-mcs and mono-runtime"
    exe = str(tmp_path_factory.mktemp("driver") / "driver.exe")
    sources = sorted(glob.glob(os.path.join(UTILS, "*.cs"))) + [
        os.path.join(ANSIBLE_CSHARP, "Ansible.Privilege.cs"), os.path.join(ANSIBLE_CSHARP, "Ansible.AccessToken.cs"),
        DRIVER, RESTORE_CS]
    proc = subprocess.run([mcs, "-langversion:5", "-nowarn:169,414,649,219", "-d:WINDOWS", "-r:System.dll",
                           "-r:System.Core.dll", "-r:System.IO.Compression.dll", "-out:" + exe] + sources,
                          stdout=subprocess.PIPE, stderr=subprocess.STDOUT, universal_newlines=True, check=False)
    assert proc.returncode == 0, proc.stdout

    def call(fn="stop", **args):
        args.setdefault("restarts", [])
        args.setdefault("match", ["daemon.exe"])
        run = subprocess.run([mono, exe], input=json.dumps([{"fn": fn, "args": args}]), stdout=subprocess.PIPE,
                             stderr=subprocess.PIPE, universal_newlines=True, check=False)
        assert run.returncode == 0, run.stderr
        (out,) = json.loads(run.stdout)
        assert "ok" in out, out
        return out["ok"]
    return call


def loop(delay, times=-1, window=False):
    """A daemon that ignores WM_CLOSE (no window: it cannot even be asked), started again `delay` seconds after it
    dies by a script loop (powershell.exe, pid 200) that a login shell (cmd.exe, 150) started."""
    return dict(procs=[{"pid": 150, "ppid": 100, "name": "cmd.exe", "ctime": 10},
                       {"pid": 200, "ppid": 150, "name": "powershell.exe", "ctime": 20},
                       {"pid": 300, "ppid": 200, "name": "daemon.exe", "ctime": 30, "window": window,
                        "ignores_close": True}],
                restarts=[{"supervisor": 200, "name": "daemon.exe", "delay": delay, "times": times}])


@pytest.mark.parametrize("delay", [0.1, 1, 3])
def test_a_loop_that_restarts_after_terminate_is_stopped_with_it(stop, delay):
    """grace 1 s, window 5 s: the daemon dies only at TerminateProcess, the loop restarts it `delay` s later. With
    the window capped at grace (the old win_reap) a 3 s restart was never seen and the task succeeded with the
    daemon running again; now the window starts when the last process is gone and lasts respawn_window."""
    out = stop(grace=1, respawn_window=5, **loop(delay))
    assert out["survivors"] == [], out
    assert [r["pid"] for r in out["running"]] == [150], out  # the login shell above the loop stays
    by = dict((e["pid"], e) for e in out["terminated"])
    assert by[200]["matched_by"] == "supervisor-of:5000" and by[200]["outcome"] == "killed"
    assert by[5000]["matched_by"] == "respawned-by:200"
    assert by[300]["matched_by"] == "name" and by[300]["outcome"] == "killed"
    assert out["rounds"] == 2


def test_the_window_is_not_capped_by_grace(stop):
    """A restart 4 s after the kill is seen with respawn_window 5 even though grace is 0.5."""
    out = stop(grace=0.5, respawn_window=5, **loop(4))
    assert out["survivors"] == [] and 5000 in [e["pid"] for e in out["terminated"]], out
    # and a restart slower than the window is not this task's (verify checks again): nothing is claimed
    out = stop(grace=0.5, respawn_window=2, **loop(4))
    assert [e["pid"] for e in out["terminated"]] == [300] and out["survivors"] == [], out


def test_what_a_system_process_keeps_restarting_fails_as_respawned(stop):
    """services.exe (a service's recovery) is never stopped: after three rounds the final re-match finds the
    daemon again, a survivor with outcome respawned, its parent chain and restarted_by."""
    case = dict(procs=[{"pid": 600, "ppid": 500, "name": "services.exe", "ctime": 5},
                       {"pid": 300, "ppid": 600, "name": "daemon.exe", "ctime": 30, "ignores_close": True}],
                restarts=[{"supervisor": 600, "name": "daemon.exe", "delay": 1, "times": -1}])
    out = stop(grace=1, respawn_window=3, **case)
    assert out["rounds"] == 3
    (survivor,) = out["survivors"]
    assert survivor["outcome"] == "respawned" and survivor["respawn"] is True
    assert survivor["parents"] == [{"pid": 600, "name": "services.exe"}]
    assert survivor["restarted_by"] == {"pid": 600, "name": "services.exe"}
    assert "came back after 3 round(s)" in survivor["error"] and "services.exe (pid 600)" in survivor["error"]
    assert "never stopped by reap" in survivor["error"]
    assert 600 not in [e["pid"] for e in out["terminated"]]


def test_without_tree_the_supervisor_is_named_not_stopped(stop):
    out = stop(grace=1, respawn_window=3, tree=False, **loop(1))
    (survivor,) = out["survivors"]
    assert survivor["outcome"] == "respawned"
    assert survivor["restarted_by"] == {"pid": 200, "name": "powershell.exe"}
    assert "(not stopped: tree is false)" in survivor["error"]
    assert [p["pid"] for p in survivor["parents"]] == [200, 150]


def test_a_plain_stop_costs_one_window(stop):
    """A daemon with a window that closes when asked: one round, about 0.2 s to exit plus respawn_window."""
    case = dict(procs=[{"pid": 300, "ppid": 100, "name": "daemon.exe", "ctime": 30, "window": True}])
    out = stop(grace=10, respawn_window=5, **case)
    assert [(e["pid"], e["outcome"], e["signal"]) for e in out["terminated"]] == [(300, "exited", "TERM")]
    assert out["rounds"] == 1 and 5.0 <= out["elapsed"] <= 5.6, out["elapsed"]


def test_kill_and_survivors(stop):
    case = dict(procs=[{"pid": 300, "ppid": 100, "name": "daemon.exe", "ctime": 30, "window": True,
                        "ignores_close": True}])
    out = stop(grace=2, respawn_window=1, kill_after_grace=False, **case)
    (survivor,) = out["survivors"]
    assert survivor["outcome"] == "survived" and "kill_after_grace is false" in survivor["error"]
    out = stop(grace=2, respawn_window=1, kill=True, **case)
    assert [(e["outcome"], e["signal"]) for e in out["terminated"]] == [("killed", "KILL")]


def test_spared_and_check_mode(stop):
    case = dict(procs=[{"pid": 300, "ppid": 100, "name": "daemon.exe", "ctime": 30},
                       {"pid": 301, "ppid": 300, "name": "helper.exe", "ctime": 31},
                       {"pid": 302, "ppid": 100, "name": "daemon.exe", "ctime": 32}], protected=[302])
    out = stop(grace=1, respawn_window=1, check_mode=True, **case)
    assert sorted((e["pid"], e["outcome"], e["matched_by"]) for e in out["terminated"]) == [
        (300, "would_stop", "name"), (301, "would_stop", "child-of:300")]
    assert [(e["pid"], e["reason"]) for e in out["spared"]] == [
        (302, "the module itself or one of its ancestors (the Ansible connection)")]
    assert len(out["running"]) == 3


def test_a_reused_parent_pid_is_not_an_ancestor(stop):
    """A parent created after its child is another process that got the dead parent's pid: never escalated."""
    case = dict(procs=[{"pid": 200, "ppid": 100, "name": "powershell.exe", "ctime": 50},
                       {"pid": 300, "ppid": 200, "name": "daemon.exe", "ctime": 30, "ignores_close": True}],
                restarts=[{"supervisor": 200, "name": "daemon.exe", "delay": 1, "times": 1}])
    out = stop(grace=1, respawn_window=3, **case)
    assert 200 not in [e["pid"] for e in out["terminated"]]


def test_lineage_and_restarter_for_discover(stop):
    """win_discover's parents and restarted_by (Get-ProcessLineage): the chain nearest first, ended by a parent
    created after its child (a reused pid); the restarter is the nearest ancestor running more than a second
    before the process (cmd.exe /c born with it is skipped)."""
    procs = [{"pid": 4, "ppid": 0, "name": "System", "ctime": 1},
             {"pid": 700, "ppid": 999, "name": "services.exe", "ctime": 5},
             {"pid": 200, "ppid": 700, "name": "powershell.exe", "ctime": 20},
             {"pid": 250, "ppid": 200, "name": "cmd.exe", "ctime": 39.5},
             {"pid": 300, "ppid": 250, "name": "daemon.exe", "ctime": 40},
             {"pid": 999, "ppid": 4, "name": "late.exe", "ctime": 90}]
    out = stop(fn="lineage", pid=300, procs=procs)
    assert out == {"parents": [250, 200, 700], "restarted_by": 200}
    out = stop(fn="lineage", pid=700, procs=procs)
    assert out == {"parents": [], "restarted_by": None}
