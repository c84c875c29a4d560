# -*- coding: utf-8 -*-
# Copyright: residue.purge contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Find processes by name, command line or the files they hold, and stop them safely.

Safety rules every caller gets for free:
- PID 1, kernel threads, the calling process and all its ancestors are never matched or signalled;
- a PID is signalled only while it is still the process that was matched (psutil's create-time check);
- zombies are already dead: they are neither matched nor waited for.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import os
import re
import signal as _signal
import sys
import time

from ansible_collections.residue.purge.plugins.module_utils import _macos, _platform, _procfs
from ansible_collections.residue.purge.plugins.module_utils._paths import normalise_roots, root_of
from ansible_collections.residue.purge.plugins.module_utils._text import printable
from ansible_collections.residue.purge.plugins.module_utils._profiles import (
    check_selective_pattern, list_users, load_profiles, parse_users_option, select_targets)

try:
    import psutil
    HAS_PSUTIL = True
    PSUTIL_IMPORT_ERROR = None
except ImportError as exc:  # pragma: no cover - depends on the host
    psutil = None
    HAS_PSUTIL = False
    PSUTIL_IMPORT_ERROR = exc

PSUTIL_INSTALL_HINT = ("psutil is needed on the managed host: install it with 'apt install python3-psutil', "
                       "'dnf install python3-psutil' or 'pip install psutil'.")

# Parents that manage many services: a target respawned by one of these is reported, never escalated to.
SYSTEM_MANAGERS = frozenset([
    "systemd", "init", "launchd", "upstart", "runit", "runsvdir", "runsv", "s6-svscan", "s6-supervise",
    "supervisord", "sshd", "containerd-shim", "containerd-shim-runc-v2", "dockerd", "tini", "dumb-init",
    "cron", "crond", "atd", "login", "su", "sudo", "tmux: server", "screen", "SCREEN",
])

_PF_KTHREAD = 0x00200000  # include/linux/sched.h: the task is a kernel thread
_GONE = ("exited", "killed")


class ProcInfo(object):
    """One matched process. `proc` keeps the psutil handle so later signals are PID-reuse safe."""

    __slots__ = ("pid", "ppid", "name", "user", "cmdline", "create_time", "matched_by", "exe", "proc")

    def __init__(self, pid, ppid, name, user, cmdline, create_time, matched_by, exe=None, proc=None):
        self.pid = pid
        self.ppid = ppid
        self.name = name
        self.user = user
        self.cmdline = list(cmdline or [])
        self.create_time = create_time
        self.matched_by = matched_by
        self.exe = exe
        self.proc = proc

    def to_dict(self):
        # psutil gives argv and names with undecodable bytes as surrogates: Ansible would refuse the whole result
        return {"pid": self.pid, "ppid": self.ppid, "name": printable(self.name), "user": self.user,
                "cmdline": [printable(arg) for arg in self.cmdline], "create_time": self.create_time,
                "matched_by": self.matched_by}

    def __repr__(self):
        return "ProcInfo(pid=%d, name=%r, matched_by=%r)" % (self.pid, self.name, self.matched_by)


def require_psutil():
    """Raise RuntimeError with PSUTIL_INSTALL_HINT when psutil is missing (modules use missing_required_lib)."""
    if not HAS_PSUTIL:
        raise RuntimeError(PSUTIL_INSTALL_HINT)


# ---------------------------------------------------------------------------------------------- guards

def protected_pids():
    """PID 1, this process and every ancestor of it (the Ansible worker, the SSH session, the shell ...)."""
    require_psutil()
    pids = {0, 1, os.getpid()}
    try:
        for parent in psutil.Process().parents():
            pids.add(parent.pid)
    except psutil.Error:
        pass
    pid = os.getppid()
    while pid > 1 and pid not in pids:  # parents() stops early when a parent vanished mid-walk
        pids.add(pid)
        try:
            pid = psutil.Process(pid).ppid()
        except psutil.Error:
            break
    return pids


def is_kernel_thread(pid):
    """True for kernel threads. Linux: the PF_KTHREAD flag in /proc/PID/stat; elsewhere there are none to see."""
    if pid == 2:
        return sys.platform.startswith("linux")
    try:
        fields = _procfs.stat_fields(pid)
    except OSError:
        return False
    try:
        return bool(int(fields[6]) & _PF_KTHREAD)
    except (IndexError, ValueError):
        return False


# ---------------------------------------------------------------------------------------------- matching

def profile_matchers(profile):
    """(names, cmdline_regexes) of a normalised profile (see docs/DEVELOPING.md)."""
    processes = (profile or {}).get("processes") or {}
    return list(processes.get("names") or []), list(processes.get("cmdline") or [])


def compile_patterns(patterns, option="cmdline"):
    """Compile regexes; a bad one, or one that would match every process (see
    _profiles.check_selective_pattern), raises ValueError naming the option and the pattern."""
    compiled = []
    for pattern in patterns or ():
        if not isinstance(pattern, str) or not pattern:
            raise ValueError("%s: every pattern must be a non-empty string, got %r" % (option, pattern))
        try:
            compiled.append(re.compile(pattern))
        except re.error as exc:
            raise ValueError("%s: %r is not a valid regular expression: %s" % (option, pattern, exc))
        check_selective_pattern(compiled[-1], option)
    return compiled


# Interpreters whose program is the script (or module) they run, not their own executable. The value: the
# options that take the next argument as their value, and the options whose value is code (no script then).
_INTERPRETERS = (
    (re.compile(r"^(python|pythonw|pypy)[0-9.]*(\.exe)?$"), ("-W", "-X", "--check-hash-based-pycs"), ("-c",)),
    (re.compile(r"^(node|nodejs)[0-9.]*(\.exe)?$"),
     ("-r", "--require", "--import", "--loader", "--experimental-loader", "-C", "--conditions", "--title",
      "--input-type", "--env-file"), ("-e", "--eval", "-p", "--print")),
    (re.compile(r"^(perl|ruby)[0-9.]*(\.exe)?$"), ("-I", "-r", "-x"), ("-e", "-E")),
    (re.compile(r"^(sh|bash|dash|zsh|ksh|mksh)$"), ("-o", "+o", "-O", "+O"), ("-c",)),
)
_SCRIPT_SUFFIX = re.compile(r"\.(py|pyw|pyc|js|mjs|cjs|ts|pl|rb|sh)$")
_PACKAGE_DIRS = ("node_modules", "site-packages", "dist-packages")
# directories that hold many programs' scripts: a script's directory names its program unless it is one of these
_GENERIC_DIRS = frozenset(["..", "bin", "sbin", "lib", "lib64", "libexec", "src", "dist", "build", "scripts",
                           "tmp", "usr", "opt", "local", "share", "home", "root", "var", "etc"])


def program_key(text):
    """'Open_AutoGLM' and 'open-autoglm' are one program: Python modules cannot have '-' (PEP 503 folding)."""
    return re.sub(r"[-_.]+", "-", text).lower()


def _interpreted(argv0, args):
    """('module', name) or ('script', path) an interpreter runs, or None (code given inline, stdin, none)."""
    base = os.path.basename(argv0)
    for regex, valued, code in _INTERPRETERS:
        if regex.match(base):
            break
    else:
        return None
    python = regex is _INTERPRETERS[0][0]
    i = 0
    while i < len(args):
        arg = args[i]
        if arg == "--":
            return ("script", args[i + 1]) if i + 1 < len(args) else None
        if arg == "-" or not arg:
            return None
        if not arg.startswith(("-", "+")):
            return ("script", arg)
        if arg in code or (not arg.startswith("--") and any(arg.startswith(c) for c in code if len(c) == 2)):
            return None
        if python and not arg.startswith("--"):
            # a cluster of short options: the first that takes a value ends it (-um mod, -mmod, -Wignore)
            for j in range(1, len(arg)):
                if arg[j] in "cmWX":
                    value = arg[j + 1:] or (args[i + 1] if i + 1 < len(args) else "")
                    if arg[j] == "c":
                        return None
                    if arg[j] == "m":
                        return ("module", value) if value else None
                    i += 0 if arg[j + 1:] else 1
                    break
            i += 1
            continue
        i += 2 if arg in valued else 1
    return None


def program_names(name, cmdline, exe):
    """What a process runs, as (exact names, folded names): its name, argv[0]'s and its executable's basenames;
    for an interpreter (python, node, perl, ruby, a shell) also the module it runs (`-m pkg.mod` -> pkg), or its
    script's name without suffix, the directory holding the script (`.../open_autoglm/main.py`) and the package a
    script lies in (`.../node_modules/<pkg>/...`). Never the other arguments: `tail -f /var/log/x` runs tail."""
    exact = {name} if name else set()
    if cmdline:
        exact.add(os.path.basename(cmdline[0]))
    if exe:
        exact.add(os.path.basename(exe))
    folded = set()
    if cmdline:
        # a script run by its #! line shows the interpreter as argv[0]; exe is the interpreter in both cases
        run = None
        for argv0 in [cmdline[0]] + ([exe] if exe else []):
            run = _interpreted(argv0, cmdline[1:])
            if run is not None or _interpreter_name(argv0):
                break
        if run is not None:
            kind, value = run
            if kind == "module":
                folded.add(program_key(value.split(".")[0]))
            else:
                parts = [p for p in value.replace("\\", "/").split("/") if p not in ("", ".")]
                if parts:
                    folded.add(program_key(_SCRIPT_SUFFIX.sub("", parts[-1])))
                if len(parts) > 1 and parts[-2] not in _GENERIC_DIRS:
                    folded.add(program_key(parts[-2]))
                for k, part in enumerate(parts[:-1]):
                    if part in _PACKAGE_DIRS:
                        folded.add(program_key(parts[k + 1]))
    folded.discard("")
    return exact, folded


def _interpreter_name(path):
    base = os.path.basename(path)
    return any(regex.match(base) for regex, _valued, _code in _INTERPRETERS)


def match_name(names, name, cmdline, exe):
    """Does the process run one of these programs? Exact match on the process name, argv[0]'s basename or the
    executable's basename; for an interpreter, the module or script it runs (see program_names)."""
    if not names:
        return False
    exact, folded = program_names(name, cmdline, exe)
    if exact.intersection(names):
        return True
    return bool(folded) and any(program_key(n) in folded for n in names)


def match_cmdline(regexes, cmdline):
    """The first regex that finds a match in the space-joined argv, else None."""
    if not regexes or not cmdline:
        return None
    joined = " ".join(cmdline)
    for regex in regexes:
        if regex.search(joined):
            return regex
    return None


def _portable_held_paths(proc):
    """_procfs.held_paths through psutil, for macOS and the BSDs."""
    for getter in (proc.exe, proc.cwd):
        try:
            yield getter()
        except psutil.Error:
            pass
    try:
        for item in proc.open_files():
            yield item.path
    except psutil.Error:
        pass
    try:
        for item in proc.memory_maps(grouped=True):
            yield item.path
    except (psutil.Error, AttributeError, NotImplementedError):
        pass


def held_root(proc, roots):
    """The first root under which proc holds something, else None."""
    paths = _procfs.held_paths(proc.pid) if _procfs.available() else _portable_held_paths(proc)
    for path in paths:
        root = root_of(path, roots)
        if root:
            return root
    return None


def macos_holders(roots):
    """{pid: root} of the processes holding files under roots on macOS, from one `lsof -F` listing: psutil has no
    memory maps there (a model file is mmapped, not opened) and sees other users' files only as root."""
    rc, out, err = _platform.run(_macos.LSOF_ALL)
    if rc not in (0, 1) or rc == 1 and not out.strip() and err.strip() and "WARNING" not in err:
        raise ValueError("holding: lsof failed (rc %d): %s" % (rc, (err or out).strip()))
    return _macos.holders_under(out, roots, root_of)


def _wanted_users(users):
    if users is None or users == "all" or users == ["all"]:
        return None
    if isinstance(users, str):
        users = [users]
    return set(users)


def own_namespace():
    """This process's PID namespace ('pid:[...]'), or None where there is none to read (macOS, BSDs)."""
    return _procfs.pid_namespace("self")


def foreign_entry(info):
    """A matched process of another PID namespace as the result lists it: the ProcInfo fields plus its namespace,
    cgroup and the container runtime and id the cgroup shows (when it shows one)."""
    cgroup = _procfs.cgroup_path(info.pid)
    runtime, container = _procfs.container_of(cgroup)
    entry = info.to_dict()
    entry.update(namespace=_procfs.pid_namespace(info.pid), cgroup=printable(cgroup) if cgroup else None,
                 runtime=runtime, container=container)
    return entry


def in_other_namespace(pid, own):
    """True when pid is in a PID namespace other than own (False when either cannot be read)."""
    if own is None:
        return False
    theirs = _procfs.pid_namespace(pid)
    return theirs is not None and theirs != own


def find_processes(names=(), cmdline=(), holding=(), users=None, spared=None, others=None):
    """Processes matched by exact name, command-line regex or held paths (any of them), optionally only
    those of the given users. Never returns PID 1, kernel threads, zombies, this process or its ancestors.

    names: exact process names; cmdline: regex strings or compiled regexes searched in the space-joined argv;
    holding: absolute paths (processes whose exe, cwd, open files or maps lie under them); users: None/"all"
    or a list of user names. With no selector at all nothing is matched. If `spared` is a list, matches that
    are protected (PID 1, this process, its ancestors) are appended to it instead of being returned. If `others`
    is a list, matches in another PID namespace than this process's (containers) are appended to it instead.
    """
    require_psutil()
    names = set(names or ())
    regexes = [r if hasattr(r, "search") else compile_patterns([r])[0] for r in (cmdline or ())]
    roots = normalise_roots(holding, "holding") if holding else []
    wanted_users = _wanted_users(users)
    if not (names or regexes or roots):
        return []
    protected = protected_pids()
    holders = macos_holders(roots) if roots and _platform.is_macos() else None
    own = own_namespace() if others is not None else None
    found = []
    for proc in psutil.process_iter(["pid", "ppid", "name", "username", "cmdline", "create_time", "exe",
                                     "status"]):
        info = proc.info
        pid = info["pid"]
        if info["status"] == psutil.STATUS_ZOMBIE or is_kernel_thread(pid):
            continue
        if wanted_users is not None and info["username"] not in wanted_users:
            continue
        name, argv, exe = info["name"] or "", info["cmdline"] or [], info["exe"] or ""
        matched_by = None
        if match_name(names, name, argv, exe):
            matched_by = "name"
        elif match_cmdline(regexes, argv):
            matched_by = "cmdline"
        elif roots:
            root = holders.get(pid) if holders is not None else held_root(proc, roots)
            if root:
                matched_by = "holding:" + root
        if not matched_by:
            continue
        match = ProcInfo(pid, info["ppid"], name, info["username"], argv, info["create_time"], matched_by, exe, proc)
        if own is not None and in_other_namespace(pid, own):
            others.append(match)
        elif pid not in protected:
            found.append(match)
        elif spared is not None:
            spared.append(match)
    return found


def children_map():
    """{ppid: [pid, ...]} for the whole process table, read once."""
    kids = {}
    for proc in psutil.process_iter(["ppid"]):
        kids.setdefault(proc.info["ppid"], []).append(proc.pid)
    return kids


def descendants(proc, kids):
    """psutil.Process objects of every descendant of proc, from a children_map()."""
    out, todo, seen = [], list(kids.get(proc.pid, ())), set()
    while todo:
        pid = todo.pop()
        if pid in seen:
            continue
        seen.add(pid)
        try:
            child = psutil.Process(pid)
            if child.ppid() not in seen and child.ppid() != proc.pid:
                continue  # reparented since the map was read
        except psutil.Error:
            continue
        out.append(child)
        todo.extend(kids.get(pid, ()))
    return out


def snapshot(proc, matched_by):
    """ProcInfo for a psutil.Process (children and supervisors found while stopping), or None if it is gone."""
    try:
        with proc.oneshot():
            return ProcInfo(proc.pid, proc.ppid(), proc.name(), _username(proc), _cmdline(proc),
                            proc.create_time(), matched_by, None, proc)
    except psutil.Error:
        return None


def _username(proc):
    try:
        return proc.username()
    except (psutil.Error, KeyError):
        return str(proc.uids().real) if hasattr(proc, "uids") else None


def _cmdline(proc):
    try:
        return proc.cmdline()
    except psutil.Error:
        return []


# ---------------------------------------------------------------------------------------------- stopping

def signal_number(name):
    """'TERM', 'SIGTERM', 'term' or 15 -> the signal number; ValueError for anything else."""
    if isinstance(name, int) and not isinstance(name, bool):
        value = name
    else:
        text = str(name).strip().upper()
        if text.isdigit():
            value = int(text)
        else:
            text = text if text.startswith("SIG") else "SIG" + text
            value = getattr(_signal, text, None)
            if not isinstance(value, int) or text.startswith("SIG_"):
                raise ValueError("signal: unknown signal %r (use a name such as TERM, INT, HUP or KILL)" % (name,))
    valid = set(int(s) for s in _signal.Signals)
    if value not in valid:
        raise ValueError("signal: %r is not a signal of this system" % (name,))
    if value == 0:
        raise ValueError("signal: 0 only probes a process, it does not stop it")
    return value


def signal_name(number):
    try:
        return _signal.Signals(number).name[3:]
    except ValueError:
        return str(number)


def _handle(item):
    """A psutil.Process for a ProcInfo or dict, verified to be the same process (create time); None if gone."""
    proc = getattr(item, "proc", None)
    if proc is not None:
        return proc
    pid = item["pid"] if isinstance(item, dict) else item.pid
    create_time = item.get("create_time") if isinstance(item, dict) else item.create_time
    try:
        proc = psutil.Process(pid)
        if create_time is not None and abs(proc.create_time() - create_time) > 0.01:
            return None  # the PID now belongs to another process
    except psutil.Error:
        return None
    return proc


def _as_procinfo(item):
    if isinstance(item, ProcInfo):
        return item
    proc = _handle(item)
    get = item.get if isinstance(item, dict) else (lambda k, d=None: getattr(item, k, d))
    return ProcInfo(get("pid"), get("ppid"), get("name"), get("user"), get("cmdline") or [], get("create_time"),
                    get("matched_by") or "given", get("exe"), proc)


def is_gone(proc):
    """Exited, reaped, replaced by another process with the same PID, or a zombie (dead, waiting for its parent)."""
    try:
        return not proc.is_running() or proc.status() == psutil.STATUS_ZOMBIE
    except psutil.Error:
        return True


def wait_all(procs, timeout, on_poll=None):
    """Wait for all procs together (one deadline for all, not one per process). Returns (gone, alive).

    psutil.wait_procs would treat zombies of other parents as alive until the timeout; this loop counts
    them as gone. on_poll() runs every round (used to watch for respawns while waiting)."""
    alive = list(procs)
    gone = []
    deadline = time.monotonic() + max(0.0, timeout)
    interval = 0.005
    while True:
        if on_poll is not None:
            on_poll()  # before the check: a slow poll must not eat the grace of a process that is gone
        still = []
        for proc in alive:
            (gone if is_gone(proc) else still).append(proc)
        alive = still
        if not alive or time.monotonic() >= deadline:
            return gone, alive
        time.sleep(min(interval, max(0.0, deadline - time.monotonic())))
        interval = min(interval * 1.5, 0.05)


def _send(proc, signum):
    """Send signum if proc is still the same process. Returns None on success or when already gone,
    else the error text."""
    try:
        if not proc.is_running():  # gone, or the PID now belongs to another process (create time differs)
            return None
        proc.send_signal(signum)  # psutil checks the create time again right before kill()
        return None
    except psutil.NoSuchProcess:
        return None
    except psutil.AccessDenied:
        return "permission denied"
    except (psutil.Error, OSError) as exc:
        return str(exc)


def _looks_like(candidate, stopped):
    """A respawned process: same executable name and argv as one that was just stopped."""
    return any(candidate.name == s.name and candidate.cmdline == s.cmdline for s in stopped)


def process_table():
    """{pid: (ppid, create_time, name)} for the whole process table, read once."""
    table = {}
    for proc in psutil.process_iter(["ppid", "create_time", "name"]):
        info = proc.info
        table[proc.pid] = (info["ppid"], info["create_time"], info["name"] or "")
    return table


def lineage(pid, table):
    """The ancestors of pid, nearest first, as (pid, create_time, name), as far as the table shows them."""
    chain, seen = [], {pid}
    entry = table.get(pid)
    while entry is not None and entry[0] and entry[0] not in seen:
        ppid = entry[0]
        seen.add(ppid)
        entry = table.get(ppid)
        if entry is None:
            break
        chain.append((ppid, entry[1], entry[2]))
    return chain


def restarter_in(pid, table):
    """The ancestor that started pid, as (pid, create_time, name): the nearest one that is older than pid by more
    than a second (a wrapper shell born with it is skipped: what restarted it was running before). None if unknown."""
    entry = table.get(pid)
    if entry is None or entry[1] is None:
        return None
    for ancestor in lineage(pid, table):
        if ancestor[1] is not None and ancestor[1] < entry[1] - 1.0:
            return ancestor
    return None


def describe_chain(chain):
    """'bash (pid 12) < sh (pid 3) < systemd (pid 1)': a parent chain, nearest first."""
    return " < ".join("%s (pid %d)" % (printable(name), pid) for pid, _ctime, name in chain) or "none"


class _Respawn(object):
    """A process seen again after a round: the process, its parent chain and the ancestor that started it again
    (the nearest one that was also an ancestor of a process stopped before), if there is one."""

    __slots__ = ("info", "chain", "restarter")

    def __init__(self, info, chain, restarter):
        self.info, self.chain, self.restarter = info, chain, restarter


class _Stopper(object):
    """State of one stop_processes() call: the rounds, what was signalled, and what came back.

    One round: signal everything pending at once, wait up to grace for all of it together, SIGKILL what is left,
    then, once the last of them is gone, watch for `respawn_window` seconds for anything that comes back (a fresh
    match of `rematch`, or with `tree` a process that looks like a stopped one and was started by one of their
    ancestors). What came back is stopped in the next round, together with the ancestor that restarted it (the
    supervisor), unless that is PID 1, an ancestor of this module or a system manager. After the last round
    everything is matched once more: what runs then is a survivor with outcome "respawned"."""

    def __init__(self, signum, grace, kill_after_grace, tree, rematch, max_rounds, respawn_window, namespaces="own"):
        self.own_ns = own_namespace() if namespaces != "all" else None  # None: every namespace may be signalled
        self.signum = signum
        self.grace = float(grace)
        self.kill_after_grace = kill_after_grace
        self.tree = tree
        self.rematch = rematch
        self.max_rounds = max_rounds
        self.respawn_window = float(respawn_window)
        self.protected = protected_pids()
        self.terminated = []
        self.survivors = []
        self.seen = set()           # (pid, create_time) of everything already handled
        self.escalated = set()      # parent pids stopped as supervisors
        self.ancestors = set()      # (pid, create_time) of the ancestors of everything signalled
        self.stopped = []           # ProcInfo of everything signalled (look-alikes of these are respawns)
        self.scan_cost = 0.0        # seconds the last respawn scan took: polls are spaced by a multiple of it

    def key(self, info):
        return (info.pid, info.create_time)

    def expand(self, infos):
        """Add descendants (tree) and drop protected, duplicate and vanished entries; supervisors first."""
        out = []
        for info in infos:
            if info.proc is None or info.pid in self.protected or self.key(info) in self.seen:
                continue
            self.seen.add(self.key(info))
            out.append(info)
        if self.tree and out:
            kids = children_map()  # one pass over the process table, not one per process
            for info in list(out):
                for child in descendants(info.proc, kids):
                    snap = snapshot(child, "child-of:%d" % info.pid)
                    if snap and not is_gone(child) and snap.pid not in self.protected \
                            and self.key(snap) not in self.seen and not in_other_namespace(snap.pid, self.own_ns):
                        self.seen.add(self.key(snap))
                        out.append(snap)
        out.sort(key=lambda i: 0 if i.matched_by.startswith("supervisor") else 1)
        return out

    def escalable(self, restarter):
        """Can the ancestor that restarted a target be stopped as its supervisor?"""
        if restarter is None or not self.tree:
            return False
        pid, _ctime, name = restarter
        return pid > 1 and pid not in self.protected and name not in SYSTEM_MANAGERS and not is_kernel_thread(pid) \
            and not in_other_namespace(pid, self.own_ns)

    def watching(self):
        return self.rematch is not None or self.tree

    def scan(self):
        """Processes running now that were not handled yet and match again (rematch) or, with tree, look like a
        stopped one and were started by one of their ancestors that can be stopped: [_Respawn]."""
        started = time.monotonic()
        found = {}
        if self.rematch is not None:
            for info in self.rematch():
                if self.key(info) not in self.seen and info.pid not in self.protected:
                    found[self.key(info)] = info
        names = set(s.name for s in self.stopped) if self.tree else set()
        table = process_table()
        out = []
        for pid, (_ppid, ctime, name) in table.items():
            if name in names and (pid, ctime) not in self.seen and (pid, ctime) not in found \
                    and pid not in self.protected and not in_other_namespace(pid, self.own_ns):
                try:
                    snap = snapshot(psutil.Process(pid), "look-alike")
                except psutil.Error:
                    snap = None
                if snap is not None and _looks_like(snap, self.stopped):
                    found[self.key(snap)] = snap
        for key, info in found.items():
            chain = lineage(info.pid, table)
            restarter = next((c for c in chain if (c[0], c[1]) in self.ancestors), None)
            if info.matched_by == "look-alike":
                if not self.escalable(restarter):
                    continue  # the same program started by someone else: not ours to stop
            if restarter is not None:
                info.matched_by = "respawned-by:%d" % restarter[0]
            out.append(_Respawn(info, chain, restarter))
        self.scan_cost = time.monotonic() - started
        return out

    def run_round(self, infos):
        """Signal infos, wait for them together, KILL survivors, then watch for the respawn window after the last
        of them is gone. Returns what came back ([_Respawn])."""
        table = process_table()
        for info in infos:  # their ancestors, read before anything dies: a restarter is found among them
            self.ancestors.update((pid, ctime) for pid, ctime, _name in lineage(info.pid, table))
        signalled = []
        for info in infos:
            error = _send(info.proc, self.signum)
            if error:
                self.survivors.append(_entry(info, self.signum, "survived", error))
            else:
                signalled.append(info)
                if not info.matched_by.startswith(("child-of:", "supervisor-of:")):
                    self.stopped.append(info)  # a look-alike of a target is a respawn; of a child, maybe not
        respawns = {}
        next_scan = [0.0]

        def watch(force=False):
            # a scan reads the whole process table (and rematches): space the scans by 4x their cost, >= 0.1 s
            now = time.monotonic()
            if self.watching() and (force or now >= next_scan[0]):
                for item in self.scan():
                    respawns.setdefault(self.key(item.info), item)
                next_scan[0] = time.monotonic() + max(0.1, 4 * self.scan_cost)

        by_proc = dict((id(i.proc), i) for i in signalled)
        gone, alive = wait_all([i.proc for i in signalled], self.grace, on_poll=watch)
        for proc in gone:
            self.terminated.append(_entry(by_proc[id(proc)], self.signum, "exited"))
        if alive and self.kill_after_grace and self.signum != _signal.SIGKILL:
            for proc in alive:
                _send(proc, _signal.SIGKILL)
            killed, alive = wait_all(alive, 5.0, on_poll=watch)
            for proc in killed:
                self.terminated.append(_entry(by_proc[id(proc)], _signal.SIGKILL, "killed"))
        for proc in alive:
            last = _signal.SIGKILL if self.kill_after_grace else self.signum
            self.survivors.append(_entry(by_proc[id(proc)], last, "survived", "still running after %s" % (
                "SIGKILL" if self.kill_after_grace else "the grace period")))
        # the window starts when the last one is gone: a supervisor restarts only after its child died, and
        # sleeps before it does (a shell loop's `sleep 3`, systemd's RestartSec)
        if self.watching() and signalled:
            window_end = time.monotonic() + self.respawn_window
            while True:
                remaining = window_end - time.monotonic()
                if remaining <= 0:
                    break
                time.sleep(min(remaining, max(0.0, next_scan[0] - time.monotonic()), 0.1) or 0.01)
                watch()
            watch(force=True)
        return list(respawns.values())

    def run(self, infos):
        pending = self.expand(infos)
        rounds = 0
        came_back = {}  # key -> _Respawn, for the survivors' report
        while pending and rounds < self.max_rounds:
            rounds += 1
            nxt = []
            for item in self.run_round(pending):
                came_back[self.key(item.info)] = item
                restarter = item.restarter
                if self.escalable(restarter) and restarter[0] not in self.escalated:
                    self.escalated.add(restarter[0])
                    sup = _verified(restarter, "supervisor-of:%d" % item.info.pid)
                    if sup:
                        nxt.append(sup)
                nxt.append(item.info)
            pending = self.expand(nxt)
        if rounds and self.watching():
            # the final re-match: whatever runs now, after the last round's window, came back
            for item in self.scan():
                came_back.setdefault(self.key(item.info), item)
                pending.append(item.info)
        reported = set()
        for info in pending:
            if self.key(info) in reported or is_gone(info.proc):
                continue
            reported.add(self.key(info))
            self.survivors.append(self.respawned_entry(info, came_back.get(self.key(info)), rounds))
        return self.terminated, self.survivors

    def respawned_entry(self, info, item, rounds):
        """The survivor entry of a process that still runs after the last round: its parent chain and what
        started it again."""
        chain = item.chain if item is not None else lineage(info.pid, process_table())
        restarter = item.restarter if item is not None else None
        if restarter is None:
            by = "its parent %s" % describe_chain(chain[:1])
        elif not self.tree:
            by = "%s (not stopped: tree is false)" % describe_chain([restarter])
        elif restarter[0] in self.escalated or self.escalable(restarter):
            by = "%s, which kept restarting it" % describe_chain([restarter])
        else:
            by = ("%s, a service manager or an ancestor of this module, never stopped by reap: remove what starts "
                  "it (residue.purge.autostart)" % describe_chain([restarter]))
        message = "came back after %d round(s) (parent chain: %s), started again by %s" % (
            rounds, describe_chain(chain), by)
        entry = _entry(info, self.signum, "respawned", message)
        entry["parents"] = [{"pid": pid, "name": printable(name)} for pid, _ctime, name in chain]
        entry["restarted_by"] = ({"pid": restarter[0], "name": printable(restarter[2])}
                                 if restarter is not None else None)
        return entry


def _verified(ident, matched_by):
    """ProcInfo for (pid, create_time, name) if that pid is still the same process, else None."""
    try:
        proc = psutil.Process(ident[0])
        if abs(proc.create_time() - ident[1]) > 0.01:
            return None
    except psutil.Error:
        return None
    return snapshot(proc, matched_by)


def _entry(info, signum, outcome, error=None):
    entry = info.to_dict()
    entry.update(signal=signal_name(signum), outcome=outcome)
    if error:
        entry["error"] = error
    return entry


def stop_processes(procs, signal="TERM", grace=10, kill_after_grace=True, tree=True, check_mode=False,
                   rematch=None, max_rounds=3, respawn_window=1.0, namespaces="own"):
    """Stop procs (ProcInfo or dicts with pid and create_time): send `signal` to all, wait up to `grace`
    seconds for all of them together, then SIGKILL survivors if kill_after_grace.

    After each round, once the last of its processes is gone (after SIGKILL too), it watches `respawn_window`
    seconds for what comes back: a fresh match of `rematch` (optional callable returning ProcInfo matches; a
    target restarted by systemd shows up here) or, with `tree`, a process that looks like a stopped one (same
    name and argv) started by one of their ancestors. What came back is stopped in the next round, up to
    max_rounds rounds, and with `tree` so is the ancestor that restarted it (the nearest ancestor of the new
    process that was also an ancestor of a stopped one; never PID 1, an ancestor of this process or a system
    manager such as systemd). After the last round everything is matched once more: what runs then is a
    survivor with outcome "respawned", its parent chain (`parents`) and what restarted it (`restarted_by`).
    Cost: one respawn window per round in which something was signalled.
    namespaces: "own" (default) never signals a descendant, look-alike or supervisor in another PID namespace than
    this process's (the caller selects the matches themselves, see ProcessSelection); "all" lifts that.

    Returns (terminated, survivors): dicts with pid, ppid, name, user, cmdline, create_time, matched_by,
    signal and outcome (exited, killed or would_stop in check mode; survived or respawned for survivors, with
    an error text).
    """
    require_psutil()
    signum = signal_number(signal)
    if isinstance(grace, bool) or not isinstance(grace, (int, float)) or grace < 0:
        raise ValueError("grace: expected a number of seconds >= 0, got %r" % (grace,))
    if isinstance(respawn_window, bool) or not isinstance(respawn_window, (int, float)) or respawn_window < 0:
        raise ValueError("respawn_window: expected a number of seconds >= 0, got %r" % (respawn_window,))
    if not isinstance(max_rounds, int) or max_rounds < 1:
        raise ValueError("max_rounds: expected an integer >= 1, got %r" % (max_rounds,))
    stopper = _Stopper(signum, grace, kill_after_grace, tree, rematch, max_rounds, respawn_window, namespaces)
    infos = [_as_procinfo(p) for p in procs]
    if check_mode:
        return [_entry(i, signum, "would_stop") for i in stopper.expand(infos)], []
    return stopper.run(infos)


# ---------------------------------------------------------------------------------------------- reap's plan

class ProcessSelection(object):
    """What reap matches: the union of the chosen profiles' process patterns and the direct selectors, and
    for every match the profiles it belongs to. Built (and validated) before anything is signalled."""

    def __init__(self, profiles=None, names=(), cmdline=(), holding=(), users=None, namespaces="own"):
        self.namespaces = namespaces
        self.others = []  # what find() matched in other PID namespaces (containers), each once
        self.per_target = {}
        all_names, all_regexes = set(names or ()), compile_patterns(cmdline, "cmdline")
        for target, profile in sorted((profiles or {}).items()):
            target_names, target_cmdline = profile_matchers(profile)
            compiled = compile_patterns(target_cmdline, "profiles.%s.processes.cmdline" % target)
            self.per_target[target] = (set(target_names), compiled)
            all_names.update(target_names)
            all_regexes.extend(compiled)
        self.names = sorted(all_names)
        self.regexes = all_regexes
        self.roots = normalise_roots(holding, "holding") if holding else []
        self.users = users

    def empty(self):
        return not (self.names or self.regexes or self.roots)

    def find(self, spared=None):
        """Matches in this PID namespace (all namespaces with namespaces='all'); the others go to self.others."""
        others = [] if self.namespaces != "all" else None
        found = find_processes(self.names, self.regexes, self.roots, self.users, spared, others)
        if others is not None:
            known = set((o.pid, o.create_time) for o in self.others)
            self.others.extend(o for o in others if (o.pid, o.create_time) not in known)
        return found

    def targets_of(self, entry):
        """Names of the profiles whose patterns match entry (a ProcInfo or a result dict)."""
        if isinstance(entry, dict):
            name, argv, exe = entry.get("name"), entry.get("cmdline"), entry.get("exe")
        else:
            name, argv, exe = entry.name, entry.cmdline, entry.exe
        name, argv, exe = name or "", argv or [], exe or ""
        return [t for t, (names, regexes) in sorted(self.per_target.items())
                if match_name(names, name, argv, exe) or match_cmdline(regexes, argv)]


def describe_processes(entries):
    """One line per process for diff output: 'pid user name: argv'."""
    return "".join("%d %s %s: %s\n" % (e["pid"], e.get("user") or "?", e["name"], " ".join(e.get("cmdline") or []))
                   for e in sorted(entries, key=lambda e: e["pid"]))


def _user_exists(name):
    try:
        import pwd  # pylint: disable=import-outside-toplevel  # POSIX only; Windows has its own module
    except ImportError:
        return True
    try:
        pwd.getpwnam(name)
        return True
    except KeyError:
        return False


def selection_from(params):
    """The ProcessSelection for reap's parameters (targets, profiles, homes, users, names, cmdline, holding, signal,
    grace), every one validated first. Raises ValueError (ProfileError is one) with a message naming the option.

    Profiles are used when targets are named, or when no direct selector (names, cmdline, holding) is given."""
    names, cmdline, holding = params.get("names") or [], params.get("cmdline") or [], params.get("holding") or []
    for option, values in (("names", names), ("cmdline", cmdline), ("holding", holding)):
        if not isinstance(values, list) or any(not isinstance(v, str) or not v.strip() for v in values):
            raise ValueError("%s: expected a list of non-empty strings, got %r" % (option, values))
    profiles = {}
    if params.get("targets") or not (names or cmdline or holding):
        profiles = select_targets(load_profiles(params.get("profiles") or {}), params.get("targets"))
    if params.get("homes"):
        users = sorted(set(u.name for u in list_users(homes=params["homes"])))
    else:
        users = parse_users_option(params.get("users", "all"))
        unknown = [] if users == "all" else [u for u in users if not _user_exists(u)]
        if unknown:
            raise ValueError("users: no such user(s) %s" % ", ".join(unknown))
    signal_number(params.get("signal", "TERM"))
    grace = params.get("grace", 10)
    if isinstance(grace, bool) or not isinstance(grace, (int, float)) or grace < 0:
        raise ValueError("grace: expected a number of seconds >= 0, got %r" % (grace,))
    namespaces = params.get("namespaces") or "own"
    if namespaces not in ("own", "all"):
        raise ValueError("namespaces: expected 'own' or 'all', got %r" % (namespaces,))
    return ProcessSelection(profiles, names, cmdline, holding, None if users == "all" else users, namespaces)


def run(params, check_mode=False):
    """reap: match, then stop (or in check mode, list what would be stopped). The module's result; ValueError
    for bad options, before anything is signalled."""
    selection = selection_from(params)
    result = dict(changed=False, matched=[], spared=[], terminated=[], survivors=[], other_namespaces=[], problems=[])
    if selection.empty():
        result["problems"].append("the chosen targets name no processes, so nothing was matched")
    spared = []
    matched = selection.find(spared)
    result["spared"] = [dict(p.to_dict(), reason="PID 1, this module or one of its ancestors") for p in spared]
    result["matched"] = [dict(p.to_dict(), targets=selection.targets_of(p)) for p in matched]
    terminated, survivors = stop_processes(
        matched, signal=params["signal"], grace=params["grace"], kill_after_grace=params["kill_after_grace"],
        tree=params["tree"], check_mode=check_mode, rematch=selection.find,
        respawn_window=params["respawn_window"], namespaces=selection.namespaces)
    for entry in terminated + survivors:
        entry["targets"] = selection.targets_of(entry)
    other_namespaces = [dict(foreign_entry(p), targets=selection.targets_of(p)) for p in selection.others
                        if not is_gone(p.proc)]
    result.update(terminated=terminated, survivors=survivors, changed=bool(terminated),
                  other_namespaces=other_namespaces)
    for entry in other_namespaces:
        where = " (%s container %s)" % (entry["runtime"], entry["container"]) if entry["runtime"] else ""
        text = ("pid %d (%s, user %s) matches but runs in another PID namespace%s, cgroup %s: not signalled, its "
                "runtime owns it (namespaces=all stops it)")
        result["problems"].append(text % (entry["pid"], entry["name"], entry["user"], where, entry["cgroup"]))
    if terminated or survivors:
        result["diff"] = {"before": describe_processes(terminated + survivors), "after": describe_processes(survivors),
                          "before_header": "processes", "after_header": "processes"}
    if survivors:
        result["failure"] = "%d process(es) still running: %s" % (len(survivors), "; ".join(
            "%s (pid %d, %s): %s" % (s["name"], s["pid"], s["user"], s.get("error", s["outcome"])) for s in survivors))
    return result
