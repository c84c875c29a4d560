# -*- coding: utf-8 -*-
# Copyright: residue.purge contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Controller half of the modules that also run on Windows.

Residue profiles are data owned by plugins/module_utils/_profiles.py (built-ins, schema, validation). A POSIX host
runs the Python module, which loads them itself: this plugin then does exactly what ansible.legacy.normal does.
For a PowerShell host (module routed to win_<name>.ps1 by meta/runtime.yml) it replaces the task's ``profiles``
with the merged, validated and normalised set from _profiles.load_profiles, so the PowerShell module carries no
copy of the built-in profiles and bad profiles fail with the same message on every OS. Merging is idempotent, so
``profiles`` keeps its meaning: it still lists the profiles known to the module, built-in ones included.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

from ansible.plugins.action.normal import ActionModule as NormalAction

import re

from ansible_collections.residue.purge.plugins.module_utils._profiles import (
    ProfileError, check_selective_pattern, load_profiles)

# Options holding process patterns (reap's): on POSIX _procs.compile_patterns refuses one that would select every
# process before anything is signalled; for a Windows host the controller does it (the profiles' own patterns are
# checked by load_profiles).
PATTERN_OPTIONS = ("cmdline",)


def windows_args(args):
    """The module arguments a Windows host gets: ``profiles`` merged with the built-ins and normalised, and the
    process patterns checked as POSIX hosts check them."""
    args = dict(args)
    args["profiles"] = load_profiles(args.get("profiles") or {})
    for option in PATTERN_OPTIONS:
        for i, pattern in enumerate(args.get(option) or ()):
            where = "%s[%d]" % (option, i)
            if not isinstance(pattern, str) or not pattern:
                raise ProfileError("%s: every pattern must be a non-empty string, got %r" % (where, pattern))
            try:
                compiled = re.compile(pattern)
            except re.error as exc:
                raise ProfileError("%s: %r is not a valid regular expression: %s" % (where, pattern, exc))
            check_selective_pattern(compiled, where)
    return args


class ResidueAction(NormalAction):
    """ansible.legacy.normal, plus the profiles for PowerShell hosts."""

    _windows_args = None

    def run(self, tmp=None, task_vars=None):
        if getattr(self._connection._shell, "SHELL_FAMILY", None) == "powershell":
            try:
                self._windows_args = windows_args(self._task.args)
            except ProfileError as e:
                return {"failed": True, "msg": str(e)}
        return super(ResidueAction, self).run(tmp, task_vars)

    def _execute_module(self, module_name=None, module_args=None, *args, **kwargs):
        if module_args is None and self._windows_args is not None:
            module_args = self._windows_args
        return super(ResidueAction, self)._execute_module(module_name, module_args, *args, **kwargs)
