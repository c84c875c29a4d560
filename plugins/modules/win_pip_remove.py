#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: residue.purge contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

# The code is win_pip_remove.ps1; this file only documents it. Tasks use residue.purge.pip_remove: meta/runtime.yml
# routes that name to this module for Windows hosts.

from __future__ import absolute_import, division, print_function

__metaclass__ = type

DOCUMENTATION = r"""
module: win_pip_remove
short_description: Remove pip packages from every Python environment of a Windows host without breaking shared dependencies
version_added: 0.2.0
description:
  - The Windows implementation of M(residue.purge.pip_remove). Use that name in tasks; it reaches this module on
    hosts with a PowerShell shell, with the options and return values of M(residue.purge.pip_remove).
  - Environments are virtual environments (C(pyvenv.cfg) and C(Scripts\python.exe)) and conda environments
    (C(conda-meta)) under O(search_roots), interpreters registered under PEP 514, and each covered user's
    C(%APPDATA%\Python\PythonXY) user site (handled with the registered interpreter of that version, C(APPDATA)
    pointing at the user's roaming folder). Junctions and symbolic links are never followed while searching.
  - Each environment's own interpreter lists its distributions with their requirements (markers evaluated
    there, with pip's vendored C(packaging)); the plan is M(residue.purge.pip_remove)'s (a named package that
    a remaining distribution requires is kept and reported in RV(environments[].kept_shared)), then
    C(python -m pip uninstall -y) and C(pip check) run in that environment.
  - A requirement that only an extra activates is counted as if the extra were installed (pip does not record
    which extras were), which keeps more shared dependencies than M(residue.purge.pip_remove) does on POSIX.
author:
  - residue.purge contributors (@residue-purge)
extends_documentation_fragment:
  - residue.purge.twins.PIP_REMOVE
  - residue.purge.targets
  - residue.purge.attributes
options:
  environments:
    description:
      - Python interpreters (C(C:\\app\\venv\\Scripts\\python.exe)) or environment directories (a venv, a conda
        environment, an interpreter prefix) to work on.
      - Empty means discover them (see O(search_roots), O(include_system) and O(homes)/O(users)).
    type: list
    elements: path
    default: []
  search_roots:
    description:
      - Directories searched for virtual environments (C(pyvenv.cfg)) and conda environments (C(conda-meta)),
        down to O(max_depth) levels, without following symlinks.
      - Omitted means the homes of the covered users and C(%ProgramData%).
    type: list
    elements: path
  include_system:
    description: Include the interpreters registered under PEP 514 (C(HKLM) and each covered user's C(Software\\Python\\PythonCore)).
    type: bool
    default: true
notes:
  - A user's environment (in her profile, or owned by her) is listed, checked and uninstalled by a pip process
    started with her own restricted token (an S4U logon, no privileges) and her profile's C(TEMP) and C(APPDATA),
    when the module runs as SYSTEM or an elevated administrator; a user whose token cannot be had has those of her
    environments that name one of the packages reported as failed, and pip is not run for them. Environments of the module's own account, those
    installed by administrators, and every environment in an unprivileged run are handled with the module's own
    rights. See the collection's C(docs/trust.md).
  - Nothing of this module has been run on Windows by the collection's own tests yet; see the collection's
    C(docs/windows.md).
seealso:
  - module: residue.purge.pip_remove
"""

EXAMPLES = r"""
- name: Uninstall Open-AutoGLM from every Python environment, keeping what other tools need
  residue.purge.pip_remove:
    targets: [open_autoglm]
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
