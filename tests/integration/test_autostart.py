# -*- coding: utf-8 -*-
# Copyright: residue.purge contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""residue.purge.autostart through real ansible-playbook on this machine's real cron, systemd and XDG paths.

Everything created here carries a random tag (a throwaway user, /etc/cron.d/<tag>, /etc/systemd/system/<tag>...),
the profile only names the tag, and everything is removed at the end. This machine has no systemd as PID 1, so
units lose their files without systemctl; test_autostart_systemd.py covers a real systemd.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import hashlib
import os
import pwd
import shutil
import stat
import subprocess
import sys
import time
import uuid

import pytest

from conftest import run_tasks

CRON_D = "/etc/cron.d"
SYSTEM_UNITS = "/etc/systemd/system"


def digest(paths):
    out = {}
    for top in paths:
        for dirpath, _dirs, files in os.walk(top):
            for name in files:
                path = os.path.join(dirpath, name)
                st = os.lstat(path)
                if stat.S_ISREG(st.st_mode):
                    with open(path, "rb") as f:
                        out[path] = (hashlib.sha256(f.read()).hexdigest(), st.st_mode, st.st_uid, st.st_gid)
                else:
                    out[path] = ("link", os.readlink(path)) if stat.S_ISLNK(st.st_mode) else ("other",)
    return out


def write(path, data, mode=0o644):
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "wb") as f:
        f.write(data)
    os.chmod(path, mode)


@pytest.fixture
def lab():
    """A throwaway user with a crontab, user units and autostart entries, and system files, all tagged."""
    tag = "rp-test-" + uuid.uuid4().hex[:8]
    user = "rpa" + uuid.uuid4().hex[:8]
    subprocess.run(["useradd", "--create-home", "--shell", "/bin/sh", user], check=True)
    home = pwd.getpwnam(user).pw_dir
    crontab = ("# %s's jobs\nMAILTO=nobody\n*/10 * * * * /usr/bin/keep --me\n@reboot /opt/%s/bin/%s serve\n"
               "# @reboot %s   (comment: stays)\n5 4 * * * /usr/bin/%sish-report\n" % (user, tag, tag, tag, tag))
    subprocess.run(["crontab", "-u", user, "-"], input=crontab.encode(), check=True)
    cron_d = os.path.join(CRON_D, tag)
    write(cron_d, ("SHELL=/bin/sh\n* * * * * root /usr/bin/%s --tick\n0 * * * * root /bin/true\n" % tag).encode())
    os.makedirs(SYSTEM_UNITS, exist_ok=True)
    unit = os.path.join(SYSTEM_UNITS, tag + ".service")
    write(unit, ("[Service]\nExecStart=/usr/bin/%s\nRestart=always\n" % tag).encode())
    write(unit + ".d/10-env.conf", b"[Service]\nEnvironment=A=1\n")
    wants = os.path.join(SYSTEM_UNITS, "multi-user.target.wants")
    os.makedirs(wants, exist_ok=True)
    os.symlink(unit, os.path.join(wants, tag + ".service"))
    user_units = os.path.join(home, ".config/systemd/user")
    write(os.path.join(user_units, tag + ".service"), b"[Service]\nExecStart=/bin/true\n")
    os.makedirs(os.path.join(user_units, "default.target.wants"))
    os.symlink(os.path.join(user_units, tag + ".service"), os.path.join(user_units, "default.target.wants",
                                                                        tag + ".service"))
    write(os.path.join(home, ".config/autostart", tag + ".desktop"), b"[Desktop Entry]\nExec=x\n")
    write(os.path.join(home, ".config/autostart/keep.desktop"), b"[Desktop Entry]\nExec=keep\n")
    for dirpath, dirs, files in os.walk(os.path.join(home, ".config")):
        for name in dirs + files:
            os.lchown(os.path.join(dirpath, name), pwd.getpwnam(user).pw_uid, pwd.getpwnam(user).pw_gid)
    profile = {"services": {"systemd": [tag], "xdg": [tag + "*.desktop"]}, "cron": ["/%s( |$)" % tag]}
    yield dict(tag=tag, user=user, home=home, crontab=crontab, cron_d=cron_d, unit=unit, wants=wants,
               user_units=user_units, args={"targets": ["rp_lab"], "profiles": {"rp_lab": profile},
                                            "users": [user]})
    subprocess.run(["crontab", "-u", user, "-r"], capture_output=True, check=False)
    subprocess.run(["userdel", "--remove", user], capture_output=True, check=False)
    for path in (cron_d, unit, os.path.join(wants, tag + ".service")):
        if os.path.lexists(path):
            os.unlink(path)
    shutil.rmtree(unit + ".d", ignore_errors=True)


def spool_path(user):
    for spool in ("/var/spool/cron/crontabs", "/var/spool/cron"):
        if os.path.exists(os.path.join(spool, user)):
            return os.path.join(spool, user)
    raise AssertionError("no crontab for %s" % user)


def test_check_mode_then_real_run_then_idempotent(module_runner, lab):
    watched = [CRON_D, SYSTEM_UNITS, os.path.dirname(spool_path(lab["user"])), "/etc/crontab", lab["home"]]
    before = digest(watched)

    r = module_runner("autostart", lab["args"], check=True, diff=True)
    assert not r.get("failed"), r.get("msg")
    assert r["changed"] is True
    assert digest(watched) == before  # check mode changed nothing
    assert "@reboot /opt/%s/bin/%s serve" % (lab["tag"], lab["tag"]) in r["_stdout"]  # the crontab diff
    assert lab["unit"] + ".d" in r["_stdout"]

    # the real run and the second one in one ansible-playbook (the second changes nothing: asserted below)
    r, again = run_tasks([{"module": "autostart", "args": lab["args"]}] * 2, diff=True)
    assert not r.get("failed"), r.get("msg")
    assert r["changed"] is True and r["failures"] == []
    units = dict(((u["scope"], u["unit"]), sorted(u["paths"])) for u in r["units"])
    assert units == {
        ("system", lab["tag"] + ".service"): sorted([lab["unit"], lab["unit"] + ".d",
                                                     os.path.join(lab["wants"], lab["tag"] + ".service")]),
        ("user", lab["tag"] + ".service"): sorted([os.path.join(lab["user_units"], lab["tag"] + ".service"),
                                                   os.path.join(lab["user_units"], "default.target.wants",
                                                                lab["tag"] + ".service")]),
    }
    cron = dict((c["path"], c["removed_lines"]) for c in r["cron"])
    assert cron == {spool_path(lab["user"]): ["@reboot /opt/%s/bin/%s serve" % (lab["tag"], lab["tag"])],
                    lab["cron_d"]: ["* * * * * root /usr/bin/%s --tick" % lab["tag"]]}
    assert [x["path"] for x in r["xdg"]] == [os.path.join(lab["home"], ".config/autostart", lab["tag"] + ".desktop")]

    after = digest(watched)
    removed = [lab["unit"], lab["unit"] + ".d/10-env.conf",
               os.path.join(lab["wants"], lab["tag"] + ".service"), r["xdg"][0]["path"]] + \
        [p for u in r["units"] if u["scope"] == "user" for p in u["paths"]]
    changed = [spool_path(lab["user"]), lab["cron_d"]]
    for path in before:
        if path in removed:
            assert path not in after, path
        elif path in changed:
            assert after[path][1:] == before[path][1:], path  # mode, owner, group kept
        else:
            assert after[path] == before[path], path  # every other file byte for byte
    listed = subprocess.run(["crontab", "-u", lab["user"], "-l"], capture_output=True, check=True).stdout.decode()
    assert listed == lab["crontab"].replace("@reboot /opt/%s/bin/%s serve\n" % (lab["tag"], lab["tag"]), "")
    with open(lab["cron_d"]) as f:
        assert f.read() == "SHELL=/bin/sh\n0 * * * * root /bin/true\n"
    assert not again.get("failed"), again.get("msg")
    assert again["changed"] is False
    assert again["units"] == [] and again["cron"] == [] and again["xdg"] == []


def test_unprivileged_user_edits_own_crontab_with_the_crontab_command(module_runner, lab):
    """As the user (no root): the spool cannot be listed, so the module goes through crontab -l / crontab -."""
    if os.access(os.path.dirname(spool_path(lab["user"])), os.R_OK) and os.stat(
            os.path.dirname(spool_path(lab["user"]))).st_mode & 0o005:
        pytest.fail("the cron spool is world-readable here; this test needs the Debian default (1730)")
    system_before = digest([CRON_D, SYSTEM_UNITS])
    args = dict(lab["args"], system_wide=False)
    r = module_runner("autostart", args, become_user=lab["user"], interpreter="/usr/bin/python3")
    assert not r.get("failed"), r.get("msg")
    assert [(c["path"], c["removed_lines"]) for c in r["cron"]] == [
        ("crontab -l (%s)" % lab["user"], ["@reboot /opt/%s/bin/%s serve" % (lab["tag"], lab["tag"])])]
    assert [p for p in r["problems"] if "cannot be listed without root" in p]
    listed = subprocess.run(["crontab", "-u", lab["user"], "-l"], capture_output=True, check=True).stdout.decode()
    assert listed == lab["crontab"].replace("@reboot /opt/%s/bin/%s serve\n" % (lab["tag"], lab["tag"]), "")
    assert {u["scope"] for u in r["units"]} == {"user"} and len(r["xdg"]) == 1
    assert digest([CRON_D, SYSTEM_UNITS]) == system_before


@pytest.mark.parametrize("services,message", [
    ({"systemd": ["*"]}, "would match every entry"),
    ({"xdg": ["*.desktop"]}, "would match every entry"),
])
def test_globs_that_match_everything_are_refused(module_runner, lab, services, message):
    before = digest([CRON_D, SYSTEM_UNITS, lab["home"]])
    args = dict(lab["args"], profiles={"rp_lab": {"services": services}})
    r = module_runner("autostart", args)
    assert r.get("failed") is True and message in r["msg"]
    assert "Traceback (most recent call last)" not in r["_stdout"]
    assert digest([CRON_D, SYSTEM_UNITS, lab["home"]]) == before


def test_bad_cron_regex_is_refused(module_runner, lab):
    args = dict(lab["args"], profiles={"rp_lab": {"cron": ["(unclosed"]}})
    r = module_runner("autostart", args)
    assert r.get("failed") is True and "cron" in r["msg"] and "(unclosed" in r["msg"]


# ---------------------------------------------------------------------------------------------- real systemd

@pytest.fixture(scope="module")
def systemd_host():
    sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "systemd"))
    import nspawn_host  # pylint: disable=import-error,import-outside-toplevel
    collections = os.path.join(os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))),
                               ".build", "collections")
    with nspawn_host.SystemdHost(collections) as host:
        yield host


UNIT = """[Unit]
Description=residue.purge test daemon that systemd keeps restarting
StartLimitIntervalSec=0

[Service]
ExecStart=/usr/local/bin/{tag} 600
Restart=always
RestartSec=200ms

[Install]
WantedBy=multi-user.target
"""


def running(host, tag):
    """PIDs of the tagged daemon inside the container (its own PID namespace: nothing else can match)."""
    out = host.ssh("ps -C %s -o pid= || true" % tag[:15]).stdout
    return [int(p) for p in out.split()]


def test_restart_always_unit_beats_reap_alone_but_not_autostart_then_reap(systemd_host):
    host = systemd_host
    tag = "rp-test-" + uuid.uuid4().hex[:6]
    setup = ("ln -s /bin/sleep /usr/local/bin/{tag} && cat > /etc/systemd/system/{tag}.service <<'UNIT'\n{unit}UNIT\n"
             "systemctl daemon-reload && systemctl enable --now {tag}.service")
    host.ssh(setup.format(tag=tag, unit=UNIT.format(tag=tag)))
    # a schedule that never fires (31 February): a real cron job starting the target mid-test would race the counts
    host.ssh("printf '0 0 31 2 * root /usr/local/bin/%s 1\\n0 * * * * root /bin/true\\n' > /etc/cron.d/%s" % (tag, tag))
    assert host.ssh("systemctl is-active %s.service" % tag).stdout.strip() == "active"
    first = running(host, tag)
    assert len(first) == 1
    profile = {"processes": {"names": [tag]}, "services": {"systemd": [tag, tag + "-*"]}, "cron": ["/%s( |$)" % tag]}
    args = {"targets": ["rp_sd"], "profiles": {"rp_sd": profile}}

    # reap alone: systemd (PID 1, never signalled) restarts it every time; the task fails and says so
    r = host.run_module("reap", dict(args, grace=2))
    assert r.get("failed") is True
    assert len(r["terminated"]) == 3 and {t["outcome"] for t in r["terminated"]} == {"exited"}
    assert [s["outcome"] for s in r["survivors"]] == ["respawned"]
    assert "started again by systemd (pid 1)" in r["msg"]
    time.sleep(1)
    back = running(host, tag)
    assert len(back) == 1 and back[0] not in first + [t["pid"] for t in r["terminated"]]
    assert host.ssh("systemctl is-active %s.service" % tag, check=False).stdout.strip() == "active"

    # autostart (check mode first: nothing changes), then autostart and reap
    r = host.run_module("autostart", args, check=True, diff=True)
    assert r["changed"] is True and not r.get("failed")
    assert host.ssh("test -f /etc/systemd/system/%s.service" % tag, check=False).returncode == 0
    assert running(host, tag) == back

    # a transient unit (systemd-run) has no file to remove: it is found among the loaded units and stopped
    host.ssh("systemd-run --unit=%s-transient /usr/local/bin/%s 900" % (tag, tag))
    r = host.run_module("autostart", args, diff=True)
    assert not r.get("failed"), r.get("msg")
    assert sorted((u["scope"], u["unit"], sorted(u["paths"])) for u in r["units"]) == [
        ("system", tag + "-transient.service", []),
        ("system", tag + ".service", sorted(["/etc/systemd/system/%s.service" % tag,
                                             "/etc/systemd/system/multi-user.target.wants/%s.service" % tag]))]
    assert host.ssh("systemctl is-active %s-transient.service" % tag, check=False).stdout.strip() != "active"
    assert [(c["path"], c["removed_lines"]) for c in r["cron"]] == [
        ("/etc/cron.d/" + tag, ["0 0 31 2 * root /usr/local/bin/%s 1" % tag])]
    r = host.run_module("reap", dict(args, grace=2))
    assert not r.get("failed"), r.get("msg")
    time.sleep(2)
    assert running(host, tag) == []
    assert host.ssh("systemctl is-active %s.service" % tag, check=False).stdout.strip() in ("inactive", "unknown")
    assert host.ssh("systemctl list-unit-files --no-legend %s.service" % tag, check=False).stdout.strip() == ""
    assert host.ssh("cat /etc/cron.d/" + tag).stdout == "0 * * * * root /bin/true\n"
    again = host.run_module("autostart", args)
    assert again["changed"] is False and not again.get("failed")


def test_lingering_users_unit_is_stopped_by_its_own_manager(systemd_host):
    host = systemd_host
    tag = "rp-test-" + uuid.uuid4().hex[:6]
    user = "rpl" + uuid.uuid4().hex[:6]
    # a uid no test on the machine gets (the container's processes are visible from the machine's PID namespace,
    # where a unit test ends every process of its throwaway user's uid; see tools/lab/files/seed_host.py)
    host.ssh("useradd --create-home --uid 47210 --shell /bin/sh %s && loginctl enable-linger %s && ln -s /bin/sleep "
             "/usr/local/bin/%s" % (user, user, tag))
    uid = int(host.ssh("id -u " + user).stdout)
    manager = "runuser -u %s -- env XDG_RUNTIME_DIR=/run/user/%d systemctl --user " % (user, uid)
    deadline = time.monotonic() + 30
    while host.ssh(manager + "is-system-running", check=False).stdout.strip() not in ("running", "degraded"):
        assert time.monotonic() < deadline, "the user manager of %s did not start" % user
        time.sleep(0.5)
    unit = "[Service]\nExecStart=/usr/local/bin/%s 600\nRestart=always\nRestartSec=200ms\n\n" \
           "[Install]\nWantedBy=default.target\n" % tag
    host.ssh("su -s /bin/sh -c 'mkdir -p ~/.config/systemd/user && cat > ~/.config/systemd/user/%s.service' %s "
             "<<'UNIT'\n%sUNIT\n%sdaemon-reload && %senable --now %s.service" % (tag, user, unit, manager, manager,
                                                                                 tag))
    assert host.ssh(manager + "is-active %s.service" % tag).stdout.strip() == "active"
    assert len(running(host, tag)) == 1
    args = {"targets": ["rp_sd"], "profiles": {"rp_sd": {"services": {"systemd": [tag]}}}, "users": [user],
            "system_wide": False}
    r = host.run_module("autostart", args)
    assert not r.get("failed"), r.get("msg")
    home = "/home/" + user
    assert [(u["scope"], u["user"], sorted(u["paths"])) for u in r["units"]] == [
        ("user", user, sorted(["%s/.config/systemd/user/%s.service" % (home, tag),
                               "%s/.config/systemd/user/default.target.wants/%s.service" % (home, tag)]))]
    time.sleep(1)
    assert running(host, tag) == []  # stopped by the user's manager, not restarted
    assert host.ssh(manager + "is-active %s.service" % tag, check=False).stdout.strip() in ("inactive", "unknown")
