# -*- coding: utf-8 -*-
# Copyright: residue.purge contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""autostart on a macOS host laid out under a test directory: launchd agents and daemons, a global agent, and an
app's SMAppService agent inside its bundle; launchctl answered from recorded output. Checks which commands a Mac
would be told, in which order, which plists go and which stay, and that a second run changes nothing."""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import os
import plistlib

import pytest

from ansible_collections.residue.purge.plugins.module_utils import _autostart
from ansible_collections.residue.purge.plugins.module_utils._profiles import User, load_profiles, select_targets
from ansible_collections.residue.purge.tests.unit.support.macos_host import MacHost, Replay, fixture

NOT_LOADED = (113, "", fixture("launchctl_print_missing.txt"))
OK = (0, "", "")
NO_OVERRIDES = (0, "disabled services = {\n}\n", "")


def plist(path, label, **extra):
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "wb") as f:
        plistlib.dump(dict(Label=label, **extra), f)
    return path


@pytest.fixture
def mac(tmp_path):
    root = str(tmp_path / "mac")
    users = [User("alice", 501, 20, root + "/Users/alice"), User("bob", 502, 20, root + "/Users/bob")]
    app = root + "/Applications/Ollama.app"
    paths = {
        "bundle_agent": plist(app + "/Contents/Library/LaunchAgents/com.ollama.ollama.plist", "com.ollama.ollama",
                              BundleProgram="Contents/Resources/ollama", ProgramArguments=["ollama", "serve"]),
        "brew_daemon": plist(root + "/Library/LaunchDaemons/homebrew.mxcl.ollama.plist", "homebrew.mxcl.ollama"),
        "global_agent": plist(root + "/Library/LaunchAgents/com.ollama.updater.plist", "com.ollama.updater"),
        "user_agent": plist(root + "/Users/alice/Library/LaunchAgents/ai.open-autoglm.agent.plist",
                            "ai.open-autoglm.agent", KeepAlive=True),
        "other_agent": plist(root + "/Users/alice/Library/LaunchAgents/com.example.keep.plist", "com.example.keep"),
    }
    # an app in bob's ~/Applications that is a symlink to a bundle elsewhere: not followed
    outside = str(tmp_path / "outside/Evil.app")
    plist(outside + "/Contents/Library/LaunchDaemons/com.ollama.evil.plist", "com.ollama.evil")
    os.makedirs(root + "/Users/bob/Applications")
    os.symlink(outside, root + "/Users/bob/Applications/Evil.app")
    profiles = select_targets(load_profiles(), ["ollama", "open_autoglm"])
    return root, users, profiles, paths


def before_answers():
    return [
        (["launchctl", "print", "gui/501/com.ollama.ollama"], (0, fixture("launchctl_print_gui_ollama.txt"), "")),
        (["launchctl", "print", "gui/502/com.ollama.ollama"], NOT_LOADED),
        (["launchctl", "print-disabled", "gui/501"], (0, fixture("launchctl_print-disabled_gui_501.txt"), "")),
        (["launchctl", "print-disabled", "gui/502"], NO_OVERRIDES),
    ]


def test_plan_and_apply_order(mac):
    root, users, profiles, paths = mac
    answers = before_answers() + [
        (["launchctl", verb, target], NOT_LOADED if (verb, target) == ("bootout", "gui/502/com.ollama.updater") else OK)
        for verb in ("bootout", "disable")
        for target in ("system/homebrew.mxcl.ollama", "gui/501/com.ollama.updater", "gui/502/com.ollama.updater",
                       "gui/501/ai.open-autoglm.agent", "gui/501/com.ollama.ollama", "gui/502/com.ollama.ollama")]
    with MacHost(Replay(answers)) as replay:
        plan = _autostart.plan_autostart(profiles, users, root=root, run=replay.run)
        planned = [(j["label"], j["domain"], j["services"], j["bundle"]) for j in plan.launchd]
        assert planned == [
            ("homebrew.mxcl.ollama", "system", ["system/homebrew.mxcl.ollama"], None),
            ("com.ollama.updater", "gui", ["gui/501/com.ollama.updater", "gui/502/com.ollama.updater"], None),
            ("ai.open-autoglm.agent", "gui", ["gui/501/ai.open-autoglm.agent"], None),
            ("com.ollama.ollama", "gui", ["gui/501/com.ollama.ollama", "gui/502/com.ollama.ollama"],
             root + "/Applications/Ollama.app")]
        diff = _autostart.plan_diff(plan)[-1]["before"]
        assert paths["bundle_agent"] not in diff and paths["user_agent"] in diff
        planning_calls = list(replay.calls)
        assert all(c[1] in ("print", "print-disabled") for c in planning_calls)  # planning only reads
        del replay.calls[:]
        assert _autostart.apply_plan(plan, replay.run, root=root) == []
        assert replay.unexpected == []
    assert replay.calls == [
        ["launchctl", "bootout", "system/homebrew.mxcl.ollama"], ["launchctl", "disable", "system/homebrew.mxcl.ollama"],
        ["launchctl", "bootout", "gui/501/com.ollama.updater"], ["launchctl", "disable", "gui/501/com.ollama.updater"],
        ["launchctl", "bootout", "gui/502/com.ollama.updater"], ["launchctl", "disable", "gui/502/com.ollama.updater"],
        ["launchctl", "bootout", "gui/501/ai.open-autoglm.agent"],
        ["launchctl", "disable", "gui/501/ai.open-autoglm.agent"],
        ["launchctl", "bootout", "gui/501/com.ollama.ollama"], ["launchctl", "disable", "gui/501/com.ollama.ollama"],
        ["launchctl", "bootout", "gui/502/com.ollama.ollama"], ["launchctl", "disable", "gui/502/com.ollama.ollama"]]
    for name in ("brew_daemon", "global_agent", "user_agent"):
        assert not os.path.lexists(paths[name]), name
    assert os.path.isfile(paths["bundle_agent"])  # part of the signed app: goes with the app, never alone
    assert os.path.isfile(paths["other_agent"])
    assert os.path.isfile(os.path.realpath(root + "/Users/bob/Applications/Evil.app") +
                          "/Contents/Library/LaunchDaemons/com.ollama.evil.plist")


def test_second_run_changes_nothing(mac):
    root, users, profiles, paths = mac
    for name in ("brew_daemon", "global_agent", "user_agent"):
        os.unlink(paths[name])
    after = [
        (["launchctl", "print", "gui/501/com.ollama.ollama"], NOT_LOADED),
        (["launchctl", "print", "gui/502/com.ollama.ollama"], NOT_LOADED),
        (["launchctl", "print-disabled", "gui/501"], (0, fixture("launchctl_print-disabled_gui_501_after.txt"), "")),
        (["launchctl", "print-disabled", "gui/502"], (0, 'disabled services = {\n\t"com.ollama.ollama" => disabled\n}\n', "")),
    ]
    with MacHost(Replay(after)) as replay:
        plan = _autostart.plan_autostart(profiles, users, root=root, run=replay.run)
    assert plan.empty() and replay.unexpected == []


def test_loaded_but_disabled_bundle_job_is_still_stopped(mac):
    """disabled in the override database yet still running (disabled while it ran): it is booted out."""
    root, users, profiles, _paths = mac
    answers = [
        (["launchctl", "print", "gui/501/com.ollama.ollama"], (0, fixture("launchctl_print_gui_ollama.txt"), "")),
        (["launchctl", "print", "gui/502/com.ollama.ollama"], NOT_LOADED),
        (["launchctl", "print-disabled", "gui/501"], (0, fixture("launchctl_print-disabled_gui_501_after.txt"), "")),
        (["launchctl", "print-disabled", "gui/502"], (0, 'disabled services = {\n\t"com.ollama.ollama" => true\n}\n', "")),
    ]
    with MacHost(Replay(answers)) as replay:
        plan = _autostart.plan_autostart(profiles, users, root=root, run=replay.run, system=False)
    assert [(j["label"], j["services"]) for j in plan.launchd] == [
        ("ai.open-autoglm.agent", ["gui/501/ai.open-autoglm.agent"]),
        ("com.ollama.ollama", ["gui/501/com.ollama.ollama"])]


def test_bootout_refused_is_a_failure_only_while_the_job_is_loaded(mac):
    root, users, profiles, paths = mac
    denied = (1, "", "Boot-out failed: 1: Operation not permitted")
    answers = before_answers() + [
        (["launchctl", "bootout", "system/homebrew.mxcl.ollama"], denied),
        (["launchctl", "print", "system/homebrew.mxcl.ollama"], (0, "system/homebrew.mxcl.ollama = {\n\tstate = running\n}\n", "")),
        (["launchctl", "disable", "system/homebrew.mxcl.ollama"], (1, "", "Not privileged to disable service.")),
        (["launchctl", "bootout", "gui/501/com.ollama.updater"], (5, "", "Boot-out failed: 5: Input/output error")),
        (["launchctl", "print", "gui/501/com.ollama.updater"], NOT_LOADED),
    ]
    with MacHost(Replay(answers)) as replay:
        plan = _autostart.plan_autostart(profiles, users, root=root, run=replay.run)
        plan.launchd[:] = plan.launchd[:2]
        plan.launchd[1]["services"] = plan.launchd[1]["services"][:1]
        failures = _autostart.apply_plan(plan, lambda argv: replay.run(argv) if tuple(argv) in replay.answers
                                         else (0, "", ""), root=root)
    assert [(f["unit"], f["error"].split(":")[0]) for f in failures] == [
        ("system/homebrew.mxcl.ollama", "launchctl bootout system/homebrew.mxcl.ollama"),
        ("system/homebrew.mxcl.ollama", "launchctl disable system/homebrew.mxcl.ollama")]
    assert not os.path.lexists(paths["global_agent"])  # its job was not loaded: an I/O error there stops nothing


def test_no_gui_session_disables_in_the_user_domain_and_root_gets_no_gui_target(mac):
    root, users, profiles, paths = mac
    users = [User("root", 0, 0, root + "/var/root")] + users
    no_domain = (113, "", 'Could not find domain for user gui: 502')
    answers = before_answers() + [
        (["launchctl", "bootout", "gui/502/com.ollama.updater"], no_domain),
        (["launchctl", "disable", "gui/502/com.ollama.updater"], no_domain),
        (["launchctl", "disable", "user/502/com.ollama.updater"], OK),
        (["launchctl", "bootout", "gui/501/com.ollama.updater"], OK),
        (["launchctl", "disable", "gui/501/com.ollama.updater"], OK)]
    with MacHost(Replay(answers)) as replay:
        plan = _autostart.plan_autostart(profiles, users, root=root, run=replay.run)
        plan.launchd[:] = [j for j in plan.launchd if j["label"] == "com.ollama.updater"]
        assert plan.launchd[0]["services"] == ["gui/501/com.ollama.updater", "gui/502/com.ollama.updater"]
        del replay.calls[:]
        assert _autostart.apply_plan(plan, replay.run, root=root) == []
        assert replay.unexpected == []
    assert replay.calls[-1] == ["launchctl", "disable", "user/502/com.ollama.updater"]
    assert not os.path.lexists(paths["global_agent"])
    with MacHost(Replay(answers[:4] + [(["launchctl", "disable", "user/502/com.ollama.updater"], no_domain)]
                        + answers[4:6] + answers[7:])) as replay:
        failures = _autostart.apply_plan(plan, replay.run, root=root)
    assert [f["unit"] for f in failures] == ["gui/502/com.ollama.updater"]


def test_not_macos_plans_no_launchd(mac):
    root, users, profiles, _paths = mac
    assert _autostart.plan_autostart(profiles, users, root=root).launchd == []
