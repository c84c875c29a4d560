# -*- coding: utf-8 -*-
# Copyright: residue.purge contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""tools/stages.sh (make test's stage runner) with a stand-in make: one lane as before, and lanes (`//`) that run
at the same time, each stage timed on its own, its log printed whole, a failure stopping every lane."""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import os
import re
import subprocess

from conftest import REPO

STAGES = os.path.join(REPO, "tools", "stages.sh")
# `make --no-print-directory STAGE`: STAGE is NAME_SECONDS (sleeps); a NAME starting with "fail" exits 3, one
# starting with "cpu" spends those seconds of CPU instead, in a child (as make's recipes run)
FAKE_MAKE = """#!/bin/bash
stage=$2
echo "$stage start $(date +%s.%N)" >> times
echo "$stage begins"
case $stage in
  cpu*) python3 -c "import os, sys, time
t = os.times(); spent = lambda: os.times()[0] + os.times()[1] - t[0] - t[1]
while spent() < float(sys.argv[1]): pass" "${stage#*_}";;
  *) sleep "${stage#*_}";;
esac
echo "$stage ends"
echo "$stage end $(date +%s.%N)" >> times
echo "$stage" >> ran
case $stage in fail*) exit 3;; esac
"""


def stages(tmp_path, *args):
    make = tmp_path / "fake-make"
    make.write_text(FAKE_MAKE)
    make.chmod(0o755)
    proc = subprocess.run([STAGES] + list(args), cwd=str(tmp_path), env=dict(os.environ, MAKE=str(make)),
                          capture_output=True, text=True, timeout=120, check=False)
    ran = (tmp_path / "ran").read_text().split() if (tmp_path / "ran").exists() else []
    times = {}
    if (tmp_path / "times").exists():
        for line in (tmp_path / "times").read_text().splitlines():
            stage, what, when = line.split()
            times[stage, what] = float(when)
    return proc, times, ran


def row(out, stage):
    """A stage's row of the table without its CPU time: [lane,] time, result."""
    line = re.search(r"^  %s +(.*)$" % re.escape(stage), out, re.M).group(1)
    line = re.sub(r"\s+cpu \S+( \S+s)?$", "", line)
    return line.split(None, 1 if "lane" not in out else 2)


def cpu(out, stage):
    """A stage's CPU time in the table, in seconds."""
    m = re.search(r"^  %s .* cpu (?:(\d+)m )?(\d+)s$" % re.escape(stage), out, re.M)
    return int(m.group(1) or 0) * 60 + int(m.group(2))


def test_one_lane_runs_in_order_and_stops_at_a_failure(tmp_path):
    proc, _times, ran = stages(tmp_path, "a_0", "fail_0", "c_0")
    assert proc.returncode == 1 and ran == ["a_0", "fail_0"]
    assert proc.stdout.index("a_0 ends") < proc.stdout.index("=== make fail_0") < proc.stdout.index("stage times")
    assert row(proc.stdout, "fail_0")[1] == "FAILED (exit 3)" and row(proc.stdout, "c_0") == ["-", "not run"]
    assert "stage(s) fail_0 failed" in proc.stdout and "all stages passed" not in proc.stdout


def test_lanes_run_at_the_same_time_each_stage_timed_and_logged_whole(tmp_path):
    proc, times, ran = stages(tmp_path, "a_2", "b_1", "//", "c_3")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert sorted(ran) == ["a_2", "b_1", "c_3"] and ran.index("a_2") < ran.index("b_1")
    # side by side: lane 2's stage starts before lane 1's first one ends, and ends after lane 1's second starts
    assert times["c_3", "start"] < times["a_2", "end"] and times["c_3", "end"] > times["b_1", "start"], times
    for stage, lane, seconds in (("a_2", "1", 2), ("b_1", "1", 1), ("c_3", "2", 3)):
        n, t, result = row(proc.stdout, stage)
        assert (n, result) == (lane, "ok") and seconds <= int(t.rstrip("s")), (stage, n, t)
        # its own time, not the run's: within a second of what the stage itself measured
        assert abs(int(t.rstrip("s")) - (times[stage, "end"] - times[stage, "start"])) <= 1.5, (stage, t, times)
        # the log of a stage is printed in one piece and kept
        block = proc.stdout[proc.stdout.index("=== make %s (lane" % stage):proc.stdout.index("=== end of make " + stage)]
        assert "%s begins" % stage in block and "%s ends" % stage in block
        assert (tmp_path / ".build" / "stages" / (stage + ".log")).read_text() == "%s begins\n%s ends\n" % (stage, stage)
    assert "all stages passed" in proc.stdout


def test_a_failure_in_one_lane_stops_the_others_and_fails_the_run(tmp_path):
    proc, _times, ran = stages(tmp_path, "fail_1", "x_0", "//", "c_2", "d_0")
    assert proc.returncode == 1
    assert sorted(ran) == ["c_2", "fail_1"]  # c_2 was running already and ends; nothing starts after the failure
    assert row(proc.stdout, "fail_1")[2] == "FAILED (exit 3)"
    assert row(proc.stdout, "c_2")[2] == "ok"
    assert row(proc.stdout, "x_0")[1:] == ["-", "not run"] and row(proc.stdout, "d_0")[1:] == ["-", "not run"]
    assert "stage(s) fail_1 failed" in proc.stdout


def test_stages_before_the_lanes_run_first_and_alone_and_a_failure_there_starts_no_lane(tmp_path):
    proc, times, ran = stages(tmp_path, "boot_1", "--", "a_0", "//", "c_1")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert ran[0] == "boot_1" and sorted(ran[1:]) == ["a_0", "c_1"]
    assert times["boot_1", "end"] <= min(times["a_0", "start"], times["c_1", "start"]), times
    assert "boot_1 begins" in proc.stdout[:proc.stdout.index("=== make a_0")]  # printed as it comes, not logged
    assert not (tmp_path / ".build" / "stages" / "boot_1.log").exists()
    n, t, result = row(proc.stdout, "boot_1")
    assert (n, result) == ("pre", "ok") and int(t.rstrip("s")) >= 1
    assert proc.stdout.index("  boot_1 ") < proc.stdout.index("  a_0 ") < proc.stdout.index("  c_1 ")
    assert row(proc.stdout, "a_0")[::2] == ["1", "ok"] and row(proc.stdout, "c_1")[::2] == ["2", "ok"]

    tmp = tmp_path / "failing"
    tmp.mkdir()
    proc, _times, ran = stages(tmp, "fail_0", "--", "a_0", "//", "c_0")
    assert proc.returncode == 1 and ran == ["fail_0"]
    assert row(proc.stdout, "fail_0")[::2] == ["pre", "FAILED (exit 3)"]
    assert row(proc.stdout, "a_0")[1:] == ["-", "not run"] and row(proc.stdout, "c_0")[1:] == ["-", "not run"]
    assert "stage(s) fail_0 failed" in proc.stdout


def test_one_lane_after_the_first_stages(tmp_path):
    proc, _times, ran = stages(tmp_path, "boot_0", "--", "a_0", "b_0")
    assert proc.returncode == 0 and ran == ["boot_0", "a_0", "b_0"]
    assert [row(proc.stdout, s)[1] for s in ran] == ["ok"] * 3 and " lane " not in proc.stdout


def test_each_stage_has_its_cpu_time_and_the_run_the_sum(tmp_path):
    """A stage that sleeps spends no CPU, one that computes spends what it computed (however loaded the machine);
    the total is their sum, and the load average is printed."""
    proc, _times, _ran = stages(tmp_path, "cpu_1", "//", "idle_1")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert 1 <= cpu(proc.stdout, "cpu_1") <= 2 and cpu(proc.stdout, "idle_1") == 0, proc.stdout
    assert cpu(proc.stdout, "total") == cpu(proc.stdout, "cpu_1")
    assert re.search(r"^  load average at the end: [\d.]+ [\d.]+ [\d.]+ \(1, 5, 15 min; \d+ CPUs\)$", proc.stdout, re.M)


def test_make_help_lists_every_target():
    """`make help` names every target of the Makefile (a target it hides is one a newcomer never finds)."""
    with open(os.path.join(REPO, "Makefile")) as f:
        targets = set(re.findall(r"^([a-z0-9][a-z0-9-]*):(?!=)", f.read(), re.M))
    shown = subprocess.run(["make", "-s", "--no-print-directory", "help"], cwd=REPO, capture_output=True, text=True,
                           timeout=60, check=True).stdout
    listed = set(re.findall(r"^make ([a-z0-9-]+)\b", shown, re.M))
    assert {"unit", "lint", "test", "help", "bootstrap"} <= targets
    assert listed == targets, ("missing from make help: %s; listed but no target: %s"
                               % (sorted(targets - listed), sorted(listed - targets)))
