#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: residue.purge contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import absolute_import, division, print_function

__metaclass__ = type

DOCUMENTATION = r"""
module: remove
short_description: Remove residue paths safely, optionally after a verified backup, and measure the space freed
version_added: 0.1.0
description:
  - Removes the path residues of the selected profiles (O(targets), O(profiles), O(homes), O(users), resolved
    as M(residue.purge.discover) does) or the given O(paths).
  - Traversal is descriptor-based and never follows a symlink (a symlink is removed, not its target); a
    directory swapped for a symlink while the removal runs is not entered. Another filesystem inside a residue
    (a mount or bind mount) is neither entered nor removed unless O(cross_filesystems=true).
  - Protected directories (C(/), system directories, every home, C(~/.cache), C(~/.config), the Hugging Face
    homes, ...) and paths that contain one are refused, as are empty, relative, C(..), glob and C(~) paths
    when C(HOME) is not set. Bad input fails the task before anything is read or removed.
  - With O(backup), the entries to be removed are archived first, the archive is read back and compared with
    its manifest (path, type, size, sha256), and only then is anything removed. Not enough free space for the
    backup fails the task before anything is written or removed.
  - An entry that cannot be removed (an immutable file, a permission) is listed in RV(failures); everything else
    is removed, and the task then fails. A re-run picks up what is left.
  - A tree that changes while it is removed converges. An entry that vanished meanwhile (renamed away, removed
    by someone else) counts as gone, not failed; a directory whose removal fails because entries were added
    after it was listed is listed and emptied again, at most 8 passes in all, with every identity check (device
    and inode, no symlink followed, no other filesystem entered) applied again. Only what is still there at the
    end is a failure.
author:
  - residue.purge contributors (@residue-purge)
extends_documentation_fragment:
  - residue.purge.targets
  - residue.purge.attributes
options:
  paths:
    description:
      - Absolute paths to remove instead of the profiles' residues. C(~) and C(~/...) use C(HOME).
      - Each path must name one residue; globs are refused.
    type: list
    elements: str
    default: []
  older_than:
    description:
      - Only remove files not used for this long (for example V(30d), V(12h), V(2w)), judged by O(time_field),
        like C(systemd-tmpfiles). Directories left empty by that go too, and so do empty directories that are
        themselves that old.
    type: str
  time_field:
    description:
      - Which timestamp O(older_than) looks at.
    type: str
    choices: [atime, mtime, ctime]
    default: atime
  keep:
    description:
      - Globs of entries that are never removed. A glob without C(/) matches an entry's name, one with C(/)
        its full path. A kept directory is not entered; the directories holding a kept entry stay.
    type: list
    elements: str
    default: []
  backup:
    description:
      - Directory to write a backup archive and its manifest into before anything is removed (created with
        mode 0700 if missing). It must not be inside a path that is removed.
      - The free space check assumes no compression (file contents plus 2 KiB per entry).
    type: path
  backup_format:
    description:
      - Compression of the backup archive.
    type: str
    choices: [tar.gz, tar.xz]
    default: tar.gz
  cross_filesystems:
    description:
      - Also enter and remove other filesystems (mounts and bind mounts) found inside a residue.
    type: bool
    default: false
  scan_processes:
    description:
      - Read cache variables (C(HF_HOME), C(XDG_CACHE_HOME), ...) from running processes' environments when
        resolving the profiles' paths, as M(residue.purge.discover) does.
    type: bool
    default: true
notes:
  - Archive members are the absolute paths without the leading C(/); C(tar -xf ARCHIVE -C /) restores them in place.
  - Files created in a residue between the backup and the removal are removed without being archived; stop the
    writers first (M(residue.purge.reap)).
  - Sockets and device files are removed but not archived (listed in RV(problems)).
seealso:
  - module: residue.purge.discover
  - module: residue.purge.open_deleted
"""

EXAMPLES = r"""
- name: Remove Open-AutoGLM's caches and configs for every user, archiving them first
  residue.purge.remove:
    targets: [open_autoglm]
    backup: /var/backups/residue

- name: Drop files in a model directory not read for 30 days, keeping the config
  residue.purge.remove:
    paths: [/data/models/autoglm]
    older_than: 30d
    time_field: atime
    keep: ["*.yaml"]

- name: Show what would go (run with --check --diff)
  residue.purge.remove:
    targets: [torch_hub, pip_cache]
  check_mode: true
"""

RETURN = r"""
removed:
  description: Each residue path something was removed from (in check mode, would be removed from).
  returned: always
  type: list
  elements: dict
  contains:
    path:
      description: The residue path.
      type: str
    target:
      description: The profile it belongs to, null for O(paths).
      type: str
    owner:
      description: User owning the residue path.
      type: str
    bytes:
      description: Disk usage of what was removed (allocated blocks, hard links once).
      type: int
    files:
      description: Non-directories removed (files, symlinks, ...).
      type: int
    dirs:
      description: Directories removed.
      type: int
    kept:
      description: Entries kept by O(keep).
      type: int
    whole:
      description: Whether the residue path itself was removed.
      type: bool
freed_bytes:
  description: Sum of RV(removed[].bytes).
  returned: always
  type: int
filesystems:
  description: Free space (statvfs f_bavail * f_frsize) of each filesystem involved, before and after.
  returned: always
  type: list
  elements: dict
  contains:
    mount:
      description: Mount point.
      type: str
    free_before:
      description: Free bytes before anything was done.
      type: int
    free_after:
      description: Free bytes at the end.
      type: int
    freed:
      description: free_after - free_before (includes a backup written to the same filesystem).
      type: int
failures:
  description:
    - Entries that could not be removed (first 200; see RV(failed_count)), each with C(path) and C(error).
    - Not named C(failed), which is Ansible's own task status.
  returned: always
  type: list
  elements: dict
  contains:
    path:
      description: The entry.
      type: str
    error:
      description: Why it could not be removed.
      type: str
failed_count:
  description: Number of entries that could not be removed.
  returned: always
  type: int
backup:
  description: The verified backup; null without O(backup) or when nothing is removed. In check mode only
    entries and needed_bytes are set.
  returned: always
  type: dict
  contains:
    path:
      description: Archive path.
      type: str
    manifest:
      description: Manifest path (JSON lines with path, type, size, sha256).
      type: str
    bytes:
      description: Archive size.
      type: int
    sha256:
      description: sha256 of the archive.
      type: str
    entries:
      description: Entries archived and verified.
      type: int
    needed_bytes:
      description: Free space the check required.
      type: int
problems:
  description: Things that were left alone on purpose, such as other filesystems not entered.
  returned: always
  type: list
  elements: str
"""

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.residue.purge.plugins.module_utils import _remove
from ansible_collections.residue.purge.plugins.module_utils._module import run_topic
from ansible_collections.residue.purge.plugins.module_utils._profiles import TARGET_ARGUMENT_SPEC


def main():
    argument_spec = dict(
        paths=dict(type="list", elements="str", default=[]),
        older_than=dict(type="str"),
        time_field=dict(type="str", choices=["atime", "mtime", "ctime"], default="atime"),
        keep=dict(type="list", elements="str", default=[], no_log=False),
        backup=dict(type="path"),
        backup_format=dict(type="str", choices=["tar.gz", "tar.xz"], default="tar.gz"),
        cross_filesystems=dict(type="bool", default=False),
        scan_processes=dict(type="bool", default=True),
    )
    argument_spec.update(TARGET_ARGUMENT_SPEC)
    module = AnsibleModule(argument_spec=argument_spec, supports_check_mode=True)
    run_topic(module, _remove.run)


if __name__ == "__main__":
    main()
