# -*- coding: utf-8 -*-
# Copyright: residue.purge contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""APFS clone and snapshot sharing (macOS): the getattrlist buffer decoder on buffers built per xnu's documented
layout (normal, truncated, hostile), the per-residue pass over real files here with getattrlist's answers
recorded (there is no getattrlistat on Linux), and discover reporting apfs_shared_bytes only on macOS."""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import ctypes
import os
import re
import struct

import pytest

from ansible_collections.residue.purge.plugins.module_utils import _apfs, _discover, _macos
from ansible_collections.residue.purge.tests.unit.support.macos_host import MacHost, Replay

RETURNED = _macos.ATTR_CMN_RETURNED_ATTRS
PRIVATE = _macos.ATTR_CMNEXT_PRIVATESIZE


def answer(private, length=None, sets=(RETURNED, 0, 0, 0, PRIVATE)):
    """What getattrlist writes for PRIVATE_SIZE_REQUEST (bsd/man/man2/getattrlist.2, ATTRIBUTE BUFFER): u_int32_t
    length, the attribute_set_t of returned attributes, then the off_t private size, native byte order."""
    body = struct.pack("=5I", *sets) + (struct.pack("=q", private) if private is not None else b"")
    return struct.pack("=I", 4 + len(body) if length is None else length) + body


def test_request_layout_is_struct_attrlist():
    # u_short bitmapcount, u_int16_t reserved, then five attrgroup_t (u_int32_t): 24 bytes
    assert len(_macos.PRIVATE_SIZE_REQUEST) == 24
    assert struct.unpack("=HHIIIII", _macos.PRIVATE_SIZE_REQUEST) == (5, 0, 0x80000000, 0, 0, 0, 0x8)
    assert _macos.PRIVATE_SIZE_OPTIONS == 0x21  # FSOPT_NOFOLLOW | FSOPT_ATTR_CMN_EXTENDED
    assert _macos.PRIVATE_SIZE_BUFFER == 32


@pytest.mark.parametrize("private", [0, 1, 4096, 2 ** 40, 2 ** 63 - 1])
def test_decodes_the_private_size(private):
    assert _macos.decode_private_size(answer(private)) == private


def test_decodes_from_a_larger_buffer_and_any_bytes_like():
    buf = answer(8192) + b"\xff" * 32  # the caller's buffer is larger; the length field bounds what counts
    assert _macos.decode_private_size(buf) == 8192
    assert _macos.decode_private_size(bytearray(buf)) == 8192
    assert _macos.decode_private_size(ctypes.create_string_buffer(buf, len(buf)).raw) == 8192
    # the kernel may or may not echo ATTR_CMN_RETURNED_ATTRS in the returned set
    assert _macos.decode_private_size(answer(5, sets=(0, 0, 0, 0, PRIVATE))) == 5


def test_not_returned_is_unknown():
    # a volume without the attribute (HFS+, older macOS) skips it: the set says so and the buffer stops at 24
    assert _macos.decode_private_size(answer(None, sets=(RETURNED, 0, 0, 0, 0))) is None
    # the set says not returned, even though bytes follow
    assert _macos.decode_private_size(answer(7, sets=(RETURNED, 0, 0, 0, 0))) is None


@pytest.mark.parametrize("buf", [
    b"",
    b"\x20\x00",
    answer(4096)[:23],  # the returned set cut short
    answer(4096)[:28],  # the off_t cut short
    answer(4096)[:24],  # the set claims the size, the buffer ends
    answer(4096, length=24),  # the length field says it ends before the size
    answer(4096, length=31),
    answer(4096, length=33),  # the length field claims more than there is
    answer(4096, length=2 ** 32 - 1),
    answer(4096, length=0),
    answer(4096, length=3),
])
def test_truncated_is_unknown(buf):
    assert _macos.decode_private_size(buf) is None


@pytest.mark.parametrize("sets", [
    (RETURNED | 0x1, 0, 0, 0, PRIVATE),  # ATTR_CMN_NAME: an attrreference before the size would shift it
    (RETURNED, 0x80000000, 0, 0, PRIVATE),  # volume attributes
    (RETURNED, 0, 0x1, 0, PRIVATE),  # directory attributes
    (RETURNED, 0, 0, 0x4, PRIVATE),  # ATTR_FILE_ALLOCSIZE
    (RETURNED, 0, 0, 0, PRIVATE | 0x100),  # ATTR_CMNEXT_CLONEID, packed after the size: never asked for
    (0xffffffff, 0xffffffff, 0xffffffff, 0xffffffff, 0xffffffff),
])
def test_attributes_not_requested_are_refused(sets):
    assert _macos.decode_private_size(answer(4096, sets=sets)) is None


def test_negative_size_is_unknown():
    assert _macos.decode_private_size(answer(-1)) is None
    assert _macos.decode_private_size(answer(-2 ** 63)) is None


def test_the_real_call_off_macos_is_unknown_not_an_error(tmp_path):
    # glibc has no getattrlistat: the thin ctypes call says "unknown" instead of raising
    with pytest.raises(AttributeError):
        ctypes.CDLL(None).getattrlistat  # pylint: disable=expression-not-assigned
    assert _apfs._getattrlistat() is False
    (tmp_path / "f").write_bytes(b"x" * 100)
    fd = os.open(str(tmp_path), os.O_RDONLY)
    try:
        assert _apfs.private_size(fd, "f") is None
    finally:
        os.close(fd)


def test_not_on_macos_nothing_is_read(tmp_path):
    calls = []
    (tmp_path / "f").write_bytes(b"x")
    assert _apfs.shared_bytes(str(tmp_path), size_of=lambda fd, name: calls.append(name)) is None
    assert calls == []


def allocated(path):
    return os.lstat(path).st_blocks * 512


def write(path, size):
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "wb") as f:
        f.write(os.urandom(size))
    return allocated(path)


class Recorded(object):
    """getattrlist answers per file name, decoded by the real decoder: 'all' shared (private 0), 'half', 'own'
    (nothing shared), 'none' (the attribute not returned), 'bad' (a hostile buffer)."""

    def __init__(self):
        self.calls = []

    def __call__(self, dir_fd, name):
        self.calls.append(name)
        st = os.lstat(name, dir_fd=dir_fd)
        alloc = st.st_blocks * 512
        kind = re.match(r"[a-z]+", name).group()
        buf = {"all": answer(0), "half": answer(alloc // 2), "own": answer(alloc),
               "more": answer(alloc + 4096),  # a private size above the allocation: 0 shared, never negative
               "none": answer(None, sets=(RETURNED, 0, 0, 0, 0)),
               "bad": answer(0, length=99)}[kind]
        return _macos.decode_private_size(buf)


def test_shared_bytes_of_a_tree(tmp_path):
    root = str(tmp_path / "Library" / "Caches" / "ollama")
    a = write(root + "/all.bin", 65536)
    h = write(root + "/sub/deeper/half.bin", 40960)
    write(root + "/own.bin", 8192)
    write(root + "/more.bin", 4096)
    os.link(root + "/all.bin", root + "/sub/all-link.bin")  # one inode: counted once
    outside = write(str(tmp_path / "elsewhere" / "all2.bin"), 32768)
    os.symlink(str(tmp_path / "elsewhere" / "all2.bin"), root + "/all3.bin")  # never followed
    os.symlink(str(tmp_path / "elsewhere"), root + "/linkdir")  # never entered
    recorded = Recorded()
    with MacHost(Replay([])):
        shared, known, unknown = _apfs.shared_bytes(root, size_of=recorded)
    assert shared == a + (h - h // 2)
    assert outside and shared < a + h + outside
    assert (known, unknown) == (4, 0)
    assert sorted(recorded.calls) in (["all-link.bin", "half.bin", "more.bin", "own.bin"],
                                      ["all.bin", "half.bin", "more.bin", "own.bin"])


def test_unknown_files_are_counted_not_guessed(tmp_path):
    root = str(tmp_path / "r")
    a = write(root + "/all.bin", 16384)
    write(root + "/none.bin", 16384)
    write(root + "/bad.bin", 16384)
    with MacHost(Replay([])):
        assert _apfs.shared_bytes(root, size_of=Recorded()) == (a, 1, 2)
        # a single file residue, and something that is not there
        assert _apfs.shared_bytes(root + "/all.bin", size_of=Recorded()) == (a, 1, 0)
        assert _apfs.shared_bytes(root + "/missing", size_of=Recorded()) is None
        # off macOS's libc the default reader answers unknown for every file
        assert _apfs.shared_bytes(root) == (0, 0, 3)


def test_another_volume_is_not_entered(tmp_path, monkeypatch):
    root = str(tmp_path / "r")
    write(root + "/own.bin", 4096)
    write(root + "/mnt/all.bin", 4096)
    real_lstat = os.lstat

    def lstat(path, *args, **kwargs):  # "mnt" looks like another device's mount point
        st = real_lstat(path, *args, **kwargs)
        if path == "mnt":
            return os.stat_result((st.st_mode, st.st_ino, st.st_dev + 1) + tuple(st)[3:])
        return st

    monkeypatch.setattr(os, "lstat", lstat)
    recorded = Recorded()
    with MacHost(Replay([])):
        assert _apfs.shared_bytes(root, size_of=recorded) == (0, 1, 0)
        assert _apfs.shared_bytes(root, one_file_system=False, size_of=Recorded()) == (4096, 2, 0)
    assert recorded.calls == ["own.bin"]


def run_discover(home, root):
    return _discover.run(dict(targets=["ollama"], profiles={}, homes=[home], users="all", extra_hf_caches=[],
                              scan_processes=False, older_than=None, one_file_system=True, search_roots=[root]))


def test_discover_reports_apfs_sharing_on_macos_only(tmp_path, monkeypatch):
    root = str(tmp_path)
    home = root + "/Users/alice"
    cache = home + "/Library/Caches/ollama"
    a = write(cache + "/all.bin", 65536)
    write(cache + "/own.bin", 4096)
    support = home + "/Library/Application Support/Ollama"
    write(support + "/none.bin", 4096)
    monkeypatch.setattr(_apfs, "private_size", Recorded())
    with MacHost(Replay([])) as replay:
        found = run_discover(home, root)
    assert replay.unexpected == []
    by_path = dict((r["path"], r) for r in found["residues"])
    assert by_path[cache]["apfs_shared_bytes"] == a
    assert by_path[cache]["bytes"] > a
    assert by_path[support]["apfs_shared_bytes"] is None
    assert ("%s: %d of its %d bytes are shared with APFS clones or kept by local snapshots: removing it frees that "
            "much less" % (cache, a, by_path[cache]["bytes"])) in found["problems"]
    assert any(p.startswith(support + ": APFS clone and snapshot sharing of 1 of 1 files not read")
               for p in found["problems"])
    # the same host seen as Linux: no key, no second pass
    linux = run_discover(home, root)
    assert [r for r in linux["residues"] if "apfs_shared_bytes" in r] == []
    assert not any("APFS" in p for p in linux["problems"])
