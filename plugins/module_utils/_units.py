# -*- coding: utf-8 -*-
# Copyright: residue.purge contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Parsing of human durations and sizes used by options such as older_than and max_size."""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import re

_DURATION_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 7 * 86400}
_SIZE_UNITS = {"": 1, "b": 1, "k": 1024, "m": 1024 ** 2, "g": 1024 ** 3, "t": 1024 ** 4, "p": 1024 ** 5}


_DURATION = ("duration", "a duration such as 30d, 12h or 90m")
_SIZE = ("size", "a size such as 10G or 512M")


def _refused(option, kind, text):
    return ValueError("%s: expected %s, got %r" % (option, kind[1], text))


def _given_number(text, option, kind):
    """text itself when it is a whole number, None when it is text to parse; ValueError naming the option for a
    bool or a negative number. kind: (what, an example), _DURATION or _SIZE."""
    if isinstance(text, bool):
        raise _refused(option, kind, text)
    if isinstance(text, int):
        if text < 0:
            raise ValueError("%s: a %s cannot be negative" % (option, kind[0]))
        return text
    return None


def parse_duration(text, option="older_than"):
    """'30d', '12h', '1w2d', '90' (seconds) -> seconds as int. Raises ValueError naming the option."""
    number = _given_number(text, option, _DURATION)
    if number is not None:
        return number
    value = str(text).strip().lower()
    if re.match(r"^\d+$", value):
        return int(value)
    parts = re.findall(r"(\d+)\s*([smhdw])", value)
    if not parts or re.sub(r"(\d+)\s*([smhdw])", "", value).strip():
        raise _refused(option, _DURATION, text)
    return sum(int(n) * _DURATION_UNITS[u] for n, u in parts)


def parse_size(text, option="max_size"):
    """'10G', '512M', '1.5T', '4096' (bytes) -> bytes as int (binary units). Raises ValueError naming the option."""
    number = _given_number(text, option, _SIZE)
    if number is not None:
        return number
    match = re.match(r"^\s*(\d+(?:\.\d+)?)\s*([kmgtp]?)(?:i?b)?\s*$", str(text).strip().lower())
    if not match:
        raise _refused(option, _SIZE, text)
    return int(float(match.group(1)) * _SIZE_UNITS[match.group(2)])
