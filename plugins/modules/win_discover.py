#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: residue.purge contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

# The code is win_discover.ps1; this file only documents it. Tasks use residue.purge.discover: meta/runtime.yml
# routes that name to this module for Windows hosts.

from __future__ import absolute_import, division, print_function

__metaclass__ = type

DOCUMENTATION = r"""
module: win_discover
short_description: Find every residue of AI tools on a Windows host in one read-only pass
version_added: 0.2.0
description:
  - The Windows implementation of M(residue.purge.discover). Use that name in tasks; it reaches this module on
    hosts with a PowerShell shell, with the options and return values of M(residue.purge.discover).
  - Users are the profiles listed under C(HKLM\SOFTWARE\Microsoft\Windows NT\CurrentVersion\ProfileList) (local
    and domain accounts, service profiles under C(C:\Windows) left out). Each user's cache variables
    (C(HF_HOME), C(HF_HUB_CACHE), C(XDG_CACHE_HOME), C(TORCH_HOME), C(OLLAMA_MODELS), C(PIP_CACHE_DIR), ...) are
    read from C(HKEY_USERS\<SID>\Environment), loading the user's C(NTUSER.DAT) for the duration when the user is
    not logged on, and from the machine environment (C(HKLM\...\Session Manager\Environment)).
  - Placeholders resolve as on Windows in M(residue.purge.discover)'s profiles, for example C({user_cache}) is
    C(%LOCALAPPDATA%), C({user_config}) C(%APPDATA%), C({pip_cache}) C(%LOCALAPPDATA%\pip\Cache) and
    C({hf_home}) C(%USERPROFILE%\.cache\huggingface).
  - Sizes are file sizes rounded up to the volume's cluster size. Junctions, symbolic links and other reparse
    points are counted as entries and never entered, so nothing outside a residue is counted.
  - Hugging Face hub caches are listed repo by repo in both forms huggingface_hub writes on Windows, with
    symbolic links from C(snapshots) to C(blobs), and without them (files copied into C(snapshots)).
  - Packages are read from the C(*.dist-info) and C(*.egg-info) metadata of virtual environments,
    conda environments, interpreters registered under PEP 514 and each user's C(%APPDATA%\Python) user site.
  - When the module runs as SYSTEM or an elevated administrator, a user's home is searched for environments, and
    their metadata read, with that user's own rights (see the collection's C(docs/trust.md)); a user whose token
    cannot be had is not searched, and is named in RV(problems).
author:
  - residue.purge contributors (@residue-purge)
extends_documentation_fragment:
  - residue.purge.twins.DISCOVER
  - residue.purge.targets
  - residue.purge.targets.ATTRIBUTES_READ_ONLY
options:
  scan_processes:
    description:
      - On POSIX hosts, read the cache variables from the environment of every running process.
      - On Windows the environments of other processes are not read; the machine's and every user's registry
        environment always are, and so is the module's own environment.
    type: bool
    default: true
  one_file_system:
    description:
      - Do not descend into other filesystems. On Windows a mounted volume is a reparse point and is never
        entered, whatever this option says.
    type: bool
    default: true
  search_roots:
    description:
      - Directories searched for virtual and conda environments when looking for the targets' pip packages.
      - Defaults to the home directories covered and C(%ProgramData%). Registered interpreters and per-user
        C(%APPDATA%\Python) user sites are always included.
    type: list
    elements: path
    default: []
notes:
  - Run as an administrator to cover every user (the hives of users who are not logged on can only be loaded
    with the backup and restore privileges); otherwise what could not be read is listed in RV(problems). A user's
    path residues are then sized with that user's own rights (see the collection's C(docs/trust.md)); one whose
    token cannot be had is left out and named in RV(problems).
  - Nothing of this module has been run on Windows by the collection's own tests yet; see the collection's
    C(docs/windows.md) for what is proven and how to run the Windows integration targets.
seealso:
  - module: residue.purge.discover
"""

EXAMPLES = r"""
- name: Inventory everything Open-AutoGLM left on Windows and Linux hosts alike
  residue.purge.discover:
    targets: [open_autoglm]
  register: found
"""

RETURN = r"""
residues:
  description:
    - One item per residue location and target (a location matched by several targets is listed once per target).
  returned: always
  type: list
  elements: dict
  contains:
    target: {description: Profile name., type: str, returned: always}
    kind: {description: "V(path) or V(hf_repo).", type: str, returned: always}
    path: {description: Absolute path of the residue (for hf_repo the C(models--org--name) directory)., type: str, returned: always}
    user: {description: Owner of the residue path., type: str, returned: always}
    bytes: {description: Disk usage as C(du -sB1) counts it (hard links once)., type: int, returned: always}
    files: {description: Number of regular files., type: int, returned: always}
    newest_mtime: {description: Newest modification time (epoch seconds)., type: float, returned: always}
    last_access: {description: Newest access time (epoch seconds)., type: float, returned: always}
    repo_id: {description: "C(org/name), for hf_repo.", type: str, returned: when kind is hf_repo}
    repo_type: {description: "V(model), V(dataset) or V(space).", type: str, returned: when kind is hf_repo}
    blob_bytes:
      description: Sum of the sizes of the repo's unique blobs (what huggingface_hub calls size_on_disk).
      type: int
      returned: when kind is hf_repo
    revisions:
      description: Revisions of the repo with C(commit), C(refs), C(bytes) and C(last_modified).
      type: list
      elements: dict
      returned: when kind is hf_repo
  sample:
    - target: open_autoglm
      kind: path
      path: /home/alice/.cache/open-autoglm
      user: alice
      bytes: 1052672
      files: 12
      newest_mtime: 1764150000.0
      last_access: 1764150000.0
processes:
  description:
    - Running processes matching the targets' process patterns, each with C(pid), C(ppid), C(name), C(user),
      C(cmdline) and the C(target) it matched.
    - C(parents) is the parent chain, nearest first (C(pid), C(name)); C(restarted_by) the ancestor that started
      it (the nearest one that was running more than a second before it, so a wrapper shell born with it is
      skipped), or V(null) when the chain does not show one. A parent created after its child is another process
      that got a dead parent's pid, and ends the chain.
  returned: always
  type: list
  elements: dict
  sample:
    - {pid: 4242, ppid: 4200, name: open-autoglm.exe, user: alice, cmdline: ['C:\Tools\open-autoglm.exe', serve],
       target: open_autoglm, parents: [{pid: 4200, name: powershell.exe}, {pid: 3100, name: explorer.exe}],
       restarted_by: {pid: 4200, name: powershell.exe}}
packages:
  description: pip distributions of the targets, each with its C(name), C(version) and C(target), the C(environment)
    it is installed in (its C(kind), C(python) and C(user)).
  returned: always
  type: list
  elements: dict
  sample:
    - {target: open_autoglm, name: open-autoglm, version: 0.3.1, environment: /opt/agents/venv, python: /opt/agents/venv/bin/python, kind: venv, user: root}
hf_caches:
  description: Every Hugging Face hub cache found, with the owner and how it was found.
  returned: always
  type: list
  elements: dict
  sample:
    - {path: /data/hf/hub, user: svc, source: process 4242 (HF_HOME), sources: [process 4242 (HF_HOME)]}
users:
  description: The users whose homes were covered.
  returned: always
  type: list
  elements: str
targets:
  description: The profiles that were resolved.
  returned: always
  type: list
  elements: str
total_bytes:
  description: Disk usage of all residues, each location counted once.
  returned: always
  type: int
problems:
  description: Unreadable directories, broken Hugging Face cache entries and other things that could not be inventoried.
  returned: always
  type: list
  elements: str
"""
