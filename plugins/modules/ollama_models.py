#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: residue.purge contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import absolute_import, division, print_function

__metaclass__ = type

DOCUMENTATION = r"""
module: ollama_models
short_description: List and remove Ollama models, keeping layers other models share and files the server holds
version_added: 0.2.0
description:
  - Lists the models of every Ollama models dir (name, tag, size, exclusive size, last use) and removes the ones
    you select, by name pattern, by age, or least recently used first until a size budget is met, instead of
    deleting the whole store.
  - Removal is what C(ollama rm) does. The model's manifest (C(manifests/<registry>/<namespace>/<model>/<tag>))
    goes, with the directories it leaves empty, then only the layers (C(blobs/sha256-<hex>)) that no remaining
    manifest references. The manifests are read again right before, so a layer a model pulled meanwhile uses stays.
    While a manifest of the store cannot be read, no layer is removed there, because what it references is unknown.
  - With O(orphans), layers no manifest references and partial downloads (C(blobs/sha256-<hex>-partial*)) older
    than O(orphans_older_than) are removed too.
  - Nothing a process has open or mapped (the Ollama server holding a loaded model, a pull writing a partial
    download) is removed. Such a model is held back (RV(held_back)) unless O(force).
  - Models dirs are found as the C(ollama) profile resolves them. Every user's C(~/.ollama/models), the Linux
    service's C(/usr/share/ollama/.ollama/models), and C(OLLAMA_MODELS) from each user's environment, running
    processes included (the server's), within the multi-user trust rules.
  - POSIX hosts only; there is no Windows version of this module yet.
author:
  - residue.purge contributors (@residue-purge)
options:
  models_dirs:
    description:
      - Ollama models dirs to work on (what C(OLLAMA_MODELS) names). When given, no other dir is looked for
        unless O(discover=true).
    type: list
    elements: path
    default: []
  discover:
    description:
      - Also find the models dirs of the users (see the description). Default V(true) when O(models_dirs) is
        empty, else V(false).
    type: bool
  models:
    description:
      - Globs on the model name as C(ollama list) shows it (V(llama3:8b), V(llama3) for every tag,
        V(hf.co/*)) or in full (V(registry.ollama.ai/library/llama3:8b)). Empty means every model (then only
        O(older_than) or O(max_size) select).
      - With neither O(models), O(older_than) nor O(max_size) the module only lists.
    type: list
    elements: str
    default: []
  keep:
    description:
      - Globs (as in O(models)) of models never removed, whatever else selects them.
    type: list
    elements: str
    default: []
  older_than:
    description:
      - Only remove models last used longer ago than this (V(30d), V(12h)). Last use is the newest of the
        layers' access times and the manifest's modification time (Ollama reads the layers when it loads a model).
    type: str
  max_size:
    description:
      - Size budget per models dir (V(50G), V(512M)). After the other selections, the least recently used models
        in scope are removed until the dir's layers fit, counting a shared layer once, when its last model goes.
    type: str
  orphans:
    description:
      - Also remove layers no manifest references and partial downloads older than O(orphans_older_than).
    type: bool
    default: false
  orphans_older_than:
    description:
      - Age (modification time) an orphaned layer or partial download must have before O(orphans) removes it.
    type: str
    default: 1d
  force:
    description:
      - Remove models even when a process has one of their layers open.
    type: bool
    default: false
  scan_processes:
    description:
      - Read C(OLLAMA_MODELS) from the environment of running processes too (the server's).
    type: bool
    default: true
extends_documentation_fragment:
  - residue.purge.model_stores
  - residue.purge.attributes
attributes:
  check_mode:
    details: Check mode scans, plans and checks open files exactly as a real run and removes nothing;
      RV(removed) and RV(swept) are the plan.
  diff_mode:
    details: The diff lists the models of every dir before and after, and the orphans swept.
  idempotent:
    details: A second run finds nothing left to remove and reports no change.
notes:
  - The open-file check reads C(/proc) (Linux); elsewhere RV(problems) says it could not check.
seealso:
  - module: residue.purge.hf_cache
  - module: residue.purge.discover
"""

EXAMPLES = r"""
- name: List every user's Ollama models
  residue.purge.ollama_models:
  register: ollama
  become: true

- name: Remove every tag of llama3 and the layers no other model uses
  residue.purge.ollama_models:
    models: [llama3]
  become: true

- name: Keep each models dir under 40 GB (least recently used first), sweep orphans older than a day
  residue.purge.ollama_models:
    max_size: 40G
    keep: ['qwen2.5-coder:*']
    orphans: true
"""

RETURN = r"""
models:
  description: Every model found (before any removal).
  returned: always
  type: list
  elements: dict
  contains:
    store:
      description: The models dir.
      type: str
    name:
      description: The name as C(ollama list) shows it.
      type: str
    model:
      description: The full name, C(<registry>/<namespace>/<model>:<tag>).
      type: str
    tag:
      description: The tag.
      type: str
    manifest:
      description: The manifest's path.
      type: str
    bytes:
      description: Sum of the sizes of its layers (config included), as C(ollama list) shows it.
      type: int
    exclusive_bytes:
      description: What removing this model alone frees (the layers no other model references).
      type: int
    layers:
      description: How many layers (config included) it references.
      type: int
    last_used:
      description: Epoch seconds of its last use (see O(older_than)).
      type: float
    modified:
      description: Epoch seconds the manifest was written (pulled).
      type: float
  sample:
    - store: /usr/share/ollama/.ollama/models
      name: llama3:8b
      model: registry.ollama.ai/library/llama3:8b
      tag: 8b
      manifest: /usr/share/ollama/.ollama/models/manifests/registry.ollama.ai/library/llama3/8b
      bytes: 4661224676
      exclusive_bytes: 4661224676
      layers: 5
      last_used: 1764590400.0
      modified: 1764000000.0
removed:
  description: Models removed (in check mode, that would be).
  returned: always
  type: list
  elements: dict
  contains:
    store:
      description: The models dir.
      type: str
    name:
      description: The name as C(ollama list) shows it.
      type: str
    model:
      description: The full name.
      type: str
    manifest:
      description: The manifest removed.
      type: str
    freed_bytes:
      description: Bytes of the layers removed with it (a layer with other hard links counts at its last link).
      type: int
    layers_deleted:
      description: Layers removed with it.
      type: int
    reason:
      description: V(selected) (pattern or age) or V(budget).
      type: str
swept:
  description: Orphaned layers and stale partial downloads removed (O(orphans)).
  returned: always
  type: list
  elements: dict
  contains:
    store:
      description: The models dir.
      type: str
    path:
      description: The file removed.
      type: str
    kind:
      description: V(orphan_layer) or V(partial).
      type: str
    bytes:
      description: Bytes freed.
      type: int
    modified:
      description: Its modification time (epoch seconds).
      type: float
held_back:
  description: Models (or orphans) selected but not touched because a process has them open (each is a warning).
  returned: always
  type: list
  elements: dict
  contains:
    store:
      description: The models dir.
      type: str
    name:
      description: The model's name, or the blob's file name.
      type: str
    reason:
      description: V(in_use).
      type: str
    detail:
      description: Which file and process.
      type: str
stores:
  description: Every models dir worked on, with how it was found and its size before and after.
  returned: always
  type: list
  elements: dict
  contains:
    path:
      description: The models dir.
      type: str
    user:
      description: The user it was found for (null when given in O(models_dirs)).
      type: str
    source:
      description: How it was found (V(default), C(OLLAMA_MODELS) of an environment, V(option models_dirs)).
      type: str
    bytes_before:
      description: Bytes of its layers and partial downloads before.
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
  description: Total bytes freed (removed models' layers and swept files).
  returned: always
  type: int
problems:
  description: What was wrong or could not be done (unreadable manifests, missing layers, budget not met).
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

from ansible_collections.residue.purge.plugins.module_utils import _ollama, _stores
from ansible_collections.residue.purge.plugins.module_utils._module import run_topic


def argument_spec():
    spec = dict(
        models_dirs=dict(type="list", elements="path", default=[]),
        discover=dict(type="bool"),
        models=dict(type="list", elements="str", default=[]),
        keep=dict(type="list", elements="str", default=[]),
        older_than=dict(type="str"),
        max_size=dict(type="str"),
        orphans=dict(type="bool", default=False),
        orphans_older_than=dict(type="str", default="1d"),
    )
    spec.update(_stores.STORE_ARGUMENT_SPEC)
    return spec


def main():
    module = AnsibleModule(argument_spec=argument_spec(), supports_check_mode=True)
    run_topic(module, _ollama.run)


if __name__ == "__main__":
    main()
