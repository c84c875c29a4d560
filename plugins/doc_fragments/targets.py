# -*- coding: utf-8 -*-
# Copyright: residue.purge contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import absolute_import, division, print_function

__metaclass__ = type


class ModuleDocFragment(object):
    # Options shared by every module that works from residue profiles.
    DOCUMENTATION = r"""
options:
  targets:
    description:
      - Names of residue profiles to act on, built-in (V(open_autoglm), V(huggingface), V(torch_hub),
        V(modelscope), V(ollama), V(pip_cache)) or given in O(profiles).
      - Empty or omitted means every known profile.
    type: list
    elements: str
    default: []
  profiles:
    description:
      - Extra residue profiles, or overrides of built-in ones, keyed by profile name.
      - Each profile may have the keys C(description), C(processes) (C(names), C(cmdline)),
        C(services) (C(systemd), C(launchd), C(windows), C(xdg)), C(cron), C(paths), C(hf_repos) and C(pip).
      - Paths may use the placeholders C({home}), C({user_cache}), C({user_config}), C({user_data}),
        C({hf_home}), C({hf_hub_cache}), C({torch_home}), C({modelscope_cache}), C({pip_cache}), C({tmp})
        and C({env:NAME}). Unknown keys or placeholders, and paths that resolve to a protected directory,
        fail the task with a message naming the profile and the field.
    type: dict
    default: {}
  homes:
    description:
      - Explicit home directories to work on instead of enumerating the users of the host.
      - Meant for sandboxes and tests; each home is treated as the home of the user owning it.
    type: list
    elements: path
    default: []
  users:
    description:
      - Which users' homes to cover when O(homes) is not given.
      - C(all) (the default) covers every user of the passwd database with an existing home directory, and root.
        On macOS the people come from C(dscl . -list /Users UniqueID) (uid 501 and up, no C(_) service
        accounts), with their homes from the directory service.
      - A list of user names restricts it to those users.
    type: raw
    default: all
"""

    ATTRIBUTES_READ_ONLY = r"""
attributes:
  check_mode:
    support: full
    description: The module never changes anything, so it runs normally in check mode.
  diff_mode:
    support: none
    description: Nothing changes, so there is no diff.
  idempotent:
    support: full
    description: Running it again returns the same result for the same host state.
"""
