#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: residue.purge contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import absolute_import, division, print_function

__metaclass__ = type

DOCUMENTATION = r"""
module: reap
short_description: Stop the processes of AI tools safely (TERM, wait, KILL; whole trees; respawning supervisors)
version_added: 0.1.0
description:
  - Finds the processes of the chosen residue profiles (their C(processes.names) and C(processes.cmdline)
    patterns), or the processes given directly by O(names), O(cmdline) and O(holding), and stops them.
  - Sends O(signal) to all of them at once, waits up to O(grace) seconds for all of them together (200
    processes take about O(grace), not 200 times it), then sends SIGKILL to those still running.
  - With O(tree) it also stops their descendants, and the supervisor that starts a stopped process again, the
    nearest ancestor of the new process that was also an ancestor of the stopped one (its parent, or a shell
    loop further up), unless that is PID 1, an ancestor of the module or a system manager.
  - After each round, once the last of its processes is gone (after SIGKILL too), it watches for O(respawn_window)
    seconds for the targets coming back and stops what came back in the next round. After the last of at most
    three rounds it matches once more; whatever runs then (for example a systemd unit with C(Restart=always))
    fails the task with outcome V(respawned), its parent chain and what started it again. Use
    M(residue.purge.autostart) first to remove what restarts it.
  - "Cost: every round in which something was signalled takes its wait (at most O(grace) plus the SIGKILL) and
    then one O(respawn_window); a plain run that stops what it matched at once takes about O(respawn_window)
    seconds. A restart slower than O(respawn_window) is not seen by this task (the purge playbook's verify phase
    checks the processes again)."
  - Never signals PID 1, kernel threads, the module's own process or any of its ancestors (the Ansible worker,
    the SSH session), or a process that was not matched. A process is signalled only while it is still the
    process that was matched (same PID and create time), so a reused PID is never hit.
  - Zombies are already dead and are neither matched nor waited for.
author:
  - residue.purge contributors (@residue-purge)
requirements:
  - psutil on the managed host (C(apt install python3-psutil), C(dnf install python3-psutil) or
    C(pip install psutil)).
options:
  names:
    description:
      - Programs to stop. A process matches when its name, the basename of its C(argv[0]) or the basename of
        its executable equals one of them, or when it is an interpreter (python, node, perl, ruby, a shell)
        running one of them as a module or script (C(python -m open_autoglm), C(python .../open_autoglm/main.py),
        C(node .../open-autoglm); C(-), C(_) and C(.) count as one there).
      - The other arguments never count, so C(tail -f /var/log/open-autoglm), C(vim ~/.cache/open-autoglm/x),
        C(grep open-autoglm) and their C(sudo) or C(runuser) parents are not matched. Profiles match the same
        way with their C(processes.names).
    type: list
    elements: str
    default: []
  cmdline:
    description:
      - Regular expressions (Python C(re)) searched in the process command line (arguments joined by spaces).
      - A pattern that matches the empty string (V(.*), V(^), V(|x)) or every command line (V(.), V(\\S)) is
        refused before anything is signalled, as are such patterns in a profile's C(processes.cmdline) or
        C(cron).
    type: list
    elements: str
    default: []
  holding:
    description:
      - Absolute paths. Processes whose executable, working directory, open files (deleted ones included) or
        memory-mapped files lie under one of them are stopped.
      - On macOS the holders come from one C(lsof -nP -w -F pcuLfn) listing (psutil has no memory maps there);
        run with become to see other users' processes.
      - V(/) is refused, since every process would match.
    type: list
    elements: path
    default: []
  signal:
    description:
      - Signal sent first, by name (V(TERM), V(INT), V(HUP), V(QUIT), V(KILL)) or number.
    type: str
    default: TERM
  respawn_window:
    description:
      - Seconds to keep watching, counted from the moment the last process of a round is gone (after SIGKILL
        too), for the targets coming back (a supervisor loop that sleeps before restarting, systemd's
        C(RestartSec)). What comes back, and with O(tree) the ancestor that restarted it, is stopped in the next
        round.
      - Not capped by O(grace). Every round in which something was signalled takes this long once more.
    type: float
    default: 5
  namespaces:
    description:
      - Which PID namespaces to act in. With V(own) only processes of the module's own PID namespace
        (C(/proc/PID/ns/pid)) are stopped; matching processes of other namespaces (containers) are listed in
        RV(other_namespaces) and as problems, never signalled, since their runtime owns them. V(all) stops them
        too.
      - Descendants, look-alikes and supervisors in another namespace are never stopped with V(own) either.
    type: str
    choices: [own, all]
    default: own
  tree:
    description:
      - Also stop the descendants of every matched process, and the ancestor that restarts a stopped process
        within O(respawn_window) (its parent, or an ancestor further up such as a shell loop that runs a shell
        that runs the target). PID 1, ancestors of the module and system managers (systemd, init, launchd,
        containerd-shim, supervisord, sshd, cron, ...) are never stopped this way.
    type: bool
    default: true
extends_documentation_fragment:
  - residue.purge.twins.REAP
  - residue.purge.targets
  - residue.purge.attributes
attributes:
  check_mode:
    details: In check mode no signal is sent; RV(terminated) lists the matched processes and their descendants
      with outcome V(would_stop). Respawning supervisors can only be seen by stopping their child, so they are
      not listed.
  diff_mode:
    details: The diff lists the matched processes (pid, user, name, command line) before and after.
  idempotent:
    details: Once the processes are gone a second run matches nothing and reports no change.
notes:
  - Without root only the connecting user's processes can be signalled; others are reported as survivors
    (C(permission denied)) and the task fails. Use C(become) to stop every user's processes.
  - O(users) and O(homes) select the matched processes; descendants and a respawning supervisor stopped because
    of O(tree) are stopped whoever owns them (they are reported with C(matched_by) V(child-of:<pid>) or
    V(supervisor-of:<pid>)).
  - Profiles never match a process by the files it holds (a C(less) reading a log is not the daemon); use
    O(holding) for that, or M(residue.purge.open_deleted) for deleted files.
seealso:
  - module: residue.purge.autostart
  - module: residue.purge.open_deleted
  - module: residue.purge.discover
"""

EXAMPLES = r"""
- name: Stop Open-AutoGLM's processes of every user, and whatever keeps respawning them
  residue.purge.reap:
    targets: [open_autoglm]
  become: true

- name: See what would be stopped, without sending a signal
  residue.purge.reap:
    targets: [open_autoglm, ollama]
  check_mode: true
  register: would_stop

- name: Stop every process that holds files under the model directory, giving them 30 seconds
  residue.purge.reap:
    holding: [/srv/models/autoglm]
    grace: 30
  become: true

- name: Stop a user's own agent by its command line, interrupting it like Ctrl-C first
  residue.purge.reap:
    cmdline: ['(^|/)python[0-9.]* -m my_agent( |$)']
    users: [alice]
    signal: INT
    grace: 5
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
    - Processes still running, with C(outcome) V(survived) (still running after SIGKILL, or could not be
      signalled) or V(respawned) (running at the final match after the last round) and an C(error) saying why.
    - A V(respawned) entry also has C(parents), its parent chain nearest first (C(pid), C(name)), and
      C(restarted_by), the ancestor that started it again (C(pid), C(name)) or V(null) when none was seen.
    - The task fails when this list is not empty.
  returned: always
  type: list
  elements: dict
  sample:
    - {pid: 4311, ppid: 4310, name: open-autoglm, user: alice, cmdline: [open-autoglm, serve],
       create_time: 1764161240.1, matched_by: "respawned-by:1", targets: [open_autoglm], signal: TERM,
       outcome: respawned, parents: [{pid: 1, name: systemd}], restarted_by: {pid: 1, name: systemd},
       error: "came back after 3 round(s) (parent chain: systemd (pid 1)), started again by systemd (pid 1), ..."}
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
    - Matching processes of other PID namespaces (containers), left running because O(namespaces=own).
    - Each has the keys of RV(matched), plus C(namespace) (V(pid:[inode])), C(cgroup) (its cgroup path), and
      C(runtime) and C(container), the container runtime and id the cgroup shows (V(docker), V(containerd),
      V(cri-o), V(podman), V(lxc), V(systemd-nspawn), V(kubernetes)), or V(null) when it shows none.
  returned: always
  type: list
  elements: dict
  sample:
    - {pid: 9120, ppid: 9101, name: open-autoglm, user: root, cmdline: [open-autoglm, serve],
       create_time: 1764161299.2, matched_by: name, targets: [open_autoglm], namespace: "pid:[4026532612]",
       cgroup: /system.slice/docker-3f2a9c1b7d4e.scope, runtime: docker, container: 3f2a9c1b7d4e}
problems:
  description: Conditions worth knowing that did not fail the task, also given as warnings.
  returned: always
  type: list
  elements: str
"""

from ansible.module_utils.basic import AnsibleModule, missing_required_lib

from ansible_collections.residue.purge.plugins.module_utils import _procs
from ansible_collections.residue.purge.plugins.module_utils._module import run_topic
from ansible_collections.residue.purge.plugins.module_utils._profiles import TARGET_ARGUMENT_SPEC


def main():
    argument_spec = dict(TARGET_ARGUMENT_SPEC)
    argument_spec.update(
        names=dict(type="list", elements="str", default=[]),
        cmdline=dict(type="list", elements="str", default=[]),
        holding=dict(type="list", elements="path", default=[]),
        signal=dict(type="str", default="TERM"),
        grace=dict(type="float", default=10),
        kill_after_grace=dict(type="bool", default=True),
        respawn_window=dict(type="float", default=5.0),
        tree=dict(type="bool", default=True),
        namespaces=dict(type="str", default="own", choices=["own", "all"]),
    )
    module = AnsibleModule(argument_spec=argument_spec, supports_check_mode=True)
    if not _procs.HAS_PSUTIL:
        module.fail_json(msg=missing_required_lib("psutil") + " " + _procs.PSUTIL_INSTALL_HINT)
    run_topic(module, _procs.run)


if __name__ == "__main__":
    main()
