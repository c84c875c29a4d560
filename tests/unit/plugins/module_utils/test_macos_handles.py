# -*- coding: utf-8 -*-
# Copyright: residue.purge contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""open_deleted and holder checks on a macOS host: lsof field output parsed into the Linux result keys,
filesystems from devices, free space by statfs at the mount point, local snapshots reported."""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import os
import shutil
import subprocess
import sys
from collections import namedtuple

import pytest

from ansible_collections.residue.purge.plugins.module_utils import _handles, _macos, _paths, _platform, _procs
from ansible_collections.residue.purge.tests.unit.support.macos_host import MacHost, Replay, fixture

St = namedtuple("St", "st_dev")
LSOF = ["/usr/sbin/lsof"] + _handles.LSOF_COMMAND[1:]
DEVICES = {"/": 0x1000010, "/System/Volumes/Data": 0x1000012, "/Volumes/Models": 0x1000017}


class MacCommands(object):
    def __init__(self, replay):
        self.replay = replay

    def run(self, argv, data=None):
        return self.replay.run(argv, data)

    def which(self, name):
        return {"lsof": "/usr/sbin/lsof", "mount": "/sbin/mount"}[name]


def fake_stat(point):
    if point not in DEVICES:
        raise OSError(2, "No such file or directory", point)
    return St(DEVICES[point])


def answers(lsof_file="lsof_F0_pcfsinDkL_L1.txt", snapshots="tmutil_listlocalsnapshots.txt"):
    return Replay([(LSOF, (0, fixture(lsof_file), "")), (["/sbin/mount"], (0, fixture("mount.txt"), "")),
                   (_macos.TMUTIL_SNAPSHOTS, (0, fixture(snapshots), ""))])


def params(**extra):
    base = {"under": [], "min_bytes": "0", "action": "report", "signal": "TERM", "grace": 1.0}
    base.update(extra)
    return base


def test_same_keys_as_linux_and_filesystems_by_device():
    mounts = _handles.parse_mount_output(fixture("mount.txt"))
    records = _handles.parse_lsof_fields(fixture("lsof_F_pcfsinDkL_L1.txt"))
    handles = _handles.handles_from_lsof(records, mounts, _handles.mount_devices(mounts, stat=fake_stat))
    linux_keys = {"pid", "name", "user", "fd", "path", "bytes", "disk_bytes", "filesystem", "fstype", "device",
                  "inode"}
    assert all(set(h) == linux_keys for h in handles)
    by_fd = dict(((h["pid"], h["fd"]), h) for h in handles)
    assert by_fd[(812, "12")]["filesystem"] == "/Volumes/Models" and by_fd[(812, "12")]["fstype"] == "apfs"
    assert by_fd[(812, "txt")]["filesystem"] == "/System/Volumes/Data"
    assert by_fd[(812, "txt")]["user"] == "alice" and by_fd[(901, "5")]["user"] == "bob"
    summary = dict((fs["filesystem"], fs) for fs in _handles.summarise(handles))
    # bob's process holds the same deleted blob twice: counted once
    assert summary["/System/Volumes/Data"]["pinned_bytes"] == 28311552 + 1048576 + 734003200
    assert summary["/System/Volumes/Data"]["processes"] == 2
    assert summary["/Volumes/Models"]["pinned_bytes"] == 4661211808


def test_without_devices_firmlinked_paths_land_on_the_data_volume():
    mounts = _handles.parse_mount_output(fixture("mount.txt"))
    handles = _handles.handles_from_lsof(_handles.parse_lsof_fields(fixture("lsof_F_pcfsinDkL_L1.txt")), mounts)
    assert set(h["filesystem"] for h in handles) == {"/System/Volumes/Data", "/Volumes/Models"}


def test_data_volume_names_are_given_their_firmlinked_name():
    out = "p7\0cx\0u501\0\nf3\0tREG\0D0x1000012\0s10\0i5\0k0\0n/System/Volumes/Data/Users/alice/.ollama/x\0\n"
    assert _handles.parse_lsof_fields(out)[0]["path"] == "/Users/alice/.ollama/x"
    linked = "p7\nf3\nk1\nn/Users/alice/kept\n"  # a link count above zero: not deleted, not reported
    assert _handles.parse_lsof_fields(linked) == []


def test_run_on_macos_reports_and_lists_snapshots():
    with MacHost(answers()) as replay:
        result = _handles.run(params(under=["/Users/alice"]), commands=MacCommands(replay))
    assert replay.unexpected == []
    assert [c[0] for c in replay.calls] == ["/usr/sbin/lsof", "/sbin/mount", "tmutil"]
    assert sorted((h["pid"], h["fd"]) for h in result["handles"]) == [(812, "13"), (812, "txt")]
    assert result["snapshots"][0] == "com.apple.TimeMachine.2024-05-02-091512.local"
    assert any("3 local snapshot(s)" in p and "never" not in p for p in result["problems"])
    assert result["changed"] is False and "scan" in result


def test_run_on_macos_without_snapshots_or_tmutil():
    with MacHost(answers(snapshots="tmutil_listlocalsnapshots_none.txt")) as replay:
        result = _handles.run(params(), commands=MacCommands(replay))
    assert result["snapshots"] == [] and not any("snapshot" in p for p in result["problems"])
    broken = Replay([(LSOF, (1, "", "")), (["/sbin/mount"], (0, fixture("mount.txt"), "")),
                     (_macos.TMUTIL_SNAPSHOTS, (1, "", "Unable to list snapshots"))])
    with MacHost(broken) as replay:
        result = _handles.run(params(), commands=MacCommands(replay))
    assert result["handles"] == [] and any("Unable to list snapshots" in p for p in result["problems"])


def test_lsof_failure_fails_the_scan():
    failing = Replay([(LSOF, (1, "", "lsof: status error on /x: Permission denied"))])
    with MacHost(failing) as replay:
        with pytest.raises(_handles.HandleError, match="Permission denied"):
            _handles.run(params(), commands=MacCommands(replay))


def test_holds_again_asks_lsof_for_that_pid():
    records = _handles.parse_lsof_fields(fixture("lsof_F_pcfsinDkL_L1.txt"))
    handles = _handles.handles_from_lsof(records, [])
    per_pid = Replay([(LSOF + ["-a", "-p", "901"], (0, fixture("lsof_F0_pcfsinDkL_L1.txt"), "")),
                      (LSOF + ["-a", "-p", "812"], (1, "", ""))])
    with MacHost(per_pid) as replay:
        assert _handles.holds_again(MacCommands(replay), 901, handles) is True
        assert _handles.holds_again(MacCommands(replay), 812, handles) is False  # gone: nothing listed


def test_free_space_by_statfs_at_the_mount_point(tmp_path):
    """A macOS-style summary (hex device, filesystem named by its mount point), measured here for real."""
    point = str(tmp_path)
    dev = os.stat(point).st_dev
    filesystems = [{"filesystem": point, "device": "0x%x" % dev},
                   {"filesystem": point, "device": "0x%x" % (dev + 1)},  # another device now: not measured
                   {"filesystem": "dev:0x1000099", "device": "0x1000099"}]
    with MacHost(Replay([])):
        free = _handles.free_space(filesystems)
    st = os.statvfs(point)
    assert list(free) == [point] and abs(free[point] - st.f_bavail * st.f_frsize) < 64 * 1024 * 1024


def test_holders_under_roots():
    found = _macos.holders_under(fixture("lsof_F_pcfnL_path.txt"), ["/Users/alice/.ollama/models"],
                                 _paths.root_of)
    assert found == {812: "/Users/alice/.ollama/models"}
    logs = _macos.holders_under(fixture("lsof_F_pcfnL_path.txt"), ["/Users/alice/.ollama/logs"], _paths.root_of)
    assert logs == {812: "/Users/alice/.ollama/logs", 1433: "/Users/alice/.ollama/logs"}
    data = "p5\nf3\nn/System/Volumes/Data/Users/alice/.ollama/logs/x\n"
    assert _macos.holders_under(data, ["/Users/alice/.ollama"], _paths.root_of) == {5: "/Users/alice/.ollama"}
    assert _macos.holders_under("", ["/Users"], _paths.root_of) == {}


def test_holding_on_macos_uses_one_lsof_listing(tmp_path):
    """reap's `holding` on macOS: a real process (started here, killed here) is matched because lsof says it
    holds a file under the root, although it holds nothing there on this machine."""
    child = subprocess.Popen(["sleep", "300"])
    try:
        listing = "p%d\ncsleep\nLalice\nf9\nn/Users/alice/.ollama/models/blobs/sha256-x\n" % child.pid
        listing += "p999999\ncgone\nf3\nn/Users/alice/.ollama/models/y\n"
        with MacHost(Replay([(_macos.LSOF_ALL, (0, listing, ""))])) as replay:
            found = _procs.find_processes(holding=["/Users/alice/.ollama/models"])
            assert [(p.pid, p.matched_by) for p in found] == [(child.pid, "holding:/Users/alice/.ollama/models")]
            assert replay.calls == [list(_macos.LSOF_ALL)]
        with MacHost(Replay([(_macos.LSOF_ALL, (1, "", "lsof: can't get PID byte count: Operation not permitted"))])):
            with pytest.raises(ValueError, match="lsof failed"):
                _procs.find_processes(holding=["/Users/alice/.ollama/models"])
        with MacHost(Replay([(_macos.LSOF_ALL, (0, listing, ""))])):  # no holding: no lsof, psutil matching
            assert [p.pid for p in _procs.find_processes(names=["sleep"]) if p.pid == child.pid] == [child.pid]
    finally:
        child.kill()
        child.wait()


class RealCommands(object):
    """This machine's commands (lsof and mount exist here too), for the lsof code path run for real."""

    def run(self, argv, data=None):
        return _platform._subprocess_run(argv, data)

    def which(self, name):
        path = shutil.which(name) or shutil.which(name, path="/usr/sbin:/sbin:/usr/bin:/bin")
        if not path:
            pytest.fail("%s is part of this test machine (tools/bootstrap.sh) and is missing" % name)
        return path


def test_the_lsof_path_run_for_real_agrees_with_proc(tmp_path):
    """The macOS branch (lsof field output, mount, devices) run against this machine's real lsof, checked against
    the /proc scan of the same process: a real deleted-but-open file, not a recording."""
    held = tmp_path / "held.bin"
    script = ("import os, sys, time\nf = open(%r, 'wb')\nf.write(b'x' * 3000000)\nf.flush()\nos.unlink(%r)\n"
              "sys.stdout.write('ready\\n')\nsys.stdout.flush()\ntime.sleep(300)\n") % (str(held), str(held))
    child = subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE)
    try:
        assert child.stdout.readline() == b"ready\n"
        expected = [h for h in _handles.scan_proc()[0] if h["pid"] == child.pid and h["path"].startswith(str(tmp_path))]
        assert [h["path"] for h in expected] == [str(held)]
        previous = _platform.use(_platform.Host(_platform.DARWIN, RealCommands().run))
        try:
            result = _handles.run(params(under=[str(tmp_path)]), commands=RealCommands())
        finally:
            _platform.use(previous)
        got = [h for h in result["handles"] if h["pid"] == child.pid]
        assert [(h["path"], h["fd"], h["inode"], h["bytes"], h["filesystem"]) for h in got] == [
            (e["path"], e["fd"], e["inode"], e["bytes"], e["filesystem"]) for e in expected]
        assert got[0]["device"].startswith("0x")  # lsof's device, as on macOS
        assert any("tmutil" in p for p in result["problems"])  # no tmutil here: said, not fatal
    finally:
        child.kill()
        child.wait()


def test_hf_cache_open_files_on_macos_come_from_lsof():
    """hf_cache's 'in use' check (files open or mapped under a cache) on macOS: one lsof listing; None (said as
    'could not check') when lsof fails, never an empty 'nothing is open'."""
    from ansible_collections.residue.purge.plugins.module_utils._hfcache import inuse
    listing = fixture("lsof_F_pcfnL_path.txt") + "p77\ncmds\nf5\nn/System/Volumes/Data/Users/alice/.ollama/logs/x\n"
    with MacHost(Replay([(_macos.LSOF_ALL, (0, listing, ""))])) as replay:
        found = inuse.open_paths_under(["/Users/alice/.ollama"], own_pid=1433)
    assert replay.calls == [list(_macos.LSOF_ALL)]
    assert found == {
        "/Users/alice/.ollama/models/blobs/sha256-6a0746a1ec1aef3e7ec53868f220ff6e389f6f8ef87a01d77c96807de94ca2aa":
            [(812, "ollama")],
        "/Users/alice/.ollama/logs/server.log": [(812, "ollama")],  # 1433 is "this module": left out
        "/Users/alice/.ollama/logs/x": [(77, "mds")]}
    with MacHost(Replay([(_macos.LSOF_ALL, (1, "", "lsof: no permission"))])):
        assert inuse.open_paths_under(["/Users/alice/.ollama"]) is None


def test_open_files_is_read_once_and_says_once_that_it_could_not_check():
    """OpenFiles (hf_cache, ollama_models, modelscope_models): one listing for the whole run, however often it is
    asked; when it cannot be read, {} and one problem line, and no second listing."""
    from ansible_collections.residue.purge.plugins.module_utils._hfcache import inuse
    listing = fixture("lsof_F_pcfnL_path.txt")
    problems = []
    with MacHost(Replay([(_macos.LSOF_ALL, (0, listing, ""))])) as replay:
        opened = inuse.OpenFiles(["/Users/alice/.ollama"], problems, "could not check")
        assert replay.calls == []  # nothing read until asked
        first = opened()
        assert opened() is first
    assert replay.calls == [list(_macos.LSOF_ALL)]
    assert (812, "ollama") in first["/Users/alice/.ollama/logs/server.log"] and problems == []
    with MacHost(Replay([(_macos.LSOF_ALL, (1, "", "lsof: no permission"))])) as replay:
        opened = inuse.OpenFiles(["/Users/alice/.ollama"], problems, "could not check")
        assert opened() == {} and opened() == {}
    assert replay.calls == [list(_macos.LSOF_ALL)] and problems == ["could not check"]
