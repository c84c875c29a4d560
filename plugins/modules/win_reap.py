#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: residue.purge contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

# The code is win_reap.ps1; this file only documents it. Tasks use residue.purge.reap: meta/runtime.yml
# routes that name to this module for Windows hosts.

from __future__ import absolute_import, division, print_function

__metaclass__ = type

DOCUMENTATION = r"""
module: win_reap
short_description: Stop the processes of AI tools on Windows safely (close, wait, terminate; whole trees; respawning supervisors)
version_added: 0.2.0
description:
  - The Windows implementation of M(residue.purge.reap). Use that name in tasks; it reaches this module on
    hosts with a PowerShell shell, with the options and return values of M(residue.purge.reap).
  - Processes are listed from C(Win32_Process) (name, executable, command line split as C(CommandLineToArgvW)
    does, parent, creation time) and matched like on POSIX (a profile's C(processes.names) also match
    C(<name>.exe)).
  - A process is acted on only while it is the process that was matched (same pid and creation time, checked on
    the handle that is then used), so a reused pid is never hit.
  - Never stops the module's own process or its ancestors (the Ansible connection), or Windows' own processes
    (C(csrss.exe), C(services.exe), C(lsass.exe), C(winlogon.exe), C(svchost.exe), C(explorer.exe), ...);
    matched ones are listed in RV(spared).
  - With O(tree), descendants (children started after their parent) go too, and so does the supervisor that starts
    a stopped process again, the nearest ancestor of the new process that was also an ancestor of the stopped one
    (its parent, or a script loop further up), unless that is this module's ancestor or a Windows system process
    (C(services.exe) restarting a service is one).
  - After each round, once the last of its processes is gone (after C(TerminateProcess) too), it watches for
    O(respawn_window) seconds for the targets coming back and stops what came back in the next round. After the
    last of at most three rounds it matches once more; whatever runs then (for example a service with recovery
    actions) fails the task with outcome V(respawned), its parent chain and what started it again. Use
    M(residue.purge.autostart) first to remove what restarts it.
  - "Cost: every round in which something was signalled takes its wait (at most O(grace) plus the termination) and
    then one O(respawn_window); a plain run that stops what it matched at once takes about O(respawn_window)
    seconds. A restart slower than O(respawn_window) is not seen by this task (the purge playbook's verify phase
    checks the processes again)."
author:
  - residue.purge contributors (@residue-purge)
options:
  names:
    description:
      - Exact process names to stop. A process matches when its name, the basename of its C(argv[0]) or the
        basename of its executable equals one of them.
    type: list
    elements: str
    default: []
  cmdline:
    description:
      - Regular expressions searched in the process command line (arguments joined by spaces; on Windows
        .NET regular expressions, with C(\) in argv[0] read as C(/) and C(.exe) dropped, so the profiles'
        POSIX-style patterns apply).
    type: list
    elements: str
    default: []
  holding:
    description:
      - Absolute paths. On Windows, the processes the Restart Manager reports holding a file under one of them
        open or mapped are stopped.
      - A whole drive (V(C:\\)) is refused, since every process would match.
    type: list
    elements: path
    default: []
  signal:
    description:
      - Signal sent first, by name (V(TERM), V(INT), V(HUP), V(QUIT), V(KILL)) or number.
      - On Windows V(TERM), V(INT), V(HUP) and V(QUIT) post C(WM_CLOSE) to the process's top-level windows (what
        C(taskkill) without C(/F) does); a process without a window cannot be asked and is terminated after
        O(grace) (at once when no matched process has a window). V(KILL) calls C(TerminateProcess).
    type: str
    default: TERM
  respawn_window:
    description:
      - Seconds to keep watching, counted from the moment the last process of a round is gone (after
        C(TerminateProcess) too), for the targets coming back (a script loop that sleeps before restarting, a
        service's recovery delay). What comes back, and with O(tree) the ancestor that restarted it, is stopped in
        the next round.
      - Not capped by O(grace). Every round in which something was signalled takes this long once more.
    type: float
    default: 5
  tree:
    description:
      - Also stop the descendants of every matched process, and the ancestor that restarts a stopped process
        within O(respawn_window) (its parent, or an ancestor further up such as a script loop that runs a shell
        that runs the target). Ancestors of the module and Windows system processes (C(services.exe),
        C(svchost.exe), C(explorer.exe), ...) are never stopped this way.
    type: bool
    default: true
extends_documentation_fragment:
  - residue.purge.twins.REAP
  - residue.purge.targets
  - residue.purge.attributes
attributes:
  check_mode:
    details: In check mode nothing is closed or terminated; RV(terminated) lists the matched processes and their
      descendants with outcome V(would_stop).
  diff_mode:
    details: The diff lists the matched processes (pid, user, name, command line) before, and the survivors after.
  idempotent:
    details: Once the processes are gone a second run matches nothing and reports no change.
notes:
  - Run as an administrator to stop every user's processes; others are reported as survivors and the task fails.
  - Services restart what they run; remove them first with M(residue.purge.autostart).
  - The POSIX option O(residue.purge.reap#module:namespaces) (PID namespaces, containers seen from the host) does not exist here; Windows
    has no PID namespaces, so RV(other_namespaces) is never returned.
  - Nothing of this module has been run on Windows by the collection's own tests yet; see the collection's
    C(docs/windows.md).
seealso:
  - module: residue.purge.reap
  - module: residue.purge.autostart
"""

EXAMPLES = r"""
- name: Stop Ollama and its runners on Windows and POSIX hosts alike
  residue.purge.reap:
    targets: [ollama]
    grace: 10
"""

RETURN = r"""
matched:
  description: The processes matched before anything was signalled (children and supervisors are not included).
  returned: always
  type: list
  elements: dict
  contains:
    pid: {description: Process id., type: int}
    ppid: {description: Parent process id., type: int}
    name: {description: Process name., type: str}
    user: {description: Owner of the process., type: str}
    cmdline: {description: Command line arguments., type: list, elements: str}
    create_time: {description: Start time (seconds since the epoch) that identifies the process with its pid.,
                  type: float}
    matched_by: {description: "Why it was matched: V(name), V(cmdline) or V(holding:<path>).", type: str}
    targets: {description: Profiles whose patterns match it (empty for direct selectors)., type: list,
              elements: str}
  sample:
    - {pid: 4242, ppid: 1, name: open-autoglm, user: alice, cmdline: [/opt/open-autoglm/bin/open-autoglm, serve],
       create_time: 1764161234.5, matched_by: name, targets: [open_autoglm]}
terminated:
  description:
    - Processes stopped (in check mode, that would be stopped).
    - Each has the keys of RV(matched), plus C(signal) (the last signal sent, V(TERM) or V(KILL)) and
      C(outcome) (V(exited) after O(signal), V(killed) after SIGKILL, V(would_stop) in check mode).
    - C(matched_by) is V(child-of:<pid>) for descendants, V(supervisor-of:<pid>) for a respawning parent and
      V(respawned-by:<pid>) for a process it started again.
  returned: always
  type: list
  elements: dict
  sample:
    - {pid: 4242, ppid: 1, name: open-autoglm, user: alice, cmdline: [open-autoglm, serve],
       create_time: 1764161234.5, matched_by: name, targets: [open_autoglm], signal: KILL, outcome: killed}
survivors:
  description:
    - Processes still running, with C(outcome) V(survived) (still running after C(TerminateProcess), or could not
      be opened) or V(respawned) (running at the final match after the last round) and an C(error) saying why.
    - A V(respawned) entry also has C(parents), its parent chain nearest first (C(pid), C(name)), and
      C(restarted_by), the ancestor that started it again (C(pid), C(name)) or V(null) when none was seen.
    - The task fails when this list is not empty.
  returned: always
  type: list
  elements: dict
  sample:
    - {pid: 4311, ppid: 688, name: open-autoglm.exe, user: HOST\alice, cmdline: ['C:\Tools\open-autoglm.exe', serve],
       create_time: 1764161240.1, matched_by: "respawned-by:688", targets: [open_autoglm], signal: TERM,
       outcome: respawned, parents: [{pid: 688, name: services.exe}], restarted_by: {pid: 688, name: services.exe},
       error: "came back after 3 round(s) (parent chain: services.exe (pid 688)), started again by services.exe (pid 688), ..."}
spared:
  description:
    - Processes that match but are never signalled because they are PID 1, this module or one of its
      ancestors (for example a pattern that also matches the C(ansible-playbook) command line).
    - Each has the keys of RV(matched) and a C(reason).
  returned: always
  type: list
  elements: dict
other_namespaces:
  description:
    - Matching processes of other PID namespaces on POSIX hosts (see M(residue.purge.reap)). Windows has no PID
      namespaces, so this is never returned there.
  returned: never on Windows
  type: list
  elements: dict
problems:
  description: Conditions worth knowing that did not fail the task, also given as warnings.
  returned: always
  type: list
  elements: str
"""
