from __future__ import absolute_import, division, print_function

__metaclass__ = type

import pytest

from ansible_collections.residue.purge.plugins.module_utils._units import parse_duration, parse_size


@pytest.mark.parametrize("text,seconds", [("30d", 30 * 86400), ("12h", 43200), ("90", 90), (0, 0),
                                          ("1w2d", 9 * 86400), ("15m", 900), (" 2 d ", 172800)])
def test_parse_duration(text, seconds):
    assert parse_duration(text) == seconds


@pytest.mark.parametrize("bad", ["", "d", "30x", "-1d", "1d junk", True, -5, "1.5d"])
def test_parse_duration_rejects(bad):
    with pytest.raises(ValueError, match="older_than"):
        parse_duration(bad)


@pytest.mark.parametrize("text,size", [("10G", 10 * 1024 ** 3), ("512M", 512 * 1024 ** 2), ("4096", 4096),
                                       ("1.5k", 1536), ("2GiB", 2 * 1024 ** 3), ("3gb", 3 * 1024 ** 3), (7, 7)])
def test_parse_size(text, size):
    assert parse_size(text) == size


@pytest.mark.parametrize("bad", ["", "G", "10X", "-1G", False, -1])
def test_parse_size_rejects(bad):
    with pytest.raises(ValueError, match="max_size"):
        parse_size(bad)
