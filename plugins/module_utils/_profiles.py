# -*- coding: utf-8 -*-
# Copyright: residue.purge contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Residue profiles: schema, built-ins, users, environments, placeholder resolution, protected paths.

Pure logic where possible; the only I/O is reading the passwd database, /etc/environment,
/etc/login.defs and /proc/PID/environ, and stat() of explicit homes.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import copy
import fnmatch
import os
import posixpath
import ntpath
import re
import stat
from collections import namedtuple

from ansible_collections.residue.purge.plugins.module_utils import _macos, _paths, _platform, _procfs
from ansible_collections.residue.purge.plugins.module_utils._privileges import User, passwd_user
from ansible_collections.residue.purge.plugins.module_utils._text import error_text, printable

try:
    import pwd
except ImportError:  # Windows has no passwd database; the PowerShell modules enumerate users there.
    pwd = None


EnvContext = namedtuple("EnvContext", "user environ source")
ResolvedPath = namedtuple("ResolvedPath", "target path user template source")

# Variables that move caches. Read from the module's environment, /etc/environment and running processes.
CACHE_ENV_VARS = (
    "HF_HOME", "HF_HUB_CACHE", "HUGGINGFACE_HUB_CACHE", "TRANSFORMERS_CACHE", "XDG_CACHE_HOME",
    "XDG_CONFIG_HOME", "XDG_DATA_HOME", "TORCH_HOME", "MODELSCOPE_CACHE", "OLLAMA_MODELS", "PIP_CACHE_DIR",
    "LOCALAPPDATA", "APPDATA", "TMPDIR",
)
# Windows' temporary directory variables (GetTempPath: TMP, then TEMP), read from each user's registry
# Environment by the Windows modules; POSIX uses TMPDIR.
WINDOWS_TEMP_VARS = ("TMP", "TEMP")

PLACEHOLDERS = (
    "home", "user_cache", "user_config", "user_data", "hf_home", "hf_hub_cache", "torch_home",
    "modelscope_cache", "pip_cache", "tmp",
)

PROFILE_KEYS = ("description", "processes", "services", "cron", "paths", "hf_repos", "pip")
PROCESS_KEYS = ("names", "cmdline")
SERVICE_KEYS = ("systemd", "launchd", "windows", "xdg")

TARGET_ARGUMENT_SPEC = dict(
    targets=dict(type="list", elements="str", default=[]),
    profiles=dict(type="dict", default={}),
    homes=dict(type="list", elements="path", default=[]),
    users=dict(type="raw", default="all"),
)

# Credentials (HF token files) are deliberately absent from every profile.
BUILTIN_PROFILES = {
    "open_autoglm": {
        "description": "Open-AutoGLM agent: its daemon, caches, configs, model weights and pip package",
        "processes": {
            # the program: its executable, argv[0], or the module/script an interpreter runs (python -m
            # open_autoglm, python .../open_autoglm/main.py, node .../open-autoglm); never `tail -f .../open-autoglm`.
            # names do all of that on POSIX (_procs.program_names); the patterns, anchored at argv[0], say the same
            # for hosts that only match names exactly (Windows)
            "names": ["open-autoglm"],
            "cmdline": [r"^([^ ]*/)?(python|pythonw|pypy)[0-9.]*( -[^ ]+)* -m ?open_autoglm([. ]|$)",
                        r"^([^ ]*/)?(python|pythonw|pypy)[0-9.]*( -[^ ]+)* [^ ]*/open_autoglm/[^ /]+( |$)",
                        r"^([^ ]*/)?(node|nodejs)( -[^ ]+)* ([^ ]*/)?open-autoglm(/[^ ]*)?( |$)"],
        },
        "services": {
            "systemd": ["open-autoglm.service", "open-autoglm-*.service"],
            "launchd": ["ai.open-autoglm.*", "com.open-autoglm.*"],
            "windows": ["OpenAutoGLM*"],
            "xdg": ["open-autoglm*.desktop"],
        },
        "cron": [r"(^|[/ ])open-autoglm( |$)", r"-m open_autoglm( |$)"],
        "paths": ["{user_cache}/open-autoglm", "{user_config}/open-autoglm", "{user_data}/open-autoglm"],
        "hf_repos": ["zai-org/AutoGLM-*"],
        "pip": ["open-autoglm"],
    },
    "huggingface": {
        "description": "Hugging Face hub cache (repo by repo), datasets cache, xet cache and remote-code modules",
        "paths": ["{hf_home}/datasets", "{hf_home}/xet", "{hf_home}/modules", "{hf_home}/assets"],
        "hf_repos": ["*"],
    },
    "torch_hub": {
        "description": "PyTorch hub checkouts and checkpoints",
        "paths": ["{torch_home}/hub"],
    },
    "modelscope": {
        "description": "ModelScope model and dataset cache",
        "paths": ["{modelscope_cache}"],
    },
    "ollama": {
        "description": "Ollama models (per user, the Linux service's, and OLLAMA_MODELS) and the macOS app's "
                       "caches, state and logs (~/.ollama itself stays: it holds the user's key)",
        "processes": {"names": ["ollama", "Ollama"], "cmdline": []},
        "services": {"systemd": ["ollama.service"], "launchd": ["com.ollama.*", "homebrew.mxcl.ollama"],
                     "xdg": ["ollama*.desktop"]},
        "paths": ["{home}/.ollama/models", "/usr/share/ollama/.ollama/models", "{home}/.ollama/logs",
                  "{home}/Library/Application Support/Ollama", "{home}/Library/Caches/ollama",
                  "{home}/Library/Caches/com.electron.ollama", "{home}/Library/WebKit/com.electron.ollama",
                  "{home}/Library/Saved Application State/com.electron.ollama.savedState", "{env:OLLAMA_MODELS}"],
    },
    "pip_cache": {
        "description": "pip's HTTP and wheel cache",
        "paths": ["{pip_cache}"],
    },
}

_SYSTEM_PROTECTED = (
    "/", "/bin", "/boot", "/dev", "/etc", "/home", "/lib", "/lib32", "/lib64", "/libx32", "/media", "/mnt",
    "/opt", "/proc", "/root", "/run", "/sbin", "/srv", "/sys", "/tmp", "/usr", "/usr/bin", "/usr/lib",
    "/usr/lib64", "/usr/local", "/usr/local/bin", "/usr/local/lib", "/usr/local/share", "/usr/sbin",
    "/usr/share", "/var", "/var/cache", "/var/lib", "/var/log", "/var/tmp", "/var/spool", "/snap",
    "/Applications", "/Library", "/System", "/Users", "/Volumes", "/private", "/private/tmp", "/private/var",
    "/usr/share/ollama", "/usr/share/ollama/.ollama",
)
_WINDOWS_PROTECTED = ("C:\\", "C:\\Windows", "C:\\Windows\\Temp", "C:\\Users", "C:\\Program Files",
                      "C:\\Program Files (x86)", "C:\\ProgramData")
# An absolute Windows path: a drive and its root (C:\...), or a UNC share (\\server\share...). Not root-relative
# (\foo: on the current drive), not drive-relative (C:foo), not the \\?\ and \\.\ device namespaces.
_WINDOWS_ABSOLUTE = re.compile(r"^(?:[A-Za-z]:[\\/]|[\\/]{2}(?![?.][\\/])[^\\/]+[\\/]+[^\\/]+)")
_WINDOWS_ROOT = re.compile(r"^(?:[A-Za-z]:\\?|\\\\[^\\]+\\[^\\]+\\?)$")
# Directories inside a home that hold many tools' data: a residue may live below them, never be them.
_HOME_PROTECTED = (
    "", ".cache", ".config", ".local", ".local/share", ".local/lib", ".local/bin", ".ssh", "Library",
    "Library/Caches", "Library/Application Support", "Library/Preferences", "AppData", "AppData/Local",
    "AppData/Roaming", ".ollama",
)
_GLOB_CHARS = re.compile(r"[*?\[\]]")
_PLACEHOLDER_RE = re.compile(r"\{([^{}]*)\}")


class ProfileError(ValueError):
    """A profile, option or path that cannot be used; the message names the profile and the field."""


class ProtectedPaths(set):
    """The protected paths (their spelling) plus, looked up once when first asked, their identities
    ({(st_dev, st_ino): (path, itself)}, _paths.identities) on this host. memo: lookups shared with the
    other sets made for the same users (one per user, resolve_all), so each path is looked up once."""

    _index = None
    memo = None

    def identities(self):
        if self._index is None:
            self._index = _paths.identities(self, self.memo)
        return self._index


_IDENTITY_MEMOS = []  # [(users list, {path: canonical or None})] of the last few runs


def _identity_memo(users):
    for owner, memo in _IDENTITY_MEMOS:
        if owner is users:
            return memo
    memo = {}
    _IDENTITY_MEMOS.insert(0, (users, memo))
    del _IDENTITY_MEMOS[4:]
    return memo


# ---------------------------------------------------------------- schema

def _string_list(value, where):
    if value is None:
        return []
    if isinstance(value, str):
        value = [value]
    if not isinstance(value, (list, tuple)) or not all(isinstance(v, str) and v for v in value):
        raise ProfileError("%s must be a list of non-empty strings" % where)
    return list(value)


def _check_keys(value, allowed, where):
    if not isinstance(value, dict):
        raise ProfileError("%s must be a mapping" % where)
    unknown = sorted(set(value) - set(allowed))
    if unknown:
        raise ProfileError("%s: unknown key(s) %s (allowed: %s)" % (where, ", ".join(unknown), ", ".join(allowed)))


def _check_template(template, where):
    for name in _PLACEHOLDER_RE.findall(template):
        if name.startswith("env:"):
            if not re.match(r"^[A-Za-z_][A-Za-z0-9_]*$", name[4:]):
                raise ProfileError("%s: bad environment placeholder {%s}" % (where, name))
        elif name not in PLACEHOLDERS:
            raise ProfileError("%s: unknown placeholder {%s} (known: %s, env:NAME)"
                               % (where, name, ", ".join(PLACEHOLDERS)))
    rest = _PLACEHOLDER_RE.sub("x", template)
    if "{" in rest or "}" in rest:
        raise ProfileError("%s: unbalanced braces in %r" % (where, template))
    if not (template.startswith("{") or template.startswith("/") or template.startswith("~/")):
        raise ProfileError("%s: %r must be absolute or start with a placeholder or ~/" % (where, template))
    if ".." in re.split(r"[/\\]", template):
        raise ProfileError("%s: %r must not contain '..'" % (where, template))
    if _GLOB_CHARS.search(rest):
        raise ProfileError("%s: %r must not contain glob characters: a path names one residue" % (where, template))


def normalise_profile(name, raw):
    """Validate one profile and return it with every key present and lists normalised."""
    where = "profile %r" % name
    if not isinstance(name, str) or not re.match(r"^[A-Za-z0-9_][A-Za-z0-9_.-]*$", name):
        raise ProfileError("%s: a profile name uses letters, digits, '_', '.' and '-'" % where)
    _check_keys(raw, PROFILE_KEYS, where)
    processes = raw.get("processes") or {}
    _check_keys(processes, PROCESS_KEYS, where + " field processes")
    services = raw.get("services") or {}
    _check_keys(services, SERVICE_KEYS, where + " field services")
    profile = {
        "description": raw.get("description") or "",
        "processes": {k: _string_list(processes.get(k), "%s field processes.%s" % (where, k)) for k in PROCESS_KEYS},
        "services": {k: _string_list(services.get(k), "%s field services.%s" % (where, k)) for k in SERVICE_KEYS},
        "cron": _string_list(raw.get("cron"), where + " field cron"),
        "paths": _string_list(raw.get("paths"), where + " field paths"),
        "hf_repos": _string_list(raw.get("hf_repos"), where + " field hf_repos"),
        "pip": _string_list(raw.get("pip"), where + " field pip"),
    }
    if not isinstance(profile["description"], str):
        raise ProfileError("%s field description must be a string" % where)
    for field in ("cmdline",):
        for i, pattern in enumerate(profile["processes"][field]):
            _check_regex(pattern, "%s field processes.cmdline[%d]" % (where, i))
    for i, pattern in enumerate(profile["cron"]):
        _check_regex(pattern, "%s field cron[%d]" % (where, i))
    for i, template in enumerate(profile["paths"]):
        _check_template(template, "%s field paths[%d]" % (where, i))
    for i, pattern in enumerate(profile["hf_repos"]):
        if pattern != "*" and "/" not in pattern:
            raise ProfileError("%s field hf_repos[%d]: %r must look like org/name (globs allowed)" % (where, i, pattern))
    return profile


def _check_regex(pattern, where):
    try:
        compiled = re.compile(pattern)
    except re.error as e:
        raise ProfileError("%s: invalid regular expression %r: %s" % (where, pattern, e))
    check_selective_pattern(compiled, where)


# Command lines with no character in common (a kernel thread, init, sshd, a shell, an interpreter, a Windows
# service): a pattern found in every one of them selects every process, not a program.
UNRELATED_COMMAND_LINES = (
    "[kthreadd]", "/sbin/init", "sshd: root@pts/0", "-bash", "sleep 600", "python3 -c pass",
    "/usr/lib/systemd/systemd-journald", "C:\\Windows\\System32\\svchost.exe -k netsvcs", "1", "Z",
)


def check_selective_pattern(compiled, where):
    """Refuse a process or cron pattern that matches the empty string ('.*', '^', '|x', 'x?') or every one of
    UNRELATED_COMMAND_LINES ('.', '\\S', '\\w'): it would select every process (or every crontab line)."""
    if compiled.search("") is not None:
        raise ProfileError("%s: %r matches the empty string, so it would match every process; give a pattern "
                           "that names the program" % (where, compiled.pattern))
    if all(compiled.search(line) is not None for line in UNRELATED_COMMAND_LINES):
        raise ProfileError("%s: %r matches every command line (it matches %s), so it would match every process; "
                           "give a pattern that names the program"
                           % (where, compiled.pattern, ", ".join(repr(x) for x in UNRELATED_COMMAND_LINES[:4])))


def load_profiles(extra=None):
    """Built-in profiles merged with the user's. A user profile with a built-in name replaces the keys it gives."""
    if extra is None:
        extra = {}
    if not isinstance(extra, dict):
        raise ProfileError("profiles must be a mapping of profile name to profile")
    merged = copy.deepcopy(BUILTIN_PROFILES)
    for name, raw in extra.items():
        if not isinstance(raw, dict):
            raise ProfileError("profile %r must be a mapping" % (name,))
        base = merged.get(name, {})
        base.update(raw)
        merged[name] = base
    return dict((name, normalise_profile(name, raw)) for name, raw in merged.items())


def select_targets(profiles, targets=None):
    """The profiles named by targets (all when empty). Unknown names fail with the list of known ones."""
    if not targets:
        return dict(profiles)
    if isinstance(targets, str):
        targets = [targets]
    unknown = [t for t in targets if t not in profiles]
    if unknown:
        raise ProfileError("unknown target(s) %s; known profiles: %s" % (", ".join(unknown), ", ".join(sorted(profiles))))
    return dict((t, profiles[t]) for t in targets)


def repo_matches(patterns, repo_id):
    """True when repo_id ('org/name') matches one of the hf_repos globs."""
    return any(fnmatch.fnmatchcase(repo_id, p) for p in patterns)


# ---------------------------------------------------------------- users

def _uid_min(system):
    if system == "Darwin":
        return 500
    try:
        with open("/etc/login.defs") as f:
            for line in f:
                parts = line.split()
                if len(parts) >= 2 and parts[0] == "UID_MIN" and parts[1].isdigit():
                    return int(parts[1])
    except (IOError, OSError):
        pass
    return 1000


def parse_users_option(value):
    """users: 'all' or a list of user names."""
    if value in (None, "all", ["all"]):
        return "all"
    if isinstance(value, str):
        value = [v.strip() for v in value.split(",") if v.strip()]
    if not isinstance(value, list) or not value or not all(isinstance(v, str) and v for v in value):
        raise ProfileError("users must be 'all' or a list of user names")
    return value


def user_name(uid):
    """The passwd name of uid, or the number as text when it has none."""
    user = passwd_user(uid)
    return str(uid) if user is None else user.name


def owner_name(path, follow_symlinks=False):
    """The user name owning path (the link itself unless follow_symlinks), or None when it cannot be stat'ed."""
    try:
        st = os.stat(path) if follow_symlinks else os.lstat(path)
    except OSError:
        return None
    return user_name(st.st_uid)


class Users(list):
    """list_users' answer: a list of User; scoped is True when the run was limited to named users or homes
    (`users: [...]`, `homes: [...]`), so whose residue is touched is bounded by it (user_environments)."""

    def __init__(self, users=(), scoped=False):
        list.__init__(self, users)
        self.scoped = scoped


def list_users(homes=None, users="all", system=None, directory=None):
    """Users whose homes are covered (Users): explicit homes (owner from stat), or real passwd users with a home,
    and root; scoped when homes or a list of users was given."""
    return Users(_list_users(homes, users, system, directory),
                 scoped=bool(homes) or parse_users_option(users) != "all")


def _list_users(homes=None, users="all", system=None, directory=None):
    """Users whose homes are covered: explicit homes (owner from stat), or real passwd users with a home, and root.

    On macOS the people come from `dscl . -list /Users UniqueID` (uid >= 501, no '_' service accounts: the
    passwd file holds only system accounts there), each looked up with directory(name) (pwd.getpwnam, which
    asks Open Directory)."""
    system = system or _platform.current().system
    users = parse_users_option(users)
    if homes and users != "all":
        raise ProfileError("homes and users are mutually exclusive: homes replaces the enumeration of users")
    if homes:
        result = []
        for home in homes:
            if not isinstance(home, str) or not home or not posixpath.isabs(home):
                raise ProfileError("homes: %r is not an absolute path" % (home,))
            if ".." in home.split("/"):
                raise ProfileError("homes: %r must not contain '..'" % (home,))
            home = posixpath.normpath(home)
            if home == "/":
                raise ProfileError("homes: '/' is not a home directory")
            try:
                st = os.stat(home)
            except OSError as e:
                raise ProfileError("homes: %s: %s" % (home, error_text(e)))
            result.append(User(user_name(st.st_uid), st.st_uid, st.st_gid, home))
        return result
    if pwd is None and directory is None:
        raise ProfileError("this host has no passwd database: give homes explicitly")
    if system == _platform.DARWIN:
        return _macos_users(users, directory or pwd.getpwnam)
    uid_min = _uid_min(system)
    seen, result = set(), []
    entries = pwd.getpwall()
    if users != "all":
        known = set(e.pw_name for e in entries)
        missing = [u for u in users if u not in known]
        if missing:
            raise ProfileError("users: no such user(s) %s" % ", ".join(missing))
    for e in entries:
        if users != "all":
            wanted = e.pw_name in users
        else:
            wanted = (e.pw_uid == 0 or uid_min <= e.pw_uid < 60000) and e.pw_name != "nobody"
        home = posixpath.normpath(e.pw_dir or "/")
        if not wanted or home in seen or home == "/" or not os.path.isdir(home):
            continue
        seen.add(home)
        result.append(User(e.pw_name, e.pw_uid, e.pw_gid, home))
    return result


def _macos_users(users, directory):
    """list_users on macOS: root and the people dscl lists (or the named users), with their directory homes."""
    wanted = []
    if users == "all":
        rc, out, err = _platform.run(_macos.DSCL_USERS)
        if rc != 0:
            raise ProfileError("users: %s failed (rc %d): %s" % (" ".join(_macos.DSCL_USERS), rc, (err or out).strip()))
        wanted = ["root"] + [name for name, _uid, _gid, _home in _macos.macos_users(out, directory)[0]]
    else:
        wanted = users
    result, seen, missing = [], set(), []
    for name in wanted:
        try:
            e = directory(name)
        except KeyError:
            missing.append(name)
            continue
        home = posixpath.normpath(e.pw_dir or "/")
        if home in seen or home == "/" or not os.path.isdir(home):
            continue
        seen.add(home)
        result.append(User(name, e.pw_uid, e.pw_gid, home))
    if missing:
        raise ProfileError("users: no such user(s) %s" % ", ".join(missing))
    return result


# ---------------------------------------------------------------- environments

def parse_environment_file(text):
    """KEY=VALUE lines of /etc/environment (quotes stripped, comments and 'export' ignored)."""
    env = {}
    for line in text.splitlines():
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        if line.startswith("export "):
            line = line[len("export "):].strip()
        key, sep, value = line.partition("=")
        key = key.strip()
        if not sep or not re.match(r"^[A-Za-z_][A-Za-z0-9_]*$", key):
            continue
        value = value.strip()
        if len(value) >= 2 and value[0] == value[-1] and value[0] in "'\"":
            value = value[1:-1]
        env[key] = value
    return env


def parse_proc_environ(data):
    """The NUL-separated bytes of /proc/PID/environ, reduced to the cache variables."""
    env = {}
    for item in data.split(b"\0"):
        key, sep, value = item.partition(b"=")
        if sep:
            k = key.decode("utf-8", "replace")
            if k in CACHE_ENV_VARS:
                env[k] = value.decode("utf-8", "surrogateescape")
    return env


def _cache_vars(environ):
    return dict((k, v) for k, v in (environ or {}).items() if k in CACHE_ENV_VARS and v)


def _read_proc_environs(problems=None):
    """(pid, uid, cache env) of every process whose environment sets a cache variable (Linux /proc).

    Left out: this module's own process, processes in another mount namespace (a container's paths name its own
    filesystem, not this one), and processes whose real, effective, saved and filesystem uids differ (a setuid
    program such as su or passwd runs as root with the environment of the user who started it); the latter
    are described in problems."""
    found = []
    own = os.getpid()
    try:
        own_mnt = _procfs.mount_namespace(own)
    except OSError:
        own_mnt = None
    for pid in _procfs.pids():
        if pid == own:
            continue
        try:
            data = _procfs.environ(pid)
            uids = _procfs.uids(pid)
            mnt = _procfs.mount_namespace(pid) if own_mnt is not None else None
        except (IOError, OSError):
            continue  # gone, or not ours to read
        env = parse_proc_environ(data)
        if not env or mnt != own_mnt:
            continue
        if len(set(uids)) != 1:
            if problems is not None:
                problems.append(printable(
                    "environment of process %d (real uid %d, effective uid %d) is not used: it runs with "
                    "another user's rights than the one who started it (%s)"
                    % (pid, uids[0], uids[1], ", ".join("%s=%s" % kv for kv in sorted(env.items())))))
            continue
        found.append((pid, uids[0], env))
    return found


def _read_ps_environs(problems=None):
    """(pid, uid, cache env) of every process whose environment sets a cache variable, from `ps -E` (macOS has
    no /proc), under the same rules as _read_proc_environs: this module's own process and setuid programs (real
    uid != effective uid: they carry their invoker's environment) lend nothing, the latter described in
    problems. What ps cannot show is absent: other users' processes without root, SIP-protected ones; a failed
    ps is described in problems."""
    rc, plain, err = _platform.run(_macos.PS_PLAIN)
    rc_env, with_env, err_env = _platform.run(_macos.PS_ENV)
    if rc != 0 or rc_env != 0:
        if problems is not None:
            problems.append("process environments not read: ps failed (rc %d): %s"
                            % (rc or rc_env, (err or err_env).strip()))
        return []
    found = []
    own = os.getpid()
    for p in _macos.parse_ps_environments(plain, with_env, CACHE_ENV_VARS):
        if not p.environ or p.pid == own:
            continue
        if p.ruid != p.uid:
            if problems is not None:
                problems.append(printable(
                    "environment of process %d (real uid %d, effective uid %d) is not used: it runs with "
                    "another user's rights than the one who started it (%s)"
                    % (p.pid, p.ruid, p.uid, ", ".join("%s=%s" % kv for kv in sorted(p.environ.items())))))
            continue
        found.append((p.pid, p.uid, p.environ))
    return found


def _own_home_identity(user):
    """(st_dev, st_ino) of user's home when the home is really theirs: it exists, is not '/', and the user
    owns it (a service account whose passwd home is root's /var/lib/x or /nonexistent has none)."""
    if not user.home or user.uid is None:
        return None
    try:
        home = _paths.canonical(user.home, "home")
    except _paths.PathRefused:
        return None
    if not home.exists or home.path == "/" or not stat.S_ISDIR(home.st.st_mode) or home.st.st_uid != user.uid:
        return None
    return home.chain[-1]


def _vet(user, name, value, home_identity):
    """(path, None, None), or (None, why, owner) where owner is the name of the location's owner when that is
    why (why then does not name user), else None; (None, None, None) for a relative value. A '..' is
    refused, not resolved: the location is the one the value spells."""
    if ".." in value.split("/"):
        return None, "%r must not contain '..'" % value, None
    path = _env_path({name: value}, name, user.home, posixpath)
    if path is None:
        return None, None, None
    try:
        where = _paths.canonical(path, name)
    except _paths.PathRefused as exc:
        return None, str(exc), None
    if home_identity is not None and home_identity in where.chain[1:]:
        return where.path, None, None
    # The deepest component that exists (the path itself, or the directory it would be created in).
    existing = where.path if where.exists else "/" + "/".join(where.path.split("/")[1:len(where.chain)])
    try:
        st = os.lstat(existing)
    except OSError as exc:
        return None, "%s cannot be looked at: %s" % (existing, error_text(exc)), None
    if (st.st_dev, st.st_ino) != where.chain[-1]:
        return None, "%s changed while it was being looked at" % existing, None
    if st.st_uid == user.uid:
        return where.path, None, None
    owner = user_name(st.st_uid)
    if existing == where.path:
        return None, "%s is owned by %s" % (existing, owner), owner
    return None, "%s does not exist and %s is owned by %s" % (where.path, existing, owner), owner


def vet_value(user, name, value, home_identity=None):
    """(path, None) when the cache variable `name` = value may be used for user, else (None, why not).

    A value is evidence about where that user's caches are, never authority over anyone else's files: the
    location it names (after '~' and '//' are resolved, and the system's own root-owned symlinks followed) is
    used only when it is in the user's own home (home_identity: _own_home_identity(user)) or the deepest
    existing component of it is owned by the user; a symlink on the way that root did not make refuses it
    (_paths.canonical), so nothing below the point where ownership was checked can lead elsewhere. A relative
    value names no location: (None, None)."""
    path, why, owner = _vet(user, name, value, home_identity)
    if owner is not None:
        why = "%s, not by %s, and is not in %s's home" % (why, user.name, user.name)
    return path, why


def vet_location(user, path):
    """(real path, None) when a cache root resolved for user (a default such as ~/.cache/huggingface/hub, or
    one an accepted variable names) may be used for that user, else (None, why not).

    A cache root may be a symlink the user made to their own data (~/.cache/huggingface -> /data/alice/hf):
    what counts is where it really is, which must be in the user's home or owned by the user, as for
    environment values. So a user's ~/.cache/huggingface -> /srv/models (root's system cache) is refused."""
    real = os.path.realpath(path)
    found, why, owner = _vet(user, "cache", real, _own_home_identity(user))
    if found is None:
        if owner is not None:
            why = "%s, not by %s, and is not in %s's home" % (why, user.name, user.name)
        return None, "%s is %s: %s" % (path, real, why) if real != path else why
    return found, None


def vet_environment(user, environ, describe, problems=None, home_identity=None):
    """The part of one cache environment that user may use: every variable vet_value() accepts, with its
    location as the value; each refused one becomes a problem '<describe>: NAME=value is not used: why'."""
    kept = {}
    for name in sorted(environ):
        path, why = vet_value(user, name, environ[name], home_identity)
        if path is not None:
            kept[name] = path
        elif why is not None and problems is not None:
            problems.append(printable("%s: %s=%s is not used: %s" % (describe, name, environ[name], why)))
    return kept


def user_environments(users, scan_processes=True, environ=None, environment_file="/etc/environment",
                      problems=None):
    """Every (user, cache environment, source) worth resolving placeholders for.

    source is 'default' (no variables), 'env' (the module's own environment, for the user running it),
    'file:/etc/environment', or 'process PID'. When the run covers every user (users: all), processes of users
    outside `users` (service accounts outside the login range) are attributed to their own passwd user, so a
    daemon's HF_HOME is found even when its user has no home. When the run is scoped (users.scoped: named users
    or homes), the scope bounds whose residue is touched: a process of a user outside it, and the module's own
    environment when its user is outside it, lend nothing (one problem per such user says so).

    Environment values are evidence, not authority: each applies to one user (the process's, the module's
    own user, or each user in turn for /etc/environment) and only where vet_value() accepts it for that
    user; what is dropped is described in `problems` (a list, appended to), naming the process, the user,
    the variable and the path. So no user's environment adds to, or takes from, what is protected or
    targeted for another user.
    """
    def vet(user, env, describe, into=problems):
        if user.uid not in homes:
            homes[user.uid] = _own_home_identity(user)
        return vet_environment(user, env, describe, into, homes[user.uid])

    homes = {}
    contexts = [EnvContext(u, {}, "default") for u in users]
    try:
        with open(environment_file) as f:
            file_env = _cache_vars(parse_environment_file(f.read()))
    except (IOError, OSError):
        file_env = {}
    refused = {}  # (variable, why) -> user names: one problem per value, not one per user
    for u in users if file_env else ():
        if u.uid not in homes:
            homes[u.uid] = _own_home_identity(u)
        kept = {}
        for name in sorted(file_env):
            path, why, owner = _vet(u, name, file_env[name], homes[u.uid])
            if path is not None:
                kept[name] = path
            elif why is not None:
                refused.setdefault((name, why, owner is not None), []).append(u.name)
        if kept:
            contexts.append(EnvContext(u, kept, "file:" + environment_file))
    for (name, why, foreign), names in sorted(refused.items()):
        if problems is not None:
            shown = ", ".join(names[:5]) + (" and %d more" % (len(names) - 5) if len(names) > 5 else "")
            problems.append(printable("%s: %s=%s is not used for %s: %s%s" % (
                environment_file, name, file_env[name], shown, why,
                ", not by them, and is not in their home" if foreign else "")))
    scoped = getattr(users, "scoped", False)
    outside = {}  # uid -> (user, [pids]) of processes outside a scoped run's users
    own_env = _cache_vars(os.environ if environ is None else environ)
    if own_env and hasattr(os, "getuid"):
        uid = os.getuid()
        mine = [u for u in users if u.uid == uid] or ([] if scoped else [_process_user(uid)])
        if not mine and problems is not None:
            problems.append(printable("the module's environment (user %s) is not used: %s is not among the users "
                                      "of this run" % (_process_user(uid).name, _process_user(uid).name)))
        for u in mine:
            kept = vet(u, own_env, "the module's environment (user %s)" % u.name)
            if kept:
                contexts.append(EnvContext(u, kept, "env"))
    if scan_processes and (_platform.is_macos() or os.path.isdir("/proc")):
        by_uid = dict((u.uid, u) for u in users)
        for pid, uid, env in _read_ps_environs(problems) if _platform.is_macos() else _read_proc_environs(problems):
            user = by_uid.get(uid)
            if user is None:
                user = _process_user(uid)
                if scoped:
                    outside.setdefault(uid, (user, []))[1].append(pid)
                    continue
            kept = vet(user, env, "environment of process %d (user %s)" % (pid, user.name))
            if kept:
                contexts.append(EnvContext(user, kept, "process %d" % pid))
    for uid in sorted(outside) if problems is not None else ():
        user, pids = outside[uid]
        more = " and %d more" % (len(pids) - 5) if len(pids) > 5 else ""
        shown = ", ".join(str(p) for p in sorted(pids)[:5]) + more
        problems.append(printable("environment of process %s (user %s) is not used: %s is not among the users of "
                                  "this run (users/homes), so its paths are not touched"
                                  % (shown, user.name, user.name)))
    return _dedupe_contexts(contexts)


def _process_user(uid):
    user = passwd_user(uid)
    if user is None:
        return User(str(uid), uid, None, "/")
    return user._replace(home=user.home or "/")


def _dedupe_contexts(contexts):
    seen, result = set(), []
    for c in contexts:
        key = (c.user.name, c.user.home, tuple(sorted(c.environ.items())))
        if key in seen:
            continue
        seen.add(key)
        result.append(c)
    return result


# ---------------------------------------------------------------- placeholders

def _isabs(path, pathmod):
    """pathmod.isabs, but for Windows only a drive with its root or a UNC share (see _WINDOWS_ABSOLUTE)."""
    if pathmod is ntpath:
        return bool(_WINDOWS_ABSOLUTE.match(path))
    return pathmod.isabs(path)


def _env_path(environ, name, home, pathmod):
    value = (environ or {}).get(name)
    if not value:
        return None
    if value == "~" or value.startswith("~/") or (pathmod is ntpath and value.startswith("~\\")):
        value = home + value[1:]
    if not _isabs(value, pathmod):
        return None  # a relative cache variable depends on the daemon's cwd: not a location we can name
    return pathmod.normpath(value)


def placeholder_values(user, environ=None, system=None):
    """Every placeholder's value for one user and environment, per OS (missing env placeholders are absent)."""
    system = system or _platform.current().system
    windows = system == "Windows"
    pm = ntpath if windows else posixpath
    home = user.home
    env = environ or {}

    def e(name):
        return _env_path(env, name, home, pm)

    xdg_cache = e("XDG_CACHE_HOME") or pm.join(home, ".cache")
    if system == "Darwin":
        user_cache = pm.join(home, "Library", "Caches")
        user_config = user_data = pm.join(home, "Library", "Application Support")
        pip_cache = pm.join(home, "Library", "Caches", "pip")
    elif windows:
        user_cache = user_data = e("LOCALAPPDATA") or pm.join(home, "AppData", "Local")
        user_config = e("APPDATA") or pm.join(home, "AppData", "Roaming")
        pip_cache = pm.join(user_cache, "pip", "Cache")
    else:
        user_cache = xdg_cache
        user_config = e("XDG_CONFIG_HOME") or pm.join(home, ".config")
        user_data = e("XDG_DATA_HOME") or pm.join(home, ".local", "share")
        pip_cache = pm.join(xdg_cache, "pip")
    # huggingface_hub, torch and modelscope use ~/.cache (XDG_CACHE_HOME) on every OS.
    hf_home = e("HF_HOME") or pm.join(xdg_cache, "huggingface")
    values = {
        "home": home,
        "user_cache": user_cache,
        "user_config": user_config,
        "user_data": user_data,
        "hf_home": hf_home,
        "hf_hub_cache": e("HF_HUB_CACHE") or e("HUGGINGFACE_HUB_CACHE") or pm.join(hf_home, "hub"),
        "torch_home": e("TORCH_HOME") or pm.join(xdg_cache, "torch"),
        "modelscope_cache": e("MODELSCOPE_CACHE") or pm.join(xdg_cache, "modelscope"),
        "pip_cache": e("PIP_CACHE_DIR") or pip_cache,
        # Windows: the user's own %TMP%/%TEMP% (GetTempPath's order), by default %LOCALAPPDATA%\Temp
        "tmp": (e("TMP") or e("TEMP") or pm.join(user_cache, "Temp")) if windows else (e("TMPDIR") or "/tmp"),
    }
    for name in env:
        path = e(name)
        if path:
            values["env:" + name] = path
    return values


def expand_template(template, values, system=None):
    """A path template with placeholders replaced, or None when an {env:NAME} it needs is unset, or when it is a
    POSIX system path (/usr/share/ollama/...) and the host is Windows, where it names nothing."""
    pm = ntpath if (system or _platform.current().system) == "Windows" else posixpath
    if pm is ntpath and template.startswith("/"):
        return None
    if template.startswith("~/"):
        template = "{home}" + template[1:]
    missing = []

    def sub(match):
        name = match.group(1)
        if name not in values:
            if name.startswith("env:"):
                missing.append(name)
                return ""
            raise ProfileError("unknown placeholder {%s}" % name)
        return values[name]

    path = _PLACEHOLDER_RE.sub(sub, template)
    if missing:
        return None
    return pm.normpath(path)


def resolve_paths(name, profile, context, protected=None, system=None):
    """The profile's path residues for one environment context, checked against protected paths."""
    values = placeholder_values(context.user, context.environ, system)
    result = []
    for i, template in enumerate(profile["paths"]):
        try:
            path = expand_template(template, values, system)
        except ProfileError as e:
            raise ProfileError("profile %r field paths[%d]: %s" % (name, i, e))
        if path is None:
            continue
        if protected is not None:
            check_path(path, protected, "profile %r field paths[%d] (%s)" % (name, i, template), system=system)
        result.append(ResolvedPath(name, path, context.user.name, template, context.source))
    return result


def describe_context(context):
    """Where a context's values come from, for messages: 'environment of process 42 (user bob)'."""
    if context.source == "default":
        return "defaults of user %s" % context.user.name
    if context.source == "env":
        return "the module's environment (user %s)" % context.user.name
    if context.source.startswith("file:"):
        return "%s (user %s)" % (context.source[len("file:"):], context.user.name)
    return "environment of %s (user %s)" % (context.source, context.user.name)


def resolve_all(profiles, users, contexts, problems=None, system=None):
    """Every profile's path residues in every context, de-duplicated by (profile, path), in order.

    Each path is checked against the protected set of its own context's user (protected_paths(user=...)).
    A profile path refused in a user's default context by the defaults alone (no environment) is a bad
    profile: ProfileError, before anything happens. Refused in an environment context, or in a default context
    only because the user's own environment protects it (her TMPDIR set to her own residue), it is that
    environment's doing: that path is left out and described in problems, and the rest goes on (a user must
    not be able to fail every purge of the host). So is a path that leads through a symlink its owner could
    have made (_paths.canonical: a user's ~/.config -> /etc makes {user_config}/x name nothing), whatever the
    context."""
    posix = (system or _platform.current().system) != "Windows"
    protected, seen, result = {}, set(), []
    unguarded = []  # the protected set without any environment, made when first needed
    for name in sorted(profiles):
        for context in contexts:
            key = (context.user.name, context.user.uid)
            if key not in protected:
                protected[key] = protected_paths(users, contexts, system, user=context.user)
            for r in resolve_paths(name, profiles[name], context, None, system):
                field = "profile %r field paths[%d] (%s)" % (name, profiles[name]["paths"].index(r.template),
                                                             r.template)
                try:
                    check_path(r.path, protected[key], field, system=system)
                    if posix:
                        _paths.canonical(r.path, field)
                except ProfileError as exc:
                    message = str(exc)
                    if context.source == "default":
                        if not unguarded:
                            unguarded.append(protected_paths(users, (), system))
                        check_path(r.path, unguarded[0], field, system=system)  # a bad profile: raises
                        message += ", by the environment of user %s" % context.user.name
                    if problems is not None:
                        problems.append(printable("%s: %s; left out" % (describe_context(context), message)))
                    continue
                except _paths.PathRefused as exc:  # a symlink a user made on the way (~/.config -> /etc)
                    if problems is not None:
                        problems.append(printable("%s: %s; left out" % (describe_context(context), exc)))
                    continue
                if (name, r.path) not in seen:
                    seen.add((name, r.path))
                    result.append(r)
    return result


def _describe_source(context_source, variable):
    """'default', 'env HF_HOME', 'process 42 (HF_HOME)', 'file /etc/environment (HF_HOME)'."""
    if variable is None:
        return "default"
    if context_source == "env":
        return "env " + variable
    if context_source.startswith("file:"):
        return "file %s (%s)" % (context_source[len("file:"):], variable)
    return "%s (%s)" % (context_source, variable)


def hub_cache_locations(context, system=None):
    """(path, source) of the HF hub caches one context implies, in huggingface_hub's order, plus the legacy one."""
    values = placeholder_values(context.user, context.environ, system)
    pm = ntpath if (system or _platform.current().system) == "Windows" else posixpath
    env = context.environ
    variable = next((v for v in ("HF_HUB_CACHE", "HUGGINGFACE_HUB_CACHE", "HF_HOME", "XDG_CACHE_HOME")
                     if _env_path(env, v, context.user.home, pm)), None)
    found = [(values["hf_hub_cache"], _describe_source(context.source, variable))]
    legacy = _env_path(env, "TRANSFORMERS_CACHE", context.user.home, pm)
    if legacy:
        found.append((legacy, _describe_source(context.source, "TRANSFORMERS_CACHE")))
    return found


# ---------------------------------------------------------------- protection

def _same_user(a, b):
    return a.name == b.name and a.uid == b.uid


def protected_paths(users, contexts=(), system=None, user=None):
    """Paths never removed as a whole: system dirs, homes and their shared dot-dirs, the HF homes and hub caches.

    With user, only that user's own environment contexts add locations (the set that user's paths are
    checked against): one user's environment never protects, or blocks, another user's residue."""
    system = system or _platform.current().system
    windows = system == "Windows"
    pm = ntpath if windows else posixpath
    protected = set(pm.normpath(p) for p in (_WINDOWS_PROTECTED if windows else _SYSTEM_PROTECTED))
    for u in users:
        for rel in _HOME_PROTECTED:
            protected.add(pm.normpath(pm.join(u.home, rel)) if rel else pm.normpath(u.home))
    if user is not None:
        contexts = [c for c in contexts if _same_user(c.user, user)]
    for context in list(contexts) + [EnvContext(u, {}, "default") for u in users]:
        values = placeholder_values(context.user, context.environ, system)
        for key in ("home", "user_cache", "user_config", "user_data", "hf_home", "hf_hub_cache", "tmp"):
            protected.add(values[key])
    if not windows:  # posixpath.normpath keeps a leading '//'
        protected = set("/" + p.lstrip("/") if p.startswith("//") else p for p in protected)
    protected = ProtectedPaths(protected)
    protected.memo = _identity_memo(users)
    return protected


def check_path(path, protected, field="paths", system=None):
    """Refuse paths that are empty, relative, contain '..' or globs, are a root, protected, or hold a protected one.

    Returns the normalised path.  On Windows an absolute path has a drive and its root or is a UNC share
    (//server/share/...); the root of either is refused, and protected paths compare without regard to case.
    """
    pm = ntpath if (system or _platform.current().system) == "Windows" else posixpath
    if not isinstance(path, str) or not path.strip():
        raise ProfileError("%s: an empty path is refused" % field)
    if path.startswith("~"):
        raise ProfileError("%s: %r: '~' is not expanded here; give an absolute path" % (field, path))
    if not _isabs(path, pm):
        raise ProfileError("%s: %r is not an absolute path%s" % (
            field, path, " (a drive and its root, C:\\..., or a share, \\\\server\\share\\...)" if pm is ntpath else ""))
    if ".." in re.split(r"[/\\]", path):
        raise ProfileError("%s: %r must not contain '..'" % (field, path))
    if _GLOB_CHARS.search(path):
        raise ProfileError("%s: %r contains glob characters; name one residue per path" % (field, path))
    norm = pm.normpath(path)
    if pm is posixpath:
        norm = "/" + norm.lstrip("/")  # normpath keeps a leading '//' ('//etc' is '/etc')
    if norm in (pm.sep, "//") or (pm is ntpath and _WINDOWS_ROOT.match(norm)):
        raise ProfileError("%s: %r is the root of a filesystem" % (field, path))
    same = pm.normcase  # Windows: C:\Windows and c:\WINDOWS are one directory
    guarded = set(same(p) for p in protected)
    if same(norm) in guarded:
        raise ProfileError("%s: %r is a protected directory" % (field, norm))
    # Removing an ancestor of a protected directory (a home, a shared cache) would remove that directory too.
    prefix = same(norm.rstrip(pm.sep) + pm.sep)
    inside = sorted(p for p in protected if same(p).startswith(prefix))
    if inside:
        raise ProfileError("%s: %r contains the protected directory %s" % (field, norm, inside[0]))
    if pm is posixpath and os.name == "posix":  # identities are this host's
        _check_identity(norm, protected, field)
    return norm


def _check_identity(norm, protected, field):
    """By identity (st_dev, st_ino): no bind mount, root-owned symlink or second spelling of a protected
    directory (or of one of its ancestors) passes."""
    index = protected.identities() if isinstance(protected, ProtectedPaths) else _paths.identities(protected)
    hit = _paths.protected_identity(norm, index)
    if hit is None:
        return
    where, itself = hit
    if itself:
        raise ProfileError("%s: %r is the protected directory %s under another name (same device and inode)"
                           % (field, norm, where))
    raise ProfileError("%s: %r contains the protected directory %s (it is one of its parents under another name)"
                       % (field, norm, where))
