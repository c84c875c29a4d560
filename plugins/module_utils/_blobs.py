# -*- coding: utf-8 -*-
# Copyright: residue.purge contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Content-addressed blob files (a huggingface_hub shared store payload, an Ollama layer): what a store's
accounting needs from one blob's lstat."""

from __future__ import absolute_import, division, print_function

__metaclass__ = type


class BlobStat(object):
    """One blob file as its store counts it: name, apparent size, allocated bytes (st_blocks*512), hard links,
    identity (st_dev, st_ino), modification and access times."""

    __slots__ = ("name", "size", "disk", "nlink", "key", "mtime", "atime")

    def __init__(self, name, st):
        self.name = name
        self.size = st.st_size
        self.disk = st.st_blocks * 512
        self.nlink = st.st_nlink
        self.key = (st.st_dev, st.st_ino)
        self.mtime = st.st_mtime
        self.atime = st.st_atime

    def plain(self):
        """[name, size, disk, nlink, [st_dev, st_ino], mtime, atime]: plain data, as it crosses from a child acting
        as the store's user (_privileges.call_as); from_plain reads it back."""
        return [self.name, self.size, self.disk, self.nlink, list(self.key), self.mtime, self.atime]

    @classmethod
    def from_plain(cls, row):
        blob = cls.__new__(cls)
        blob.name, blob.size, blob.disk, blob.nlink, key, blob.mtime, blob.atime = row
        blob.key = tuple(key)
        return blob
