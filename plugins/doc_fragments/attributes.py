# -*- coding: utf-8 -*-
# Copyright: residue.purge contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import absolute_import, division, print_function

__metaclass__ = type


class ModuleDocFragment(object):
    # Attributes of the modules that change hosts.
    DOCUMENTATION = r"""
attributes:
  check_mode:
    support: full
    description: In check mode the module computes the same plan as a real run and changes nothing.
  diff_mode:
    support: full
    description: With C(--diff) the module shows what it removes or changes.
  idempotent:
    support: full
    description: A second run with the same options reports no change.
"""
