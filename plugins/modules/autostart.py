#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: residue.purge contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import absolute_import, division, print_function

__metaclass__ = type

DOCUMENTATION = r"""
module: autostart
short_description: Remove what would start an AI tool again (systemd units, cron lines, XDG autostart, launchd)
version_added: 0.1.0
description:
  - For the chosen residue profiles, removes everything that would start the tool again, so that
    M(residue.purge.reap) can stop it for good.
  - B(systemd) units named by the profile's C(services.systemd) globs (V(open-autoglm) also means
    V(open-autoglm.service)). System units (C(/etc/systemd/system), C(/run/systemd/system),
    C(/usr/lib/systemd/system), C(/lib/systemd/system), ...) and global user units (C(/etc/systemd/user), ...)
    are stopped and disabled with C(systemctl) when systemd runs the host; then the unit files, their drop-in
    directories (C(<unit>.d)) and their C(*.wants)/C(*.requires) links are removed, and systemd is reloaded.
    Loaded units without a unit file there (transient units from C(systemd-run), generated units) are stopped.
  - systemd B(user units) of every covered user (C(~/.config/systemd/user)). Where the user's manager runs
    (lingering or logged-in users) it is asked first (C(runuser -u <user> -- systemctl --user stop/disable));
    the files and links go in every case.
  - B(cron) lines matching the profile's C(cron) regular expressions, in user crontabs
    (C(/var/spool/cron/crontabs), C(/var/spool/cron), ...), C(/etc/cron.d/*) and C(/etc/crontab). Only the
    matching job lines are removed; every other byte of the file stays, and its mode, owner and group are kept
    (the file is rewritten beside itself and renamed over the old one). Comments and variable lines are never
    removed. Symlinked crontabs are reported, not followed.
  - B(XDG autostart) entries (C(~/.config/autostart/*.desktop) and C(/etc/xdg/autostart)) named by the
    profile's C(services.xdg) globs.
  - B(launchd) jobs on macOS (C(~/Library/LaunchAgents), C(/Library/LaunchAgents), C(/Library/LaunchDaemons))
    whose label or file name matches C(services.launchd) get C(launchctl bootout) and C(launchctl disable)
    (C(system/<label>) for daemons, C(gui/<uid>/<label>) for agents, in every covered user's GUI domain for
    global agents), then the plist is removed.
  - Jobs an app registers with C(SMAppService) from inside its bundle
    (C(/Applications/Ollama.app/Contents/Library/LaunchAgents/com.ollama.ollama.plist), and apps in
    C(~/Applications)) are booted out and disabled the same way while launchd has them loaded or enabled; their
    plist is part of the signed app and stays (it goes with the app).
  - Windows services, scheduled tasks and Run keys are not handled by this module.
author:
  - residue.purge contributors (@residue-purge)
options:
  system_wide:
    description:
      - Also cover system-wide locations (system and global user units, C(/etc/cron.d), C(/etc/crontab),
        C(/etc/xdg/autostart), C(/Library)). When false only the covered users' own entries are touched.
    type: bool
    default: true
extends_documentation_fragment:
  - residue.purge.targets
  - residue.purge.attributes
attributes:
  check_mode:
    details: Check mode computes the same plan and changes nothing, and runs no C(systemctl) or C(launchctl).
  diff_mode:
    details: Each changed crontab is shown before and after; removed unit, desktop and plist files are listed.
  idempotent:
    details: Once the entries are gone a second run finds nothing and reports no change.
notes:
  - Without root the cron spool cannot be listed; then the connecting user's own crontab is read with
    C(crontab -l) and written back with C(crontab -), and a problem says that the other users' were not checked.
  - User crontabs are covered for every user with O(users=all) (every crontab in the spool, service accounts
    included); with a list of O(users) or O(homes), only those users' crontabs.
  - The processes these entries started are still running afterwards; M(residue.purge.reap) stops them.
  - Without root only the connecting user's files can be changed; the others fail the task, each named.
seealso:
  - module: residue.purge.reap
"""

EXAMPLES = r"""
- name: Remove every systemd unit, cron line and autostart entry of Open-AutoGLM, then stop it
  become: true
  block:
    - name: Remove what would restart it
      residue.purge.autostart:
        targets: [open_autoglm]

    - name: Stop what still runs
      residue.purge.reap:
        targets: [open_autoglm]

- name: Show what would be removed for one user only
  residue.purge.autostart:
    targets: [open_autoglm, ollama]
    users: [alice]
    system_wide: false
  check_mode: true
  diff: true
"""

RETURN = r"""
units:
  description: systemd units removed (in check mode, that would be removed), with every file, drop-in
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
  description: Crontabs changed, with the job lines removed from each.
  returned: always
  type: list
  elements: dict
  sample:
    - {path: /var/spool/cron/crontabs/alice, user: alice, targets: [open_autoglm],
       removed_lines: ["@reboot /opt/open-autoglm/bin/open-autoglm serve"]}
xdg:
  description: XDG autostart entries removed (C(path), C(user), C(targets)).
  returned: always
  type: list
  elements: dict
launchd:
  description: launchd jobs booted out, disabled and (unless inside an app bundle) removed (label, path, domain,
    user, targets, bundle (the app holding the plist, or null), services (the launchctl targets)); macOS only.
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
"""

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.residue.purge.plugins.module_utils import _autostart
from ansible_collections.residue.purge.plugins.module_utils._module import run_topic
from ansible_collections.residue.purge.plugins.module_utils._profiles import TARGET_ARGUMENT_SPEC


def main():
    argument_spec = dict(TARGET_ARGUMENT_SPEC)
    argument_spec.update(system_wide=dict(type="bool", default=True))
    module = AnsibleModule(argument_spec=argument_spec, supports_check_mode=True)
    run_topic(module, _autostart.run, commands=True)


if __name__ == "__main__":
    main()
