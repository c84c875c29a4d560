# -*- coding: utf-8 -*-
# Copyright: residue.purge contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The playbooks' variables (residue_*), checked with the modules' own rules, each message naming the variable.

check() is pure (no host, no filesystem): types, profile names, profiles, durations, sizes, path spellings. It runs
once on the controller before any host is touched (action plugin check_vars). check_host() adds what only the host
can tell: the homes exist, and the backup directory is a place where root may write archives of users' files
(backup_dir(), which the remove module applies to its own option too). Every error is an InputError whose text
starts with the variable's name and fits on a line. run() is the check_vars module's topic (check_host() and
a probe of the host: psutil, free space where the backup goes).
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import os
import re
import stat
import sys

from ansible_collections.residue.purge.plugins.module_utils import _paths, _profiles
from ansible_collections.residue.purge.plugins.module_utils._mounts import free_bytes
from ansible_collections.residue.purge.plugins.module_utils._units import parse_duration, parse_size

# Every variable a playbook reads from its user (-e, inventory, AWX survey). tests/integration/test_variables.py
# checks that each is in a role's meta/argument_specs.yml and in the README's table.
VARIABLES = (
    "residue_targets", "residue_profiles", "residue_homes", "residue_backup_dir", "residue_report_dir",
    "residue_install_deps", "residue_hosts", "residue_prune_older_than", "residue_prune_max_size",
    "residue_prune_budget_scope", "residue_restore_archive",
)
_TRUE = ("true", "yes", "on", "1", "y", "t")
_FALSE = ("false", "no", "off", "0", "n", "f")


class InputError(ValueError):
    """A variable that cannot be used; the message starts with its name."""


def _short(value, limit=80):
    text = repr(value)
    return text if len(text) <= limit else text[:limit - 3] + "..."


def _names(value, name):
    """A list of non-empty strings; a string is one entry or a comma-separated list (as Ansible's type list)."""
    if isinstance(value, str):
        value = [v.strip() for v in value.split(",") if v.strip()]
    if not isinstance(value, (list, tuple)) or not all(isinstance(v, str) and v.strip() for v in value):
        raise InputError("%s: expected a list of names, got %s" % (name, _short(value)))
    return list(value)


def targets(value, profiles, required, name="residue_targets"):
    """The profile names to act on; unknown names fail with the known ones; unset or empty fails when required."""
    example = "for example -e '{\"%s\": [\"open_autoglm\"]}'" % name
    if value is None:
        if required:
            raise InputError("%s is not set: name the profiles to purge, %s" % (name, example))
        return []
    names = _names(value, name)
    if not names and required:
        raise InputError("%s is empty: name the profiles to purge (empty would mean every profile), %s"
                         % (name, example))
    unknown = [t for t in names if t not in profiles]
    if unknown:
        raise InputError("%s: unknown profile(s) %s; known: %s"
                         % (name, ", ".join(unknown), ", ".join(sorted(profiles))))
    return names


def profiles(value, name="residue_profiles"):
    """The built-in profiles merged with value, validated by _profiles.load_profiles."""
    if value is None:
        value = {}
    if not isinstance(value, dict):
        raise InputError("%s: expected a mapping of profile name to profile, got %s" % (name, _short(value)))
    try:
        return _profiles.load_profiles(value)
    except _profiles.ProfileError as exc:
        raise InputError("%s: %s" % (name, exc))


def duration(value, name):
    """Seconds, by _units.parse_duration (the rule of every older_than option)."""
    try:
        return parse_duration(value, option=name)
    except ValueError as exc:
        raise InputError(str(exc))


def size(value, name):
    """Bytes, by _units.parse_size (the rule of every max_size option)."""
    try:
        return parse_size(value, option=name)
    except ValueError as exc:
        raise InputError(str(exc))


def boolean(value, name):
    if isinstance(value, bool):
        return value
    if isinstance(value, (str, int)) and str(value).strip().lower() in _TRUE + _FALSE:
        return str(value).strip().lower() in _TRUE
    raise InputError("%s: expected true or false, got %s" % (name, _short(value)))


def absolute(value, name):
    """An absolute path without '..' or NUL, '//' collapsed (_paths.lexical); '/' refused. A Windows path
    (C:\\x, \\\\server\\share) is for Windows hosts: only '..' and NUL are refused here, the host checks the rest."""
    if isinstance(value, str) and re.match(r"^([A-Za-z]:[\\/]|\\\\)", value):
        if "\0" in value or ".." in re.split(r"[/\\]", value):
            raise InputError("%s: %r must not contain '..' or NUL" % (name, value))
        return value
    try:
        path = _paths.lexical(value, name)
    except _paths.PathRefused as exc:
        raise InputError(str(exc))
    if path == "/":
        raise InputError("%s: '/' is refused; name a directory of its own" % name)
    return path


def homes(value, name="residue_homes"):
    """Explicit homes: absolute paths, as _profiles.list_users requires them."""
    if value is None:
        return []
    if isinstance(value, str):
        value = [value]
    if not isinstance(value, (list, tuple)):
        raise InputError("%s: expected a list of absolute paths, got %s" % (name, _short(value)))
    return [absolute(home, name) for home in value]


def _optional(value):
    return value is None or (isinstance(value, str) and not value.strip())


def check(values, require_targets=False):
    """Check the variables in values ({name: value} of those that are set; None counts as unset); pure.

    Returns the normalised values (targets, profiles, homes, backup_dir, older_than and max_size in seconds and
    bytes, ...). Raises InputError naming the first variable that is wrong."""
    unknown = sorted(set(values) - set(VARIABLES))
    if unknown:
        raise InputError("not a residue.purge variable: %s" % ", ".join(unknown))
    out = {"profiles": profiles(values.get("residue_profiles"))}
    out["targets"] = targets(values.get("residue_targets"), out["profiles"], require_targets)
    out["homes"] = homes(values.get("residue_homes"))
    for key, var in (("backup_dir", "residue_backup_dir"), ("restore_archive", "residue_restore_archive")):
        out[key] = None if _optional(values.get(var)) else absolute(values[var], var)
    report_dir = values.get("residue_report_dir")
    if not _optional(report_dir) and (not isinstance(report_dir, str) or "\0" in report_dir):
        raise InputError("residue_report_dir: expected a directory path, got %s" % _short(report_dir))
    out["report_dir"] = None if _optional(report_dir) else report_dir
    out["install_deps"] = boolean(values.get("residue_install_deps", False), "residue_install_deps")
    hosts = values.get("residue_hosts")
    if hosts is not None and (not isinstance(hosts, str) or not hosts.strip()):
        raise InputError("residue_hosts: expected an inventory pattern such as all or 'gpu:!gpu-07', got %s"
                         % _short(hosts))
    older = values.get("residue_prune_older_than")
    out["older_than"] = None if _optional(older) else duration(older, "residue_prune_older_than")
    budget = values.get("residue_prune_max_size")
    out["max_size"] = None if _optional(budget) else size(budget, "residue_prune_max_size")
    scope = values.get("residue_prune_budget_scope")
    if not _optional(scope) and scope not in ("host", "cache"):
        raise InputError("residue_prune_budget_scope: expected host (one budget for all the host's model stores) "
                         "or cache (one per Hugging Face cache), got %s" % _short(scope))
    out["budget_scope"] = "host" if _optional(scope) else scope
    return out


def report_dir(path, name="residue_report_dir"):
    """On the controller: the report directory is a directory, or can be created, by whoever runs the playbook."""
    path = os.path.abspath(path)
    if os.path.exists(path) and not os.path.isdir(path):
        raise InputError("%s: %s exists and is not a directory" % (name, path))
    probe = path
    while not os.path.isdir(probe):
        probe = os.path.dirname(probe)
    if not os.access(probe, os.W_OK | os.X_OK):
        raise InputError("%s: %s is not writable for you, so the report could not be written" % (name, probe))
    return path


# ---------------------------------------------------------------------------------------------- on the host

def backup_dir(path, name, protected=(), residues=()):
    """The backup directory, checked where the archives go (on the host): absolute, no '..'; no component a
    symlink unless root's own (_paths.canonical); every existing component a directory owned by root or by the
    user running this, and not writable by others (unless sticky, as /tmp); not a protected directory; not inside
    a residue, by spelling or by realpath. Returns the canonical path. InputError naming `name`."""
    text = absolute(path, name)
    try:
        where = _paths.canonical(text, name)
    except _paths.PathRefused as exc:
        raise InputError(str(exc))
    me = os.geteuid()
    current = ""
    for part in [p for p in where.path.split("/") if p]:
        current += "/" + part
        try:
            st = os.lstat(current)
        except OSError:
            break  # created by the backup, as root's (or the running user's) directories
        if not stat.S_ISDIR(st.st_mode):
            raise InputError("%s: %s is not a directory" % (name, current))
        if st.st_uid not in (0, me):
            raise InputError("%s: %s belongs to %s: its owner could swap what the archives are written into; "
                             "use a directory of root's (or your own)" % (name, current, _profiles.user_name(st.st_uid)))
        if st.st_mode & stat.S_IWOTH and not st.st_mode & stat.S_ISVTX:
            raise InputError("%s: %s is writable by every user; use a directory only root (or you) can write"
                             % (name, current))
    real = os.path.realpath(where.path)
    for candidate in (where.path, real):
        if candidate in protected:
            raise InputError("%s: %s is a protected directory (a home, a shared cache or a system directory); "
                             "use a directory of its own such as /var/backups/residue-purge" % (name, candidate))
    for residue in residues:
        for candidate in (where.path, real):
            for location in (residue, os.path.realpath(residue)):
                if _paths.is_below(candidate, location):
                    raise InputError("%s: %s is inside %s, which is to be removed" % (name, candidate, location))
    return where.path


def check_host(values, require_targets=False, environ=None):
    """check(), then what the host decides: the homes exist (_profiles.list_users), the backup directory
    (backup_dir(), against the protected paths and the targets' residues of this host). Returns check()'s
    values, with backup_dir canonical."""
    out = check(values, require_targets)
    try:
        users = _profiles.list_users(out["homes"] or None)
    except _profiles.ProfileError as exc:
        text = str(exc)
        raise InputError("residue_homes: " + (text[len("homes: "):] if text.startswith("homes: ") else text))
    if out["backup_dir"]:
        # the residues as remove resolves them (_profiles.resolve_all: each user's environment for that user only);
        # protected as every user's home and default caches are, whatever any user's environment says
        selected = _profiles.select_targets(out["profiles"], out["targets"])
        try:
            found = _profiles.resolve_all(selected, users, _profiles.user_environments(users, problems=[]), [])
        except _profiles.ProfileError:
            found = []  # a profile path that is refused stops discover next, with the profile's own message
        out["backup_dir"] = backup_dir(out["backup_dir"], "residue_backup_dir", _profiles.protected_paths(users),
                                       sorted(set(r.path for r in found)))
    return out


def probe(values):
    """psutil importable for this Python, and the free space where the backup goes."""
    try:
        import psutil  # noqa: F401  pylint: disable=unused-import
        have = True
    except ImportError:
        have = False
    result = {"psutil": have, "python": sys.executable, "backup_free": None, "backup_probe": None}
    if values.get("backup_dir"):
        where = values["backup_dir"]
        while not os.path.isdir(where):
            where = os.path.dirname(where)
        result.update(backup_free=free_bytes(where), backup_probe=where)
    return result


def run(params, check_mode=False):
    """The check_vars module's topic: check_host() on the module's variables, and the probe. Nothing changes, so
    check_mode changes nothing either."""
    values = check_host(params.get("variables") or {}, params.get("require_targets"))
    values.pop("profiles", None)  # what the modules load again; the normalised profiles would only be noise
    result = dict(changed=False, values=values)
    result.update(probe(values))
    return result
