#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: residue.purge contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

# The code is win_remove.ps1; this file only documents it. Tasks use residue.purge.remove: meta/runtime.yml
# routes that name to this module for Windows hosts.

from __future__ import absolute_import, division, print_function

__metaclass__ = type

DOCUMENTATION = r"""
module: win_remove
short_description: Remove residue paths safely from a Windows host and measure the space freed
version_added: 0.2.0
description:
  - The Windows implementation of M(residue.purge.remove). Use that name in tasks; it reaches this module on
    hosts with a PowerShell shell, with the options and return values of M(residue.purge.remove).
  - Profiles resolve as in M(residue.purge.discover) on Windows (users from C(ProfileList), their registry
    environments, Windows placeholders). Protected directories (C(C:\), C(C:\Windows), C(C:\Users), every
    profile directory, C(AppData), C(AppData\Local), C(AppData\Roaming), the Hugging Face homes, ...) and paths
    that contain one are refused, as are empty, relative, C(..) and glob paths.
  - Removal never follows a junction, symbolic link or other reparse point (the link itself is removed, not its
    target). Each directory is held open without delete sharing while its entries go, so it cannot be renamed
    or swapped for a junction meanwhile, and each entry is inspected and deleted through one handle. A residue
    whose path reaches another place through a junction in one of its parents is refused.
  - Read-only files are removed (their read-only attribute is cleared first) and paths longer than C(MAX_PATH)
    work.
  - Before anything of a residue is removed, the Restart Manager is asked which processes hold its files open
    or mapped (a loaded C(.safetensors) file cannot be deleted on Windows). Such a residue is held back whole
    and listed in RV(failures) with the holders; stop them first with M(residue.purge.reap).
  - With O(backup), everything to be removed is first archived into a zip file in that directory
    (C(residue-purge-<UTC time>-<pid>-<n>.zip)) with a manifest beside it (C(.manifest.jsonl), the POSIX
    backup's format, one JSON line per entry with path, type, size and sha256), then read back and compared
    entry by entry with the manifest. Any failure (no space, a file that cannot be read, a file replaced while
    it is read, a mismatch) deletes both and fails the task before anything is removed. The entries are those
    the removal itself would remove, each read through a handle that does not follow reparse points.
  - The Windows backup differs from the POSIX one. It is a zip (O(backup_format) is ignored), whose members
    are named by the path with its drive letter or share as the first components (C(C:\Users\ana\x) is
    C(C/Users/ana/x), C(\\srv\share\x) is C(UNC/srv/share/x)); junctions, symbolic links and other reparse
    points are not archived (they are removed themselves, never their target; a problem line names each); no
    owner, ACL, attribute or alternate data stream is kept; times have the zip's 2-second precision.
    The C(residue.purge.restore) playbook unpacks POSIX archives only; on Windows unpack the zip with
    C(Expand-Archive) into a staging directory and move C(<staging>\C\...) back to C(C:\...).
  - A backup directory that does not exist is created readable by SYSTEM, the Administrators and the module's
    account only; one that exists is used as it is.
  - O(time_field=ctime) means the creation time on Windows. O(cross_filesystems) has no effect on Windows, where
    a mounted volume is a reparse point and is never entered.
author:
  - residue.purge contributors (@residue-purge)
extends_documentation_fragment:
  - residue.purge.targets
  - residue.purge.attributes
options:
  paths:
    description:
      - Absolute paths to remove instead of the profiles' residues. C(~) and C(~\...) use C(USERPROFILE).
      - Each path must name one residue; globs are refused.
    type: list
    elements: str
    default: []
  older_than:
    description:
      - Only remove files not used for this long (for example V(30d), V(12h), V(2w)), judged by O(time_field).
        Directories left empty by that go too, and so do empty directories that are themselves that old.
    type: str
  time_field:
    description:
      - Which timestamp O(older_than) looks at (V(ctime) is the creation time on Windows).
    type: str
    choices: [atime, mtime, ctime]
    default: atime
  keep:
    description:
      - Globs of entries that are never removed. A glob without C(\) or C(/) matches an entry's name, one with
        a separator its full path (case-insensitive). A kept directory is not entered.
    type: list
    elements: str
    default: []
  backup:
    description:
      - Directory to archive everything into before it is removed (a zip and its manifest, verified; see the
        notes in the description). Must be an absolute path outside every path to be removed.
    type: path
  backup_format:
    description:
      - Ignored on Windows, where the backup is always a zip archive (Deflate); kept so that tasks written for
        POSIX hosts run unchanged.
    type: str
    choices: [tar.gz, tar.xz]
    default: tar.gz
  cross_filesystems:
    description:
      - No effect on Windows; mounted volumes are reparse points and are never entered.
    type: bool
    default: false
  scan_processes:
    description:
      - On POSIX hosts, read cache variables from running processes. On Windows the machine's and every user's
        registry environment are read instead.
    type: bool
    default: true
notes:
  - Run as an administrator (or SYSTEM) to cover every user. A user's residue is then planned, read for the
    backup and removed with that user's own rights (the module impersonates the user's token, obtained without a
    password by an S4U logon, with no privilege and the Administrators group deny-only), so what the user could
    not delete is a failure, not deleted by the administrator. A user whose token cannot be had has each residue listed
    in RV(failures) and left as it was. See the collection's C(docs/trust.md).
  - Nothing of this module has been run on Windows by the collection's own tests yet; see the collection's
    C(docs/windows.md).
seealso:
  - module: residue.purge.remove
  - module: residue.purge.reap
"""

EXAMPLES = r"""
- name: Remove Open-AutoGLM's caches and configs for every user (Windows and POSIX hosts alike)
  residue.purge.remove:
    targets: [open_autoglm]
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
      description: Archive path (a C(.zip) on Windows).
      type: str
    manifest:
      description: Manifest path (JSON lines with path, type, size, sha256; the POSIX backup's format).
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
