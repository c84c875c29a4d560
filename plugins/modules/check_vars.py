#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: residue.purge contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import absolute_import, division, print_function

__metaclass__ = type

DOCUMENTATION = r"""
module: check_vars
short_description: Check the playbooks' residue_* variables before anything runs, naming the variable that is wrong
version_added: 0.1.0
description:
  - The first check of every residue.purge playbook. Reads the C(residue_*) variables of the host (from C(-e),
    the inventory, the play) and fails with one short message that starts with the name of the variable that is
    wrong, with the rules the modules apply to their own options (durations and sizes as O(residue.purge.remove#module:older_than)
    and O(residue.purge.hf_cache#module:max_size), profiles as O(residue.purge.discover#module:profiles), paths
    as the modules' path options).
  - On the controller (the action plugin, always) C(residue_targets) (known profile names; unset or empty refused
    when O(require_targets)), C(residue_profiles), C(residue_homes), C(residue_backup_dir),
    C(residue_restore_archive) (absolute paths without C(..)), C(residue_report_dir) (a directory, or one that
    can be created, writable by whoever runs the playbook), C(residue_install_deps), C(residue_hosts),
    C(residue_prune_older_than), C(residue_prune_max_size) and C(residue_prune_budget_scope) (V(host) or V(cache)).
  - On the host (unless O(on_host=false)), what only the host can tell. Every home in C(residue_homes) exists.
    C(residue_backup_dir) is refused when a component is a symlink not owned by root, when an existing
    component is not a directory, belongs to a user other than root and the connecting user, or is writable by
    every user without the sticky bit, when it is a protected directory (a home, a shared cache, a system
    directory), or when it is (by spelling or by realpath) inside a residue of the targets. The host is also
    probed for what the next phases need (psutil importable, free space where the backup goes), and its
    C(os_family) fact is set as C(ansible.builtin.setup) sets it, so the playbooks need no fact gathering (a module
    run per host). On a PowerShell host (no Python there) the action plugin runs C(ansible.builtin.setup) with
    O(ansible.builtin.setup#module:gather_subset=min) instead and returns its facts.
author:
  - residue.purge contributors (@residue-purge)
options:
  require_targets:
    description: Refuse an unset or empty C(residue_targets) (a purge; an audit or a prune covers every profile).
    type: bool
    default: false
  on_host:
    description:
      - Also check on the host (homes, backup directory) and probe it. V(false) checks on the controller only and
        contacts no host (the playbooks do that once per run, C(run_once), before any host is touched).
    type: bool
    default: true
  variables:
    description:
      - The variables to check, by name. Set by the action plugin from the host's variables; give it only to check
        other values than the host's.
    type: dict
extends_documentation_fragment:
  - residue.purge.targets.ATTRIBUTES_READ_ONLY
attributes:
  action:
    support: full
    description: The controller-side checks run in the action plugin, before (or instead of) the module.
notes:
  - "The message of a failure is one line that starts with the variable's name, for example
    C(residue_prune_older_than: expected a duration such as 30d, 12h or 90m, got 'soon')."
seealso:
  - module: residue.purge.remove
"""

EXAMPLES = r"""
- name: Check the variables once, before any host is touched
  residue.purge.check_vars:
    require_targets: true
    on_host: false
  run_once: true

- name: Check the backup directory and the homes on each host
  residue.purge.check_vars:
  register: checked
"""

RETURN = r"""
values:
  description: The variables as the modules will read them (durations in seconds, sizes in bytes, paths canonical).
  returned: always
  type: dict
  sample: {targets: [open_autoglm], homes: [], backup_dir: /var/backups/residue, older_than: null, max_size: null}
psutil:
  description: Whether psutil imports for the Python that runs the modules.
  returned: on the host
  type: bool
python:
  description: That Python.
  returned: on the host
  type: str
ansible_facts:
  description: The facts the playbooks read. C(os_family) as C(ansible.builtin.setup) gathers it; on a PowerShell
    host, every fact of C(ansible.builtin.setup) with O(ansible.builtin.setup#module:gather_subset=min).
  returned: on the host
  type: dict
  sample: {os_family: Debian}
backup_free:
  description: Free bytes where the backup goes (the nearest existing directory of C(residue_backup_dir)).
  returned: on the host, when C(residue_backup_dir) is set
  type: int
backup_probe:
  description: The directory whose free space RV(backup_free) is.
  returned: on the host, when C(residue_backup_dir) is set
  type: str
"""

from ansible.module_utils.basic import AnsibleModule
from ansible.module_utils.facts.system.distribution import DistributionFactCollector

from ansible_collections.residue.purge.plugins.module_utils import _inputs
from ansible_collections.residue.purge.plugins.module_utils._module import run_topic


def main():
    module = AnsibleModule(argument_spec=dict(require_targets=dict(type="bool", default=False),
                                              on_host=dict(type="bool", default=True),
                                              variables=dict(type="dict")),
                           supports_check_mode=True)

    def run(params, check_mode):
        result = _inputs.run(params, check_mode)
        # the one fact the playbooks read, computed as setup computes it (its distribution collector, not the others)
        result["ansible_facts"] = {"os_family": DistributionFactCollector().collect(module=module).get("os_family")}
        return result

    run_topic(module, run)


if __name__ == "__main__":
    main()
