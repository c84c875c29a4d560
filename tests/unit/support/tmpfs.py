# -*- coding: utf-8 -*-
# Copyright: residue.purge contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""A private tmpfs for a test, when the tests run as root (else the directory given)."""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import contextlib
import os
import subprocess


@contextlib.contextmanager
def private_tmpfs(tmp_path, size="256m"):
    """A tmpfs mounted on tmp_path/tmpfs for the block (as root), else tmp_path itself. Deep trees on this disk
    take tens of seconds to delete; and nothing else has an inode on a fresh tmpfs, so a directory made there
    cannot take over the identity (st_dev, st_ino) of a protected directory that another test removed meanwhile."""
    if os.geteuid() != 0:
        yield tmp_path
        return
    mnt = tmp_path / "tmpfs"
    mnt.mkdir()
    subprocess.run(["mount", "-t", "tmpfs", "-o", "size=%s" % size, "tmpfs", str(mnt)], check=True)
    try:
        yield mnt
    finally:
        subprocess.run(["umount", "-l", str(mnt)], check=True)
