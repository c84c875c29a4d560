# -*- coding: utf-8 -*-
# Copyright: residue.purge contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""check_vars' action plugin: which module a host runs for the preflight probe, and the facts it returns (the
playbooks gather no facts: check_vars sets os_family). No Windows host runs here: the connection is a stand-in
whose shell family is what the action plugin reads, and the module runs are recorded instead of sent."""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

from types import SimpleNamespace

import pytest
from ansible.plugins.action import ActionBase

from ansible_collections.residue.purge.plugins.action.check_vars import ActionModule


class Recorded(ActionModule):
    def __init__(self, shell_family, args, reply):  # pylint: disable=super-init-not-called
        self._task = SimpleNamespace(args=args, async_val=0, check_mode=False, diff=False)
        self._connection = SimpleNamespace(_shell=SimpleNamespace(SHELL_FAMILY=shell_family))
        self.calls, self.reply = [], reply

    def _variables(self, task_vars):
        return {"residue_targets": ["open_autoglm"]}

    def _execute_module(self, module_name=None, module_args=None, task_vars=None, **kwargs):
        self.calls.append((module_name, module_args))
        return dict(self.reply)


@pytest.fixture(autouse=True)
def base_run(monkeypatch):
    # ActionBase.run's own checks (argument names, async) are not what is tested here
    monkeypatch.setattr(ActionBase, "run", lambda self, tmp=None, task_vars=None: {})


def run(action):
    return action.run(task_vars={})


def test_a_posix_host_runs_check_vars_which_sets_os_family():
    action = Recorded("sh", {"require_targets": True}, {"ansible_facts": {"os_family": "Debian"}, "psutil": True})
    result = run(action)
    assert [c[0] for c in action.calls] == ["residue.purge.check_vars"]
    assert result["ansible_facts"] == {"os_family": "Debian"} and result["psutil"] is True


def test_a_powershell_host_runs_setup_min_and_returns_its_facts():
    facts = {"os_family": "Windows", "distribution": "Microsoft Windows Server 2022"}
    action = Recorded("powershell", {"require_targets": True}, {"ansible_facts": facts})
    result = run(action)
    assert action.calls == [("ansible.builtin.setup", {"gather_subset": ["min"]})]
    assert result["ansible_facts"] == facts and result["values"]["targets"] == ["open_autoglm"]
    assert not result.get("failed")


def test_a_powershell_host_whose_setup_fails_fails_the_task():
    action = Recorded("powershell", {}, {"failed": True, "msg": "setup: access denied"})
    result = run(action)
    assert result["failed"] is True and result["msg"] == "setup: access denied"


def test_on_host_false_contacts_no_host():
    for family in ("sh", "powershell"):
        action = Recorded(family, {"on_host": False}, {})
        result = run(action)
        assert action.calls == [] and "ansible_facts" not in result
