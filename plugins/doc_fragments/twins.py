# -*- coding: utf-8 -*-
# Copyright: residue.purge contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import absolute_import, division, print_function

__metaclass__ = type


class ModuleDocFragment(object):
    # The options a POSIX module and its Windows twin document with the same text (one task's options reach
    # either), one attribute a twin: residue.purge.twins.<NAME>, listed first in both modules'
    # extends_documentation_fragment so that its text wins over residue.purge.targets'. What each platform says
    # differently stays in each module's DOCUMENTATION; RETURN stays in both (fragments reach DOCUMENTATION only).

    # discover and win_discover
    DISCOVER = r"""
options:
  extra_hf_caches:
    description:
      - More Hugging Face hub cache directories to inventory, in addition to those found for every user.
    type: list
    elements: path
    default: []
  older_than:
    description:
      - Only report residues not used (read or modified) for this long, for example V(30d), V(12h), V(2w).
    type: str
"""

    # hf_cache and win_hf_cache
    HF_CACHE = r"""
options:
  targets:
    description:
      - Residue profiles whose C(hf_repos) patterns are added to O(repos).
      - Unlike other modules, empty means no profile here (the C(huggingface) profile's V(*) would select
        every repo).
  cache_dirs:
    description:
      - Hub cache directories to work on (the directories holding C(models--*) folders).
      - When empty, every hub cache of every user in O(users) or O(homes) is found the way huggingface_hub
        resolves it (C(HF_HUB_CACHE), C(HUGGINGFACE_HUB_CACHE), C(HF_HOME)/hub, C(XDG_CACHE_HOME)/huggingface/hub,
        C(~/.cache/huggingface/hub), legacy C(TRANSFORMERS_CACHE)), also from the environment of running
        processes and C(/etc/environment).
    type: list
    elements: path
    default: []
  discover:
    description:
      - Also work on the caches found for the users (see O(cache_dirs)) when O(cache_dirs) is given.
      - Defaults to V(true) when O(cache_dirs) is empty and V(false) otherwise.
    type: bool
  repos:
    description:
      - Globs on C(org/name) selecting repos, for example V(zai-org/AutoGLM-*). The C(hf_repos) of the
        profiles named in O(targets) are added.
      - When no repo is named, every repo of the caches is in scope for O(older_than), O(max_size) and
        stale partial downloads.
    type: list
    elements: str
    default: []
  repo_type:
    description:
      - Only repos of this type.
    type: str
    choices: [model, dataset, space, any]
    default: any
  revisions:
    description:
      - Which revisions of the repos in scope to remove. V(all) removes every revision (so the repos
        go whole); V(unreferenced) only revisions no ref (branch, tag, PR) points to.
      - Defaults to V(all) when repos are named (O(repos) or O(targets)) or O(older_than) is given. With
        neither, only O(max_size) and stale partial downloads select anything; V(all) with no repo and
        no O(older_than) is refused (it would empty every cache; say O(repos=['*']) to mean that).
    type: str
    choices: [all, unreferenced]
  older_than:
    description:
      - Only remove revisions last used (see O(age_by)) longer ago than this, for example V(30d), V(12h).
    type: str
  age_by:
    description:
      - What "used" means for O(older_than) and the least-recently-used order of O(max_size). V(accessed)
        is the newest access time of a revision's blobs (huggingface_hub's C(last_accessed)); V(modified) the
        newest modification time.
    type: str
    choices: [accessed, modified]
    default: accessed
  max_size:
    description:
      - Size budget per cache (for example V(50G)), measured as huggingface_hub measures C(size_on_disk).
        After the other selections, the least recently used revisions of the repos in scope are removed until
        the cache fits. Repos in O(keep) are never removed; if the budget cannot be met that is reported in
        RV(caches) and RV(problems).
    type: str
  keep:
    description:
      - Globs on C(org/name) of repos never touched, whatever else selects them.
    type: list
    elements: str
    default: []
  incomplete_older_than:
    description:
      - Partial downloads (C(blobs/*.incomplete)) of the repos in scope older than this are removed
        (unless the repo is locked). Fresher ones are never removed. V(never) keeps them all.
    type: str
    default: 1d
  force:
    description:
      - Remove repos even when a lock is held or a process has their files open. Fresh partial downloads
        still hold a repo back.
    type: bool
    default: false
"""

    # pip_remove and win_pip_remove
    PIP_REMOVE = r"""
options:
  packages:
    description:
      - Distribution names to remove (normalised as in PEP 503, so C(Open_AutoGLM) and C(open-autoglm) are the same).
      - The C(pip) lists of the profiles in O(targets) are added when O(targets) is given, or when O(packages) is
        empty (then every profile's C(pip) list is used).
    type: list
    elements: str
    default: []
  max_depth:
    description: How many directory levels below each search root are searched.
    type: int
    default: 4
  orphans:
    description: Also remove dependencies of the removed packages that nothing else needs (see above).
    type: bool
    default: false
  keep:
    description: Distribution names never removed, neither as orphans nor when named in O(packages) by a profile.
    type: list
    elements: str
    default: []
  allow_system:
    description:
      - Also change environments marked C(EXTERNALLY-MANAGED) (pip is then run with C(--break-system-packages)).
      - Packages that the distribution's package manager installed are still left to it when pip refuses them.
    type: bool
    default: false
  remove_required:
    description:
      - Remove a named package even when a remaining distribution requires it (that distribution is then
        broken, and RV(environments[].pip_check) says so).
    type: bool
    default: false
"""

    # reap and win_reap
    REAP = r"""
options:
  targets:
    description:
      - Names of residue profiles whose processes are stopped, built-in or given in O(profiles).
      - When empty and none of O(names), O(cmdline) or O(holding) is given, every known profile is used.
        When one of them is given and O(targets) is empty, only they select processes.
  users:
    description:
      - Only stop processes owned by these users (user names). V(all), the default, means any user.
  homes:
    description:
      - When given, only stop processes owned by the owners of these home directories.
  grace:
    description:
      - Seconds to wait for all processes together after O(signal) before the survivors get SIGKILL.
    type: float
    default: 10
  kill_after_grace:
    description:
      - Send SIGKILL to the processes still running after O(grace). When false they are reported as survivors
        and the task fails.
    type: bool
    default: true
"""
