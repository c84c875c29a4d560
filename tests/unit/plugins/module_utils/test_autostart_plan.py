# -*- coding: utf-8 -*-
# Copyright: residue.purge contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""_autostart: planning against a real directory tree laid out like a host (root=tmp), and applying it."""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import hashlib
import os
import plistlib
import pwd
import shutil
import stat
import tempfile

import pytest

from ansible_collections.residue.purge.plugins.module_utils import _autostart, _fork, _platform
from ansible_collections.residue.purge.plugins.module_utils._profiles import User, normalise_profile

PROFILE = normalise_profile("rp_tool", {
    "processes": {"names": ["rp-tool"]},
    "services": {"systemd": ["rp-tool", "rp-tool-*.service"], "xdg": ["rp-tool*.desktop"],
                 "launchd": ["ai.rp-tool.*"]},
    "cron": [r"(^|[/ ])rp-tool( |$)"],
})
CRONTAB = (b"# m h dom mon dow command\r\n"
           b"MAILTO=ops@example.org\n"
           b"*/5 * * * * /usr/bin/backup --all\n"
           b"@reboot /opt/rp-tool/bin/rp-tool serve\n"
           b"# @reboot rp-tool (commented out: stays)\n"
           b"0 3 * * * /usr/bin/rp-tooling-report\n"
           b"30 2 * * * rp-tool --gc \xff\xfe odd bytes\n"
           b"15 1 * * * /usr/bin/keep-me")  # no final newline: must stay that way


def write(path, data=b"", mode=0o644):
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "wb") as f:
        f.write(data)
    os.chmod(path, mode)
    return path


def digest_tree(top, skip=()):
    out = {}
    for dirpath, dirnames, filenames in os.walk(top):
        for name in filenames + [d for d in dirnames if os.path.islink(os.path.join(dirpath, d))]:
            path = os.path.join(dirpath, name)
            if path in skip:
                continue
            if os.path.islink(path):
                out[path] = "link:" + os.readlink(path)
            else:
                st = os.lstat(path)
                with open(path, "rb") as f:
                    out[path] = (hashlib.sha256(f.read()).hexdigest(), stat.S_IMODE(st.st_mode), st.st_uid)
    return out


@pytest.fixture
def host(tmp_path):
    root = str(tmp_path / "root")
    home = os.path.join(root, "home", "alice")
    sysd = os.path.join(root, "etc/systemd/system")
    write(os.path.join(sysd, "rp-tool.service"), b"[Service]\nExecStart=/opt/rp-tool/bin/rp-tool\n")
    write(os.path.join(sysd, "rp-tool.service.d/override.conf"), b"[Service]\nRestart=always\n")
    os.makedirs(os.path.join(sysd, "multi-user.target.wants"))
    os.symlink("/etc/systemd/system/rp-tool.service", os.path.join(sysd, "multi-user.target.wants/rp-tool.service"))
    write(os.path.join(sysd, "other.service"), b"[Service]\nExecStart=/bin/true\n")
    os.symlink("/etc/systemd/system/other.service", os.path.join(sysd, "multi-user.target.wants/other.service"))
    write(os.path.join(root, "lib/systemd/system/rp-tool-worker.service"), b"[Service]\n")
    write(os.path.join(root, "lib/systemd/system/rp-toolbox.service"), b"[Service]\n")  # not named: stays
    user_units = os.path.join(home, ".config/systemd/user")
    write(os.path.join(user_units, "rp-tool.service"), b"[Service]\n")
    os.makedirs(os.path.join(user_units, "default.target.wants"))
    wanted = os.path.join(user_units, "default.target.wants", "rp-tool.service")
    os.symlink(os.path.join(user_units, "rp-tool.service"), wanted)
    write(os.path.join(root, "var/spool/cron/crontabs/alice"), CRONTAB, 0o600)
    write(os.path.join(root, "var/spool/cron/crontabs/bob"), b"@reboot rp-tool\n", 0o600)
    write(os.path.join(root, "etc/cron.d/rp-tool"), b"SHELL=/bin/sh\n* * * * * root rp-tool --tick\n")
    write(os.path.join(root, "etc/cron.d/unrelated"), b"* * * * * root /bin/true\n")
    write(os.path.join(root, "etc/crontab"), b"17 * * * * root cd / && run-parts --report /etc/cron.hourly\n")
    write(os.path.join(home, ".config/autostart/rp-tool.desktop"), b"[Desktop Entry]\nExec=rp-tool\n")
    write(os.path.join(home, ".config/autostart/firefox.desktop"), b"[Desktop Entry]\nExec=firefox\n")
    write(os.path.join(root, "etc/xdg/autostart/rp-tool-tray.desktop"), b"[Desktop Entry]\n")
    users = [User("alice", os.getuid(), os.getgid(), home)]
    return root, users


def test_plan_finds_every_kind_and_nothing_else(host):
    root, users = host
    plan = _autostart.plan_autostart({"rp_tool": PROFILE}, users, root=root)
    units = dict(((u["scope"], u["unit"]), sorted(os.path.relpath(p, root) for p in u["paths"]))
                 for u in plan.systemd)
    assert units == {
        ("system", "rp-tool.service"): ["etc/systemd/system/multi-user.target.wants/rp-tool.service",
                                        "etc/systemd/system/rp-tool.service", "etc/systemd/system/rp-tool.service.d"],
        ("system", "rp-tool-worker.service"): ["lib/systemd/system/rp-tool-worker.service"],
        ("user", "rp-tool.service"): ["home/alice/.config/systemd/user/default.target.wants/rp-tool.service",
                                      "home/alice/.config/systemd/user/rp-tool.service"],
    }
    # only alice is covered; bob's crontab is not (users given, not all_crontabs)
    cron = dict((os.path.relpath(c["path"], root), c["removed"]) for c in plan.cron)
    assert cron == {
        "var/spool/cron/crontabs/alice": ["@reboot /opt/rp-tool/bin/rp-tool serve",
                                          "30 2 * * * rp-tool --gc \udcff\udcfe odd bytes"],
        "etc/cron.d/rp-tool": ["* * * * * root rp-tool --tick"],
    }
    assert sorted(os.path.relpath(x["path"], root) for x in plan.xdg) == [
        "etc/xdg/autostart/rp-tool-tray.desktop", "home/alice/.config/autostart/rp-tool.desktop"]
    assert plan.launchd == []  # not macOS
    all_plan = _autostart.plan_autostart({"rp_tool": PROFILE}, users, root=root, all_crontabs=True)
    assert "var/spool/cron/crontabs/bob" in [os.path.relpath(c["path"], root) for c in all_plan.cron]


def test_apply_removes_exactly_the_plan_and_keeps_every_other_byte(host):
    root, users = host
    alice_tab = os.path.join(root, "var/spool/cron/crontabs/alice")
    changed = {alice_tab, os.path.join(root, "etc/cron.d/rp-tool")}
    before = digest_tree(root)
    plan = _autostart.plan_autostart({"rp_tool": PROFILE}, users, root=root)
    removed = set(p for u in plan.systemd for p in u["paths"]) | set(x["path"] for x in plan.xdg)
    commands = []
    failures = _autostart.apply_plan(plan, lambda argv: commands.append(argv) or (0, "", ""), root=root)
    assert failures == []
    assert commands == []  # a tree under root has no running systemd to ask
    after = digest_tree(root)
    for path in before:
        if any(path == r or path.startswith(r + os.sep) for r in removed):
            assert path not in after, path
        elif path not in changed:
            assert after[path] == before[path], path
    with open(alice_tab, "rb") as f:
        assert f.read() == (b"# m h dom mon dow command\r\n"
                            b"MAILTO=ops@example.org\n"
                            b"*/5 * * * * /usr/bin/backup --all\n"
                            b"# @reboot rp-tool (commented out: stays)\n"
                            b"0 3 * * * /usr/bin/rp-tooling-report\n"
                            b"15 1 * * * /usr/bin/keep-me")
    assert stat.S_IMODE(os.stat(alice_tab).st_mode) == 0o600
    assert not [n for n in os.listdir(os.path.dirname(alice_tab)) if n.startswith(".residue-purge-")]
    # idempotent: nothing left to do
    assert _autostart.plan_autostart({"rp_tool": PROFILE}, users, root=root).empty()


def test_crontab_owner_and_group_are_kept(host):
    root, users = host
    tab = os.path.join(root, "var/spool/cron/crontabs/alice")
    os.chown(tab, 4242, 4343)
    plan = _autostart.plan_autostart({"rp_tool": PROFILE}, users, root=root)
    assert _autostart.apply_plan(plan, lambda argv: (0, "", ""), root=root) == []
    st = os.stat(tab)
    assert (st.st_uid, st.st_gid, stat.S_IMODE(st.st_mode)) == (4242, 4343, 0o600)


def test_symlinked_crontab_is_reported_not_followed(host, tmp_path):
    root, users = host
    outside = write(str(tmp_path / "outside.txt"), b"@reboot rp-tool\n")
    os.symlink(outside, os.path.join(root, "etc/cron.d/sneaky"))
    plan = _autostart.plan_autostart({"rp_tool": PROFILE}, users, root=root)
    assert [p for p in plan.problems if "sneaky" in p and "symlink" in p]
    assert outside not in [c["path"] for c in plan.cron]
    assert _autostart.apply_plan(plan, lambda argv: (0, "", ""), root=root) == []
    with open(outside, "rb") as f:
        assert f.read() == b"@reboot rp-tool\n"


def test_crontab_edited_between_plan_and_apply_is_not_clobbered(host):
    root, users = host
    tab = os.path.join(root, "var/spool/cron/crontabs/alice")
    plan = _autostart.plan_autostart({"rp_tool": PROFILE}, users, root=root)
    with open(tab, "ab") as f:
        f.write(b"\n0 0 * * * /usr/bin/added-meanwhile\n")
    failures = _autostart.apply_plan(plan, lambda argv: (0, "", ""), root=root)
    assert [(f["what"], f["path"]) for f in failures] == [("cron", tab)]
    with open(tab, "rb") as f:
        assert f.read().endswith(b"added-meanwhile\n")


def test_symlinked_unit_dir_entries_are_unlinked_not_followed(host, tmp_path):
    root, users = host
    precious = write(str(tmp_path / "precious/rp-tool-x.service"), b"keep me\n")
    os.symlink(precious, os.path.join(root, "etc/systemd/system/rp-tool-x.service"))
    plan = _autostart.plan_autostart({"rp_tool": PROFILE}, users, root=root)
    assert _autostart.apply_plan(plan, lambda argv: (0, "", ""), root=root) == []
    assert not os.path.lexists(os.path.join(root, "etc/systemd/system/rp-tool-x.service"))
    with open(precious, "rb") as f:
        assert f.read() == b"keep me\n"


def test_diff_shows_crontab_before_after_and_removed_files(host):
    root, users = host
    diffs = _autostart.plan_diff(_autostart.plan_autostart({"rp_tool": PROFILE}, users, root=root))
    cron = [d for d in diffs if d["before_header"].endswith("crontabs/alice")][0]
    assert "rp-tool serve" in cron["before"] and "rp-tool serve" not in cron["after"]
    assert "/usr/bin/keep-me" in cron["after"]
    files = [d for d in diffs if d["before_header"] == "autostart files"][0]
    assert "rp-tool.service.d" in files["before"] and files["after"] == ""


def test_filter_cron_pure():
    regexes = _autostart.compile_cron_patterns([r"rp-tool"])
    assert _autostart.filter_cron(b"", regexes) == (b"", [])
    assert _autostart.filter_cron(b"RP=rp-tool\n#rp-tool\n\n", regexes) == (b"RP=rp-tool\n#rp-tool\n\n", [])
    assert _autostart.filter_cron(b"a\n* * * * * rp-tool\r\nb", regexes) == (b"a\nb", ["* * * * * rp-tool"])


@pytest.mark.parametrize("glob", ["*", "*.service", "?*", ".service", "", "a/b", "*.desktop", "**.plist"])
def test_globs_that_name_nothing_are_refused(glob):
    with pytest.raises(_autostart.AutostartError):
        _autostart.check_globs([glob], "services.systemd")


def test_bad_profile_patterns_are_refused_before_planning(host):
    root, users = host
    bad = dict(PROFILE, cron=["(unclosed"])
    with pytest.raises(_autostart.AutostartError, match="profiles.rp_tool.cron"):
        _autostart.plan_autostart({"rp_tool": bad}, users, root=root)
    bad = dict(PROFILE, services=dict(PROFILE["services"], systemd=["*"]))
    with pytest.raises(_autostart.AutostartError, match="services.systemd"):
        _autostart.plan_autostart({"rp_tool": bad}, users, root=root)


@pytest.mark.parametrize("name,matches", [("rp-tool.service", True), ("rp-tool-a.service", True),
                                          ("rp-tool.socket", False), ("rp-toolbox.service", False)])
def test_unit_matches(name, matches):
    assert _autostart.unit_matches(name, ["rp-tool", "rp-tool-*.service"]) is matches


def test_systemctl_commands_by_scope(tmp_path):
    assert _autostart.systemctl_commands({"scope": "system", "unit": "a.service", "user": None, "uid": None}) == [
        ["systemctl", "stop", "a.service"], ["systemctl", "disable", "a.service"]]
    entry = {"scope": "user", "unit": "a.service", "user": "alice", "uid": 4242}
    runtime = tmp_path / "run-user"
    assert _autostart.systemctl_commands(entry, str(runtime)) == []  # no user manager running: files only
    write(str(runtime / "4242" / "systemd" / "private"))
    assert _autostart.systemctl_commands(entry, str(runtime)) == [
        ["runuser", "-u", "alice", "--", "env", "XDG_RUNTIME_DIR=%s/4242" % runtime, "systemctl", "--user", verb,
         "a.service"] for verb in ("stop", "disable")]
    assert _autostart.systemctl_commands(dict(entry, scope="global-user"), str(runtime)) == []


def test_launchd_plan_and_commands(host):
    """launchd runs only on macOS; its planning (labels from real plists) and commands are checked here."""
    root, users = host
    home = users[0].home
    agents = os.path.join(home, "Library/LaunchAgents")
    os.makedirs(agents)
    with open(os.path.join(agents, "odd-name.plist"), "wb") as f:
        plistlib.dump({"Label": "ai.rp-tool.agent", "ProgramArguments": ["rp-tool"]}, f)
    with open(os.path.join(agents, "com.apple.keep.plist"), "wb") as f:
        plistlib.dump({"Label": "com.apple.keep"}, f, fmt=plistlib.FMT_BINARY)
    daemons = os.path.join(root, "Library/LaunchDaemons")
    write(os.path.join(daemons, "ai.rp-tool.daemon.plist"), b"not a plist at all")
    plan = _autostart.plan_autostart({"rp_tool": PROFILE}, users, root=root, macos=True)
    jobs = sorted((j["label"], j["domain"], j["user"]) for j in plan.launchd)
    assert jobs == [("ai.rp-tool.agent", "gui", "alice"), ("ai.rp-tool.daemon", "system", None)]
    by_label = dict((j["label"], j) for j in plan.launchd)
    assert _autostart.launchctl_commands(by_label["ai.rp-tool.daemon"]) == [
        ["launchctl", "bootout", "system/ai.rp-tool.daemon"], ["launchctl", "disable", "system/ai.rp-tool.daemon"]]
    agent = "gui/%d/ai.rp-tool.agent" % os.getuid()
    assert _autostart.launchctl_commands(by_label["ai.rp-tool.agent"]) == [
        ["launchctl", "bootout", agent], ["launchctl", "disable", agent]]
    commands = []
    assert _autostart.apply_plan(plan, lambda argv: commands.append(argv) or (0, "", ""), root=root) == []
    assert sorted(c[2] for c in commands) == [agent, agent, "system/ai.rp-tool.daemon", "system/ai.rp-tool.daemon"]
    assert os.listdir(agents) == ["com.apple.keep.plist"] and os.listdir(daemons) == []


def test_system_wide_false_touches_only_users(host):
    root, users = host
    plan = _autostart.plan_autostart({"rp_tool": PROFILE}, users, root=root, system=False)
    assert {u["scope"] for u in plan.systemd} == {"user"}
    assert [os.path.relpath(c["path"], root) for c in plan.cron] == ["var/spool/cron/crontabs/alice"]
    assert [x["user"] for x in plan.xdg] == ["alice"]


def test_drop_in_dir_swapped_for_a_symlink_after_planning_is_unlinked_not_emptied(host, tmp_path):
    root, users = host
    precious = tmp_path / "precious"
    precious.mkdir()
    write(str(precious / "override.conf"), b"keep\n")
    plan = _autostart.plan_autostart({"rp_tool": PROFILE}, users, root=root)
    drop_in = os.path.join(root, "etc/systemd/system/rp-tool.service.d")
    assert drop_in in [p for u in plan.systemd for p in u["paths"]]
    os.rename(drop_in, drop_in + ".moved")
    os.symlink(str(precious), drop_in)  # the attacker's swap between plan and apply
    assert _autostart.apply_plan(plan, lambda argv: (0, "", ""), root=root) == []
    assert not os.path.lexists(drop_in)
    assert (precious / "override.conf").read_bytes() == b"keep\n"


def test_user_config_dir_symlinked_out_of_the_home_is_skipped(host, tmp_path):
    root, users = host
    home = users[0].home
    elsewhere = tmp_path / "elsewhere"
    write(str(elsewhere / "rp-tool.desktop"), b"[Desktop Entry]\n")
    autostart = os.path.join(home, ".config/autostart")
    os.rename(autostart, autostart + ".real")
    os.symlink(str(elsewhere), autostart)
    plan = _autostart.plan_autostart({"rp_tool": PROFILE}, users, root=root)
    assert str(elsewhere / "rp-tool.desktop") not in [x["path"] for x in plan.xdg]
    assert [p for p in plan.problems if "leads out of the home" in p]


def test_own_crontab_via_crontab_command(host):
    """What an unprivileged user gets (the spool cannot be listed): `crontab -l` in, `crontab -` out.
    The real unprivileged run is in tests/integration/test_autostart.py."""
    root, users = host
    calls = []

    def run(argv, data=None):
        calls.append((argv, data))
        if argv == ["crontab", "-l"]:
            return 0, CRONTAB.decode("utf-8", "surrogateescape"), ""
        return 0, "", ""

    plan = _autostart.Plan()
    regexes = {"rp_tool": _autostart.compile_cron_patterns(PROFILE["cron"])}
    _autostart._plan_own_crontab(plan, regexes, "alice", run)  # pylint: disable=protected-access
    assert [(c["path"], c["removed"]) for c in plan.cron] == [
        ("crontab -l (alice)", ["@reboot /opt/rp-tool/bin/rp-tool serve",
                                "30 2 * * * rp-tool --gc \udcff\udcfe odd bytes"])]
    assert _autostart.apply_plan(plan, run, root=root) == []
    assert calls[-1][0] == ["crontab", "-"] and calls[-1][1].endswith(b"/usr/bin/keep-me")
    assert b"rp-tool serve" not in calls[-1][1] and b"MAILTO=ops@example.org\n" in calls[-1][1]
    assert b"\xff\xfe odd bytes" not in calls[-1][1]  # that line matched too, so it went

    empty = _autostart.Plan()
    _autostart._plan_own_crontab(empty, regexes, "alice",  # pylint: disable=protected-access
                                 lambda argv, data=None: (1, "", "no crontab for alice\n"))
    assert empty.cron == [] and empty.problems == []


def test_parse_list_units():
    text = ("rp-tool-run.service loaded active running /usr/local/bin/rp-tool 600\n"
            "\u25cf rp-tool-bad.service loaded failed failed rp-tool\n"
            "other.service loaded inactive dead Other\n")
    assert _autostart.parse_list_units(text) == [("rp-tool-run.service", "active"), ("rp-tool-bad.service", "failed"),
                                                 ("other.service", "inactive")]


class _HostCommands(object):
    """The host's own commands (what _module.Commands runs through AnsibleModule)."""

    @staticmethod
    def run(argv, data=None):
        return _platform._subprocess_run(argv, data)  # pylint: disable=protected-access


def test_a_run_under_a_uid_without_a_passwd_entry_names_itself_by_its_number(tmp_path):
    """autostart as a uid the passwd database does not know (a container's arbitrary uid): it plans, and names
    the own crontab it checks by the number (it failed with KeyError)."""
    if os.geteuid() != 0:
        pytest.fail("this test becomes a uid without a passwd entry: it needs root (the lab runs as root)")
    uid = next(u for u in range(54321, 64000) if not _has_passwd_entry(u))
    sandbox = tempfile.mkdtemp(prefix="rp-nopasswd-", dir="/tmp")
    try:
        os.chmod(sandbox, 0o755)
        home = os.path.join(sandbox, "home")
        os.mkdir(home)
        os.chown(home, uid, uid)
        params = {"targets": ["rp_tool"], "profiles": {"rp_tool": {"cron": [r"(^|[/ ])rp-tool( |$)"]}},
                  "homes": [home], "users": "all", "system_wide": False}

        def as_that_uid():
            os.setgroups([])
            os.setgid(uid)
            os.setuid(uid)
            try:
                return _autostart.run(params, check_mode=True, commands=_HostCommands())["problems"]
            except Exception as exc:  # pylint: disable=broad-except
                return "%s: %s" % (type(exc).__name__, exc)

        problems = _fork.fork_result(_fork.fork_call(as_that_uid))
    finally:
        shutil.rmtree(sandbox)
    assert isinstance(problems, list), problems
    assert any("only the own crontab of %d was checked" % uid in p for p in problems), problems


def _has_passwd_entry(uid):
    try:
        pwd.getpwuid(uid)
    except KeyError:
        return False
    return True
