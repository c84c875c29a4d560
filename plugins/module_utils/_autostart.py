# -*- coding: utf-8 -*-
# Copyright: residue.purge contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""What would start a target again: systemd units (system and per user), cron lines, XDG autostart entries and
launchd jobs. plan_autostart() finds them (read-only, the same plan for check mode and a real run);
apply_plan() removes them.

Every path is built under `root` (default "/"), so the planner runs unchanged against a copy of a host's files.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import errno
import fnmatch
import os
import plistlib
import re
import stat
import tempfile

from ansible_collections.residue.purge.plugins.module_utils import _macos, _platform
from ansible_collections.residue.purge.plugins.module_utils._paths import read_all
from ansible_collections.residue.purge.plugins.module_utils._profiles import (
    list_users, load_profiles, parse_users_option, select_targets, user_name)
from ansible_collections.residue.purge.plugins.module_utils._text import error_text

SYSTEMD_SYSTEM_DIRS = ("etc/systemd/system", "run/systemd/system", "usr/local/lib/systemd/system",
                       "usr/lib/systemd/system", "lib/systemd/system")
SYSTEMD_GLOBAL_USER_DIRS = ("etc/systemd/user", "usr/local/lib/systemd/user", "usr/lib/systemd/user",
                            "lib/systemd/user")
USER_UNIT_DIR = ".config/systemd/user"
CRON_SPOOLS = ("var/spool/cron/crontabs", "var/spool/cron", "var/cron/tabs", "usr/lib/cron/tabs", "var/at/tabs")
CRON_SYSTEM_FILES = ("etc/crontab",)
CRON_SYSTEM_DIRS = ("etc/cron.d",)
XDG_SYSTEM_DIRS = ("etc/xdg/autostart",)
USER_XDG_DIR = ".config/autostart"
LAUNCHD_SYSTEM_DIRS = (("Library/LaunchDaemons", "system"), ("Library/LaunchAgents", "gui"))
USER_LAUNCHD_DIR = "Library/LaunchAgents"
# Where apps keep the jobs they register with SMAppService (login items, agents, daemons): inside the bundle.
APP_DIRS = ("Applications",)
BUNDLE_LAUNCHD_DIRS = (("Contents/Library/LaunchAgents", "gui"), ("Contents/Library/LaunchDaemons", "system"))
_UNIT_SUFFIXES = (".service", ".socket", ".timer", ".path", ".target", ".mount", ".automount")
# a crontab line that sets a variable rather than running a job
_CRON_ENV_LINE = re.compile(r"^\s*[A-Za-z_][A-Za-z0-9_]*\s*=")


class AutostartError(ValueError):
    """Bad input (a pattern that is not valid, a glob that would match everything); nothing was changed."""


def _join(root, *parts):
    return os.path.join(root, *[p.lstrip("/") for p in parts])


# ---------------------------------------------------------------------------------------------- patterns

def compile_cron_patterns(patterns, where="cron"):
    compiled = []
    for pattern in patterns or ():
        if not isinstance(pattern, str) or not pattern.strip():
            raise AutostartError("%s: every pattern must be a non-empty string, got %r" % (where, pattern))
        try:
            compiled.append(re.compile(pattern))
        except re.error as exc:
            raise AutostartError("%s: %r is not a valid regular expression: %s" % (where, pattern, exc))
    return compiled


_GLOB_SUFFIXES = _UNIT_SUFFIXES + (".desktop", ".plist")


def check_globs(globs, where):
    """Unit, label and desktop-file globs must name something: '*' (or '*.service') would take every entry."""
    checked = []
    for glob in globs or ():
        if not isinstance(glob, str) or not glob.strip() or "/" in glob:
            raise AutostartError("%s: %r is not a unit, label or file name (glob)" % (where, glob))
        core = glob
        for suffix in _GLOB_SUFFIXES:
            if core.endswith(suffix):
                core = core[:-len(suffix)]
        if not core.strip("*?[]!.-_@ "):
            raise AutostartError("%s: %r would match every entry; name the tool" % (where, glob))
        checked.append(glob)
    return checked


def unit_matches(name, globs):
    """'open-autoglm' in a profile also means 'open-autoglm.service'."""
    for glob in globs:
        if fnmatch.fnmatchcase(name, glob):
            return True
        if not glob.endswith(_UNIT_SUFFIXES) and fnmatch.fnmatchcase(name, glob + ".service"):
            return True
    return False


def is_cron_job_line(text):
    stripped = text.strip()
    return bool(stripped) and not stripped.startswith("#") and not _CRON_ENV_LINE.match(stripped)


def filter_cron(data, regexes):
    """(new_bytes, removed_lines) with every job line matching one of regexes dropped; all other bytes kept,
    line endings and a missing final newline included. Comments and variable lines are never removed."""
    kept, removed = [], []
    for raw in data.splitlines(True):
        text = raw.decode("utf-8", "surrogateescape").rstrip("\r\n")
        if is_cron_job_line(text) and any(r.search(text) for r in regexes):
            removed.append(text)
        else:
            kept.append(raw)
    return b"".join(kept), removed


# ---------------------------------------------------------------------------------------------- file helpers

def _is_regular(path):
    try:
        return stat.S_ISREG(os.lstat(path).st_mode)
    except OSError:
        return False


def _listdir(path):
    try:
        return sorted(os.listdir(path))
    except OSError:
        return []


def read_nofollow(path):
    """Bytes of a regular file, never through a symlink (a crontab that is a link is reported, not followed)."""
    flags = os.O_RDONLY | getattr(os, "O_NOFOLLOW", 0) | getattr(os, "O_CLOEXEC", 0)
    fd = os.open(path, flags)
    try:
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode):
            raise OSError(errno.EINVAL, "not a regular file", path)
        return read_all(fd), st
    finally:
        os.close(fd)


def rewrite_atomically(path, data, expected_st):
    """Replace path with data keeping mode, owner and group: write a temp file beside it, then rename over it.
    Refuses if path changed (inode or mtime) since it was read, so a concurrent `crontab -e` is not lost."""
    current = os.lstat(path)
    if (current.st_ino, current.st_mtime_ns, current.st_size) != (
            expected_st.st_ino, expected_st.st_mtime_ns, expected_st.st_size):
        raise OSError(errno.EAGAIN, "changed while being edited; run again", path)
    directory = os.path.dirname(path)
    fd, tmp = tempfile.mkstemp(prefix=".residue-purge-", dir=directory)
    try:
        os.fchmod(fd, stat.S_IMODE(expected_st.st_mode))
        if hasattr(os, "fchown") and (expected_st.st_uid, expected_st.st_gid) != (os.geteuid(), os.getegid()):
            os.fchown(fd, expected_st.st_uid, expected_st.st_gid)
        view = memoryview(data)
        while view:
            view = view[os.write(fd, view):]
        os.fsync(fd)
    except BaseException:
        os.close(fd)
        os.unlink(tmp)
        raise
    os.close(fd)
    os.rename(tmp, path)


_FD_REMOVAL = os.unlink in os.supports_dir_fd and os.rmdir in os.supports_dir_fd and os.stat in os.supports_dir_fd


def _remove_at(dir_fd, name):
    """Remove name inside the open directory dir_fd; a directory is opened with O_NOFOLLOW and emptied through
    its own fd, so swapping it for a symlink mid-way cannot redirect the removal elsewhere."""
    st = os.stat(name, dir_fd=dir_fd, follow_symlinks=False)
    if stat.S_ISDIR(st.st_mode):
        fd = os.open(name, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW, dir_fd=dir_fd)
        try:
            for entry in os.listdir(fd):
                _remove_at(fd, entry)
        finally:
            os.close(fd)
        os.rmdir(name, dir_fd=dir_fd)
    else:
        os.unlink(name, dir_fd=dir_fd)


def remove_entry(path):
    """Remove a file or symlink (never following it), or a drop-in directory with its files."""
    if _FD_REMOVAL:
        parent = os.open(os.path.dirname(path) or ".", os.O_RDONLY | os.O_DIRECTORY)
        try:
            _remove_at(parent, os.path.basename(path))
        finally:
            os.close(parent)
        return
    st = os.lstat(path)
    if stat.S_ISDIR(st.st_mode):
        for name in os.listdir(path):
            remove_entry(os.path.join(path, name))
        os.rmdir(path)
    else:
        os.unlink(path)


# ---------------------------------------------------------------------------------------------- planning

class Plan(object):
    """Everything to change, grouped by kind. Items are plain dicts (they go into the module result)."""

    def __init__(self):
        self.systemd = []   # {scope: system|user|global-user, unit, user, paths: [...], targets: [...]}
        self.cron = []      # {path, user, removed: [lines], before: bytes, after: bytes, st}
        self.xdg = []       # {path, user, targets}
        self.launchd = []   # {label, path, domain, user, targets, bundle, targets_launchd: [gui/501/label, ...]}
        self.problems = []
        self.unreadable_spools = []  # cron spools this (unprivileged) user cannot list

    def empty(self):
        return not (self.systemd or self.cron or self.xdg or self.launchd)


def _unit_files(dirs, globs):
    """{unit name: [paths]} for unit files, drop-in dirs and *.wants/*.requires links named by globs."""
    found = {}
    for directory in dirs:
        for entry in _listdir(directory):
            path = os.path.join(directory, entry)
            if entry.endswith((".wants", ".requires", ".upholds")) and os.path.isdir(path) \
                    and not os.path.islink(path):
                for link in _listdir(path):
                    if unit_matches(link, globs):
                        found.setdefault(link, []).append(os.path.join(path, link))
                continue
            name = entry[:-2] if entry.endswith(".d") else entry
            if unit_matches(name, globs) and (os.path.islink(path) or os.path.exists(path)):
                found.setdefault(name, []).append(path)
    return found


def _add_units(plan, scope, dirs, globs_by_target, user=None, uid=None):
    merged = {}
    for target, globs in sorted(globs_by_target.items()):
        for unit, paths in _unit_files(dirs, globs).items():
            entry = merged.setdefault(unit, {"scope": scope, "unit": unit, "user": user, "uid": uid, "paths": [],
                                             "targets": []})
            entry["targets"].append(target)
            for path in paths:
                if path not in entry["paths"]:
                    entry["paths"].append(path)
    plan.systemd.extend(merged[u] for u in sorted(merged))


def parse_list_units(text):
    """Unit names and active states from `systemctl list-units --all --plain --no-legend --full`."""
    units = []
    for line in text.splitlines():
        fields = line.split()
        if len(fields) >= 4 and fields[0] not in ("\u25cf", "*"):
            units.append((fields[0], fields[2]))
        elif len(fields) >= 5:  # a leading failure marker
            units.append((fields[1], fields[3]))
    return units


def _add_loaded_units(plan, run, globs_by_target):
    """Units systemd has loaded without a unit file in the usual directories (transient units from
    systemd-run, generated ones): they are stopped, there is nothing to remove."""
    rc, out, err = run(["systemctl", "list-units", "--all", "--plain", "--no-legend", "--full", "--no-pager"])
    if rc != 0:
        plan.problems.append("systemd: systemctl list-units failed (rc %d): %s" % (rc, (err or out).strip()))
        return
    planned = set(e["unit"] for e in plan.systemd if e["scope"] == "system")
    for unit, active in parse_list_units(out):
        targets = [t for t, globs in sorted(globs_by_target.items()) if unit_matches(unit, globs)]
        if targets and unit not in planned and active != "inactive":
            plan.systemd.append({"scope": "system", "unit": unit, "user": None, "uid": None, "paths": [],
                                 "targets": targets})
            planned.add(unit)


def _targets_matching(text, regexes_by_target):
    return [t for t, regexes in sorted(regexes_by_target.items()) if any(r.search(text) for r in regexes)]


def _plan_cron_file(plan, path, user, regexes_by_target):
    try:
        data, st = read_nofollow(path)
    except OSError as exc:
        if exc.errno == errno.ELOOP or os.path.islink(path):
            plan.problems.append("cron: %s is a symlink; not followed, not changed" % path)
        elif exc.errno not in (errno.ENOENT,):
            plan.problems.append("cron: cannot read %s: %s" % (path, error_text(exc)))
        return
    all_regexes = [r for regexes in regexes_by_target.values() for r in regexes]
    after, removed = filter_cron(data, all_regexes)
    if removed:
        targets = sorted(set(t for line in removed for t in _targets_matching(line, regexes_by_target)))
        plan.cron.append({"path": path, "user": user, "removed": removed, "targets": targets,
                          "before": data, "after": after, "st": st})


def _plan_cron(plan, root, regexes_by_target, users, system):
    for relative in CRON_SYSTEM_FILES if system else ():
        path = _join(root, relative)
        if os.path.lexists(path):
            _plan_cron_file(plan, path, None, regexes_by_target)
    for relative in CRON_SYSTEM_DIRS if system else ():
        directory = _join(root, relative)
        for entry in _listdir(directory):
            if not entry.startswith(".") and not entry.endswith(("~", ".dpkg-old", ".dpkg-dist")):
                _plan_cron_file(plan, os.path.join(directory, entry), None, regexes_by_target)
    seen = set()
    for relative in CRON_SPOOLS:
        spool = _join(root, relative)
        if os.path.isdir(spool) and not os.access(spool, os.R_OK | os.X_OK):
            plan.unreadable_spools.append(spool)
            continue
        for entry in _listdir(spool):
            path = os.path.join(spool, entry)
            if entry.startswith(".") or path in seen or os.path.isdir(path) and not os.path.islink(path):
                continue
            if users is not None and entry not in users:
                continue
            seen.add(path)
            _plan_cron_file(plan, path, entry, regexes_by_target)


def _plan_own_crontab(plan, regexes_by_target, user, run):
    """Without root the spool cannot be listed: read the connecting user's own crontab with `crontab -l`
    (it is written back with `crontab -`, the only way an unprivileged user may change it)."""
    rc, out, err = run(["crontab", "-l"])
    if rc != 0:
        if "no crontab" not in (err or "").lower():
            plan.problems.append("cron: crontab -l failed (rc %d): %s" % (rc, (err or out).strip()))
        return
    data = out.encode("utf-8", "surrogateescape") if not isinstance(out, bytes) else out
    all_regexes = [r for regexes in regexes_by_target.values() for r in regexes]
    after, removed = filter_cron(data, all_regexes)
    if removed:
        targets = sorted(set(t for line in removed for t in _targets_matching(line, regexes_by_target)))
        plan.cron.append({"path": "crontab -l (%s)" % user, "user": user, "removed": removed, "targets": targets,
                          "before": data, "after": after, "st": None, "via": "crontab"})


def _plan_xdg(plan, dirs_by_user, globs_by_target):
    for directory, user in dirs_by_user:
        for entry in _listdir(directory):
            path = os.path.join(directory, entry)
            targets = [t for t, globs in sorted(globs_by_target.items())
                       if any(fnmatch.fnmatchcase(entry, g) for g in globs)]
            if targets and entry.endswith(".desktop") and (os.path.islink(path) or _is_regular(path)):
                plan.xdg.append({"path": path, "user": user, "targets": targets})


def launchd_label(path):
    """The Label of a launchd plist (XML or binary); the file name without .plist if it has none."""
    try:
        with open(path, "rb") as f:
            label = plistlib.load(f).get("Label")
        if isinstance(label, str) and label:
            return label
    except Exception:  # pylint: disable=broad-except  # any unreadable plist still has a file name
        pass
    name = os.path.basename(path)
    return name[:-len(".plist")] if name.endswith(".plist") else name


def _domain_targets(domain, label, uids):
    """launchctl service targets of a job: system/<label>, or gui/<uid>/<label> for each user it runs for."""
    if domain == "system":
        return ["system/%s" % label]
    return ["gui/%d/%s" % (uid, label) for uid in uids]


def _plan_launchd(plan, dirs, globs_by_target, every_uid):
    """dirs: (directory, domain, user, uid, bundle). A global agent (/Library/LaunchAgents, an app's agent)
    runs in the GUI domain of every user: it is booted out of each covered user's."""
    for directory, domain, user, uid, bundle in dirs:
        for entry in _listdir(directory):
            path = os.path.join(directory, entry)
            if not entry.endswith(".plist") or not (os.path.islink(path) or _is_regular(path)):
                continue
            label = launchd_label(path)
            targets = [t for t, globs in sorted(globs_by_target.items())
                       if any(fnmatch.fnmatchcase(label, g) or fnmatch.fnmatchcase(entry[:-6], g) for g in globs)]
            if targets:
                uids = [uid] if uid is not None else [u for u in every_uid if u != 0]  # root has no GUI login
                plan.launchd.append({"label": label, "path": path, "domain": domain, "user": user, "uid": uid,
                                     "targets": targets, "bundle": bundle,
                                     "services": _domain_targets(domain, label, uids)})


def _bundle_dirs(root, users):
    """(directory, domain, user, uid, bundle) of the launchd directories inside every app bundle in
    /Applications and the users' ~/Applications (symlinked bundles are not followed)."""
    app_dirs = [(_join(root, d), None, None) for d in APP_DIRS]
    app_dirs += [(os.path.join(u.home, d), u.name, u.uid) for u in users or () for d in APP_DIRS]
    found = []
    for apps, user, uid in app_dirs:
        for name in _listdir(apps):
            bundle = os.path.join(apps, name)
            if not name.endswith(".app") or os.path.islink(bundle) or not os.path.isdir(bundle):
                continue
            for relative, domain in BUNDLE_LAUNCHD_DIRS:
                directory = os.path.join(bundle, relative)
                if os.path.isdir(directory) and not os.path.islink(directory):
                    found.append((directory, domain, user, uid if domain == "gui" else None, bundle))
    return found


def _launchd_state(run, services):
    """(loaded, disabled): the service targets launchd has loaded, and those its override database disables."""
    loaded, disabled, domains = set(), set(), {}
    for service in services:
        rc, out, _err = run(["launchctl", "print", service])
        if rc == 0 and _macos.parse_launchctl_print(out):
            loaded.add(service)
        domain, _sep, label = service.rpartition("/")
        if domain not in domains:
            rc, out, _err = run(["launchctl", "print-disabled", domain])
            domains[domain] = _macos.parse_print_disabled(out) if rc == 0 else {}
        if domains[domain].get(label):
            disabled.add(service)
    return loaded, disabled


def _settle_bundle_jobs(plan, run):
    """An app's own job keeps its plist (it is part of the signed bundle and goes with the app): it is planned
    only while launchd still has it loaded or enabled somewhere, so a second run changes nothing."""
    kept = []
    for entry in plan.launchd:
        if entry["bundle"] and run is not None:
            loaded, disabled = _launchd_state(run, entry["services"])
            entry["services"] = [s for s in entry["services"] if s in loaded or s not in disabled]
            if not entry["services"]:
                continue
        kept.append(entry)
    plan.launchd[:] = kept


def _inside_home(plan, user, relative):
    """user's home/relative, unless a symlink on the way leads out of the home (then it is reported and
    skipped: a user must not steer root into removing files elsewhere)."""
    path = os.path.join(user.home, relative)
    if not os.path.lexists(path):
        return None
    home = os.path.realpath(user.home)
    if not os.path.realpath(path).startswith(home.rstrip(os.sep) + os.sep):
        plan.problems.append("%s: %s leads out of the home directory (symlink); skipped" % (user.name, path))
        return None
    return path


def plan_autostart(profiles, users, root="/", system=True, all_crontabs=False, macos=None, run=None,
                   me=None):
    """The Plan for the given profiles ({target: normalised profile}) and users ([_profiles.User]).

    system: also cover system-wide locations (system units, /etc/cron.d, /etc/crontab, /etc/xdg/autostart,
    /Library). all_crontabs: every crontab in the spool (service accounts too), not only those of `users`.
    macos: plan launchd jobs (default: the platform seam says this is macOS). run: the host's commands (the
    state of jobs inside app bundles is asked of launchctl).
    Raises AutostartError on bad patterns before anything is looked at."""
    macos = _platform.is_macos() if macos is None else macos
    units, xdg, launchd, cron = {}, {}, {}, {}
    for target, profile in sorted(profiles.items()):
        services = profile.get("services") or {}
        units[target] = check_globs(services.get("systemd"), "profiles.%s.services.systemd" % target)
        xdg[target] = check_globs(services.get("xdg"), "profiles.%s.services.xdg" % target)
        launchd[target] = check_globs(services.get("launchd"), "profiles.%s.services.launchd" % target)
        cron[target] = compile_cron_patterns(profile.get("cron"), "profiles.%s.cron" % target)
    plan = Plan()
    units = dict((t, g) for t, g in units.items() if g)
    xdg = dict((t, g) for t, g in xdg.items() if g)
    launchd = dict((t, g) for t, g in launchd.items() if g)
    cron = dict((t, r) for t, r in cron.items() if r)
    if units:
        if system:
            _add_units(plan, "system", [_join(root, d) for d in SYSTEMD_SYSTEM_DIRS], units)
            _add_units(plan, "global-user", [_join(root, d) for d in SYSTEMD_GLOBAL_USER_DIRS], units)
            if run is not None and systemd_running(root):
                _add_loaded_units(plan, run, units)
        for user in users or ():
            directory = _inside_home(plan, user, USER_UNIT_DIR)
            if directory:
                _add_units(plan, "user", [directory], units, user=user.name, uid=user.uid)
    if cron:
        _plan_cron(plan, root, cron, None if all_crontabs else set(u.name for u in users or ()), system)
        if plan.unreadable_spools:
            covered = all_crontabs or me in set(u.name for u in users or ())
            if run is not None and me and covered:
                _plan_own_crontab(plan, cron, me, run)
            plan.problems.append("cron: %s cannot be listed without root; only %s checked (use become for "
                                 "every user's crontab)" % (", ".join(plan.unreadable_spools),
                                                            "the own crontab of %s was" % me if covered and run
                                                            else "no user crontab was"))
    if xdg:
        dirs = [(_join(root, d), None) for d in XDG_SYSTEM_DIRS] if system else []
        dirs += [(d, u.name) for u in users or () for d in [_inside_home(plan, u, USER_XDG_DIR)] if d]
        _plan_xdg(plan, dirs, xdg)
    if launchd and macos:
        dirs = [(_join(root, d), domain, None, None, None) for d, domain in LAUNCHD_SYSTEM_DIRS] if system else []
        dirs += [(d, "gui", u.name, u.uid, None) for u in users or ()
                 for d in [_inside_home(plan, u, USER_LAUNCHD_DIR)] if d]
        # an app's agents run in the users' own GUI domains (covered without system); its daemons are system-wide
        dirs += [d for d in _bundle_dirs(root, users) if system or d[1] == "gui"]
        _plan_launchd(plan, dirs, launchd, [u.uid for u in users or ()])
        _settle_bundle_jobs(plan, run)
    return plan


# ---------------------------------------------------------------------------------------------- applying

def systemd_running(root="/"):
    """sd_booted(): systemd is PID 1 of this host."""
    return root == "/" and os.path.isdir("/run/systemd/system")


def user_manager(entry, runtime_root="/run/user"):
    """The command prefix that reaches entry's user's running systemd manager (lingering or logged in), or None.

    runuser + XDG_RUNTIME_DIR works without systemd-machined, which `systemctl --user -M user@` needs."""
    uid = entry.get("uid")
    if uid is None:
        return None
    runtime = os.path.join(runtime_root, str(uid))
    if not os.path.exists(os.path.join(runtime, "systemd", "private")):
        return None
    return ["runuser", "-u", entry["user"], "--", "env", "XDG_RUNTIME_DIR=" + runtime, "systemctl", "--user"]


def systemctl_commands(entry, runtime_root="/run/user"):
    """systemctl invocations for one unit, before its files go: stop and disable it in its manager."""
    unit = entry["unit"]
    if entry["scope"] == "system":
        return [["systemctl", "stop", unit], ["systemctl", "disable", unit]]
    prefix = user_manager(entry, runtime_root) if entry["scope"] == "user" else None
    if prefix:
        return [prefix + ["stop", unit], prefix + ["disable", unit]]
    return []


def launchctl_commands(entry):
    """launchctl invocations for one job, before its plist goes: bootout (stop and unload) and disable (an
    override launchd keeps, so nothing loads it again, the app's own SMAppService registration included), for
    each service target: system/<label> for daemons, gui/<uid>/<label> for agents."""
    commands = []
    for service in entry.get("services") or ():
        commands.append(["launchctl", "bootout", service])
        commands.append(["launchctl", "disable", service])
    return commands


# launchctl bootout's answers for a job that is not loaded (ESRCH 3 "No such process", 113 "Could not find
# specified service", 36 "Operation now in progress" while it is already going away): nothing to stop.
_BOOTOUT_NOT_LOADED = (3, 36, 113)


def _apply_launchd(entry, run, failures):
    for argv in launchctl_commands(entry):
        rc, out, err = run(argv)
        if rc == 0 or argv[1] == "bootout" and rc in _BOOTOUT_NOT_LOADED:
            continue
        if argv[1] == "disable" and argv[2].startswith("gui/"):
            # no GUI session of that user now: the override goes to the user's domain, which always exists
            rc, out, err = run(["launchctl", "disable", "user/" + argv[2][len("gui/"):]])
            if rc == 0:
                continue
        if argv[1] == "bootout":  # still loaded? launchctl print answers
            rc_print, out_print, _err = run(["launchctl", "print", argv[2]])
            if rc_print != 0 or not _macos.parse_launchctl_print(out_print):
                continue
        failures.append({"what": "launchd", "path": entry["path"], "unit": argv[2],
                         "error": "%s: rc %d: %s" % (" ".join(argv), rc, (err or out).strip())})
    if not entry.get("bundle"):
        _remove(entry["path"], failures, "launchd")


def apply_plan(plan, run, root="/"):
    """Carry out the plan. run(argv, data=None) -> (rc, stdout, stderr) runs a command (AnsibleModule.run_command;
    data is what the command reads on stdin).

    Returns a list of failures ({what, path or unit, error}); everything else went as planned. A unit whose
    manager cannot be asked (no systemd running, no user manager running) still loses its files."""
    failures = []
    managed = systemd_running(root)
    reload_system, reload_users = False, set()
    for entry in plan.systemd:
        if managed:
            for argv in systemctl_commands(entry):
                rc, out, err = run(argv)
                # stopping or disabling a unit that is not loaded is not an error: its files still go
                if rc != 0 and "not loaded" not in err and "does not exist" not in err and "No such" not in err:
                    failures.append({"what": "systemd", "unit": entry["unit"], "user": entry["user"],
                                     "error": "%s: rc %d: %s" % (" ".join(argv), rc, (err or out).strip())})
        for path in entry["paths"]:
            _remove(path, failures, "systemd")
        if entry["scope"] == "system":
            reload_system = True
        elif managed and entry["scope"] == "user" and user_manager(entry):
            reload_users.add(tuple(user_manager(entry)))
    if managed and reload_system:
        for argv in (["systemctl", "daemon-reload"], ["systemctl", "reset-failed"]):
            rc, out, err = run(argv)
            if rc != 0 and argv[1] == "daemon-reload":
                failures.append({"what": "systemd", "unit": None, "user": None,
                                 "error": "systemctl daemon-reload: rc %d: %s" % (rc, (err or out).strip())})
    for prefix in sorted(reload_users):
        run(list(prefix) + ["daemon-reload"])
    for entry in plan.cron:
        if entry.get("via") == "crontab":
            rc, out, err = run(["crontab", "-"], data=entry["after"])
            if rc != 0:
                failures.append({"what": "cron", "path": entry["path"], "error": "crontab -: rc %d: %s" % (
                    rc, (err or out).strip())})
            continue
        try:
            rewrite_atomically(entry["path"], entry["after"], entry["st"])
        except OSError as exc:
            failures.append({"what": "cron", "path": entry["path"], "error": error_text(exc)})
    for entry in plan.xdg:
        _remove(entry["path"], failures, "xdg")
    for entry in plan.launchd:
        _apply_launchd(entry, run, failures)  # the plist goes whatever launchctl answered
    return failures


def _remove(path, failures, what):
    try:
        remove_entry(path)
    except OSError as exc:
        if exc.errno != errno.ENOENT:
            failures.append({"what": what, "path": path, "error": error_text(exc)})


# ---------------------------------------------------------------------------------------------- reporting

def plan_result(plan):
    """The plan as module result lists (no bytes, no stat objects)."""
    return {
        "units": [dict((k, v) for k, v in e.items() if k != "uid") for e in plan.systemd],
        "cron": [{"path": e["path"], "user": e["user"], "removed_lines": list(e["removed"]),
                  "targets": e["targets"]} for e in plan.cron],
        "xdg": [dict(e) for e in plan.xdg],
        "launchd": [dict((k, v) for k, v in e.items() if k != "uid") for e in plan.launchd],  # bundle, services
    }


def plan_diff(plan):
    """Ansible diff entries: each cron file before/after, and the list of files removed."""
    diffs = []
    for entry in plan.cron:
        diffs.append({"before_header": entry["path"], "after_header": entry["path"],
                      "before": entry["before"].decode("utf-8", "replace"),
                      "after": entry["after"].decode("utf-8", "replace")})
    removed = [p for e in plan.systemd for p in e["paths"]] + [e["path"] for e in plan.xdg] + \
        [e["path"] for e in plan.launchd if not e.get("bundle")]
    if removed:
        diffs.append({"before_header": "autostart files", "after_header": "autostart files",
                      "before": "".join(p + "\n" for p in removed), "after": ""})
    return diffs


# ---------------------------------------------------------------------------------------------- the module's run

def run(params, check_mode=False, commands=None):
    """autostart with validated module params: the module's result. commands: _module.Commands (the host's
    systemctl, crontab, launchctl, dscl). ValueError for bad options, before anything changes."""
    with _platform.attached(commands):
        return _run(params, check_mode, commands)


def _run(params, check_mode, commands):
    profiles = select_targets(load_profiles(params["profiles"]), params["targets"])
    every_user = not params["homes"] and parse_users_option(params["users"]) == "all"
    users = list_users(homes=params["homes"], users=params["users"])
    plan = plan_autostart(profiles, users, system=params["system_wide"], all_crontabs=every_user,
                          run=commands.run,
                          me=user_name(os.geteuid()))
    result = dict(changed=not plan.empty(), failures=[], problems=list(plan.problems), **plan_result(plan))
    if not plan.empty():
        result["diff"] = plan_diff(plan)
    if not check_mode and not plan.empty():
        result["failures"] = apply_plan(plan, commands.run)
    result["_warnings"] = result["problems"]
    if result["failures"]:
        result["failure"] = "%d change(s) failed: %s" % (len(result["failures"]), "; ".join(
            "%s %s: %s" % (f["what"], f.get("path") or f.get("unit"), f["error"]) for f in result["failures"]))
    return result
