#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: residue.purge contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import absolute_import, division, print_function

__metaclass__ = type

DOCUMENTATION = r"""
module: discover
short_description: Find every residue of AI tools on a host in one read-only pass
version_added: 0.1.0
description:
  - Resolves residue profiles (built-in or given) for every user of the host and inventories what they left
    behind, without changing anything.
  - Path residues (caches, configs, model directories) are sized as C(du -sB1) counts them (allocated blocks,
    hard links once). Hugging Face hub caches are reported repo by repo with their revisions and the unique size
    of their blobs, never as one opaque directory.
  - Also lists running processes that match the targets, pip distributions of the targets in the Python
    environments found, and every Hugging Face cache with the reason it was found (default location,
    environment variable, the environment of a running process, or /etc/environment).
  - Nothing is followed through a symlink, and other filesystems are not entered unless O(one_file_system=false).
    The output size depends on the number of residues, never on the number of files.
author:
  - residue.purge contributors (@residue-purge)
extends_documentation_fragment:
  - residue.purge.twins.DISCOVER
  - residue.purge.targets
  - residue.purge.targets.ATTRIBUTES_READ_ONLY
requirements:
  - psutil on the managed host to list processes (without it, processes are not listed and a warning says so).
options:
  scan_processes:
    description:
      - Read the cache variables (C(HF_HOME), C(HF_HUB_CACHE), C(HUGGINGFACE_HUB_CACHE), C(TRANSFORMERS_CACHE),
        C(XDG_CACHE_HOME), C(TORCH_HOME), C(MODELSCOPE_CACHE), C(OLLAMA_MODELS), ...) from the environment of
        every running process, so a daemon started with C(HF_HOME=/data/hf) leads to that cache.
      - On macOS (no C(/proc)) the environments come from C(ps -E); macOS shows another user's only to root
        and never that of SIP-protected processes. Setuid programs are left out (they carry their invoker's).
      - C(/etc/environment) and the module's own environment are always read.
    type: bool
    default: true
  one_file_system:
    description:
      - Do not descend into other filesystems (mount points inside a residue).
    type: bool
    default: true
  search_roots:
    description:
      - Directories searched for virtual and conda environments when looking for the targets' pip packages.
      - Defaults to the home directories covered, C(/opt) and C(/srv) (as M(residue.purge.pip_remove) does).
        System interpreters and per-user C(~/.local) installs are always included.
    type: list
    elements: path
    default: []
notes:
  - Run with C(become) to cover every user; without it, other users' unreadable directories are reported in
    RV(problems) and as warnings, and the task still succeeds.
seealso:
  - module: residue.purge.hf_cache
  - module: residue.purge.remove
"""

EXAMPLES = r"""
- name: Inventory everything Open-AutoGLM left on the host
  residue.purge.discover:
    targets: [open_autoglm]
  become: true
  register: found

- name: Show what would be freed
  ansible.builtin.debug:
    msg: "{{ found.total_bytes | ansible.builtin.human_readable }} in {{ found.residues | length }} residues"

- name: Caches of all AI tools unused for 30 days
  residue.purge.discover:
    older_than: 30d

- name: Sandbox run on explicit homes, with an extra profile
  residue.purge.discover:
    homes: [/tmp/sandbox/home/alice]
    scan_processes: false
    targets: [mytool]
    profiles:
      mytool:
        paths: ["{user_cache}/mytool", "{user_config}/mytool"]
        processes: {names: [mytool-daemon]}
        hf_repos: ["myorg/mytool-*"]
        pip: [mytool]
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
    apfs_shared_bytes:
      description:
        - Bytes of this path residue's regular files that APFS clones or local (Time Machine) snapshots share, so
          removing it frees that much less than RV(residues[].bytes) (allocated bytes minus getattrlist's
          C(ATTR_CMNEXT_PRIVATESIZE) per file, hard links once; macOS 10.15+). Read only, nothing is thinned.
        - C(null) when it could not be read; files it could not read and a non-zero value are named in
          RV(problems).
      type: int
      returned: on macOS, when kind is path
    exclusive_bytes:
      description:
        - What removing this repo alone frees, huggingface_hub's accounting (its C(expected_freed_size)), that is the
          repo's own blobs plus the huggingface_hub 2.x shared store payloads no other repo references (a
          payload with other hard links counts only with its last link). Equals RV(residues[].blob_bytes)
          in a cache without a shared store.
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
      skipped), or V(null) when the chain does not show one.
  returned: always
  type: list
  elements: dict
  sample:
    - {pid: 4242, ppid: 4200, name: open-autoglm, user: alice, cmdline: [open-autoglm, serve], target: open_autoglm,
       parents: [{pid: 4200, name: bash}, {pid: 1, name: systemd}], restarted_by: {pid: 4200, name: bash}}
packages:
  description: pip distributions of the targets, each with its C(name), C(version) and C(target), the C(environment)
    it is installed in (its C(kind), C(python) and C(user)).
  returned: always
  type: list
  elements: dict
  sample:
    - {target: open_autoglm, name: open-autoglm, version: 0.3.1, environment: /opt/agents/venv, python: /opt/agents/venv/bin/python, kind: venv, user: root}
hf_caches:
  description: Every Hugging Face hub cache found, with the owner and how it was found, and C(store_bytes),
    the allocated bytes of its huggingface_hub 2.x shared blob store (null when it has none, or when no
    target names hf_repos, so no cache was scanned).
  returned: always
  type: list
  elements: dict
  sample:
    - path: /data/hf/hub
      user: svc
      source: process 4242 (HF_HOME)
      sources: [process 4242 (HF_HOME)]
      store_bytes: 7516192768
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
  description: Disk usage of all residues, each location counted once, plus the huggingface_hub 2.x shared store
    payloads that removing all the listed hf_repo residues would free (a repo dir there holds only links).
  returned: always
  type: int
problems:
  description: Unreadable directories, broken Hugging Face cache entries and other things that could not be inventoried.
  returned: always
  type: list
  elements: str
"""

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.residue.purge.plugins.module_utils import _discover
from ansible_collections.residue.purge.plugins.module_utils._module import run_topic
from ansible_collections.residue.purge.plugins.module_utils._profiles import TARGET_ARGUMENT_SPEC


def main():
    argument_spec = dict(
        extra_hf_caches=dict(type="list", elements="path", default=[]),
        scan_processes=dict(type="bool", default=True),
        older_than=dict(type="str"),
        one_file_system=dict(type="bool", default=True),
        search_roots=dict(type="list", elements="path", default=[]),
    )
    argument_spec.update(TARGET_ARGUMENT_SPEC)
    module = AnsibleModule(argument_spec=argument_spec, supports_check_mode=True)
    run_topic(module, _discover.run)


if __name__ == "__main__":
    main()
