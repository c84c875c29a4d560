# -*- coding: utf-8 -*-
# Copyright: residue.purge contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Python environments on a host, their installed distributions, and dependency-safe removal plans.

Finding environments and reading their distributions only reads files (no interpreter runs), so it is fast and
works for broken environments. Markers are evaluated, and packages removed, by each environment's own interpreter
and pip (the only ones that know that environment's platform, and RECORD-based uninstall for it).
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import errno
import glob
import json
import os
import re
import stat
import subprocess
from collections import namedtuple

from ansible_collections.residue.purge.plugins.module_utils import _paths, _privileges, _profiles
from ansible_collections.residue.purge.plugins.module_utils._profiles import owner_name
from ansible_collections.residue.purge.plugins.module_utils._text import error_text

try:
    import pwd
except ImportError:  # Windows
    pwd = None

PyEnv = namedtuple("PyEnv", "path python kind user site_dirs externally_managed")
# requested: installed on request (REQUESTED marker); egg-info has no such marker and counts as requested.
# installer: contents of INSTALLER ("pip", "conda", "debian", ...; "" when unknown). extras: Provides-Extra.
Dist = namedtuple("Dist", "name version requested requires location installer extras meta")
Dist.__new__.__defaults__ = ("", (), "")  # meta: the .dist-info/.egg-info entry in location ("" when unknown)
# One requirement of a distribution as the environment's interpreter sees it: base is True when it applies
# without extras; when_extras lists the extras of the requiring distribution that turn it on.
Requirement = namedtuple("Requirement", "name extras base when_extras")
RemovalPlan = namedtuple("RemovalPlan", "remove orphans kept_shared kept not_installed")

# Never removed as orphans (only when named): the tools that install and remove everything else.
PROTECTED_DISTRIBUTIONS = frozenset(("pip", "setuptools", "wheel"))
# Orphans are removed only when pip-like tools installed them; a package manager's files stay its business.
ORPHAN_INSTALLERS = frozenset(("pip", "uv"))

_SYSTEM_BIN_DIRS = ("/usr/bin", "/usr/local/bin", "/opt/homebrew/bin", "/opt/local/bin")
# macOS framework builds, found even without their /usr/local/bin links: python.org's installer, the Command Line
# Tools' and Xcode's python3 (what /usr/bin/python3, a shim, runs). Homebrew's and pyenv's are found through
# /opt/homebrew/bin, /usr/local/bin and ~/.pyenv/versions.
_FRAMEWORK_BIN_GLOBS = (
    "Library/Frameworks/Python.framework/Versions/3.*/bin",
    "Library/Developer/CommandLineTools/Library/Frameworks/Python3.framework/Versions/3.*/bin",
    "Applications/Xcode.app/Contents/Developer/Library/Frameworks/Python3.framework/Versions/3.*/bin",
)
_INTERPRETER_NAME = re.compile(r"^python3(\.\d+)?$")
_LIB_VERSION = re.compile(r"^python(3\.\d+)$")
# Directories that never hold an environment, skipped by the search walk (some hold millions of files):
# by name anywhere, Hugging Face repo dirs by prefix, kernel file systems by path.
_PRUNE_NAMES = frozenset(("site-packages", "dist-packages", "node_modules", ".git", "__pycache__", "pkgs"))
_PRUNE_PREFIXES = ("models--", "datasets--", "spaces--")
_PRUNE_PATHS = frozenset(("/proc", "/sys", "/dev", "/run"))
_PIP_ENV_VARS = re.compile(r"^(PIP_|PYTHON(PATH|HOME|STARTUP|USERBASE|NOUSERSITE|SAFEPATH|EXECUTABLE)$)")


class EnvError(Exception):
    """An environment cannot be used (broken interpreter, no pip, no packaging)."""


# ---------------------------------------------------------------- names and metadata

def normalize_name(name):
    """PEP 503 normalised distribution name: runs of -, _ and . become one -, lower case."""
    return re.sub(r"[-_.]+", "-", name.strip()).lower()


def _owner_of(path):
    return owner_name(path, follow_symlinks=True) or ""


_READ_LIMIT = 4 << 20  # metadata files are small; a larger one is read this far only


def _open_regular(path):
    """A metadata file opened for reading: never blocks (O_NONBLOCK: a FIFO planted as METADATA would hang the
    run), only a regular file (a device such as /dev/zero would never end). OSError otherwise."""
    fd = os.open(path, os.O_RDONLY | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_NOCTTY", 0)
                 | getattr(os, "O_CLOEXEC", 0))
    try:
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            raise OSError(errno.EINVAL, "%s is not a regular file" % path)
    except OSError:
        os.close(fd)
        raise
    return os.fdopen(fd, "rb")


def _read_headers(path):
    """The header block of a METADATA/PKG-INFO file, as (key, value) pairs (continuation lines joined)."""
    headers = []
    with _open_regular(path) as f:
        for raw in f.read(_READ_LIMIT).splitlines(True):
            line = raw.decode("utf-8", "replace").rstrip("\r\n")
            if not line:
                break  # the long description follows; it can be large and is not needed
            if line[0] in " \t" and headers:
                headers[-1] = (headers[-1][0], headers[-1][1] + " " + line.strip())
            elif ":" in line:
                key, value = line.split(":", 1)
                headers.append((key.strip().lower(), value.strip()))
    return headers


def _read_text(path):
    try:
        with _open_regular(path) as f:
            return f.read(_READ_LIMIT).decode("utf-8", "replace")
    except (IOError, OSError):
        return None


def egg_requires_to_requirements(text):
    """setuptools' requires.txt ("[extra:marker]" sections) as PEP 508 requirement strings."""
    result, section = [], ""
    for line in text.splitlines():
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        if line.startswith("[") and line.endswith("]"):
            section = line[1:-1].strip()
            continue
        extra, _sep, marker = section.partition(":")
        conditions = []
        if marker.strip():
            conditions.append("(%s)" % marker.strip())
        if extra.strip():
            conditions.append('extra == "%s"' % extra.strip())
        result.append(line + ("; " + " and ".join(conditions) if conditions else ""))
    return result


def _fields(headers):
    """(name, version, Requires-Dist values, Provides-Extra values) of METADATA or PKG-INFO headers: the first
    name and version count."""
    name = version = None
    requires, extras = [], []
    for key, value in headers:
        if key == "name" and name is None:
            name = value
        elif key == "version" and version is None:
            version = value
        elif key == "requires-dist":
            requires.append(value)
        elif key == "provides-extra":
            extras.append(value)
    return name, version, requires, extras


def _dist(site_dir, entry, suffix, name, version, requested, requires, installer, extras):
    """The Dist of metadata entry (<name>-<version><suffix>): named by its metadata, else by the entry's name."""
    fallback = entry[:-len(suffix)].split("-")
    return Dist(normalize_name(name or fallback[0]), version or (fallback[1] if len(fallback) > 1 else ""),
                requested, requires, site_dir, installer, tuple(extras), entry)


def _dist_from_dist_info(site_dir, entry):
    base = os.path.join(site_dir, entry)
    name, version, requires, extras = _fields(_read_headers(os.path.join(base, "METADATA")))
    installer = (_read_text(os.path.join(base, "INSTALLER")) or "").strip().lower()
    return _dist(site_dir, entry, ".dist-info", name, version, os.path.exists(os.path.join(base, "REQUESTED")),
                 requires, installer, extras)


def _dist_from_egg_info(site_dir, entry):
    base = os.path.join(site_dir, entry)
    is_dir = os.path.isdir(base)
    name, version, _requires_dist, extras = _fields(_read_headers(os.path.join(base, "PKG-INFO") if is_dir else base))
    requires = []
    if is_dir:
        text = _read_text(os.path.join(base, "requires.txt"))
        requires = egg_requires_to_requirements(text) if text else []
    # egg-info records no REQUESTED marker: unknown counts as requested, so it is never removed as an orphan.
    return _dist(site_dir, entry, ".egg-info", name, version, True, requires, "", extras)


def installed_distributions(env):
    """Distributions installed in env's site dirs, read from their metadata (the interpreter is not run).

    The first site dir that has a distribution wins, as on sys.path; unreadable metadata is skipped.
    """
    found = {}
    for site_dir in env.site_dirs:
        try:
            entries = sorted(os.listdir(site_dir))
        except OSError:
            continue
        for entry in entries:
            try:
                if entry.endswith(".dist-info") and os.path.isdir(os.path.join(site_dir, entry)):
                    dist = _dist_from_dist_info(site_dir, entry)
                elif entry.endswith(".egg-info"):
                    dist = _dist_from_egg_info(site_dir, entry)
                else:
                    continue
            except (IOError, OSError):
                continue
            found.setdefault(dist.name, dist)
    return [found[name] for name in sorted(found)]


# ---------------------------------------------------------------- finding environments

def _python_versions(prefix):
    """X.Y versions that have a lib/pythonX.Y directory under prefix."""
    versions = []
    for lib in ("lib", "lib64"):
        try:
            names = os.listdir(os.path.join(prefix, lib))
        except OSError:
            continue
        for name in names:
            m = _LIB_VERSION.match(name)
            if m and m.group(1) not in versions:
                versions.append(m.group(1))
    return sorted(versions, key=lambda v: tuple(int(p) for p in v.split(".")))


def _existing_unique(paths):
    result, seen = [], set()
    for path in paths:
        real = os.path.realpath(path)
        if os.path.isdir(path) and real not in seen:
            seen.add(real)
            result.append(path)
    return result


def _externally_managed(prefix, version):
    return any(os.path.exists(os.path.join(prefix, lib, "python" + version, "EXTERNALLY-MANAGED"))
               for lib in ("lib", "lib64"))


def _system_site_dirs(prefix, version):
    """Site dirs of a system interpreter, in sys.path order (Debian's dist-packages, Fedora's /usr/local)."""
    py = "python" + version
    candidates = []
    if prefix == "/usr":
        candidates += ["/usr/local/lib/%s/dist-packages" % py,
                       "/usr/local/lib64/%s/site-packages" % py, "/usr/local/lib/%s/site-packages" % py,
                       "/usr/lib/python3/dist-packages", "/usr/lib/%s/dist-packages" % py]
    candidates += [os.path.join(prefix, "lib64", py, "site-packages"), os.path.join(prefix, "lib", py, "site-packages")]
    return _existing_unique(candidates)


def _interpreter_in(prefix, names=("python3", "python")):
    for name in names:
        path = os.path.join(prefix, "bin", name)
        if os.path.lexists(path):
            return path
    return None


def _prefix_site_dirs(prefix):
    return _existing_unique(os.path.join(prefix, lib, "python" + v, "site-packages")
                            for v in _python_versions(prefix) for lib in ("lib", "lib64"))


def environment_at(path):
    """The environment whose prefix directory is path (venv, conda or standalone interpreter), or None."""
    if os.path.isfile(os.path.join(path, "pyvenv.cfg")):
        return PyEnv(path, _interpreter_in(path), "venv", _owner_of(path), _prefix_site_dirs(path), False)
    if os.path.isdir(os.path.join(path, "conda-meta")):
        versions = _python_versions(path)
        managed = any(_externally_managed(path, v) for v in versions)
        return PyEnv(path, _interpreter_in(path), "conda", _owner_of(path), _prefix_site_dirs(path), managed)
    versions = [v for v in _python_versions(path)
                if any(os.path.isfile(os.path.join(path, lib, "python" + v, "os.py")) for lib in ("lib", "lib64"))]
    python = _interpreter_in(path, ["python" + v for v in reversed(versions)] + ["python3"])
    if versions and python:
        version = versions[-1]
        return PyEnv(path, python, "system", _owner_of(path), _system_site_dirs(path, version),
                     _externally_managed(path, version))
    return None


def framework_bin_dirs(root="/"):
    """The bin directories of the macOS Python framework builds under root, newest version first."""
    found = []
    for pattern in _FRAMEWORK_BIN_GLOBS:
        found.extend(sorted(glob.glob(os.path.join(glob.escape(root), pattern)),
                            key=lambda p: tuple(int(x) for x in re.findall(r"[0-9]+", p.split("/Versions/")[-1])),
                            reverse=True))
    return [d for d in found if not os.path.islink(os.path.dirname(d))]  # Versions/Current is a link


def system_interpreters(bin_dirs=None):
    """One PyEnv per distinct python3 interpreter in the system bin dirs (symlinks to the same file merged);
    default: the usual bin dirs and the macOS framework builds' (framework_bin_dirs)."""
    if bin_dirs is None:
        bin_dirs = _SYSTEM_BIN_DIRS + tuple(framework_bin_dirs())
    envs, seen = [], set()
    for bin_dir in bin_dirs:
        try:
            names = sorted(os.listdir(bin_dir), key=lambda n: (len(n), n), reverse=True)
        except OSError:
            continue
        for name in names:
            path = os.path.join(bin_dir, name)
            if not _INTERPRETER_NAME.match(name) or not os.path.isfile(path) or not os.access(path, os.X_OK):
                continue
            real = os.path.realpath(path)
            if real in seen:
                continue
            seen.add(real)
            prefix = os.path.dirname(os.path.dirname(real))
            if os.path.isfile(os.path.join(prefix, "pyvenv.cfg")):
                continue  # a venv's interpreter linked into a bin dir: found as a venv
            m = re.match(r"^python(3\.\d+)$", os.path.basename(real))
            versions = [m.group(1)] if m else _python_versions(prefix)
            if not versions:
                continue
            version = versions[-1]
            envs.append(PyEnv(prefix, path, "system", _owner_of(real), _system_site_dirs(prefix, version),
                              _externally_managed(prefix, version)))
    return envs


class _HomeIndex(object):
    """Whose home holds a path, for environment_user and find_environments: _privileges.HomeIndex of every
    passwd user (never only the users of the run: a root-owned venv in bob's home is bob's, and runs as bob, in a
    run scoped to alice too) and of the run's own users (the owners of its homes). Built once per run (see
    one_home_index): listing the users reads the passwd database (dscl on macOS) and stats every home."""

    def __init__(self, users=()):
        try:
            known = list(_profiles.list_users())
        except (_profiles.ProfileError, OSError):
            known = []
        homes = set(u.home for u in known)
        known.extend(u for u in users if getattr(u, "uid", None) is not None and u.home not in homes)
        self.index = _privileges.HomeIndex(known)
        self.paths = dict((home, user) for home, _key, user in self.index.homes)
        self.inodes = {}
        for _home, key, user in self.index.homes:
            if key is not None:
                self.inodes.setdefault(key[1], []).append((key[0], user))

    def owner(self, path):
        return self.index.owner(path)

    def home_of(self, entry):
        """The user whose home the directory entry (os.DirEntry, not followed) is, by path or identity."""
        user = self.paths.get(entry.path)
        if user is not None or entry.inode() not in self.inodes:
            return user
        dev = entry.stat(follow_symlinks=False).st_dev
        for home_dev, user in self.inodes[entry.inode()]:
            if home_dev == dev:
                return user
        return None


_RUN_INDEX = []  # [[users, _HomeIndex or None]] of the runs in progress (one_home_index)


class one_home_index(object):
    """with one_home_index(users): the whole block (pip_remove's run, discover's package inventory) asks one
    _HomeIndex, built on first use; outside such a block every question builds its own."""

    def __init__(self, users=()):
        self.users = list(users or [])

    def __enter__(self):
        _RUN_INDEX.append([self.users, None])
        return self

    def __exit__(self, *exc):
        _RUN_INDEX.pop()
        return False


def _home_index():
    if not _RUN_INDEX:
        return _HomeIndex()
    run = _RUN_INDEX[-1]
    if run[1] is None:
        run[1] = _HomeIndex(run[0])
    return run[1]


def search_environments(roots, max_depth=4, handoff=None):
    """venvs (pyvenv.cfg), conda envs (conda-meta) and standalone interpreters under roots, without following
    symlinks and without descending into environments (except a conda base's envs/).

    Each directory is listed once; only one whose listing shows an environment marker is looked at further.
    roots: paths, or (path, depth) pairs (a walk handed over from another one, at its depth). handoff: a list
    that makes the walk leave every user's home to that user (find_environments): a directory below a root that is
    a home of the run's _HomeIndex is not listed here but appended as (user, path, depth)."""
    found = []
    stack = [(os.path.abspath(root), 0) if isinstance(root, str) else (os.path.abspath(root[0]), root[1])
             for root in reversed(list(roots))]
    homes = _home_index() if handoff is not None else None
    while stack:
        path, depth = stack.pop()
        try:
            with os.scandir(path) as it:
                entries = list(it)
        except OSError:
            continue
        names = set(e.name for e in entries)
        env = None
        if "pyvenv.cfg" in names or "conda-meta" in names or ("bin" in names and "lib" in names):
            env = environment_at(path)
        if env is not None:
            found.append(env)
            if env.kind == "conda" and depth < max_depth and "envs" in names:
                envs_dir = os.path.join(path, "envs")
                if os.path.isdir(envs_dir) and not os.path.islink(envs_dir):
                    stack.append((envs_dir, depth + 1))
            continue
        if depth >= max_depth:
            continue
        subdirs = []
        for entry in entries:
            try:
                if (entry.name in _PRUNE_NAMES or entry.name.startswith(_PRUNE_PREFIXES)
                        or entry.path in _PRUNE_PATHS):
                    continue
                if entry.is_dir(follow_symlinks=False):
                    user = homes.home_of(entry) if homes is not None else None
                    if user is not None:
                        handoff.append((user, entry.path, depth + 1))
                    else:
                        subdirs.append(entry.path)
            except OSError:
                continue
        stack.extend((sub, depth + 1) for sub in sorted(subdirs, reverse=True))
    return found


# Where per-user tools keep environments: cheap to look at even when no search root covers the home.
_USER_ENV_DIRS = (".virtualenvs", ".local/share/virtualenvs", ".pyenv/versions", ".conda/envs",
                  ".cache/pypoetry/virtualenvs", "miniconda3", "anaconda3", "miniforge3", "mambaforge")


def _python_version(python):
    """X.Y of an interpreter, from the name of the file it really is (python3.11), or None."""
    m = re.search(r"python(3\.\d+)$", os.path.realpath(python or ""))
    return m.group(1) if m else None


def _user_sites(home):
    """[(base, version, site dir)] of the user-site installs in home: ~/.local/lib/pythonX.Y/site-packages and
    ~/Library/Python/X.Y/lib/python/site-packages."""
    found = []
    base = os.path.join(home, ".local")
    for site in sorted(glob.glob(os.path.join(glob.escape(base), "lib", "python3.*", "site-packages"))):
        found.append((base, os.path.basename(os.path.dirname(site))[len("python"):], site))
    for site in sorted(glob.glob(os.path.join(glob.escape(home), "Library", "Python", "3.*", "lib", "python",
                                              "site-packages"))):
        found.append((os.path.dirname(os.path.dirname(os.path.dirname(site))), site.split(os.sep)[-4], site))
    return found


def _versions(interpreters):
    """{X.Y: interpreter}, the first interpreter of each version."""
    by_version = {}
    for env in interpreters:
        version = _python_version(env.python)
        if version:
            by_version.setdefault(version, env.python)
    return by_version


def user_site_environments(user, interpreters):
    """The user-site installs (~/.local/lib/pythonX.Y/site-packages, ~/Library/Python/X.Y) of one user.

    python is a system interpreter of the same version (the one that uses that user site), or None.
    """
    by_version = _versions(interpreters)
    return [PyEnv(base, by_version.get(version), "user-site", user.name, [site], False)
            for base, version, site in _user_sites(user.home)]


def default_search_roots(users):
    """Where environments are looked for when no roots are given: the users' homes, /opt and /srv."""
    return [u.home for u in users] + ["/opt", "/srv"]


def _env_key(env):
    """What makes two environments the same (unique_environments): the real prefix and site dirs."""
    return (os.path.realpath(env.path), tuple(os.path.realpath(s) for s in env.site_dirs))


def _env_row(env):
    """env as plain data (it crosses from the child that found it), with its _env_key and, for a standalone
    interpreter, its version, both read there."""
    return [env.path, env.python, env.kind, env.user, list(env.site_dirs), env.externally_managed,
            [_env_key(env)[0], list(_env_key(env)[1])], _python_version(env.python) if env.kind == "system" else None]


def _env_of_row(row):
    return PyEnv(row[0], row[1], row[2], row[3], list(row[4]), row[5]), (row[6][0], tuple(row[6][1])), row[7]


def _search_home(walks, home, user_dirs, max_depth):
    """In the process acting as a home's user (find_environments): [rows of each walk (path, depth)], and when
    user_dirs the rows found in the home's usual environment dirs (_USER_ENV_DIRS) and its user sites
    [(base, version, site, key)]. Plain data."""
    found = [[_env_row(e) for e in search_environments([walk], max_depth)] for walk in walks]
    dirs, sites = [], []
    if user_dirs:
        roots = [os.path.join(home, d) for d in _USER_ENV_DIRS if os.path.isdir(os.path.join(home, d))]
        dirs = [_env_row(e) for e in search_environments(roots, max_depth)]
        sites = [[base, version, site, [os.path.realpath(base), [os.path.realpath(site)]]]
                 for base, version, site in _user_sites(home)]
    return {"walks": found, "dirs": dirs, "sites": sites}


def find_environments(search_roots=(), users=None, include_system=True, max_depth=4, problems=None):
    """Every Python environment found: system interpreters, venvs/conda envs under search_roots and in the
    users' usual places, and each user's user-site installs. users: objects with .name and .home.

    A user's home is listed with that user's rights (docs/trust.md): when we are root, every walk into a home of
    the run's _HomeIndex (a search root in a home, a home met below a root, the users' usual environment dirs
    and user sites) is done by one child per user that dropped to them, so root never lists what the user
    could not. A child that fails leaves that user's environments out, named in problems (a list)."""
    users = list(users or [])
    interpreters = system_interpreters()
    homes = _home_index()
    acting = {}  # uid -> [user, [walks], user dirs and sites too]

    def act(user):
        if user.uid not in acting:
            acting[user.uid] = [user, [], False]
        return acting[user.uid]

    order = []  # ('root', [envs]) or ('walk', uid, index): the root's walks and the users' in the roots' order
    for root in search_roots:
        user = homes.owner(root)
        if user is not None and _privileges.acts_for(user):
            walks = act(user)[1]
            walks.append((root, 0))
            order.append(("walk", user.uid, len(walks) - 1))
            continue
        handed = []
        order.append(("root", search_environments([root], max_depth, handoff=handed)))
        for user, path, depth in handed:
            if not _privileges.acts_for(user):
                order.append(("root", search_environments([(path, depth)], max_depth)))
                continue
            walks = act(user)[1]
            walks.append((path, depth))
            order.append(("walk", user.uid, len(walks) - 1))
    mine = []  # users whose usual dirs and user sites are read here (root's, or we are not root)
    for user in users:
        if getattr(user, "uid", None) is not None and _privileges.acts_for(user):
            act(user)[2] = True
            order.append(("dirs", user.uid))
        else:
            mine.append(user)
            order.append(("mine", user))
    answers = {}
    for uid, (user, walks, user_dirs) in acting.items():
        try:
            answers[uid] = _privileges.call_as(user, _search_home, walks, user.home, user_dirs, max_depth)
        except (_privileges.ChildFailed, _privileges.NotReachable) as exc:
            if problems is not None:
                problems.append("Python environments in the home of %s are not listed: %s" % (user.name, exc))
    envs, keys, versions = [], [], []  # versions: a standalone interpreter's as its user's child read it
    sites = []  # (user, base, version, site, key) in order
    here = object()  # read here (root's own, or we are not root)

    def add(rows):
        for row in rows:
            env, key, version = _env_of_row(row)
            envs.append(env)
            keys.append(key)
            versions.append(version)

    def add_here(found):
        envs.extend(found)
        keys.extend(_env_key(e) for e in found)
        versions.extend([here] * len(found))

    for item in order:
        if item[0] == "root":
            add_here(item[1])
        elif item[0] == "walk" and item[1] in answers:
            add(answers[item[1]]["walks"][item[2]])
        elif item[0] == "dirs" and item[1] in answers:
            add(answers[item[1]]["dirs"])
            user = acting[item[1]][0]
            sites.extend((user, b, v, s, (k[0], tuple(k[1]))) for b, v, s, k in answers[item[1]]["sites"])
        elif item[0] == "mine":
            roots = [os.path.join(item[1].home, d) for d in _USER_ENV_DIRS
                     if os.path.isdir(os.path.join(item[1].home, d))]
            add_here(search_environments(roots, max_depth=max_depth))
            sites.extend((item[1], b, v, s, None) for b, v, s in _user_sites(item[1].home))
    # a user site of a version only a standalone interpreter has (pyenv, /opt/python3.X) is used with that one
    by_version = _versions(interpreters)
    for env, version in zip(envs, versions):
        if env.kind == "system" and env.python:
            version = _python_version(env.python) if version is here else version
            if version:
                by_version.setdefault(version, env.python)
    result = list(interpreters) if include_system else []
    result_keys = [_env_key(e) for e in result]
    result.extend(envs)
    result_keys.extend(keys)
    for user, base, version, site, key in sites:
        env = PyEnv(base, by_version.get(version), "user-site", user.name, [site], False)
        result.append(env)
        result_keys.append(key or _env_key(env))
    return unique_environments(result, result_keys)


def unique_environments(envs, keys=None):
    """envs without repeats (the same prefix and site dirs reached by two names). keys: their _env_key, when
    already read (by the child that found a user's environments)."""
    unique, seen = [], set()
    for i, env in enumerate(envs):
        key = keys[i] if keys is not None else _env_key(env)
        if key not in seen:
            seen.add(key)
            unique.append(env)
    return unique


def resolve_environment(path, interpreters=None):
    """An environment named by the user: an interpreter (bin/python...) or an environment directory."""
    if not os.path.isabs(path):
        raise ValueError("environments: %r is not an absolute path" % (path,))
    if os.path.isdir(path):
        env = environment_at(path)
        if env is not None:
            return env
        sites = sorted(glob.glob(os.path.join(glob.escape(path), "lib", "python3.*", "site-packages")))
        if sites:  # a user base (~/.local): site-packages without an interpreter of its own (bin/ holds scripts)
            owner = _owner_of(path)
            envs = user_site_environments(_HomeOf(owner, os.path.dirname(path)),
                                          interpreters if interpreters is not None else system_interpreters())
            envs = [e for e in envs if e.path == path]
            if envs:
                return envs[0]
        raise ValueError("environments: %s is not a Python environment (no pyvenv.cfg, conda-meta, "
                         "interpreter or lib/python3.X/site-packages)" % path)
    if os.path.lexists(path):
        prefix = os.path.dirname(os.path.dirname(path))
        env = environment_at(prefix) if os.path.basename(os.path.dirname(path)) == "bin" else None
        if env is not None and env.kind in ("venv", "conda"):
            return env._replace(python=path)
        if not os.path.exists(path):
            raise ValueError("environments: %s is a broken link" % path)
        real = os.path.realpath(path)
        prefix = os.path.dirname(os.path.dirname(real))
        m = re.match(r"^python(3\.\d+)$", os.path.basename(real))
        versions = [m.group(1)] if m else _python_versions(prefix)
        if not versions:
            raise ValueError("environments: %s is not a Python 3 interpreter" % path)
        return PyEnv(prefix, path, "system", _owner_of(real), _system_site_dirs(prefix, versions[-1]),
                     _externally_managed(prefix, versions[-1]))
    raise ValueError("environments: %s does not exist" % path)


_HomeOf = namedtuple("_HomeOf", "name home")


def _resolved_row(path):
    """resolve_environment(path) as plain data (in the child acting as the home's user): ['ok', row] or
    ['refused', the ValueError's text]."""
    try:
        return ["ok", _env_row(resolve_environment(path))]
    except ValueError as exc:
        return ["refused", str(exc)]


def resolve_environment_as_owner(path):
    """resolve_environment(path), looked at with the rights of the user whose home holds path (the run's
    _HomeIndex) when we are root: an environment given in a home is recognised as its user sees it, as a
    searched one is (find_environments). ValueError as resolve_environment's, or when that child failed."""
    user = _home_index().owner(path) if isinstance(path, str) and os.path.isabs(path) else None
    if user is None or not _privileges.acts_for(user):
        return resolve_environment(path)
    try:
        kind, value = _privileges.call_as(user, _resolved_row, path)
    except (_privileges.ChildFailed, _privileges.NotReachable) as exc:
        raise ValueError("environments: %s is not read: %s" % (path, exc))
    if kind != "ok":
        raise ValueError(value)
    return _env_of_row(value)[0]


# ---------------------------------------------------------------- dependency graph and plan

def dependency_edges(dists, evaluated):
    """{name: set of installed names it requires}, markers as evaluated in the environment.

    Extras: pip does not record which extras a requested distribution was installed with, so an extra of a
    requested distribution counts when everything it requires is installed (as after `pip install x[extra]`);
    other distributions get the extras their requirers ask for.
    """
    by_name = dict((d.name, d) for d in dists)
    active_extras = dict((d.name, _installed_extras(d, evaluated.get(d.name, ()), by_name) if d.requested
                          else set()) for d in dists)
    changed = True
    while changed:
        changed = False
        for name in by_name:
            for req in evaluated.get(name, ()):
                if req.name not in by_name or not (req.base or active_extras[name] & set(req.when_extras)):
                    continue
                new = set(req.extras) - active_extras[req.name]
                if new:
                    active_extras[req.name] |= new
                    changed = True
    edges = {}
    for name in by_name:
        edges[name] = set(req.name for req in evaluated.get(name, ())
                          if req.name in by_name and req.name != name
                          and (req.base or active_extras[name] & set(req.when_extras)))
    return edges


def _installed_extras(dist, requirements, installed):
    extras = set()
    for extra in dist.extras:
        needs = [r.name for r in requirements if not r.base and extra in r.when_extras]
        if needs and all(n in installed for n in needs):
            extras.add(extra)
    return extras


def _required_by(edges):
    reverse = dict((name, set()) for name in edges)
    for name, deps in edges.items():
        for dep in deps:
            reverse.setdefault(dep, set()).add(name)
    return reverse


def _entry(dist, **extra):
    item = dict(name=dist.name, version=dist.version)
    item.update(extra)
    return item


def plan_removal(dists, edges, packages, keep=(), orphans=False, remove_required=False):
    """What to remove from one environment. Pure: dists and edges describe it (see dependency_edges).

    remove: the named packages that are installed and that no remaining distribution requires (all named
    ones with remove_required). orphans: dependencies that nothing remaining requires, not requested, not kept,
    not pip/setuptools/wheel, installed by pip or uv. kept_shared: dependencies of removed packages (and named
    packages) still required, with required_by. kept: other dependencies left in place, with the reason.
    """
    by_name = dict((d.name, d) for d in dists)
    wanted = [normalize_name(p) for p in packages]
    keep = set(normalize_name(k) for k in keep)
    required_by = _required_by(edges)
    not_installed = sorted(set(n for n in wanted if n not in by_name))
    remove = set(n for n in wanted if n in by_name and n not in keep)
    named = set(wanted)

    if not remove_required:
        # greatest set whose members are required only by members (so A and its named dependent go together)
        changed = True
        while changed:
            changed = False
            for name in sorted(remove):
                if required_by.get(name, set()) - remove:
                    remove.discard(name)
                    changed = True

    def keep_reason(name):
        dist = by_name[name]
        if name in keep:
            return "keep"
        if name in PROTECTED_DISTRIBUTIONS and name not in named:
            return "protected"
        if dist.requested:
            return "requested"
        if dist.installer not in ORPHAN_INSTALLERS:
            return "installed by %s" % (dist.installer or "an unknown installer")
        return None

    orphan_set = set()
    if orphans:
        stack, reach = list(remove), set()
        while stack:
            for dep in edges.get(stack.pop(), ()):
                if dep not in remove and dep not in reach and keep_reason(dep) is None:
                    reach.add(dep)
                    stack.append(dep)
        orphan_set = set(reach)
        changed = True
        while changed:
            changed = False
            for name in sorted(orphan_set):
                if required_by.get(name, set()) - remove - orphan_set:
                    orphan_set.discard(name)
                    changed = True

    gone = remove | orphan_set
    kept_shared, kept = [], []
    considered = set(n for n in wanted if n in by_name and n not in gone and n not in keep)
    for name in gone:
        considered |= edges.get(name, set())
    for name in sorted(considered - gone):
        requirers = sorted(required_by.get(name, set()) - gone)
        if requirers:
            kept_shared.append(_entry(by_name[name], required_by=requirers))
        else:
            kept.append(_entry(by_name[name], reason=keep_reason(name) or "orphan (orphans: false)"))
    for name in sorted(set(n for n in wanted if n in keep and n in by_name)):
        kept.append(_entry(by_name[name], reason="keep"))
    return RemovalPlan(remove=[_entry(by_name[n]) for n in sorted(remove)],
                       orphans=[_entry(by_name[n]) for n in sorted(orphan_set)],
                       kept_shared=kept_shared, kept=kept, not_installed=not_installed)


# ---------------------------------------------------------------- running the environment's interpreter

# Runs inside the environment's interpreter (any Python 3): parses requirements with the packaging that its pip
# vendors (or an installed packaging) and evaluates markers for that environment, for each extra.
_MARKER_SCRIPT = r"""
import json, sys
try:
    from pip._vendor.packaging.requirements import Requirement
    from pip._vendor.packaging.utils import canonicalize_name
except ImportError:
    try:
        from packaging.requirements import Requirement
        from packaging.utils import canonicalize_name
    except ImportError:
        sys.stdout.write(json.dumps({"error": "neither pip nor packaging is importable"}))
        sys.exit(0)
out, bad = {}, []
for name, requires, extras in json.load(sys.stdin):
    reqs = []
    for text in requires:
        try:
            req = Requirement(text)
        except Exception as e:
            bad.append("%s: %r: %s" % (name, text, e))
            continue
        def active(extra):
            return req.marker is None or bool(req.marker.evaluate({"extra": extra}))
        try:
            base = active("")
            uses_extra = req.marker is not None and "extra" in str(req.marker)
            when = [e for e in extras if active(e)] if uses_extra and not base else []
        except Exception as e:
            bad.append("%s: %r: %s" % (name, text, e))
            base, when = True, []
        reqs.append([canonicalize_name(req.name), sorted(req.extras), base, when])
    out[name] = reqs
import os
paths = [os.path.realpath(p) for p in sys.path if p]
sys.stdout.write(json.dumps({"requirements": out, "unparsed": bad, "sys_path": paths}))
"""


def command_environment(env, user_home=None):
    """os.environ for running env's interpreter: no PYTHONPATH/PIP_* leaking in, pip config ignored, and the
    user site switched to env's (user-site) or off (everything else, so root's ~/.local is never touched)."""
    result = dict((k, v) for k, v in os.environ.items() if not _PIP_ENV_VARS.match(k))
    result.update(PIP_CONFIG_FILE=os.devnull, PIP_DISABLE_PIP_VERSION_CHECK="1", PIP_NO_INPUT="1",
                  PIP_NO_COLOR="1", PYTHONDONTWRITEBYTECODE="1", LC_ALL="C.UTF-8")
    if env.kind == "user-site":
        result["PYTHONUSERBASE"] = env.path
    else:
        result["PYTHONNOUSERSITE"] = "1"
    if user_home:
        result["HOME"] = user_home
    return result


def environment_owner(env):
    """uid the environment's code should run as: the one non-root owner of its site dir and interpreter, or 0.

    Both are code root would run (an interpreter, and .pth files/sitecustomize in the site dir): a user who owns
    either could run anything as root. Owned by two different users: EnvError."""
    owners = set()
    for path in ([env.site_dirs[0]] if env.site_dirs else []) + [os.path.realpath(env.python)]:
        try:
            owners.add(os.stat(path).st_uid)
        except OSError:
            continue
    owners.discard(0)
    if len(owners) > 1:
        raise EnvError("%s: site dir and interpreter belong to different users (uids %s); not running it"
                       % (env.path, ", ".join(str(u) for u in sorted(owners))))
    return owners.pop() if owners else 0


def environment_user(env):
    """The user whose rights env's interpreter (and so pip's uninstall) runs with when we are root: a user-site
    install, or an environment inside a user's home, is that user's, whoever owns its files (a root-owned
    site dir in a home can be swapped by the home's owner between any check and the run); otherwise
    environment_owner's. None for root. EnvError when the files belong to another user than the home's."""
    uid = environment_owner(env)
    owner = None
    if env.kind == "user-site" and env.user and pwd is not None:
        try:
            entry = pwd.getpwnam(env.user)
            owner = _privileges.User(entry.pw_name, entry.pw_uid, entry.pw_gid, entry.pw_dir)
        except KeyError:
            owner = None
    if owner is None:
        owner = _home_index().owner(env.path)
    if owner is not None and owner.uid != 0:
        if uid not in (0, owner.uid):
            raise EnvError("%s: in the home of %s but its files belong to uid %d; not running it"
                           % (env.path, owner.name, uid))
        return owner
    if uid == 0:
        return None
    user = _privileges.passwd_user(uid)
    if user is not None:
        return user
    gid = os.stat(env.site_dirs[0]).st_gid if env.site_dirs else uid
    return _privileges.User(str(uid), uid, gid, None)


def run_in_environment(env, args, stdin=None, timeout=600):
    """Run env's interpreter with args; as the environment's owner when we are root and it is not (so a user's
    crafted RECORD or .pth file cannot make root delete or run anything). Returns (rc, stdout, stderr)."""
    if not env.python or not os.path.exists(env.python):
        raise EnvError("interpreter %s does not exist (broken environment)" % (env.python or "(none found)"))
    if not os.access(env.python, os.X_OK):
        raise EnvError("interpreter %s is not executable" % env.python)
    preexec, home = None, None
    if hasattr(os, "geteuid") and os.geteuid() == 0:
        user = environment_user(env)
        if user is not None:  # uid, gid and every group of the user, verified, no way back (_privileges)
            preexec, home = _privileges.dropper(user), user.home
    try:
        proc = subprocess.Popen([env.python] + list(args), stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                stderr=subprocess.PIPE, cwd="/", env=command_environment(env, home),
                                preexec_fn=preexec)
        out, err = proc.communicate(input=(stdin or "").encode("utf-8"), timeout=timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.communicate()
        raise EnvError("%s %s timed out after %ss" % (env.python, " ".join(args[:3]), timeout))
    except OSError as e:
        raise EnvError("cannot run %s: %s" % (env.python, error_text(e)))
    return proc.returncode, out.decode("utf-8", "replace"), err.decode("utf-8", "replace")


def _dist_tuples(env):
    """installed_distributions(env) as plain tuples (what crosses from a child)."""
    return [tuple(d[:3]) + (list(d.requires),) + tuple(d[4:6]) + (list(d.extras), d.meta)
            for d in installed_distributions(env)]


def distributions_of(env):
    """installed_distributions(env) read with the rights pip will have there (environment_user): a user's
    environment is listed and its metadata read by a child acting as that user, so root never opens what the
    user planted in it (a link to a root-only file, a FIFO). EnvError when that child fails."""
    user = _privileges.effective_uid() == 0 and environment_user(env)
    if not user or not _privileges.acts_for(user):
        return installed_distributions(env)
    try:
        rows = _privileges.call_as(user, _dist_tuples, env)
    except (_privileges.ChildFailed, _privileges.NotReachable) as exc:
        raise EnvError("%s: its distributions could not be read as %s: %s" % (env.path, user.name, exc))
    return [Dist(r[0], r[1], r[2], list(r[3]), r[4], r[5], tuple(r[6]), r[7]) for r in rows]


# ---------------------------------------------------------------- what pip's uninstall deletes

def record_paths(dist):
    """The paths pip's uninstall of dist deletes, as pip finds them: every entry of its RECORD (dist-info) or
    installed-files.txt (egg-info) joined to its directory and normalised ('..' resolved as pip does), plus the
    metadata directory itself. [] when dist has no metadata directory known."""
    if not dist.meta:
        return []
    meta = os.path.join(dist.location, dist.meta)
    paths = [os.path.normpath(meta)]
    if dist.meta.endswith(".dist-info"):
        text, base = _read_text(os.path.join(meta, "RECORD")), dist.location
    elif os.path.isdir(meta):
        text, base = _read_text(os.path.join(meta, "installed-files.txt")), meta
    else:
        text, base = None, dist.location
    for line in (text or "").splitlines():
        entry = line.split(",")[0].strip() if dist.meta.endswith(".dist-info") else line.strip()
        if len(entry) >= 2 and entry[0] == entry[-1] == '"':  # csv quoting of a name with a comma
            entry = entry[1:-1].replace('""', '"')
        if entry:
            paths.append(os.path.normpath(os.path.join(base, entry)))
    return paths


def _only_root_writes(st):
    """True when no one but root can change the entry (owned by root, no write for a non-root group or others)."""
    return st.st_uid == 0 and not st.st_mode & 0o002 and not (st.st_mode & 0o020 and st.st_gid != 0)


def deletion_refusal(dist, as_root, protect, memo=None):
    """Why pip must not uninstall dist (a text naming the path), or None (docs/trust.md, pip_remove).

    Whoever pip runs as: no path it would delete, nor any directory on the way to one, may be a protected
    directory under another name than its own (a bind mount of a home or /etc inside the environment), and no
    listed path may be a protected directory itself. When pip runs as root (root's environments) also: every
    path it would delete, its list (RECORD) and metadata directory, and every directory on the way from '/' must
    be writable by root alone and owned by root, and no symlink a user made may be on the way, so what root
    deletes is what root installed: a RECORD that a user could write (a group-writable shared environment)
    or that lists another user's files, or a path through a user's symlink, refuses the distribution.
    protect: _profiles.ProtectedPaths. memo: a dict shared by the calls of one run."""
    memo = {} if memo is None else memo
    index = protect.identities()
    meta = os.path.join(dist.location, dist.meta) if dist.meta else None
    listed = record_paths(dist)
    checks = list(listed)
    if as_root and meta and dist.meta.endswith(".dist-info"):
        checks.append(os.path.join(meta, "RECORD"))
    for path in checks:
        if path in memo:
            why = memo[path]
        else:
            why = memo[path] = _path_refusal(path, as_root, index, memo)
        if why:
            return "%s (listed by %s %s): %s" % (path, dist.name, dist.version, why)
    return None


def _path_refusal(path, as_root, index, memo):
    """One path pip would delete: its directory's location (_paths.canonical, once per directory: root's symlinks
    followed, a user's refuse it when pip runs as root), the path itself not followed (pip removes a link, not
    its target), then every component from '/' (_dir_refusal, once per directory)."""
    parent, name = os.path.split(path)
    key = ("canonical", parent)
    if key not in memo:
        try:
            memo[key] = _paths.canonical(parent).path
        except (_paths.PathRefused, OSError) as exc:
            memo[key] = exc
    where = memo[key]
    if isinstance(where, _paths.PathRefused):
        return str(where) if as_root else None
    if isinstance(where, OSError):
        return error_text(where)
    spelled = where.rstrip("/") + "/" + name
    try:
        st = os.lstat(spelled)
    except OSError:
        st = None
    if st is not None and stat.S_ISDIR(st.st_mode) and index.get((st.st_dev, st.st_ino), (None, False))[1]:
        return "is the protected directory %s" % index[(st.st_dev, st.st_ino)][0]
    parts = spelled.split("/")[1:]
    for depth in range(1, len(parts) + 1):
        where = "/" + "/".join(parts[:depth])
        key = ("dir", where)
        if key not in memo:
            memo[key] = _dir_refusal(where, depth < len(parts), as_root, index)
        if memo[key]:
            return memo[key]
    return None


def _location(path):
    try:
        return _paths.canonical(path).path
    except (_paths.PathRefused, OSError):
        return None


def _group_name(gid):
    try:
        import grp
        return grp.getgrgid(gid).gr_name
    except (ImportError, KeyError):
        return str(gid)


def _dir_refusal(where, above, as_root, index):
    """One component of a deleted path (above: a directory on the way, not the path itself)."""
    try:
        st = os.lstat(where)
    except OSError:
        return None  # not there: nothing below it is deleted
    if above and stat.S_ISDIR(st.st_mode):
        hit = index.get((st.st_dev, st.st_ino))
        if hit and hit[1] and _location(hit[0]) != where:  # not its own place (/home -> /data/home is)
            return "%s is the protected directory %s under another name (same device and inode)" % (where, hit[0])
    sticky_roots = above and stat.S_ISDIR(st.st_mode) and st.st_mode & stat.S_ISVTX and st.st_uid == 0
    if as_root and not _only_root_writes(st) and not sticky_roots:  # /tmp: no user can move root's entries
        owner = _profiles.user_name(st.st_uid)
        if st.st_uid != 0:
            return "%s belongs to %s (uid %d), not to root; pip would delete it as root" % (where, owner, st.st_uid)
        return ("%s can be written by others than root (mode %04o, group %s); pip would act on it as root"
                % (where, stat.S_IMODE(st.st_mode), _group_name(st.st_gid)))
    return None


def evaluate_requirements(env, dists):
    """({name: [Requirement]}, unparsed) for dists, markers evaluated by env's interpreter. Unparseable
    requirement strings are returned as problems (and ignored: their name is unknown).

    Raises EnvError when the interpreter does not have env's site dirs on its sys.path: its pip would then
    act on another environment than the one that was read."""
    payload = json.dumps([[d.name, list(d.requires), list(d.extras)] for d in dists if d.requires])
    rc, out, err = run_in_environment(env, ["-c", _MARKER_SCRIPT], stdin=payload)
    try:
        data = json.loads(out)
    except ValueError:
        raise EnvError("%s could not evaluate requirement markers (exit %s): %s"
                       % (env.python, rc, (err.strip().splitlines() or ["no output"])[-1]))
    if "error" in data:
        raise EnvError("%s: %s: this environment has no pip to uninstall with (made by uv or --without-pip?); "
                       "install pip into it, or remove the packages with its own tool" % (env.python, data["error"]))
    missing = [d for d in env.site_dirs if os.path.realpath(d) not in data.get("sys_path", ())]
    if missing:
        raise EnvError("%s does not use %s (its pip would act on another environment)"
                       % (env.python, ", ".join(missing)))
    evaluated = dict((name, [Requirement(r[0], tuple(r[1]), r[2], tuple(r[3])) for r in reqs])
                     for name, reqs in data["requirements"].items())
    return evaluated, list(data.get("unparsed", []))


def pip_version(dists):
    for dist in dists:
        if dist.name == "pip":
            try:
                return tuple(int(p) for p in re.findall(r"\d+", dist.version)[:3])
            except ValueError:
                return None
    return None


def pip_uninstall(env, names, break_system_packages=False):
    """`python -m pip uninstall -y names` in env. Returns (rc, output)."""
    args = ["-m", "pip", "uninstall", "-y"]
    if break_system_packages:
        args.append("--break-system-packages")
    rc, out, err = run_in_environment(env, args + list(names))
    return rc, (out + err).strip()


def pip_check(env):
    """`python -m pip check` in env: (ok, output lines)."""
    rc, out, err = run_in_environment(env, ["-m", "pip", "check"])
    lines = [line for line in (out + err).splitlines() if line.strip()]
    return rc == 0, lines


# pip check's line for a requirement that is not installed (pip 9 to today; pip names the requirement canonically)
_NOT_INSTALLED = re.compile(r"^\S+ \S+ requires (\S+), which is not installed\.$")


def broken_by(lines, removed):
    """The lines of `pip check` (run after removing `removed`) that this removal caused: a requirement on one of
    the removed distributions that is not installed. A removal can cause nothing else (it changes no installed
    version, platform or metadata of what stays), and every removed distribution was installed before, so these
    are exactly the lines a check before the removal did not print -- without a second pip run (~0.8 s of CPU)."""
    gone = set(normalize_name(name) for name in removed)
    out = []
    for line in lines:
        match = _NOT_INSTALLED.match(line.strip())
        if match and normalize_name(match.group(1)) in gone:
            out.append(line)
    return out


# ---------------------------------------------------------------- one environment, end to end

# PEP 508 distribution names: anything else (an option such as "-r", a path) never reaches pip.
_VALID_NAME = re.compile(r"^([A-Za-z0-9]|[A-Za-z0-9][A-Za-z0-9._-]*[A-Za-z0-9])$")
_BREAK_FLAG_SINCE = (23, 0, 1)  # first pip that honours EXTERNALLY-MANAGED (and knows the override)


def check_names(names, option):
    """Normalised names, or ValueError naming the option and the offending value."""
    result = []
    for name in names:
        if not isinstance(name, str) or not _VALID_NAME.match(name.strip()):
            raise ValueError("%s: %r is not a valid distribution name" % (option, name))
        result.append(normalize_name(name))
    return result


def needs_break_system_packages(env):
    """Whether pip must be told --break-system-packages to uninstall in env: the interpreter's own prefix is
    EXTERNALLY-MANAGED (a system env removed with allow_system, or a user site of the system Python) and its
    pip is new enough to check the marker."""
    if env.kind in ("venv", "conda"):
        return False
    base = env
    if env.kind == "user-site":
        try:  # the interpreter may be a user's (pyenv in a home): looked at and read with that user's rights
            base = resolve_environment_as_owner(env.python)
        except (ValueError, TypeError):
            return False
    if not base.externally_managed:
        return False
    try:
        version = pip_version(distributions_of(base))
    except EnvError:
        return False
    return version is not None and version >= _BREAK_FLAG_SINCE


def describe(env):
    return dict(path=env.path, python=env.python, kind=env.kind, user=env.user, site_dirs=list(env.site_dirs),
                externally_managed=env.externally_managed)


def _last_lines(text, count=5):
    return " | ".join(line.strip() for line in text.strip().splitlines()[-count:])


def purge_environment(env, packages, keep=(), orphans=False, remove_required=False, allow_system=False,
                      check_mode=False, protect=None):
    """Plan and (unless check_mode) carry out the removal of packages from env. Returns its result entry:
    status is one of absent, unchanged, planned, changed, externally_managed, broken, failed.
    protect (_profiles.ProtectedPaths): each planned distribution's deletions are checked first
    (deletion_refusal), in check mode too; a refused one is not passed to pip and fails the entry."""
    result = describe(env)
    result.update(status="absent", removed=[], orphans_removed=[], kept_shared=[], kept=[], found=[],
                  pip_check=None, error=None, problems=[])
    try:
        dists = distributions_of(env)
    except EnvError as e:
        result.update(status="failed", error=str(e))
        return result
    by_name = dict((d.name, d) for d in dists)
    present = [by_name[n] for n in packages if n in by_name]
    result["found"] = [_entry(d) for d in present]
    interpreter_ok = bool(env.python) and os.path.exists(env.python)
    if not interpreter_ok:
        result["status"] = "broken"
        result["error"] = ("no interpreter of this version for the user site" if not env.python
                           else "interpreter %s does not exist (broken environment)" % env.python)
        return result
    if not present:
        return result
    if env.externally_managed and not allow_system:
        result["status"] = "externally_managed"
        result["error"] = ("EXTERNALLY-MANAGED (the distribution's Python): %s reported, not removed; "
                           "set allow_system: true to remove them" % ", ".join(d.name for d in present))
        return result
    try:
        evaluated, unparsed = evaluate_requirements(env, dists)
    except EnvError as e:
        result.update(status="broken", error=str(e))
        return result
    result["problems"] = ["unparsed requirement (ignored): %s" % u for u in unparsed]
    plan = plan_removal(dists, dependency_edges(dists, evaluated), packages, keep=keep, orphans=orphans,
                        remove_required=remove_required)
    result.update(kept_shared=plan.kept_shared, kept=plan.kept)
    result["problems"].extend("%s not removed: required by %s (remove_required: true removes it anyway)"
                              % (e["name"], ", ".join(e["required_by"]))
                              for e in plan.kept_shared if e["name"] in packages)
    planned = plan.remove + plan.orphans
    if not planned:
        result["status"] = "unchanged"
        return result
    refusals = []
    if protect is not None:
        as_root = _privileges.effective_uid() == 0 and environment_user(env) is None
        memo = {}
        for entry in planned:
            why = deletion_refusal(by_name[entry["name"]], as_root, protect, memo)
            if why:
                refusals.append("%s: not removed: %s" % (entry["name"], why))
        if refusals:  # what stays may need its dependencies: no orphan goes either
            refused = set(r.split(":", 1)[0] for r in refusals)
            plan = plan._replace(remove=[e for e in plan.remove if e["name"] not in refused], orphans=[])
            planned = plan.remove
    if check_mode:
        result.update(status="failed" if refusals else "planned", removed=plan.remove, orphans_removed=plan.orphans,
                      error="; ".join(refusals) or None)
        return result
    if not planned:
        result.update(status="failed", error="; ".join(refusals))
        return result
    bad = [e["name"] for e in planned if not _VALID_NAME.match(e["name"])]
    if bad:
        result.update(status="failed", error="refusing to pass invalid distribution names to pip: %s" % bad)
        return result
    flag = needs_break_system_packages(env)
    errors = list(refusals)
    try:
        rc, output = pip_uninstall(env, [e["name"] for e in planned], flag)
        left = set(d.name for d in distributions_of(env)) & set(e["name"] for e in planned)
        if rc != 0 and left:
            # pip stops at the first package it cannot remove: try the rest one by one, for a per-package error
            for name in sorted(left):
                rc1, output1 = pip_uninstall(env, [name], flag)
                if rc1 != 0:
                    errors.append("%s: pip uninstall failed (exit %s): %s" % (name, rc1, _last_lines(output1)))
    except EnvError as e:
        errors.append(str(e))
    # what was removed is what is gone from disk, whatever pip said
    try:
        remaining = dict((d.name, d) for d in distributions_of(env))
    except EnvError as e:
        errors.append(str(e))
        remaining = dict((e["name"], None) for e in planned)
    result["removed"] = [e for e in plan.remove if e["name"] not in remaining]
    result["orphans_removed"] = [e for e in plan.orphans if e["name"] not in remaining]
    still = sorted(e["name"] for e in planned if e["name"] in remaining)
    if still and not errors:
        errors.append("still installed after pip uninstall: %s" % ", ".join(still))
    try:
        ok, lines = pip_check(env)
    except EnvError as e:
        ok, lines = False, [str(e)]
    result["pip_check"] = dict(ok=ok, output=lines, new=broken_by(lines, [e["name"] for e in planned]))
    gone = result["removed"] or result["orphans_removed"]
    if errors:
        result.update(status="failed", error="; ".join(errors))
    else:
        result["status"] = "changed" if gone else "unchanged"
    return result


# ---------------------------------------------------------------- the module's run

def wanted_packages(params):
    """packages plus the pip lists of the selected profiles (all profiles when neither is given)."""
    names = list(params["packages"])
    if params["targets"] or not names:
        for profile in _profiles.select_targets(_profiles.load_profiles(params["profiles"]), params["targets"]).values():
            names.extend(profile.get("pip", []))
    unique = []
    for name in check_names(names, "packages"):
        if name not in unique:
            unique.append(name)
    return unique


def environments(params, problems=None, users=None):
    if params["environments"]:
        return unique_environments([resolve_environment_as_owner(path) for path in params["environments"]])
    if users is None:
        users = _profiles.list_users(params["homes"], params["users"])
    roots = params["search_roots"]
    if roots is None:
        roots = default_search_roots(users)
    return find_environments(roots, users=users, include_system=params["include_system"],
                             max_depth=params["max_depth"], problems=problems)


def diff_text(entries):
    lines = []
    for entry in entries:
        for item in entry["removed"] + entry["orphans_removed"]:
            lines.append("%s: %s==%s\n" % (entry["path"], item["name"], item["version"]))
    return "".join(lines)


def run(params, check_mode=False):
    """pip_remove with validated module params: the module's result. ValueError for bad options (nothing run)."""
    if params["max_depth"] < 0:
        raise ValueError("max_depth must be 0 or more")
    packages = wanted_packages(params)
    keep = check_names(params["keep"], "keep")
    clash = sorted(set(params["packages"] and check_names(params["packages"], "packages")) & set(keep))
    if clash:
        raise ValueError("packages and keep both name %s" % ", ".join(clash))
    users = _profiles.list_users(params["homes"] or None, params["users"]) if packages else []
    with one_home_index(users):  # whose home holds each environment: asked for every one, read once
        return _run(params, packages, keep, check_mode, users)


def _run(params, packages, keep, check_mode, users):
    results, problems = [], []
    envs = environments(params, problems, users) if packages else []
    protect = _profiles.protected_paths(users) if envs else None
    for env in envs:
        entry = purge_environment(env, packages, keep=keep, orphans=params["orphans"],
                                  remove_required=params["remove_required"], allow_system=params["allow_system"],
                                  check_mode=check_mode, protect=protect)
        results.append(entry)
        if entry["error"]:
            problems.append("%s (%s): %s: %s" % (entry["path"], entry["kind"], entry["status"], entry["error"]))
        problems.extend("%s: %s" % (entry["path"], p) for p in entry["problems"])
        if entry["pip_check"] and entry["pip_check"]["new"]:
            problems.append("%s: pip check after removal: %s" % (entry["path"], "; ".join(entry["pip_check"]["new"])))

    changed = any(e["removed"] or e["orphans_removed"] for e in results)
    result = dict(changed=changed, packages=packages, environments=results, problems=problems)
    after = [dict(e, removed=[], orphans_removed=[]) for e in results]
    result["diff"] = dict(before=diff_text(results), after=diff_text(after),
                          before_header="installed", after_header="after pip_remove")
    # a package that was found but could not be removed fails the task (after every environment was done)
    unfinished = [e for e in results if e["status"] == "failed" or (e["status"] == "broken" and e["found"])]
    if unfinished:
        result["failure"] = ("could not remove packages from %d environment(s): %s"
                             % (len(unfinished), ", ".join(e["path"] for e in unfinished)))
    result["_warnings"] = problems
    return result
