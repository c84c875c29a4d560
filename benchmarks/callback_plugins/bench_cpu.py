# -*- coding: utf-8 -*-
# Copyright: residue.purge contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Benchmark-only callback: CPU time of cgroups at every task start, written as JSON to $BENCH_CPU_OUT.

benchmarks/bench_fleet.py puts the controller (ansible-playbook and everything it starts, ssh masters included) in
one cpuacct cgroup and every lab host's processes in another, and names their cpuacct.usage files in
$BENCH_CPU_CGROUPS (label=path,label=path). With the linear strategy every host runs a task before any host starts
the next, so the difference between two task starts is what that task cost, on the controller and on the hosts,
whatever else loads the machine. Not part of the collection.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import json
import os
import time

from ansible.plugins.callback import CallbackBase

DOCUMENTATION = """
name: bench_cpu
type: aggregate
short_description: cgroup CPU time at every task start, for benchmarks/bench_fleet.py
description: Reads the cpuacct.usage files named in BENCH_CPU_CGROUPS at every task start and at the end of the run,
  and writes them to the file named by BENCH_CPU_OUT.
requirements:
  - enabled through ANSIBLE_CALLBACKS_ENABLED
"""


def _read(path):
    try:
        with open(path) as f:
            return int(f.read().strip()) / 1e9
    except (IOError, OSError, ValueError):
        return None


class CallbackModule(CallbackBase):
    CALLBACK_VERSION = 2.0
    CALLBACK_TYPE = "aggregate"
    CALLBACK_NAME = "bench_cpu"
    CALLBACK_NEEDS_ENABLED = True

    def __init__(self):
        super(CallbackModule, self).__init__()
        self.groups = []
        for item in os.environ.get("BENCH_CPU_CGROUPS", "").split(","):
            if "=" in item:
                label, path = item.split("=", 1)
                self.groups.append((label, path))
        self.marks = []

    def _mark(self, name):
        self.marks.append({"task": name, "time": time.time(),
                           "cpu": dict((label, _read(path)) for label, path in self.groups)})

    def v2_playbook_on_play_start(self, play):
        self._mark("play: " + play.get_name())

    def v2_playbook_on_task_start(self, task, is_conditional):
        self._mark(task.get_name())

    def v2_playbook_on_handler_task_start(self, task):
        self._mark("handler: " + task.get_name())

    def v2_playbook_on_stats(self, stats):
        self._mark("end")
        out = os.environ.get("BENCH_CPU_OUT")
        if out:
            with open(out, "w") as f:
                json.dump(self.marks, f)
