#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: residue.purge contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import absolute_import, division, print_function

__metaclass__ = type

DOCUMENTATION = r"""
module: pip_remove
short_description: Remove pip packages from every Python environment without breaking shared dependencies
version_added: 0.1.0
description:
  - Finds the Python environments of a host (system interpreters, virtual environments, conda environments and
    every user's C(~/.local) user site), or uses the ones given, and uninstalls the named packages from each with
    that environment's own pip (C(python -m pip uninstall -y)).
  - A named package that a remaining distribution still requires is kept and reported in RV(environments[].kept_shared)
    unless O(remove_required=true).
  - With O(orphans=true) it also removes the dependencies that, after the removal, nothing remaining requires
    (markers and extras evaluated by that environment's interpreter), that were not installed on request
    (no C(REQUESTED) marker), that pip or uv installed, and that are not in O(keep). C(pip), C(setuptools) and
    C(wheel) are only removed when named.
  - Environments marked C(EXTERNALLY-MANAGED) (the distribution's Python) are reported, not changed, unless
    O(allow_system=true).
  - Running as root, pip runs as the owner of an environment that root does not own, so a crafted C(RECORD)
    file cannot make root delete files that user could not.
  - Each environment is handled on its own. A broken one is reported and the others are done; the task fails at
    the end when a package that was found could not be removed.
author:
  - residue.purge contributors (@residue-purge)
extends_documentation_fragment:
  - residue.purge.twins.PIP_REMOVE
  - residue.purge.targets
  - residue.purge.attributes
options:
  environments:
    description:
      - Python interpreters (C(/opt/app/venv/bin/python)) or environment directories (a venv, a conda
        environment, an interpreter prefix, a C(~/.local) user base) to work on.
      - Empty means discover them (see O(search_roots), O(include_system) and O(homes)/O(users)).
    type: list
    elements: path
    default: []
  search_roots:
    description:
      - Directories searched for virtual environments (C(pyvenv.cfg)) and conda environments (C(conda-meta)),
        down to O(max_depth) levels, without following symlinks.
      - Omitted means the homes of the covered users, C(/opt) and C(/srv). Well-known per-user places
        (C(~/.virtualenvs), C(~/.pyenv/versions), C(~/.conda/envs), C(~/miniconda3), ...) are always looked at.
    type: list
    elements: path
  include_system:
    description: Include the host's system interpreters (C(/usr/bin/python3*), C(/usr/local/bin/python3*), ...).
    type: bool
    default: true
notes:
  - Distributions are read from their C(*.dist-info)/C(*.egg-info) metadata without running the interpreter;
    the interpreter runs only in environments where a named package is installed.
  - C(*.egg-info) installs record no C(REQUESTED) marker and are never removed as orphans.
  - The user site of each user is handled with the system interpreter of the same Python version.
seealso:
  - module: residue.purge.discover
"""

EXAMPLES = r"""
- name: Remove Open-AutoGLM and the dependencies only it needed, from every environment of the host
  residue.purge.pip_remove:
    targets: [open_autoglm]
    orphans: true
    keep: [torch]
  become: true

- name: Remove two packages from one virtual environment, showing the plan first
  residue.purge.pip_remove:
    packages: [open-autoglm, autoglm-tools]
    environments: [/opt/agents/venv]
    orphans: true
  check_mode: true
  register: plan

- name: Include the distribution's Python (EXTERNALLY-MANAGED)
  residue.purge.pip_remove:
    packages: [open-autoglm]
    include_system: true
    allow_system: true
  become: true
"""

RETURN = r"""
packages:
  description: The normalised names that were looked for.
  returned: always
  type: list
  elements: str
  sample: [open-autoglm]
environments:
  description: One entry per environment looked at.
  returned: always
  type: list
  elements: dict
  contains:
    path:
      description: Prefix of the environment (the user base for a user site).
      type: str
    python:
      description: Its interpreter (null for a user site with no system interpreter of that version).
      type: str
    kind:
      description: C(system), C(venv), C(conda) or C(user-site).
      type: str
    user:
      description: Owner of the environment.
      type: str
    site_dirs:
      description: The site directories read.
      type: list
      elements: str
    externally_managed:
      description: Whether the environment is marked C(EXTERNALLY-MANAGED).
      type: bool
    status:
      description:
        - One of C(absent) (none of the packages installed), C(unchanged), C(planned) (check mode), C(changed),
          C(externally_managed) (found, not touched), C(broken) (interpreter missing or failing), C(failed).
      type: str
    found:
      description: The named packages installed there before the run (name, version).
      type: list
      elements: dict
    removed:
      description: Named packages removed (C(name), C(version)); in check mode, the ones that would be.
      type: list
      elements: dict
    orphans_removed:
      description: Dependencies removed as orphans (name, version); in check mode, the ones that would be.
      type: list
      elements: dict
    kept_shared:
      description: Dependencies of removed packages, and named packages, kept because remaining distributions
        require them (name, version, required_by).
      type: list
      elements: dict
    kept:
      description: Other dependencies of removed packages left in place, with the reason (C(requested), C(keep),
        C(protected), C(installed by conda), C(orphan (orphans false))).
      type: list
      elements: dict
    pip_check:
      description:
        - Result of C(pip check) after a removal; null when nothing was removed.
        - C(ok) and C(output) are what pip check said; C(new) are the lines it did not say before the removal
          (what this run broke; a user site's check also sees the system's site-packages).
      type: dict
    error:
      description: Why the environment was not (fully) handled, or null.
      type: str
    problems:
      description: Non-fatal findings (for example requirement strings that could not be parsed).
      type: list
      elements: str
  sample:
    - path: /opt/agents/venv
      python: /opt/agents/venv/bin/python
      kind: venv
      user: root
      site_dirs: [/opt/agents/venv/lib/python3.11/site-packages]
      externally_managed: false
      status: changed
      found: [{name: open-autoglm, version: 0.3.1}]
      removed: [{name: open-autoglm, version: 0.3.1}]
      orphans_removed: [{name: autoglm-core, version: 0.3.1}]
      kept_shared: [{name: transformers, version: 4.46.0, required_by: [vllm]}]
      kept: [{name: torch, version: 2.5.1, reason: keep}]
      pip_check: {ok: true, output: [No broken requirements found.]}
      error: null
      problems: []
problems:
  description: One line per environment that was broken, failed or left untouched, and per non-fatal finding.
  returned: always
  type: list
  elements: str
"""

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.residue.purge.plugins.module_utils import _pyenvs
from ansible_collections.residue.purge.plugins.module_utils._module import run_topic
from ansible_collections.residue.purge.plugins.module_utils._profiles import TARGET_ARGUMENT_SPEC


def main():
    argument_spec = dict(
        packages=dict(type="list", elements="str", default=[]),
        environments=dict(type="list", elements="path", default=[]),
        search_roots=dict(type="list", elements="path"),
        max_depth=dict(type="int", default=4),
        include_system=dict(type="bool", default=True),
        orphans=dict(type="bool", default=False),
        keep=dict(type="list", elements="str", default=[]),
        allow_system=dict(type="bool", default=False),
        remove_required=dict(type="bool", default=False),
    )
    argument_spec.update(TARGET_ARGUMENT_SPEC)
    module = AnsibleModule(argument_spec=argument_spec, supports_check_mode=True)
    run_topic(module, _pyenvs.run)


if __name__ == "__main__":
    main()
