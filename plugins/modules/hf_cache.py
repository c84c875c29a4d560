#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: residue.purge contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import absolute_import, division, print_function

__metaclass__ = type

DOCUMENTATION = r"""
module: hf_cache
short_description: Remove Hugging Face hub cache repos and revisions, keeping shared blobs and running downloads
version_added: 0.1.0
description:
  - Surgery on Hugging Face hub caches (C(~/.cache/huggingface/hub) and wherever C(HF_HOME), C(HF_HUB_CACHE)
    and friends point, for every user). It removes the repos and revisions you select, by name pattern, by
    age, or least recently used first until a size budget is met, instead of deleting a whole cache.
  - Blob accounting is that of huggingface_hub's C(delete_revisions), checked against it in tests. A blob
    goes only when no remaining revision of the repo uses it; a repo left without revisions goes whole,
    with its C(.locks/<repo>) entry.
  - huggingface_hub 2.x's cache-wide shared blob store (C(<cache>/blobs/<xx>/<xet hash>) payloads, C(.refs)
    manifests, C(.lock) files, marked by C(blobs/.huggingface-shared-blobs)) is handled with its semantics.
    Removing a repo or revision removes the repo's blob symlinks, then each payload they named is collected
    under its C(.lock) (the flock huggingface_hub takes) when no live reference is left, and the manifest of a
    payload that stays is rewritten to its live references. The manifest is a hint checked against the file
    system; a payload whose manifest is missing or unreadable is kept. A payload another repo still links
    stays. Freed bytes are huggingface_hub's C(expected_freed_size), except that a payload's bytes count only
    when its last hard link goes. A repo whose shared payload a process has open is held back.
  - Repos being downloaded are never touched. A repo whose lock file (C(.locks/<repo>/*.lock)) is held by a
    running process, or one of whose files a process has open or mapped, is held back (RV(held_back), reason
    V(locked) or V(in_use)) unless O(force). A fresh C(*.incomplete) file is never removed, even with O(force).
  - Stale C(*.incomplete) files (older than O(incomplete_older_than)) of the repos in scope are removed.
  - Broken caches (refs to missing snapshots, broken links, copies instead of links as on Windows,
    C(.no_exist) entries) are handled and listed in RV(problems), never a crash.
  - Deletion never follows a symlink and opens every directory from the cache dir downwards without
    following links, so nothing outside the cache can be removed, even if a directory is swapped mid-run.
  - Deletion converges on a cache that changes meanwhile. What vanished since the plan counts as gone, not
    failed; a directory that gained entries after it was listed is listed and emptied again, at most 8 passes,
    with the same checks. Only what is still there at the end is a failure.
author:
  - residue.purge contributors (@residue-purge)
options:
  store_orphans:
    description:
      - Also remove shared store payloads that no live reference names (left behind when a repo folder was
        deleted by hand or by an older client), under their locks, as C(hf cache prune) does. Payloads with a
        missing or unreadable manifest are kept.
      - Default V(true) when O(revisions=unreferenced), else V(false). The prune playbook sets it.
      - No effect on Windows hosts (the Windows module does not read the shared store yet).
    type: bool
  one_file_system:
    description:
      - Do not enter another file system below a cache dir (sizes and deletion); what lies there is reported.
    type: bool
    default: true
extends_documentation_fragment:
  - residue.purge.twins.HF_CACHE
  - residue.purge.targets
  - residue.purge.attributes
attributes:
  check_mode:
    details: Check mode scans, plans and probes locks exactly as a real run and removes nothing; RV(deleted)
      is the plan.
  diff_mode:
    details: The diff lists the revisions of every repo touched, before and after (one line per revision).
  idempotent:
    details: A second run finds nothing left to remove and reports no change.
notes:
  - Without root only the caches the connecting user can write are changed; use C(become) for every user's.
  - The in-use check reads C(/proc) (Linux). Elsewhere only locks are checked and RV(problems) says so.
seealso:
  - module: residue.purge.discover
  - module: residue.purge.remove
"""

EXAMPLES = r"""
- name: Remove every cached Open-AutoGLM model from every user's HF cache, keeping blobs other models share
  residue.purge.hf_cache:
    repos: ['zai-org/AutoGLM-*']
  become: true

- name: Same, from the residue profile
  residue.purge.hf_cache:
    targets: [open_autoglm]
  become: true

- name: Drop revisions nobody used for 60 days, and revisions no branch points to
  residue.purge.hf_cache:
    older_than: 60d
    revisions: unreferenced

- name: Keep each cache under 200 GiB, least recently used first, never touching the team's base models
  residue.purge.hf_cache:
    max_size: 200G
    keep: ['meta-llama/*', 'our-org/*']

- name: Plan only, on one shared cache
  residue.purge.hf_cache:
    cache_dirs: [/data/hf/hub]
    repos: ['*']
  check_mode: true
  diff: true
"""

RETURN = r"""
deleted:
  description: One entry per repo changed (in check mode, per repo that would be).
  returned: always
  type: list
  elements: dict
  contains:
    cache:
      description: The cache dir.
      type: str
    repo_id:
      description: C(org/name).
      type: str
    repo_type:
      description: V(model), V(dataset) or V(space).
      type: str
    path:
      description: The repo's folder.
      type: str
    revisions:
      description: Commit hashes removed.
      type: list
      elements: str
    whole_repo:
      description: The whole repo folder (and its lock folder) was removed.
      type: bool
    freed_bytes:
      description: Bytes freed by blobs, copied files and shared store payloads, huggingface_hub's accounting.
      type: int
    blobs_deleted:
      description: Blobs removed.
      type: int
    blobs_kept_shared:
      description: Blobs of removed revisions kept because a remaining revision uses them.
      type: int
    refs_deleted:
      description: Refs removed with their revisions.
      type: list
      elements: str
    incomplete_deleted:
      description: Stale C(*.incomplete) files removed.
      type: list
      elements: str
    incomplete_bytes:
      description: Their size.
      type: int
    reason:
      description: Why (V(selected), V(budget), V(incomplete)).
      type: list
      elements: str
    store_payloads_deleted:
      description: Shared store payloads removed because this repo's links were their last live references.
      type: int
    store_bytes:
      description: Their bytes (part of RV(deleted[].freed_bytes)); a payload with other hard links counts 0.
      type: int
  sample:
    - cache: /home/ana/.cache/huggingface/hub
      repo_id: zai-org/AutoGLM-Phone-9B
      repo_type: model
      path: /home/ana/.cache/huggingface/hub/models--zai-org--AutoGLM-Phone-9B
      revisions: [0f6ee7d31cd1bd68d4ec0cc5b4bc0d7b18e45a16]
      whole_repo: true
      freed_bytes: 18874368
      blobs_deleted: 12
      blobs_kept_shared: 0
      refs_deleted: []
      incomplete_deleted: []
      incomplete_bytes: 0
      reason: [selected]
      store_payloads_deleted: 0
      store_bytes: 0
freed_bytes:
  description: Total bytes freed (blobs, copies, shared store payloads and stale partial downloads).
  returned: always
  type: int
blobs_deleted:
  description: Total blobs removed.
  returned: always
  type: int
blobs_kept_shared:
  description: Total blobs of removed revisions kept because remaining revisions use them.
  returned: always
  type: int
store_swept:
  description: Per cache, the shared store payloads removed because no live reference named them
    (O(store_orphans)).
  returned: always
  type: list
  elements: dict
  contains:
    cache:
      description: The cache dir.
      type: str
    path:
      description: The shared store (C(<cache>/blobs)).
      type: str
    payloads:
      description: Payloads removed.
      type: int
    bytes:
      description: Bytes freed.
      type: int
held_back:
  description: Repos selected but not touched (each is also a warning). An unreferenced shared store payload
    in use has RV(held_back[].repo_type) V(shared_blob) and its C(<xx>/<hash>) as RV(held_back[].repo_id).
  returned: always
  type: list
  elements: dict
  contains:
    cache:
      description: The cache dir.
      type: str
    repo_id:
      description: C(org/name).
      type: str
    repo_type:
      description: Repo type.
      type: str
    reason:
      description: V(locked) (a lock file is held) or V(in_use) (open files, a fresh partial download).
      type: str
    detail:
      description: Which lock, file or process.
      type: str
caches:
  description: Every cache worked on, with its size (huggingface_hub's accounting) before and after.
  returned: always
  type: list
  elements: dict
  contains:
    path:
      description: The cache dir.
      type: str
    bytes_before:
      description: Size before.
      type: int
    bytes_after:
      description: Size after (planned in check mode).
      type: int
    max_size:
      description: The budget, if any.
      type: int
    over_budget:
      description: Still over the budget.
      type: bool
    kept_over_budget:
      description: Repos kept (O(keep) or out of scope) while over budget.
      type: list
      elements: str
    shared_store:
      description: The cache's huggingface_hub 2.x shared blob store, null when it has none (C(path),
        C(payloads_deleted), C(bytes_freed), C(unreferenced_deleted)).
      type: dict
problems:
  description: What was wrong or could not be done (broken cache entries, unreadable dirs, budget not met).
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

from ansible_collections.residue.purge.plugins.module_utils import _profiles
from ansible_collections.residue.purge.plugins.module_utils._hfcache import run as hf_run
from ansible_collections.residue.purge.plugins.module_utils._module import run_topic


def argument_spec():
    spec = dict(
        cache_dirs=dict(type="list", elements="path", default=[]),
        discover=dict(type="bool"),
        repos=dict(type="list", elements="str", default=[]),
        repo_type=dict(type="str", choices=["model", "dataset", "space", "any"], default="any"),
        revisions=dict(type="str", choices=["all", "unreferenced"]),
        older_than=dict(type="str"),
        age_by=dict(type="str", choices=["accessed", "modified"], default="accessed"),
        max_size=dict(type="str"),
        keep=dict(type="list", elements="str", default=[]),
        incomplete_older_than=dict(type="str", default="1d"),
        force=dict(type="bool", default=False),
        one_file_system=dict(type="bool", default=True),
        store_orphans=dict(type="bool"),
    )
    spec.update(_profiles.TARGET_ARGUMENT_SPEC)
    return spec


def main():
    module = AnsibleModule(argument_spec=argument_spec(), supports_check_mode=True)
    run_topic(module, hf_run.run)


if __name__ == "__main__":
    main()
