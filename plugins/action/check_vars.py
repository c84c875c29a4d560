# -*- coding: utf-8 -*-
# Copyright: residue.purge contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""residue.purge.check_vars: the residue_* variables checked on the controller (_inputs.check), then on the host
(the module: _inputs.check_host, the probe and the os_family fact) unless on_host is false; on a PowerShell host
the facts of setup (gather_subset min) instead of the module. A failure is one short message that
names the variable, never an argument spec."""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

from ansible.module_utils.parsing.convert_bool import boolean
from ansible.plugins.action import ActionBase

from ansible_collections.residue.purge.plugins.module_utils import _inputs


class ActionModule(ActionBase):
    TRANSFERS_FILES = False
    _VALID_ARGS = frozenset(("require_targets", "on_host", "variables"))

    def _variables(self, task_vars):
        """The residue_* variables that are set for this host, templated as the playbook would read them."""
        values = {}
        for name in _inputs.VARIABLES:
            if name not in task_vars:
                continue
            try:
                values[name] = self._templar.template(task_vars[name])
            except Exception as exc:  # pylint: disable=broad-exception-caught
                raise _inputs.InputError("%s: %s" % (name, str(exc).splitlines()[0] if str(exc) else type(exc).__name__))
        return values

    def run(self, tmp=None, task_vars=None):
        result = super(ActionModule, self).run(tmp, task_vars)
        del tmp
        args = self._task.args
        try:
            require = boolean(args.get("require_targets", False), strict=True)
            on_host = boolean(args.get("on_host", True), strict=True)
        except TypeError as exc:
            return dict(result, failed=True, msg="check_vars: %s" % exc)
        try:
            values = args.get("variables")
            if values is None:
                values = self._variables(task_vars or {})
            checked = _inputs.check(values, require)
            if checked["report_dir"]:
                checked["report_dir"] = _inputs.report_dir(checked["report_dir"])
        except ValueError as exc:
            return dict(result, failed=True, changed=False, msg=str(exc))
        if not on_host:
            checked.pop("profiles", None)
            return dict(result, changed=False, values=checked)
        if getattr(self._connection._shell, "SHELL_FAMILY", None) == "powershell":
            # no Python there: what the module checks on a POSIX host the PowerShell modules check themselves; the
            # facts come from setup, as the playbooks gathered them before check_vars set os_family
            facts = self._execute_module(module_name="ansible.builtin.setup", module_args={"gather_subset": ["min"]},
                                         task_vars=task_vars)
            if facts.get("failed"):
                return dict(result, **facts)
            checked.pop("profiles", None)
            return dict(result, changed=False, values=checked, ansible_facts=facts.get("ansible_facts", {}))
        module_args = dict(require_targets=require, variables=values)
        result.update(self._execute_module(module_name="residue.purge.check_vars", module_args=module_args,
                                           task_vars=task_vars))
        return result
