# -*- coding: utf-8 -*-
# Copyright: residue.purge contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""_macos parsers fed the recorded macOS outputs in tests/unit/fixtures/macos: normal, empty, truncated and
hostile input (names with newlines)."""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import os
from collections import namedtuple

import pytest

from ansible_collections.residue.purge.plugins.module_utils import _macos

FIXTURES = os.path.join(os.path.dirname(__file__), "..", "..", "fixtures", "macos")
Pw = namedtuple("Pw", "pw_name pw_uid pw_gid pw_dir")


def fixture(name):
    with open(os.path.join(FIXTURES, name), "rb") as f:
        return f.read().decode("utf-8", "surrogateescape")


def test_sw_vers():
    assert _macos.parse_sw_vers(fixture("sw_vers.txt")) == {
        "ProductName": "macOS", "ProductVersion": "14.4.1", "BuildVersion": "23E224"}
    assert _macos.parse_sw_vers("") == {}
    assert _macos.parse_sw_vers("ProductName:\tmac") == {"ProductName": "mac"}


def test_dscl_people_only_and_hostile_name():
    listed = _macos.parse_dscl_users(fixture("dscl_list_users_uniqueid.txt"))
    assert ("_spotlight", 89) in listed and ("nobody", -2) in listed and ("alice", 501) in listed
    assert ("evil", 504) not in listed  # the first half of a name with a newline carries no uid
    directory = {"alice": Pw("alice", 501, 20, "/Users/alice"), "bob": Pw("bob", 502, 20, "/Users/bob"),
                 "carol": Pw("carol", 503, 20, "/Users/carol")}

    def lookup(name):
        return directory[name]

    people, problems = _macos.macos_users(fixture("dscl_list_users_uniqueid.txt"), lookup)
    # the second half of "evil\ncarol" (uid 504) reads as "carol": the directory says carol is 503, so it is
    # dropped and reported instead of giving carol's home a second, wrong uid
    assert people == [("alice", 501, 20, "/Users/alice"), ("bob", 502, 20, "/Users/bob"),
                      ("carol", 503, 20, "/Users/carol")]
    assert len(problems) == 1 and "504" in problems[0] and "carol" in problems[0]
    assert _macos.macos_users("", lookup) == ([], [])


def test_dscl_unknown_record_reported():
    def unknown(name):
        raise KeyError(name)

    people, problems = _macos.macos_users("ghost 777\n", unknown)
    assert people == [] and "ghost" in problems[0]


@pytest.mark.parametrize("name, uid, person", [
    ("alice", 501, True), ("_mbsetupuser", 501, False), ("root", 0, False), ("Guest", 201, False),
    ("nobody", -2, False), ("daemon", 1, False), ("svc", 500, False)])
def test_is_person(name, uid, person):
    assert _macos.is_person(name, uid) is person


def test_ps_environments():
    found = _macos.parse_ps_environments(fixture("ps_A_ww_o_pid_ruid_uid_command.txt"),
                                         fixture("ps_A_E_ww_o_pid_ruid_uid_command.txt"))
    by_pid = dict((p.pid, p) for p in found)
    assert by_pid[1].environ == {} and by_pid[1].uid == 0  # SIP: ps shows no environment
    assert (by_pid[1500].ruid, by_pid[1500].uid) == (502, 0)  # setuid sudo: told apart by its uids
    assert by_pid[812].uid == 501
    assert by_pid[812].environ["OLLAMA_MODELS"] == "/Volumes/Models/ollama"
    assert by_pid[812].environ["HF_HOME"] == "/Users/alice/HF Cache/hf"  # a value with a space, kept whole
    # an argument that looks like NAME=value is not environment; the real value follows the command line
    assert by_pid[901].environ["XDG_CACHE_HOME"] == "/Users/bob/.cache"
    assert by_pid[901].environ["HF_HOME"] == "/etc"  # reported as found: trust rules judge it, not the parser
    assert by_pid[2001].environ == {}  # exec'd between the two listings: nothing attributed
    kept = _macos.parse_ps_environments(fixture("ps_A_ww_o_pid_ruid_uid_command.txt"),
                                        fixture("ps_A_E_ww_o_pid_ruid_uid_command.txt"), names=("HF_HOME",))
    assert dict((p.pid, p.environ) for p in kept)[812] == {"HF_HOME": "/Users/alice/HF Cache/hf"}


def test_ps_empty_truncated_hostile():
    assert _macos.parse_ps_environments("", "") == []
    plain = "  812   501   501 /x/ollama serve\n"
    assert _macos.parse_ps_environments(plain, "  812   501   501 /x/oll") == [_macos.ProcEnv(812, 501, 501, {})]
    # uids that differ between the runs (the pid was reused): nothing
    assert _macos.parse_ps_environments(plain, "  812   502   502 /x/ollama serve HF_HOME=/h\n") == []
    # an argv with a newline splits the line: the tail is no process
    hostile = "  812   501   501 /x/ollama serve\n   99 HF_HOME=/etc\n"
    assert [p.pid for p in _macos.parse_ps_environments(hostile, hostile)] == [812]


def test_split_environment():
    assert _macos.split_environment("A=1 B=two words C=") == {"A": "1", "B": "two words", "C": ""}
    assert _macos.split_environment("") == {}
    assert _macos.split_environment("A=1 A=2") == {"A": "1"}


def test_launchctl_print_smappservice_agent():
    info = _macos.parse_launchctl_print(fixture("launchctl_print_gui_ollama.txt"))
    assert info["target"] == "gui/501/com.ollama.ollama"
    assert info["path"] == "/Applications/Ollama.app/Contents/Library/LaunchAgents/com.ollama.ollama.plist"
    assert info["state"] == "running" and info["pid"] == 812 and info["type"] == "LaunchAgent"
    assert info["arguments"] == ["/Applications/Ollama.app/Contents/Resources/ollama", "serve"]
    assert info["parent bundle identifier"] == "com.electron.ollama"
    assert "activation rate" not in info  # nested blocks stay out
    assert _macos.bundle_of(info["path"]) == "/Applications/Ollama.app"


def test_launchctl_print_not_running_and_missing():
    info = _macos.parse_launchctl_print(fixture("launchctl_print_gui_autoglm.txt"))
    assert info["state"] == "not running" and "pid" not in info
    assert info["path"] == "/Users/alice/Library/LaunchAgents/ai.open-autoglm.agent.plist"
    assert _macos.bundle_of(info["path"]) is None
    assert _macos.parse_launchctl_print(fixture("launchctl_print_missing.txt")) == {}
    assert _macos.parse_launchctl_print("") == {}
    truncated = fixture("launchctl_print_gui_ollama.txt")[:200]
    assert _macos.parse_launchctl_print(truncated)["target"] == "gui/501/com.ollama.ollama"


def test_launchctl_list():
    jobs = _macos.parse_launchctl_list(fixture("launchctl_list.txt"))
    assert (812, 0, "com.ollama.ollama") in jobs and (None, -9, "ai.open-autoglm.agent") in jobs
    assert all(label != "Label" for _pid, _status, label in jobs)
    assert _macos.parse_launchctl_list("") == []
    assert _macos.parse_launchctl_list("812\t0") == []


@pytest.mark.parametrize("path, bundle", [
    ("/Applications/Ollama.app/Contents/Library/LaunchAgents/com.ollama.ollama.plist", "/Applications/Ollama.app"),
    ("/Users/a/Applications/X.app/Contents/Library/LaunchDaemons/x.plist", "/Users/a/Applications/X.app"),
    ("/Library/LaunchAgents/com.ollama.ollama.plist", None),
    ("/Users/a/Library/LaunchAgents/my.app.plist", None),
    ("/Users/a/Library/LaunchAgents/Fake.app/x.plist", None)])
def test_bundle_of(path, bundle):
    assert _macos.bundle_of(path) == bundle


@pytest.mark.parametrize("name", ["lsof_F_pcfsinDkL_L1.txt", "lsof_F0_pcfsinDkL_L1.txt"])
def test_lsof_deleted_newline_and_nul_output_agree(name):
    processes = _macos.parse_lsof_fields(fixture(name))
    assert [p["pid"] for p in processes] == [812, 901]
    ollama = processes[0]
    assert (ollama["command"], ollama["login"], ollama["uid"]) == ("ollama", "alice", 501)
    assert [f["fd"] for f in ollama["files"]] == ["txt", "12", "13"]
    blob = ollama["files"][1]
    assert blob["size"] == 4661211808 and blob["device"] == "0x1000017" and blob["inode"] == 88120
    assert blob["links"] == 0 and blob["name"].startswith("/Volumes/Models/ollama/blobs/sha256-")
    assert ollama["files"][2]["name"] == "/Users/alice/Library/Caches/ollama/evil\\nname"  # lsof's escape kept


def test_lsof_holders_of_path_empty_truncated():
    processes = _macos.parse_lsof_fields(fixture("lsof_F_pcfnL_path.txt"))
    assert [(p["pid"], p["command"], [f["fd"] for f in p["files"]]) for p in processes] == [
        (812, "ollama", ["cwd", "9", "10"]), (1433, "less", ["4"])]
    assert _macos.parse_lsof_fields(fixture("lsof_empty.txt")) == []
    truncated = _macos.parse_lsof_fields(fixture("lsof_truncated.txt"))
    assert truncated[0]["files"][0]["name"] == "/Users/alice/.ollama/mo"
    assert _macos.parse_lsof_fields("f3\nn/orphan\np\n") == []  # no process before the file, no pid


def test_local_snapshots():
    names = _macos.parse_local_snapshots(fixture("tmutil_listlocalsnapshots.txt"))
    assert names[0] == "com.apple.TimeMachine.2024-05-02-091512.local" and len(names) == 3
    assert _macos.parse_local_snapshots(fixture("tmutil_listlocalsnapshots_none.txt")) == []
    assert _macos.parse_local_snapshots("") == []


def test_apfs_list():
    volumes = _macos.parse_apfs_list(fixture("diskutil_apfs_list.txt"))
    by_device = dict((v.device, v) for v in volumes)
    assert sorted(by_device) == ["disk3s1", "disk3s2", "disk3s5", "disk3s6", "disk5s1"]
    data = by_device["disk3s5"]
    assert (data.name, data.role, data.mount_point, data.consumed_bytes) == (
        "Macintosh HD - Data", "Data", "/System/Volumes/Data", 365829103616)
    assert by_device["disk5s1"].name == "Models" and by_device["disk5s1"].role == "No specific role"
    assert _macos.parse_apfs_list("") == []
    assert _macos.parse_apfs_list(fixture("diskutil_apfs_list.txt")[:1200])[-1].device == "disk3s1"


def test_print_disabled():
    states = _macos.parse_print_disabled(fixture("launchctl_print-disabled_gui_501.txt"))
    assert states == {"com.apple.ScriptMenuApp": True, "com.ollama.ollama": False, "com.apple.Siri.agent": False,
                      "ai.open-autoglm.agent": False}  # login item associations are not states
    assert _macos.parse_print_disabled(fixture("launchctl_print-disabled_legacy.txt"))["com.ollama.ollama"] is True
    assert _macos.parse_print_disabled("") == {}
    assert _macos.parse_print_disabled('disabled services = {\n\t"a.b" => disab') == {}
