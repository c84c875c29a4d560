# -*- coding: utf-8 -*-
# Copyright: residue.purge contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""_platform: the seam the tests switch to macOS."""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import platform

from ansible_collections.residue.purge.plugins.module_utils import _platform


class FakeCommands(object):
    def __init__(self):
        self.calls = []

    def run(self, argv, data=None):
        self.calls.append((argv, data))
        return 0, "out", ""


def test_default_is_this_machine_running_real_commands():
    previous = _platform.use(None)
    try:
        assert _platform.current().system == platform.system()
        assert not _platform.is_macos()
        assert _platform.run(["sh", "-c", "printf 'a\\n'; printf e >&2; exit 3"]) == (3, "a\n", "e")
        assert _platform.run(["cat"], data=b"fed") == (0, "fed", "")
        assert _platform.run(["/nonexistent/residue-purge-no-such-tool"])[0] == 127
    finally:
        _platform.use(previous)


def test_use_and_attach_switch_the_seam():
    commands = FakeCommands()
    previous = _platform.use(_platform.Host(_platform.DARWIN, commands.run))
    try:
        assert _platform.is_macos()
        assert _platform.run(["launchctl", "list"]) == (0, "out", "")
        other = FakeCommands()
        with _platform.attached(other):
            assert _platform.is_macos()  # keeps the OS, changes only the runner
            _platform.run(["tmutil", "listlocalsnapshots", "/"], data=b"x")
        with _platform.attached(None):
            _platform.run(["launchctl", "print", "system"])
        _platform.run(["launchctl", "list"])
        assert other.calls == [(["tmutil", "listlocalsnapshots", "/"], b"x")]
        assert commands.calls == [(["launchctl", "list"], None), (["launchctl", "print", "system"], None),
                                  (["launchctl", "list"], None)]
    finally:
        _platform.use(previous)
    assert _platform.current().system == platform.system()
