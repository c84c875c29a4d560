# -*- coding: utf-8 -*-
# Copyright: residue.purge contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The platform seam: which OS the logic plans for, and how it runs the host's commands.

Code that behaves differently on macOS asks `current()` (never `sys.platform`), and runs host commands through
`current().run(argv)` (returning (rc, stdout, stderr) as _module.Commands does). Tests switch the seam to macOS
with recorded command output (`use(Host("Darwin", replay))`), so the same discover/stop/remove code paths run
on Linux with macOS behaviour. A topic's run() hands the module's runner in with `with attached(commands):`.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import contextlib
import platform
import subprocess
from collections import namedtuple

from ansible_collections.residue.purge.plugins.module_utils._text import error_text

DARWIN = "Darwin"
LINUX = "Linux"

Host = namedtuple("Host", "system run")


def _subprocess_run(argv, data=None):
    """(rc, stdout, stderr) of argv, text decoded with surrogateescape; rc 127 when the command is missing."""
    try:
        proc = subprocess.Popen(argv, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    except OSError as exc:
        return 127, "", "%s: %s" % (argv[0], error_text(exc))
    out, err = proc.communicate(data)
    return proc.returncode, out.decode("utf-8", "surrogateescape"), err.decode("utf-8", "surrogateescape")


_state = {"host": None}


def current():
    """The Host in effect: the one set by use()/attach(), else this machine with a subprocess runner."""
    return _state["host"] or Host(platform.system(), _subprocess_run)


def use(host):
    """Switch the seam to host (None: back to this machine); returns the previous setting for restoring."""
    previous = _state["host"]
    _state["host"] = host
    return previous


@contextlib.contextmanager
def attached(commands):
    """Inside the with block, host commands run through a module's _module.Commands (AnsibleModule.run_command);
    commands None: the seam stays as it is."""
    previous = _state["host"]
    if commands is not None:
        use(Host(current().system, commands.run))
    try:
        yield current()
    finally:
        use(previous)


def is_macos():
    return current().system == DARWIN


def run(argv, data=None):
    """Run argv on the host through the seam: (rc, stdout, stderr)."""
    if data is None:
        return current().run(argv)
    return current().run(argv, data=data)
