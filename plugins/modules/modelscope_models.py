#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: residue.purge contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import absolute_import, division, print_function

__metaclass__ = type

DOCUMENTATION = r"""
module: modelscope_models
short_description: List and remove ModelScope cached models one by one, keeping downloads in progress
version_added: 0.2.0
description:
  - Lists the models of every ModelScope cache (C(MODELSCOPE_CACHE), by default C(~/.cache/modelscope/hub), for
    every user, running processes' environments included) and removes the ones you select, by pattern, by age,
    or least recently used first until a size budget is met, instead of deleting the whole cache.
  - Both layouts are read. The current one is C(<cache>/models/<org>/<name>), where a C(.) of the name is written
    C(___). The older flat one is C(<cache>/<org>/<name>), recognised by ModelScope's metadata files (C(.msc),
    C(.mdl), C(.mv)), which are never unpickled.
  - A model with a download in progress (C(<cache>/._____temp/<org>/<name>) modified within
    O(incomplete_older_than)) is never removed, even with O(force). A model one of whose files a process has open
    is held back unless O(force).
  - A model dir goes whole, removed without following any link and only if it is still the directory planned.
  - POSIX hosts only; there is no Windows version of this module yet.
author:
  - residue.purge contributors (@residue-purge)
options:
  cache_dirs:
    description:
      - ModelScope caches to work on. When given, no other cache is looked for unless O(discover=true).
    type: list
    elements: path
    default: []
  discover:
    description:
      - Also find every user's ModelScope cache (the C(modelscope) profile's location and its C(hub) dir).
        Default V(true) when O(cache_dirs) is empty.
    type: bool
  models:
    description:
      - Globs on the model id C(org/name) (V(qwen/Qwen2.5-7B-Instruct), V(qwen/*)). Empty means every model
        (then only O(older_than) or O(max_size) select). With neither, the module only lists.
    type: list
    elements: str
    default: []
  keep:
    description:
      - Globs of model ids never removed.
    type: list
    elements: str
    default: []
  older_than:
    description:
      - Only remove models last used (newest access or modification below them) longer ago than this (V(30d)).
    type: str
  max_size:
    description:
      - Size budget per cache (V(50G)); the least recently used models in scope go first until it fits.
    type: str
  incomplete_older_than:
    description:
      - A download in progress younger than this holds its model back. V(never) holds it back whatever its age.
    type: str
    default: 1d
  force:
    description:
      - Remove models even when a process has one of their files open (never one being downloaded).
    type: bool
    default: false
  one_file_system:
    description:
      - Do not enter another file system below a model dir.
    type: bool
    default: true
  scan_processes:
    description:
      - Read C(MODELSCOPE_CACHE) from the environment of running processes too.
    type: bool
    default: true
extends_documentation_fragment:
  - residue.purge.model_stores
  - residue.purge.attributes
attributes:
  check_mode:
    details: Check mode sizes, plans and checks open files exactly as a real run and removes nothing.
  diff_mode:
    details: The diff lists the models of every cache before and after.
  idempotent:
    details: A second run finds nothing left to remove and reports no change.
seealso:
  - module: residue.purge.ollama_models
  - module: residue.purge.hf_cache
"""

EXAMPLES = r"""
- name: Remove every cached Qwen model from every user's ModelScope cache
  residue.purge.modelscope_models:
    models: ['qwen/*']
  become: true

- name: Keep each ModelScope cache under 30 GB, least recently used models first
  residue.purge.modelscope_models:
    max_size: 30G
"""

RETURN = r"""
models:
  description: Every model found (before any removal).
  returned: always
  type: list
  elements: dict
  contains:
    cache:
      description: The cache dir.
      type: str
    model_id:
      description: C(org/name).
      type: str
    path:
      description: The model dir.
      type: str
    layout:
      description: V(models) (C(<cache>/models/<org>/<name>)) or V(flat) (C(<cache>/<org>/<name>)).
      type: str
    bytes:
      description: Disk usage (du's bytes).
      type: int
    files:
      description: Files.
      type: int
    last_used:
      description: Epoch seconds of the newest access or modification below it.
      type: float
    downloading:
      description: A download of it is under C(._____temp).
      type: bool
removed:
  description: Models removed (in check mode, that would be).
  returned: always
  type: list
  elements: dict
  contains:
    cache:
      description: The cache dir.
      type: str
    model_id:
      description: C(org/name).
      type: str
    path:
      description: The model dir removed.
      type: str
    layout:
      description: V(models) or V(flat).
      type: str
    bytes:
      description: Bytes freed.
      type: int
    files:
      description: Files removed.
      type: int
    reason:
      description: V(selected) or V(budget).
      type: str
held_back:
  description: Models selected but not touched (each is a warning).
  returned: always
  type: list
  elements: dict
  contains:
    cache:
      description: The cache dir.
      type: str
    model_id:
      description: C(org/name).
      type: str
    path:
      description: The model dir.
      type: str
    reason:
      description: V(in_use) (open file or download in progress).
      type: str
    detail:
      description: Which file, process or download.
      type: str
caches:
  description: Every cache worked on, how it was found, and its models' size before and after.
  returned: always
  type: list
  elements: dict
  contains:
    path:
      description: The cache dir.
      type: str
    user:
      description: The user it was found for (null when given in O(cache_dirs)).
      type: str
    source:
      description: How it was found.
      type: str
    bytes_before:
      description: Bytes of its models before.
      type: int
    bytes_after:
      description: After (planned in check mode).
      type: int
    max_size:
      description: The budget, if any.
      type: int
    over_budget:
      description: Still over the budget.
      type: bool
freed_bytes:
  description: Total bytes freed.
  returned: always
  type: int
problems:
  description: What could not be read or done.
  returned: always
  type: list
  elements: str
failures:
  description: Removals that failed; the task fails when this is not empty.
  returned: always
  type: list
  elements: str
"""

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.residue.purge.plugins.module_utils import _modelscope, _stores
from ansible_collections.residue.purge.plugins.module_utils._module import run_topic


def argument_spec():
    spec = dict(
        cache_dirs=dict(type="list", elements="path", default=[]),
        discover=dict(type="bool"),
        models=dict(type="list", elements="str", default=[]),
        keep=dict(type="list", elements="str", default=[]),
        older_than=dict(type="str"),
        max_size=dict(type="str"),
        incomplete_older_than=dict(type="str", default="1d"),
        one_file_system=dict(type="bool", default=True),
    )
    spec.update(_stores.STORE_ARGUMENT_SPEC)
    return spec


def main():
    module = AnsibleModule(argument_spec=argument_spec(), supports_check_mode=True)
    run_topic(module, _modelscope.run)


if __name__ == "__main__":
    main()
