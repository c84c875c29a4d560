# -*- coding: utf-8 -*-
# Copyright: residue.purge contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""residue.purge.hf_cache: the Python module on POSIX hosts, win_hf_cache.ps1 (with the controller's profiles) on Windows."""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

from ansible_collections.residue.purge.plugins.plugin_utils._windows_action import ResidueAction


class ActionModule(ResidueAction):
    pass
