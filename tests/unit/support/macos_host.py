# -*- coding: utf-8 -*-
# Copyright: residue.purge contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""A macOS host for the tests: the platform seam switched to Darwin, host commands answered from the recordings in
tests/unit/fixtures/macos, and every command the code ran kept in order (what a real Mac would have been told)."""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import os
from collections import namedtuple

from ansible_collections.residue.purge.plugins.module_utils import _platform

FIXTURES = os.path.join(os.path.dirname(__file__), "..", "fixtures", "macos")
Pw = namedtuple("Pw", "pw_name pw_uid pw_gid pw_dir")


def fixture(name):
    with open(os.path.join(FIXTURES, name), "rb") as f:
        return f.read().decode("utf-8", "surrogateescape")


class Replay(object):
    """run(argv, data=None) -> the recorded (rc, stdout, stderr) for argv; an unrecorded command answers rc 127
    and is kept in `unexpected` (a test asserts there is none). rewrite: (old, new) text replacements applied
    to every answer (recorded /Users/... paths moved under a test directory)."""

    def __init__(self, answers, rewrite=()):
        self.answers = dict((tuple(argv), answer) for argv, answer in answers)
        self.rewrite = list(rewrite)
        self.calls, self.unexpected = [], []

    def run(self, argv, data=None):
        self.calls.append(list(argv))
        answer = self.answers.get(tuple(argv))
        if answer is None:
            self.unexpected.append(list(argv))
            return 127, "", "%s: not recorded" % argv[0]
        rc, out, err = answer
        for old, new in self.rewrite:
            out, err = out.replace(old, new), err.replace(old, new)
        return rc, out, err


class MacHost(object):
    """Context manager: the seam is macOS with `replay` as its command runner while inside."""

    def __init__(self, replay):
        self.replay = replay
        self._previous = None

    def __enter__(self):
        self._previous = _platform.use(_platform.Host(_platform.DARWIN, self.replay.run))
        return self.replay

    def __exit__(self, *exc):
        _platform.use(self._previous)
        return False
