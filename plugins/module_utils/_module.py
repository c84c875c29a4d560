# -*- coding: utf-8 -*-
# Copyright: residue.purge contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""What every residue.purge module does around its topic's run(params, check_mode): the commands the host
runs, calling run() (run_topic), and leaving with the result (finish).

A topic's run() returns the module's result dict. Two keys are for the module only and never returned:
`_warnings` (texts shown as Ansible warnings; without it, the first WARN_LIMIT `problems`) and `failure`
(a message: the task fails, with the whole result). `diff` is returned only in diff mode.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

WARN_LIMIT = 20


class Commands(object):
    """The host's commands, through AnsibleModule: run(argv, data=None) -> (rc, stdout, stderr), where data
    (bytes) is fed to stdin and kept byte for byte; which(name) -> path, or ValueError when it is missing."""

    def __init__(self, module):
        self._module = module

    def run(self, argv, data=None):
        return self._module.run_command(argv, data=data, binary_data=data is not None,
                                        errors="surrogate_or_strict")

    def which(self, name):
        path = self._module.get_bin_path(name)
        if not path:
            raise ValueError("%s is needed on the managed host and was not found in PATH" % name)
        return path


def finish(module, result):
    """exit_json or fail_json with a topic's result (see the module docstring)."""
    diff = result.pop("diff", None)
    if module._diff and diff:
        result["diff"] = diff
    warnings = result.pop("_warnings", None)
    if warnings is None:
        warnings = (result.get("problems") or [])[:WARN_LIMIT]
    for text in warnings:
        module.warn(text)
    failure = result.pop("failure", None)
    if failure:
        module.fail_json(msg=failure, **result)
    module.exit_json(**result)


def run_topic(module, run, commands=False, errors=ValueError):
    """A thin module's main() after its AnsibleModule: result = run(params, check_mode), with the host's Commands
    as third argument when commands; errors (by default ValueError: bad input, ProfileError, WalkError and the
    topics' own errors are ValueErrors) fail the task with their message; then finish()."""
    args = (module.params, module.check_mode) + ((Commands(module),) if commands else ())
    try:
        result = run(*args)
    except errors as exc:
        module.fail_json(msg=str(exc))
    finish(module, result)
