#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: residue.purge contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

# The code is win_hf_cache.ps1; this file only documents it. Tasks use residue.purge.hf_cache: meta/runtime.yml
# routes that name to this module for Windows hosts.

from __future__ import absolute_import, division, print_function

__metaclass__ = type

DOCUMENTATION = r"""
module: win_hf_cache
short_description: Remove Hugging Face hub cache repos and revisions on Windows, keeping shared blobs and running downloads
version_added: 0.2.0
description:
  - The Windows implementation of M(residue.purge.hf_cache). Use that name in tasks; it reaches this module on
    hosts with a PowerShell shell, with the options and return values of M(residue.purge.hf_cache).
  - Caches are found per user as on POSIX (C(HF_HUB_CACHE), C(HUGGINGFACE_HUB_CACHE), C(HF_HOME)\hub,
    C(XDG_CACHE_HOME)\huggingface\hub, C(%USERPROFILE%\.cache\huggingface\hub), legacy C(TRANSFORMERS_CACHE)), the
    variables read from each user's C(HKEY_USERS\<SID>\Environment) and the machine environment.
  - Both forms huggingface_hub writes on Windows are handled. With symbolic links, a snapshot file is a link to
    C(blobs\<hash>) and a blob goes only when no remaining revision links to it. Without them (no Developer Mode
    and no administrator rights), files are copied into C(snapshots) and a revision's bytes are its copies.
  - The plan is the one of M(residue.purge.hf_cache) (huggingface_hub's C(delete_revisions) accounting, least
    recently used first for O(max_size)), carried out with the handle-based removal of M(residue.purge.remove);
    nothing is followed through a junction or link.
  - A repo is held back (RV(held_back)) when a C(.locks\<repo>\*.lock) file is held (huggingface_hub's filelock
    keeps it open exclusively), when the Restart Manager reports a process holding one of its files open or
    mapped (reason V(in_use)), or when a fresh C(*.incomplete) download is in it.
author:
  - residue.purge contributors (@residue-purge)
options:
  one_file_system:
    description:
      - No effect on Windows, where a mounted volume is a reparse point and is never entered (on POSIX hosts, do
        not enter another file system below a cache dir).
    type: bool
    default: true
  store_orphans:
    description:
      - No effect on Windows, where huggingface_hub 2.x's shared blob store is not read yet (on POSIX hosts, also
        remove shared store payloads no live reference names).
    type: bool
extends_documentation_fragment:
  - residue.purge.twins.HF_CACHE
  - residue.purge.targets
  - residue.purge.attributes
attributes:
  check_mode:
    details: Check mode scans, plans and probes locks and holders exactly as a real run and removes nothing.
  diff_mode:
    details: The diff lists the revisions of every repo touched, before and after (one line per revision).
  idempotent:
    details: A second run finds nothing left to remove and reports no change.
notes:
  - Run as an administrator (or SYSTEM) to change every user's caches. A user's cache is then scanned and deleted
    with that user's own rights (the module impersonates the user's token, see the collection's C(docs/trust.md)),
    so what the user could not delete is a failure; a cache whose user's token cannot be had is named in
    RV(failures) and left as it was.
  - O(one_file_system) has no effect on Windows, where a mounted volume is a reparse point and is never entered.
  - O(store_orphans) has no effect on Windows, where huggingface_hub 2.x's shared blob store is not read yet.
  - Nothing of this module has been run on Windows by the collection's own tests yet; see the collection's
    C(docs/windows.md).
seealso:
  - module: residue.purge.hf_cache
"""

EXAMPLES = r"""
- name: Remove every cached Open-AutoGLM model from every user's HF cache, keeping blobs other models share
  residue.purge.hf_cache:
    targets: [open_autoglm]
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
      description: Bytes freed by blobs and copied files, huggingface_hub's accounting.
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
freed_bytes:
  description: Total bytes freed (blobs, copies and stale partial downloads).
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
  description: Shared store payloads removed because nothing referenced them; huggingface_hub 2.x's shared blob
    store is not read on Windows yet, so never returned here.
  returned: never on Windows
  type: list
  elements: dict
held_back:
  description: Repos selected but not touched (each is also a warning).
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
