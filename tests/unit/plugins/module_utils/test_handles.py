# -*- coding: utf-8 -*-
# Copyright: residue.purge contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Unit tests of _handles: the pure parsers and filters, and scan_proc against real processes."""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import os
import signal
import subprocess
import sys
import tempfile
import uuid

import pytest

from ansible_collections.residue.purge.plugins.module_utils import _handles, _mounts, _procfs, _text

# Captured on this project's Debian 12 lab machine: `lsof -nP +L1 -F pcuftsDin0` (lsof 4.95.0), trimmed to
# three processes. One process with a deleted memfd executable, one with two fds on the same O_TMPFILE file,
# one with a regular deleted file, a memfd and a deleted file that is also mapped.
LSOF_LINUX_SAMPLE = (
    "p1081\x00cmemfd:sealed-91\x00u0\x00\n"
    "ftxt\x00tREG\x00D0x1\x00s1531760\x00i2\x00n/memfd:sealed-91173221a7ea (deleted)\x00\n"
    "p27591\x00cpython\x00u0\x00\n"
    "f1\x00tREG\x00D0xfe00\x00s0\x00i2146305\x00n/tmp/#2146305 (deleted)\x00\n"
    "f6\x00tREG\x00D0xfe00\x00s0\x00i2146305\x00n/tmp/#2146305 (deleted)\x00\n"
    "p27718\x00cpython3\x00u0\x00\n"
    "f3\x00tREG\x00D0xfe00\x00s10000\x00i2196274\x00n/tmp/hx/fdfile (deleted)\x00\n"
    "f4\x00tREG\x00D0x1\x00s5000\x00i7\x00n/memfd:memx (deleted)\x00\n"
    "f5\x00tREG\x00D0xfe00\x00s8192\x00i2196290\x00n/tmp/hx/mapfile (deleted)\x00\n"
)

# Written from lsof's documented field output for macOS (no macOS host is available to capture one): Darwin's
# lsof does not append " (deleted)", uses 32-bit hex devices and may give a login name (L) instead of a uid.
LSOF_DARWIN_SAMPLE = (
    "p812\x00cOpen-AutoGLM\x00u501\x00Lalice\x00\n"
    "f17\x00tREG\x00D0x1000011\x00s4294967296\x00i9120333\x00n/Users/alice/Library/Caches/open-autoglm/w.bin\x00\n"
    "p90\x00ccom.apple.xyz\x00u0\x00\n"
    "ftxt\x00tREG\x00D0x1000004\x00s1024\x00i77\x00n/private/var/folders/x/y/T/z\x00\n"
)

MOUNT_DARWIN_SAMPLE = """/dev/disk3s1s1 on / (apfs, sealed, local, read-only, journaled)
devfs on /dev (devfs, local, nobrowse)
/dev/disk3s5 on /System/Volumes/Data (apfs, local, journaled, nobrowse, protect)
/dev/disk4s1 on /Users/alice/Library/Caches (apfs, local, nodev, nosuid, journaled)
map auto_home on /System/Volumes/Data/home (autofs, automounted, nobrowse)
"""

MOUNTINFO_SAMPLE = r"""22 27 0:21 / /proc rw,relatime - proc proc rw
27 1 254:0 / / rw,relatime - ext4 /dev/vda rw
40 27 254:0 /srv/data /mnt/bind rw,relatime - ext4 /dev/vda rw
41 27 0:50 / /mnt/with\040space rw - tmpfs tmpfs rw,size=1024k
42 27 0:51 /sub /mnt/bind-only rw - xfs /dev/sdb rw
43 27 0:51 / /mnt/xfs-root rw - xfs /dev/sdb rw
44 27 0:52 / /mnt/back\134slash rw shared:1 master:2 - tmpfs tmpfs rw
garbage line
"""


def test_parse_mountinfo_prefers_root_mounts_and_unescapes():
    mounts = _mounts.parse_mountinfo(MOUNTINFO_SAMPLE)
    assert mounts[(254, 0)] == ("/", "ext4")          # bind mount of a subdir does not replace /
    assert mounts[(0, 50)] == ("/mnt/with space", "tmpfs")
    assert mounts[(0, 51)] == ("/mnt/xfs-root", "xfs")  # the mount of the device's root wins over a bind
    assert mounts[(0, 52)] == ("/mnt/back\\slash", "tmpfs")  # optional fields before " - " are skipped
    assert mounts[(0, 21)] == ("/proc", "proc")
    assert len(mounts) == 5


def test_parse_mountinfo_of_this_host_knows_root():
    with open("/proc/self/mountinfo") as f:
        mounts = _mounts.parse_mountinfo(f.read())
    st = os.stat("/")
    assert mounts[(os.major(st.st_dev), os.minor(st.st_dev))][0] == "/"


@pytest.mark.parametrize("text,expected", [
    ("/a/b (deleted)", "/a/b"), ("/a/b", None), ("/a/b (deleted) (deleted)", "/a/b (deleted)"),
    ("socket:[123]", None), ("/x (deleted)\n", None), (" (deleted)", ""),
])
def test_strip_deleted(text, expected):
    assert _procfs.strip_deleted(text) == expected


@pytest.mark.parametrize("text,expected", [
    ("/plain/ascii", "/plain/ascii"), ("/caf\u00e9/\u6a21\u578b", "/caf\u00e9/\u6a21\u578b"),
    (b"/bad/\xff\xfename".decode("utf-8", "surrogateescape"), "/bad/\\xff\\xfename"),
])
def test_printable(text, expected):
    assert _text.printable(text) == expected
    _text.printable(text).encode("utf-8")


def test_normalise_roots_resolves_symlinks():
    with tempfile.TemporaryDirectory() as tmp:
        real = os.path.join(tmp, "real")
        os.mkdir(real)
        os.symlink(real, os.path.join(tmp, "link"))
        roots = _handles.normalise_roots([os.path.join(tmp, "link") + "/", os.path.join(tmp, "link", "..", "real")])
        assert os.path.join(tmp, "link") in roots
        assert os.path.realpath(real) in roots
        assert len(roots) == len(set(roots))


@pytest.mark.parametrize("bad", [[""], ["  "], ["relative/dir"], ["."], [None], [5], ["/a\0b"]])
def test_normalise_roots_rejects(bad):
    with pytest.raises(ValueError, match="^under: "):
        _handles.normalise_roots(bad)


def test_normalise_roots_collapses_double_slash():
    assert _handles.normalise_roots(["//srv//m/"])[0] == "/srv/m"


@pytest.mark.parametrize("path,roots,expected", [
    ("/srv/m/a.bin", ["/srv/m"], True),
    ("/srv/m", ["/srv/m"], True),
    ("/srv/mx/a.bin", ["/srv/m"], False),      # component boundary, not a string prefix
    ("/srv/a.bin", ["/srv/m"], False),
    ("/anything", ["/"], True),
    ("/anything", [], True),
    ("/memfd:x", ["/srv"], False),
    ("/b/c", ["/a", "/b"], True),
])
def test_is_under(path, roots, expected):
    assert _handles.is_under(path, roots) is expected


def _h(pid, fd, path, size, dev="8:1", inode=1, fs="/srv", disk=None):
    return {"pid": pid, "name": "p%d" % pid, "user": "u", "fd": fd, "path": path, "bytes": size,
            "disk_bytes": size if disk is None else disk, "filesystem": fs, "fstype": "ext4", "device": dev,
            "inode": inode}


def test_select_handles_filters_by_root_and_size():
    handles = [_h(1, "3", "/srv/m/a", 100), _h(1, "4", "/srv/other/b", 10 ** 6, inode=2),
               _h(2, "DEL", "/srv/m/c", 10 ** 6, inode=3), _h(3, "5", "/srv/m/d", None, inode=4)]
    assert _handles.select_handles(handles, ["/srv/m"], 0) == [handles[0], handles[2], handles[3]]
    assert _handles.select_handles(handles, ["/srv/m"], 1000) == [handles[2]]  # unknown size never passes a min
    assert _handles.select_handles(handles, None, 0) == handles


def test_summarise_counts_each_file_once():
    handles = [
        _h(10, "3", "/srv/a", 5000, inode=7, disk=8192),
        _h(10, "4", "/srv/a", 5000, inode=7, disk=8192),      # same file, second fd
        _h(11, "DEL", "/srv/a", 5000, inode=7, disk=8192),    # same file, other process, mapped
        _h(11, "5", "/srv/b", 100, inode=8, disk=4096),
        _h(12, "3", "/data/c", 1, dev="8:2", inode=7, fs="/data", disk=4096),  # same inode, other device
    ]
    summary = _handles.summarise(handles)
    assert summary == [
        {"filesystem": "/data", "device": "8:2", "fstype": "ext4", "pinned_bytes": 4096, "size_bytes": 1,
         "files": 1, "processes": 1},
        {"filesystem": "/srv", "device": "8:1", "fstype": "ext4", "pinned_bytes": 12288, "size_bytes": 5100,
         "files": 2, "processes": 2},
    ]
    assert _handles.summarise([]) == []


def test_holders_groups_by_pid():
    handles = [_h(11, "3", "/srv/a", 1), _h(10, "3", "/srv/a", 1), _h(11, "DEL", "/srv/a", 1),
               _h(11, "4", "/srv/b", 1, inode=2)]
    assert _handles.holders(handles) == [
        {"pid": 10, "name": "p10", "user": "u", "handles": 1, "paths": ["/srv/a"]},
        {"pid": 11, "name": "p11", "user": "u", "handles": 3, "paths": ["/srv/a", "/srv/b"]},
    ]


def test_parse_lsof_fields_linux_capture():
    records = _handles.parse_lsof_fields(LSOF_LINUX_SAMPLE)
    assert [(r["pid"], r["fd"], r["path"], r["bytes"], r["inode"]) for r in records] == [
        (1081, "txt", "/memfd:sealed-91173221a7ea", 1531760, 2),
        (27591, "1", "/tmp/#2146305", 0, 2146305),
        (27591, "6", "/tmp/#2146305", 0, 2146305),
        (27718, "3", "/tmp/hx/fdfile", 10000, 2196274),
        (27718, "4", "/memfd:memx", 5000, 7),
        (27718, "5", "/tmp/hx/mapfile", 8192, 2196290),
    ]
    assert set(r["user"] for r in records) == {"root"}  # uid 0 resolved through the passwd database
    assert records[0]["name"] == "memfd:sealed-91" and records[3]["device"] == "0xfe00"
    assert records[3]["type"] == "REG"


def test_parse_lsof_fields_darwin_and_mounts():
    mounts = _handles.parse_mount_output(MOUNT_DARWIN_SAMPLE)
    assert mounts[0] == ("/Users/alice/Library/Caches", "apfs")  # longest first
    assert [len(m[0]) for m in mounts] == sorted((len(m[0]) for m in mounts), reverse=True)
    assert ("/System/Volumes/Data/home", "autofs") in mounts and len(mounts) == 5
    assert ("/", "apfs") in mounts and ("/dev", "devfs") in mounts
    handles = _handles.handles_from_lsof(_handles.parse_lsof_fields(LSOF_DARWIN_SAMPLE), mounts)
    assert handles[0]["user"] == "alice" and handles[0]["name"] == "Open-AutoGLM"
    assert handles[0]["filesystem"] == "/Users/alice/Library/Caches" and handles[0]["fstype"] == "apfs"
    assert handles[0]["bytes"] == handles[0]["disk_bytes"] == 4294967296
    # /private is a firmlink into the Data volume: the sealed, read-only "/" holds no deleted user files
    assert handles[1]["fd"] == "txt" and handles[1]["filesystem"] == "/System/Volumes/Data"
    summary = _handles.summarise(handles)
    assert dict((fs["filesystem"], fs["pinned_bytes"]) for fs in summary) == {
        "/Users/alice/Library/Caches": 4294967296, "/System/Volumes/Data": 1024}


@pytest.mark.parametrize("output", ["", "\n\n", "garbage\n", "f3\x00n/x (deleted)\x00\n"])
def test_parse_lsof_fields_tolerates_empty_and_orphan_lines(output):
    assert _handles.parse_lsof_fields(output) == []


@pytest.mark.parametrize("rc,out,err,failed", [
    (0, "p1\x00\n", "", False),
    (1, "", "", False),                                           # nothing listed
    (1, "", "lsof: WARNING: can't stat() fuse file system /run/user/1000/doc\n", False),
    (1, "p1\x00\n", "lsof: status error on /x: No such file\n", False),   # partial answer is an answer
    (1, "", "lsof: unsupported option: +L\n", True),
    (2, "p1\x00\n", "", True),
    (127, "", "sh: lsof: not found", True),
])
def test_lsof_error(rc, out, err, failed):
    error = _handles.lsof_error(rc, out, err)
    assert (error is not None) is failed
    if failed:
        assert error.startswith("lsof failed (rc %d)" % rc)


def test_parse_mount_output_util_linux():
    text = "proc on /proc type proc (rw,relatime)\n/dev/vda on / type ext4 (rw)\ntmpfs on /a b type tmpfs (rw)\n"
    assert _handles.parse_mount_output(text) == [("/proc", "proc"), ("/a b", "tmpfs"), ("/", "ext4")]


def test_lsof_path_agrees_with_proc_scan(holder, tmp_path):
    # the code path macOS takes (lsof -F + mount), run here against real lsof and mount output
    proc = holder("fd=" + str(tmp_path / "lsof-a"), "fd=" + str(tmp_path / "lsof-b"))
    out = subprocess.run(_handles.LSOF_COMMAND + ["-a", "-p", str(proc.pid)], capture_output=True, text=True,
                         check=False)
    assert _handles.lsof_error(out.returncode, out.stdout, out.stderr) is None
    mounts = _handles.parse_mount_output(subprocess.run(["mount"], capture_output=True, text=True,
                                                        check=True).stdout)
    via_lsof = _handles.handles_from_lsof(_handles.parse_lsof_fields(out.stdout), mounts)
    via_proc = [h for h in _handles.scan_proc()[0] if h["pid"] == proc.pid]
    keys = ("pid", "name", "user", "fd", "path", "bytes", "inode", "filesystem", "fstype")
    assert len(via_proc) == 2
    assert [tuple(h[k] for k in keys) for h in via_lsof] == [tuple(h[k] for k in keys) for h in via_proc]


def test_mount_of_longest_prefix():
    mounts = _handles.parse_mount_output(MOUNT_DARWIN_SAMPLE)
    assert _handles.mount_of("/Users/alice/Library/CachesX/f", mounts) == ("/", "apfs")
    assert _handles.mount_of("/dev/x", mounts) == ("/dev", "devfs")
    assert _handles.mount_of("relative", []) == ("", "")


# --------------------------------------------------------------------------------------- real processes

HOLDER = r"""
import ctypes, os, signal, sys, time
libc = ctypes.CDLL(None, use_errno=True)
libc.mmap.restype = ctypes.c_void_p
libc.mmap.argtypes = [ctypes.c_void_p, ctypes.c_size_t, ctypes.c_int, ctypes.c_int, ctypes.c_int, ctypes.c_long]
keep = []
for spec in sys.argv[1:]:
    kind, path = spec.split("=", 1)
    with open(path, "wb") as f:
        f.write(b"m" * 9000)
    fd = os.open(path, os.O_RDONLY)
    if kind == "map":
        assert libc.mmap(None, 9000, 1, 1, fd, 0) not in (None, ctypes.c_void_p(-1).value)
        os.close(fd)
    else:
        keep.append(fd)
    if kind != "linked":
        os.unlink(path)
def let_go(*_args):
    for fd in keep:
        os.close(fd)
    print("closed", flush=True)
signal.signal(signal.SIGUSR1, let_go)
print("ready", flush=True)
while True:
    time.sleep(120)
"""


@pytest.fixture
def holder():
    started = []

    def start(*specs):
        proc = subprocess.Popen([sys.executable, "-c", HOLDER] + list(specs), stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
        started.append(proc)
        assert proc.stdout.readline().strip() == "ready"
        return proc

    yield start
    for proc in started:
        proc.kill()
        proc.wait()


def test_scan_proc_finds_fd_and_mapped_deleted_files(holder, tmp_path):
    tag = uuid.uuid4().hex[:8]
    fd_path, map_path, kept = (str(tmp_path / (n + tag)) for n in ("fd", "map", "kept"))
    proc = holder("fd=" + fd_path, "map=" + map_path, "linked=" + kept)
    handles, stats = _handles.scan_proc()
    mine = [(h["fd"] == "DEL", h["path"], h["bytes"], h["user"]) for h in handles if h["pid"] == proc.pid]
    assert sorted(mine) == [(False, fd_path, 9000, "root" if os.geteuid() == 0 else mine[0][3]),
                            (True, map_path, 9000, mine[0][3])]
    assert stats["processes"] > 1
    found = [h for h in handles if h["pid"] == proc.pid]
    assert all(h["filesystem"] == _handles.mount_of(str(tmp_path), _mounts_by_length())[0] for h in found)
    assert _handles.still_holds(proc.pid, found)
    proc.kill()
    proc.wait()
    assert not _handles.still_holds(proc.pid, found)


def _mounts_by_length():
    with open("/proc/self/mountinfo") as f:
        points = set(_mounts.parse_mountinfo(f.read()).values())
    return sorted(points, key=lambda m: len(m[0]), reverse=True)


def test_scan_proc_skips_pids_and_free_space(holder, tmp_path):
    proc = holder("fd=" + str(tmp_path / "a"))
    handles, _stats = _handles.scan_proc(skip_pids=(proc.pid,), include_maps=False)
    assert not [h for h in handles if h["pid"] == proc.pid]
    handles = [h for h in _handles.scan_proc()[0] if h["pid"] == proc.pid]
    free = _handles.free_space(_handles.summarise(handles))
    assert list(free) == [handles[0]["filesystem"]] and free[handles[0]["filesystem"]] > 0


def test_still_holds_is_false_once_the_file_is_let_go(holder, tmp_path):
    # the terminate guard: a PID is signalled only if it still holds one of the scanned files
    proc = holder("fd=" + str(tmp_path / "a"))
    found = [h for h in _handles.scan_proc()[0] if h["pid"] == proc.pid]
    assert len(found) == 1 and _handles.still_holds(proc.pid, found)
    os.kill(proc.pid, signal.SIGUSR1)
    assert proc.stdout.readline().strip() == "closed"
    assert proc.poll() is None and not _handles.still_holds(proc.pid, found)
    other = dict(found[0], inode=found[0]["inode"] + 1)
    assert not _handles.still_holds(proc.pid, [other])


def test_scan_proc_names_the_filesystem_of_another_mount_namespace(tmp_path):
    # a process in its own mount namespace maps a deleted file of a tmpfs that only it can see
    if os.geteuid() != 0:
        pytest.skip("needs root to create a mount namespace")
    inner = str(tmp_path / "inner")
    os.mkdir(inner)
    script = 'mount -t tmpfs -o size=8m tmpfs "$1" && exec "$2" -c "$3" "map=$1/m.bin" "fd=$1/f.bin"'
    proc = subprocess.Popen(["unshare", "--mount", "--propagation", "private", "sh", "-c", script, "sh", inner,
                             sys.executable, HOLDER], stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
    try:
        assert proc.stdout.readline().strip() == "ready"
        assert not os.path.ismount(inner)                       # not in this namespace
        found = sorted((h["fd"] == "DEL", h["path"], h["filesystem"], h["fstype"], h["bytes"])
                       for h in _handles.scan_proc()[0] if h["pid"] == proc.pid)
        assert found == [(False, inner + "/f.bin", inner, "tmpfs", 9000), (True, inner + "/m.bin", inner, "tmpfs", 9000)]
    finally:
        proc.kill()
        proc.wait()


def test_mount_lookup_by_device_then_by_path(tmp_path):
    # a proc-like tree with this namespace's and a holder's mount tables (real files, read by the real code)
    (tmp_path / "self").mkdir()
    (tmp_path / "self" / "mountinfo").write_text(MOUNTINFO_SAMPLE)
    (tmp_path / "42").mkdir()
    (tmp_path / "42" / "mountinfo").write_text(
        "1 0 0:60 / / rw - overlay overlay rw,lowerdir=/,upperdir=/u\n90 1 8:16 / /srv rw - xfs /dev/sdb rw\n")
    mounts = _handles._Mounts(str(tmp_path))
    assert mounts.lookup(os.makedev(254, 0), 42, "/x") == ("/", "ext4")                 # our table, by device
    assert mounts.lookup(os.makedev(8, 16), 42, "/srv/x") == ("/srv", "xfs")            # the holder's, by device
    # overlayfs: the open file reports the upper layer's device, which neither table lists: placed by path
    assert mounts.lookup(os.makedev(0, 43), 42, "/srv/models/w.bin") == ("/srv", "xfs")
    assert mounts.lookup(os.makedev(0, 43), 42, "/opt/w.bin") == ("/", "overlay")
    assert mounts.lookup(os.makedev(0, 1), 42, "/memfd:x") == ("dev:0:1", "")           # on no mount at all
    assert mounts.lookup(os.makedev(0, 43), 7, "/mnt/with space/f") == ("/mnt/with space", "tmpfs")  # holder gone
