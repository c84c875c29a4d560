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
    list_users, load_profiles, parse_users_option, select_targets)

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
        with open("/proc/%d/stat" % pid, "rb") as f:
            stat = f.read()
    except (IOError, OSError):
        return False
    fields = stat[stat.rfind(b")") + 2:].split()
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
    """Compile regexes; a bad one raises ValueError naming the option and the pattern."""
    compiled = []
    for pattern in patterns or ():
        if not isinstance(pattern, str) or not pattern:
            raise ValueError("%s: every pattern must be a non-empty string, got %r" % (option, pattern))
        try:
            compiled.append(re.compile(pattern))
        except re.error as exc:
            raise ValueError("%s: %r is not a valid regular expression: %s" % (option, pattern, exc))
    return compiled


def match_name(names, name, cmdline, exe):
    """Exact match on the process name, argv[0]'s basename or the executable's basename."""
    if not names:
        return False
    candidates = {name}
    if cmdline:
        candidates.add(os.path.basename(cmdline[0]))
    if exe:
        candidates.add(os.path.basename(exe))
    return bool(candidates.intersection(names))


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


def find_processes(names=(), cmdline=(), holding=(), users=None, spared=None):
    """Processes matched by exact name, command-line regex or held paths (any of them), optionally only
    those of the given users. Never returns PID 1, kernel threads, zombies, this process or its ancestors.

    names: exact process names; cmdline: regex strings or compiled regexes searched in the space-joined argv;
    holding: absolute paths (processes whose exe, cwd, open files or maps lie under them); users: None/"all"
    or a list of user names. With no selector at all nothing is matched. If `spared` is a list, matches that
    are protected (PID 1, this process, its ancestors) are appended to it instead of being returned.
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
        if pid not in protected:
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
        still = []
        for proc in alive:
            (gone if is_gone(proc) else still).append(proc)
        alive = still
        if on_poll is not None:
            on_poll()
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


class _Stopper(object):
    """State of one stop_processes() call: the rounds, what was signalled, and what came back."""

    def __init__(self, signum, grace, kill_after_grace, tree, rematch, max_rounds, respawn_window):
        self.signum = signum
        self.grace = float(grace)
        self.kill_after_grace = kill_after_grace
        self.tree = tree
        self.rematch = rematch
        self.max_rounds = max_rounds
        self.respawn_window = self.grace if respawn_window is None else min(float(respawn_window), self.grace)
        self.protected = protected_pids()
        self.terminated = []
        self.survivors = []
        self.seen = set()           # (pid, create_time) of everything already handled
        self.escalated = set()      # parent pids stopped as supervisors

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
                            and self.key(snap) not in self.seen:
                        self.seen.add(self.key(snap))
                        out.append(snap)
        out.sort(key=lambda i: 0 if i.matched_by.startswith("supervisor") else 1)
        return out

    def respawn_parents(self, round_infos):
        """Parents that may respawn what we stop (alive, not protected, not a system manager), each with the
        children it has now, so that a child born later is recognised (create times are not comparable with
        time.time(): psutil derives them from the boot time, which can be off by a second)."""
        parents = {}
        kids = None
        for info in round_infos:
            if info.ppid in parents or info.ppid in self.protected or info.ppid <= 1:
                continue
            try:
                parent = psutil.Process(info.ppid)
                name = parent.name()
            except psutil.Error:
                continue
            kids = kids if kids is not None else children_map()
            existing = set(kids.get(info.ppid, ()))
            if name in SYSTEM_MANAGERS or is_kernel_thread(parent.pid):
                continue
            parents[info.ppid] = (parent, existing)
        return parents

    def new_children(self, parents, stopped):
        """Children of the candidate parents, born since the round started, that look like what was stopped."""
        found = []
        kids = children_map()
        for ppid, (parent, existing) in parents.items():
            if not parent.is_running():
                continue
            for pid in kids.get(ppid, ()):
                if pid in existing:  # there before the signal (pids of live children are not reused)
                    continue
                try:
                    child = psutil.Process(pid)
                except psutil.Error:
                    continue
                snap = snapshot(child, "respawned-by:%d" % ppid)
                if snap and _looks_like(snap, stopped) and self.key(snap) not in self.seen:
                    found.append((parent, snap))
        return found

    def run_round(self, infos):
        """Signal infos, wait for them together, KILL survivors. Returns the respawned (parent, child) pairs."""
        started = time.monotonic()
        # their children before the signal are the baseline; supervisors are part of the tree
        parents = self.respawn_parents(infos) if self.tree else {}
        signalled = []
        for info in infos:
            error = _send(info.proc, self.signum)
            if error:
                self.survivors.append(_entry(info, self.signum, "survived", error))
            else:
                signalled.append(info)
        respawns = []
        noted = set()

        last_watch = [0.0]

        def watch():
            # listing a parent's children scans the whole process table: a few times a second is enough
            if parents and time.monotonic() - last_watch[0] >= 0.1:
                last_watch[0] = time.monotonic()
                for parent, child in self.new_children(parents, signalled):
                    if self.key(child) not in noted:
                        noted.add(self.key(child))
                        respawns.append((parent, child))

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
        # a supervisor may respawn a little after its child died: keep watching for the rest of the window
        while parents and not respawns and time.monotonic() - started < self.respawn_window:
            time.sleep(0.02)
            watch()
        return respawns

    def rematch_within_window(self, round_started):
        """Fresh matches not handled yet; a restart by a service manager takes a moment (systemd's RestartSec
        defaults to 100 ms), so look again until the respawn window since the round's signal has passed."""
        while True:
            fresh = [i for i in self.rematch() if self.key(i) not in self.seen and i.pid not in self.protected]
            if fresh or time.monotonic() - round_started >= self.respawn_window:
                return fresh
            time.sleep(0.1)

    def run(self, infos):
        pending = self.expand(infos)
        for _round in range(self.max_rounds):
            if not pending:
                break
            round_started = time.monotonic()
            respawns = self.run_round(pending)
            nxt = []
            for parent, child in respawns:
                if parent.pid not in self.escalated:
                    self.escalated.add(parent.pid)
                    sup = snapshot(parent, "supervisor-of:%d" % child.pid)
                    if sup:
                        nxt.append(sup)
                nxt.append(child)
            if self.rematch is not None:
                nxt.extend(self.rematch_within_window(round_started))
            pending = self.expand(nxt)
        for info in pending:  # still coming back after the last round
            parent = "pid %d" % info.ppid
            try:
                parent = "%s (pid %d)" % (psutil.Process(info.ppid).name(), info.ppid)
            except psutil.Error:
                pass
            message = "came back after %d rounds, started again by %s" % (self.max_rounds, parent)
            self.survivors.append(_entry(info, self.signum, "respawned", message))
        return self.terminated, self.survivors


def _entry(info, signum, outcome, error=None):
    entry = info.to_dict()
    entry.update(signal=signal_name(signum), outcome=outcome)
    if error:
        entry["error"] = error
    return entry


def stop_processes(procs, signal="TERM", grace=10, kill_after_grace=True, tree=True, check_mode=False,
                   rematch=None, max_rounds=3, respawn_window=1.0):
    """Stop procs (ProcInfo or dicts with pid and create_time): send `signal` to all, wait up to `grace`
    seconds for all of them together, then SIGKILL survivors if kill_after_grace.

    tree: also stop their descendants, and a parent seen respawning a stopped process within
    `respawn_window` seconds (never PID 1, an ancestor of this process or a system manager such as systemd).
    rematch: optional callable returning fresh ProcInfo matches; what it finds after a round is stopped in the
    next round (a target restarted by systemd shows up here), up to max_rounds rounds; whatever is still
    coming back after that is returned as a survivor with outcome "respawned".

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
    stopper = _Stopper(signum, grace, kill_after_grace, tree, rematch, max_rounds, respawn_window)
    infos = [_as_procinfo(p) for p in procs]
    if check_mode:
        return [_entry(i, signum, "would_stop") for i in stopper.expand(infos)], []
    return stopper.run(infos)


# ---------------------------------------------------------------------------------------------- reap's plan

class ProcessSelection(object):
    """What reap matches: the union of the chosen profiles' process patterns and the direct selectors, and
    for every match the profiles it belongs to. Built (and validated) before anything is signalled."""

    def __init__(self, profiles=None, names=(), cmdline=(), holding=(), users=None):
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
        return find_processes(self.names, self.regexes, self.roots, self.users, spared)

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
    return ProcessSelection(profiles, names, cmdline, holding, None if users == "all" else users)


def run(params, check_mode=False):
    """reap: match, then stop (or in check mode, list what would be stopped). The module's result; ValueError
    for bad options, before anything is signalled."""
    selection = selection_from(params)
    result = dict(changed=False, matched=[], spared=[], terminated=[], survivors=[], problems=[])
    if selection.empty():
        result["problems"].append("the chosen targets name no processes, so nothing was matched")
    spared = []
    matched = selection.find(spared)
    result["spared"] = [dict(p.to_dict(), reason="PID 1, this module or one of its ancestors") for p in spared]
    result["matched"] = [dict(p.to_dict(), targets=selection.targets_of(p)) for p in matched]
    terminated, survivors = stop_processes(
        matched, signal=params["signal"], grace=params["grace"], kill_after_grace=params["kill_after_grace"],
        tree=params["tree"], check_mode=check_mode, rematch=selection.find,
        respawn_window=params["respawn_window"])
    for entry in terminated + survivors:
        entry["targets"] = selection.targets_of(entry)
    result.update(terminated=terminated, survivors=survivors, changed=bool(terminated))
    if terminated or survivors:
        result["diff"] = {"before": describe_processes(terminated + survivors), "after": describe_processes(survivors),
                          "before_header": "processes", "after_header": "processes"}
    if survivors:
        result["failure"] = "%d process(es) still running: %s" % (len(survivors), "; ".join(
            "%s (pid %d, %s): %s" % (s["name"], s["pid"], s["user"], s.get("error", s["outcome"])) for s in survivors))
    return result
