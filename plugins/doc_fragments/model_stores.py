# -*- coding: utf-8 -*-
# Copyright: residue.purge contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import absolute_import, division, print_function

__metaclass__ = type


class ModuleDocFragment(object):
    # Whose model stores the store modules (ollama_models, modelscope_models, model_budget) look for; the argument
    # spec is _stores.STORE_ARGUMENT_SPEC. scan_processes and force, in that spec too, are documented by each
    # module: what they read and what they hold back differ per store.
    DOCUMENTATION = r"""
options:
  homes:
    description:
      - Explicit home directories to look in instead of enumerating the users of the host (sandboxes, tests).
    type: list
    elements: path
    default: []
  users:
    description:
      - Which users' homes to cover when O(homes) is not given. V(all) or a list of user names.
    type: raw
    default: all
"""
