#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: residue.purge contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import absolute_import, division, print_function

__metaclass__ = type

DOCUMENTATION = r"""
module: open_deleted
short_description: Find processes holding deleted files (lsof +L1) and optionally stop them
version_added: 0.1.0
description:
  - Lists every process that holds a deleted file, the C(lsof +L1) check that ends every manual clean-up,
    and the disk space those files still pin, per filesystem.
  - On Linux it makes one pass over C(/proc), reading open file descriptors, the executable, working and
    root directories (file descriptors whose link ends in C( (deleted)) and whose file has no links left),
    and deleted files that are only memory-mapped (reported with fd V(DEL), as C(lsof) does).
    Shared anonymous memory (C(/dev/zero), SysV shared memory) is not a file and is not reported.
  - On macOS (no C(/proc)) it parses C(lsof -nP -w +L1 -F pcuLftDsikn0) field output into the same result keys;
    each file's filesystem is the mount point of its device (paths under C(/System/Volumes/Data) are given
    their firmlinked names such as C(/Users/...)), and free space per volume comes from C(statfs) at that
    mount point. Local Time Machine snapshots of C(/) are listed in RV(snapshots); they keep the blocks of
    files deleted since they were taken (reported, never touched).
  - Read-only unless O(action=terminate), which stops the holding processes with the same machinery and
    guards as M(residue.purge.reap) (never PID 1, kernel threads, this module or its ancestors; PID-reuse safe).
author:
  - residue.purge contributors (@residue-purge)
options:
  under:
    description:
      - Only report files whose original path was under one of these directories (absolute paths).
      - Symlinks in these paths are resolved too, because the kernel names a deleted file by its real path.
      - Empty means any deleted file on the host.
      - Required with O(action=terminate), and V(/) is refused there, so that only the holders of residue files
        are stopped, never every service that happens to hold a deleted file.
    type: list
    elements: path
    default: []
  min_bytes:
    description:
      - Only report files at least this big (apparent size), as bytes or a size such as V(10M) or V(1G).
    type: str
    default: "0"
  action:
    description:
      - V(report) only lists the handles.
      - V(terminate) also stops every process holding one of the reported files, then scans again and reports
        what is left and how much free space each filesystem gained. A holder that appears meanwhile (a
        supervisor forking a child that inherits the descriptor) is stopped in a further round; a file still
        held at the end by a process that may be signalled fails the task.
    type: str
    choices: [report, terminate]
    default: report
  signal:
    description:
      - Signal sent first to each holder when O(action=terminate), by name (V(TERM), V(INT), V(HUP)) or number.
    type: str
    default: TERM
  grace:
    description:
      - Seconds to wait for the holders to exit after O(signal) before they are killed with SIGKILL.
    type: float
    default: 10
  namespaces:
    description:
      - Which PID namespaces O(action=terminate) acts in. With V(own) only holders in the module's own PID
        namespace are stopped; holders in other namespaces (containers) are listed in RV(other_namespaces) and as
        problems, never signalled, and what they hold is not a failure. V(all) stops them too.
      - Every holder is listed in RV(handles) whatever its namespace.
    type: str
    choices: [own, all]
    default: own
extends_documentation_fragment:
  - residue.purge.attributes
attributes:
  check_mode:
    details: In check mode no signal is sent; RV(terminated) lists the processes a real run would stop.
  diff_mode:
    details: The diff lists the holding processes and deleted files before and after termination.
  idempotent:
    details: Once the holders are stopped a second run finds nothing and reports no change.
notes:
  - Without root only the connecting user's processes can be inspected; the others are counted in
    RV(scan) and a warning says so. Use C(become) for a whole-host answer.
  - O(action=terminate) needs the C(psutil) Python library on the managed host; O(action=report) needs nothing
    beyond Python (and C(lsof) on hosts without C(/proc)).
  - Bytes pinned are counted once per file (device and inode) however many processes hold it, and are the
    allocated blocks of the file, which is what the filesystem gets back.
  - Compared with C(lsof -nP +L1), the Linux scan lists the same descriptors (including C(txt), C(cwd) and C(rtd))
    and in addition deleted files held only through a memory mapping, which C(+L1) misses because a mapping has
    no link count (plain C(lsof) shows them with fd C(DEL)).
  - Paths are those the holding process sees; a process in a container reports paths inside its own root.
seealso:
  - module: residue.purge.reap
  - module: residue.purge.remove
"""

EXAMPLES = r"""
- name: Report every deleted file that still pins space
  residue.purge.open_deleted:
  register: pinned

- name: Report only model files of at least 100 MiB deleted from the shared caches
  residue.purge.open_deleted:
    under:
      - /srv/models
      - /home/alice/.cache/huggingface
    min_bytes: 100M

- name: Stop whatever still holds deleted files under the residue, and show the space that came back
  residue.purge.open_deleted:
    under: [/opt/open-autoglm, /var/cache/open-autoglm]
    action: terminate
    grace: 5
  become: true
"""

RETURN = r"""
handles:
  description: One entry per process and deleted file it holds (after O(under) and O(min_bytes)), sorted by pid.
  returned: always
  type: list
  elements: dict
  contains:
    pid: {description: Process id of the holder., type: int}
    name: {description: Process name (comm)., type: str}
    user: {description: User owning the process., type: str}
    fd: {description: "File descriptor number, or V(DEL) (memory-mapped), V(txt) (executable), V(cwd), V(rtd)
           as lsof names them.", type: str}
    path: {description: The path the file had before it was deleted., type: str}
    bytes: {description: Apparent size of the file., type: int}
    disk_bytes: {description: Space allocated to the file (what deleting it for good frees)., type: int}
    filesystem: {description: "Mount point of the filesystem holding the file, or V(dev:MAJOR:MINOR) for a
                   device that is not mounted (memfd)."
                 , type: str}
    device: {description: Device of the file as V(MAJOR:MINOR)., type: str}
    inode: {description: Inode number of the file., type: int}
  sample:
    - {pid: 4242, name: open-autoglm, user: alice, fd: "7", path: /srv/models/glm.safetensors, bytes: 5368709120,
       disk_bytes: 5368709120, filesystem: /srv, device: "8:17", inode: 131077}
pinned_bytes:
  description: Bytes still pinned by deleted files per filesystem (mount point), each file counted once.
  returned: always
  type: dict
  sample: {/srv: 5368709120}
filesystems:
  description: Per filesystem, what is pinned, and with O(action=terminate) (not in check mode) the free space
    statvfs reported before and after the holders were stopped.
  returned: always
  type: list
  elements: dict
  sample:
    - {filesystem: /srv, device: "8:17", fstype: ext4, pinned_bytes: 5368709120, size_bytes: 5368709120, files: 1,
       processes: 1, free_bytes_before: 1000000, free_bytes_after: 5369709120, freed_bytes: 5368709120}
terminated:
  description: Processes stopped (in check mode, that would be stopped), each with C(pid), C(ppid), C(name),
    C(user), C(cmdline), C(create_time), C(matched_by), the C(signal) and the C(outcome) (V(exited), V(killed),
    V(would_stop)).
  returned: when O(action=terminate)
  type: list
  elements: dict
survivors:
  description: Holders still running after SIGKILL or that could not be signalled, with the error; the task fails.
  returned: when O(action=terminate)
  type: list
  elements: dict
spared:
  description: Holders that are never signalled (PID 1, kernel threads, this module and its ancestors), with
    their C(pid), C(name), C(user), number of C(handles), C(paths) and the C(reason).
  returned: when O(action=terminate)
  type: list
  elements: dict
other_namespaces:
  description:
    - With O(action=terminate), holders in other PID namespaces (containers) left running because
      O(namespaces=own), each with C(pid), C(name), C(user), C(handles), C(paths) (what it holds), C(namespace),
      C(cgroup), and C(runtime) and C(container) as the cgroup shows them (V(null) when it shows none).
  returned: when O(action=terminate)
  type: list
  elements: dict
remaining:
  description: Handles found by a second scan after the holders were stopped (not in check mode), each with the
    keys of RV(handles). Any that is not held by a spared process fails the task.
  returned: when O(action=terminate)
  type: list
  elements: dict
scan:
  description: Processes inspected, gone during the scan, and not (fully) readable (permission denied, with their
    pids). On hosts scanned through lsof the number of processes is null (lsof does not report it).
  returned: always
  type: dict
  sample: {processes: 412, vanished: 1, denied: 1, denied_pids: [1]}
snapshots:
  description: macOS only, the local snapshots of C(/) (C(tmutil listlocalsnapshots /)); a problem says that they
    keep deleted files' blocks. Never thinned or deleted by this module.
  returned: on macOS
  type: list
  elements: str
  sample: [com.apple.TimeMachine.2024-05-02-091512.local]
problems:
  description: Conditions that limit the answer (unreadable processes, spared holders), also given as warnings.
  returned: always
  type: list
  elements: str
"""

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.residue.purge.plugins.module_utils import _handles
from ansible_collections.residue.purge.plugins.module_utils._module import run_topic


def main():
    module = AnsibleModule(
        argument_spec=dict(
            under=dict(type="list", elements="path", default=[]),
            min_bytes=dict(type="str", default="0"),
            action=dict(type="str", choices=["report", "terminate"], default="report"),
            signal=dict(type="str", default="TERM"),
            grace=dict(type="float", default=10),
            namespaces=dict(type="str", default="own", choices=["own", "all"]),
        ),
        supports_check_mode=True,
    )
    run_topic(module, _handles.run, commands=True)


if __name__ == "__main__":
    main()
