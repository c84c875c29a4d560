#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: residue.purge contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

# The code is win_autostart.ps1; this file only documents it. Tasks use residue.purge.autostart: meta/runtime.yml
# routes that name to this module for Windows hosts.

from __future__ import absolute_import, division, print_function

__metaclass__ = type

DOCUMENTATION = r"""
module: win_autostart
short_description: Remove what would start an AI tool again on Windows (services, scheduled tasks, Run keys, Startup items)
version_added: 0.2.0
description:
  - The Windows implementation of M(residue.purge.autostart). Use that name in tasks; it reaches this module on
    hosts with a PowerShell shell, with the options of M(residue.purge.autostart).
  - An entry belongs to a profile when its name matches the profile's C(services.windows) globs
    (case-insensitive), when its name without extension is one of the profile's C(processes.names)
    (C(Ollama.lnk) for V(ollama)), or when the program it starts matches the profile's process patterns as
    M(residue.purge.reap) matches a running process.
  - B(Services) (with O(system_wide)) are stopped, set to C(Disabled) and deleted.
  - B(Scheduled tasks) are stopped and unregistered; without O(system_wide) only tasks that run as a covered user.
  - B(Run and RunOnce values) of C(HKLM) (with O(system_wide)) and of every covered user's hive
    (C(HKEY_USERS\<SID>), the user's C(NTUSER.DAT) loaded for the duration when the user is not logged on), in
    the native and the C(WOW6432Node) views.
  - B(Startup folder items) (C(%ProgramData%\Microsoft\Windows\Start Menu\Programs\StartUp) with O(system_wide),
    and each covered user's C(%APPDATA%\Microsoft\Windows\Start Menu\Programs\Startup)); a shortcut's target
    is read to match it. A link is removed itself, never its target.
  - The POSIX return values (RV(units), RV(cron), RV(xdg), RV(launchd)) are always empty here; the Windows ones
    (RV(services), RV(scheduled_tasks), RV(run_keys), RV(startup_items)) are not returned on POSIX hosts.
author:
  - residue.purge contributors (@residue-purge)
options:
  system_wide:
    description:
      - Also cover machine-wide entries (services, every scheduled task, C(HKLM) Run keys, the all-users Startup
        folder). When false only the covered users' own entries are touched.
    type: bool
    default: true
extends_documentation_fragment:
  - residue.purge.targets
  - residue.purge.attributes
attributes:
  check_mode:
    details: Check mode finds the same entries and changes nothing.
  diff_mode:
    details: The entries removed are listed.
  idempotent:
    details: Once the entries are gone a second run finds nothing and reports no change.
notes:
  - Run as an administrator to change services, machine-wide entries and other users' hives.
  - The processes these entries started are still running afterwards; M(residue.purge.reap) stops them.
  - Nothing of this module has been run on Windows by the collection's own tests yet; see the collection's
    C(docs/windows.md).
seealso:
  - module: residue.purge.autostart
  - module: residue.purge.reap
"""

EXAMPLES = r"""
- name: Remove Ollama's Startup shortcut and Open-AutoGLM's service on Windows and POSIX hosts alike
  residue.purge.autostart:
    targets: [ollama, open_autoglm]
"""

RETURN = r"""
units:
  description: Always empty on Windows. On POSIX hosts, systemd units removed (in check mode, that would be removed), with every file, drop-in
    directory and link removed for each.
  returned: always
  type: list
  elements: dict
  contains:
    scope: {description: "V(system), V(global-user) (units for every user's manager) or V(user).", type: str}
    unit: {description: Unit name., type: str}
    user: {description: Owner of a user unit (null for the others)., type: str}
    paths: {description: "Files, drop-in directories and links removed.", type: list, elements: str}
    targets: {description: Profiles that name the unit., type: list, elements: str}
  sample:
    - {scope: system, unit: open-autoglm.service, user: null, targets: [open_autoglm],
       paths: [/etc/systemd/system/open-autoglm.service, /etc/systemd/system/open-autoglm.service.d,
               /etc/systemd/system/multi-user.target.wants/open-autoglm.service]}
cron:
  description: Always empty on Windows. On POSIX hosts, Crontabs changed, with the job lines removed from each.
  returned: always
  type: list
  elements: dict
  sample:
    - {path: /var/spool/cron/crontabs/alice, user: alice, targets: [open_autoglm],
       removed_lines: ["@reboot /opt/open-autoglm/bin/open-autoglm serve"]}
xdg:
  description: Always empty on Windows. On POSIX hosts, XDG autostart entries removed (C(path), C(user), C(targets)).
  returned: always
  type: list
  elements: dict
launchd:
  description: Always empty on Windows. On POSIX hosts, launchd jobs booted out, disabled and (unless inside an
    app bundle) removed (label, path, domain, user, targets, bundle, services); macOS only.
  returned: always
  type: list
  elements: dict
failures:
  description: Changes that could not be made, each with C(what), the C(path) or C(unit), and the C(error). The task
    fails.
  returned: always
  type: list
  elements: dict
problems:
  description: Conditions worth knowing that did not fail the task (symlinked crontabs, unreadable files).
    They are also given as warnings.
  returned: always
  type: list
  elements: str
services:
  description: Windows services stopped, disabled and deleted (in check mode, that would be).
  returned: always
  type: list
  elements: dict
  contains:
    name: {description: Service name., type: str}
    display_name: {description: Display name., type: str}
    binary: {description: The command line the service runs., type: str}
    state: {description: Its state before the change., type: str}
    targets: {description: Profiles that name it., type: list, elements: str}
  sample:
    - {name: OpenAutoGLM, display_name: Open-AutoGLM agent, binary: 'C:\Program Files\OpenAutoGLM\open-autoglm.exe serve',
       state: Running, targets: [open_autoglm]}
scheduled_tasks:
  description: Scheduled tasks stopped and unregistered (path, name, user, targets).
  returned: always
  type: list
  elements: dict
run_keys:
  description:
    - Values removed from C(Run) and C(RunOnce) keys of HKLM (with O(system_wide)) and of every covered user's
      hive, in both the native and the C(WOW6432Node) views (key, name, command, user, targets).
  returned: always
  type: list
  elements: dict
startup_items:
  description: Files removed from the Startup folders, all users' and each covered user's (path, target, user, targets).
  returned: always
  type: list
  elements: dict
  sample:
    - {path: 'C:\Users\ana\AppData\Roaming\Microsoft\Windows\Start Menu\Programs\Startup\Ollama.lnk',
       target: 'C:\Users\ana\AppData\Local\Programs\Ollama\ollama app.exe', user: ana, targets: [ollama]}
"""
