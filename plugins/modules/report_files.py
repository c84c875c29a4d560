#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: residue.purge contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import absolute_import, division, print_function

__metaclass__ = type

DOCUMENTATION = r"""
module: report_files
short_description: Write the fleet report's files (every host record and the pages) in one module run
version_added: 0.3.0
description:
  - Used by the C(residue.purge.report) role on the controller. Writes each of O(records) as
    C(<dest>/hosts/<host>.json) and each of O(files) under O(dest), then points the O(latest) symlink at O(dest),
    all in one module run whatever the number of hosts (one task per host record made the report play's time grow
    by a module run per host).
  - Each file is written to a temporary name in its directory and renamed over the old one, so a reader never sees
    half a file. Missing directories are created with O(dir_mode); a symlink on the way is not followed.
  - A host name holding C(/) is written with C(%2F) for it (and C(%) as C(%25)), so every record stays a file of
    C(hosts/).
author:
  - residue.purge contributors (@residue-purge)
options:
  dest:
    description: The run's report directory (absolute). Created when missing.
    type: path
    required: true
  records:
    description:
      - Host records (dicts with a C(host) key), each written as C(hosts/<host>.json), JSON as C(to_nice_json(indent=2))
        writes it, with a final newline.
    type: list
    elements: dict
    default: []
  files:
    description: Other files, each C(name) (relative to O(dest), no C(..)) with C(content) (text) or C(data) (written as JSON).
    type: list
    elements: dict
    default: []
  latest:
    description: A symlink (absolute path) to point at O(dest), by a relative target. An existing file there is replaced; a directory is refused.
    type: path
  mode:
    description: Permissions of every file written.
    type: raw
    default: "0640"
  dir_mode:
    description: Permissions of every directory created.
    type: raw
    default: "0750"
attributes:
  check_mode:
    support: full
    description: In check mode nothing is written; RV(written) says what would be.
  diff_mode:
    support: none
    description: The report's files are the run's audit evidence, not host state; no diff is returned.
  idempotent:
    support: full
    description: Writing the same content again changes nothing.
"""

EXAMPLES = r"""
- name: Write the records and pages of a run
  residue.purge.report_files:
    dest: /var/lib/residue/report/20261203T101500Z-purge-4242
    latest: /var/lib/residue/report/latest
    records: "{{ report_records }}"
    files:
      - {name: fleet.md, content: "{{ lookup('ansible.builtin.template', 'fleet.md.j2') }}"}
      - {name: fleet.json, data: "{{ {'hosts': report_records} }}"}
"""

RETURN = r"""
dest:
  description: The report directory, normalised.
  returned: always
  type: str
files:
  description: Every file of the request, absolute, records first.
  returned: always
  type: list
  elements: str
written:
  description: The files whose content was new or different (written, or in check mode to be written).
  returned: always
  type: list
  elements: str
latest:
  description: The symlink pointed at RV(dest), or V(null).
  returned: always
  type: str
"""

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.residue.purge.plugins.module_utils import _report_files
from ansible_collections.residue.purge.plugins.module_utils._module import run_topic


def main():
    module = AnsibleModule(
        argument_spec=dict(
            dest=dict(type="path", required=True),
            records=dict(type="list", elements="dict", default=[]),
            files=dict(type="list", elements="dict", default=[]),
            latest=dict(type="path"),
            mode=dict(type="raw", default="0640"),
            dir_mode=dict(type="raw", default="0750"),
        ),
        supports_check_mode=True,
    )
    run_topic(module, _report_files.run, errors=(ValueError, OSError))


if __name__ == "__main__":
    main()
