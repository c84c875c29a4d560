#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: residue.purge contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import absolute_import, division, print_function

__metaclass__ = type

DOCUMENTATION = r"""
module: model_budget
short_description: One size budget per host across Hugging Face, Ollama, ModelScope and torch hub model stores
version_added: 0.2.0
description:
  - Treats every model store of the host as one pool. Those are the Hugging Face hub caches (huggingface_hub 2.x
    shared blob store included), Ollama models dirs, ModelScope caches and torch hub dirs of every user, found as
    M(residue.purge.hf_cache), M(residue.purge.ollama_models) and M(residue.purge.modelscope_models) find them.
    It removes the least recently used models first, whatever store they are in, until the pool fits O(max_size).
  - A candidate is a whole Hugging Face repo, an Ollama model, a ModelScope model, or a torch hub checkpoint file
    or checkout dir. What removing one frees is its store's own accounting, updated as candidates are chosen. A
    shared blob store payload or an Ollama layer counts when its last reference goes, so two repos sharing a
    payload are both needed to free it.
  - Removal is done by each store's own code, which checks locks, open files and downloads in progress again right
    before. A candidate a process has open is skipped and the next one is taken. A ModelScope model being
    downloaded is never a candidate.
  - Sizes are the stores' own figures. Hugging Face and Ollama count file sizes as their tools do; ModelScope and
    torch hub count allocated bytes (du's).
  - POSIX hosts only; there is no Windows version of this module yet.
author:
  - residue.purge contributors (@residue-purge)
options:
  max_size:
    description:
      - The budget for all the host's model stores together (V(100G), V(512M)).
    type: str
    required: true
  force:
    description:
      - Remove models even when a process has one of their files open (never a download in progress).
    type: bool
    default: false
  one_file_system:
    description:
      - Do not enter another file system below a store.
    type: bool
    default: true
  scan_processes:
    description:
      - Read the stores' variables (C(HF_HOME), C(OLLAMA_MODELS), C(MODELSCOPE_CACHE), C(TORCH_HOME), ...) from
        the environment of running processes too.
    type: bool
    default: true
  profiles:
    description:
      - Extra or overriding residue profiles (as for M(residue.purge.discover)); the C(ollama), C(modelscope)
        and C(torch_hub) profiles say where those stores are.
    type: dict
    default: {}
extends_documentation_fragment:
  - residue.purge.model_stores
  - residue.purge.attributes
attributes:
  check_mode:
    details: Check mode finds, sizes and chooses exactly as a real run and removes nothing; RV(removed) is the plan.
  diff_mode:
    details: The diff lists the models chosen, least recently used first.
  idempotent:
    details: Once the stores fit the budget, a second run removes nothing.
seealso:
  - module: residue.purge.hf_cache
  - module: residue.purge.ollama_models
  - module: residue.purge.modelscope_models
"""

EXAMPLES = r"""
- name: Keep all AI models of the host under 200 GB, least recently used first, whatever the store
  residue.purge.model_budget:
    max_size: 200G
  become: true
"""

RETURN = r"""
removed:
  description: Models removed (in check mode, that would be), least recently used first.
  returned: always
  type: list
  elements: dict
  contains:
    store:
      description: The store (cache or models dir).
      type: str
    kind:
      description: V(hf_repo), V(ollama_model), V(modelscope_model) or V(torch_hub).
      type: str
    name:
      description: Repo id, full Ollama model name, ModelScope model id, or path below the torch hub dir.
      type: str
    path:
      description: What was removed (repo dir, manifest, model dir, checkpoint).
      type: str
    last_used:
      description: Epoch seconds of its last use.
      type: float
    freed_bytes:
      description: Bytes it freed (planned in check mode).
      type: int
held_back:
  description: Candidates skipped because a process has them open, or held back by their store's own checks.
  returned: always
  type: list
  elements: dict
  contains:
    store:
      description: The store.
      type: str
    kind:
      description: The candidate's kind.
      type: str
    name:
      description: Its name.
      type: str
    reason:
      description: V(in_use) or V(locked).
      type: str
    detail:
      description: Which file or process.
      type: str
stores:
  description: Every store found, with its kind (V(hf), V(ollama), V(modelscope), V(torch_hub)), path and
    C(bytes_before).
  returned: always
  type: list
  elements: dict
max_size:
  description: The budget in bytes.
  returned: always
  type: int
bytes_before:
  description: All stores together before.
  returned: always
  type: int
bytes_after:
  description: All stores together after (planned in check mode).
  returned: always
  type: int
over_budget:
  description: Still over the budget (what is left is in use or held back).
  returned: always
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

from ansible_collections.residue.purge.plugins.module_utils import _budget, _stores
from ansible_collections.residue.purge.plugins.module_utils._module import run_topic


def argument_spec():
    spec = dict(
        max_size=dict(type="str", required=True),
        one_file_system=dict(type="bool", default=True),
        profiles=dict(type="dict", default={}),
    )
    spec.update(_stores.STORE_ARGUMENT_SPEC)
    return spec


def main():
    module = AnsibleModule(argument_spec=argument_spec(), supports_check_mode=True)
    run_topic(module, _budget.run)


if __name__ == "__main__":
    main()
