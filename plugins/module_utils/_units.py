# -*- coding: utf-8 -*-
# Copyright: residue.purge contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Parsing of human durations and sizes used by options such as older_than and max_size."""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import re

_DURATION_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 7 * 86400}
_SIZE_UNITS = {"": 1, "b": 1, "k": 1024, "m": 1024 ** 2, "g": 1024 ** 3, "t": 1024 ** 4, "p": 1024 ** 5}


def parse_duration(text, option="older_than"):
    """'30d', '12h', '1w2d', '90' (seconds) -> seconds as int. Raises ValueError naming the option."""
    if isinstance(text, bool):
        raise ValueError("%s: expected a duration such as 30d, 12h or 90m, got %r" % (option, text))
    if isinstance(text, int):
        if text < 0:
            raise ValueError("%s: a duration cannot be negative" % option)
        return text
    value = str(text).strip().lower()
    if re.match(r"^\d+$", value):
        return int(value)
    parts = re.findall(r"(\d+)\s*([smhdw])", value)
    if not parts or re.sub(r"(\d+)\s*([smhdw])", "", value).strip():
        raise ValueError("%s: expected a duration such as 30d, 12h or 90m, got %r" % (option, text))
    return sum(int(n) * _DURATION_UNITS[u] for n, u in parts)


def parse_size(text, option="max_size"):
    """'10G', '512M', '1.5T', '4096' (bytes) -> bytes as int (binary units). Raises ValueError naming the option."""
    if isinstance(text, bool):
        raise ValueError("%s: expected a size such as 10G or 512M, got %r" % (option, text))
    if isinstance(text, int):
        if text < 0:
            raise ValueError("%s: a size cannot be negative" % option)
        return text
    match = re.match(r"^\s*(\d+(?:\.\d+)?)\s*([kmgtp]?)(?:i?b)?\s*$", str(text).strip().lower())
    if not match:
        raise ValueError("%s: expected a size such as 10G or 512M, got %r" % (option, text))
    return int(float(match.group(1)) * _SIZE_UNITS[match.group(2)])
