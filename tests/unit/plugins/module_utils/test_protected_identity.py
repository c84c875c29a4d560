"""Item 3 of the trust boundary: protected directories are compared by identity (st_dev, st_ino) as well as by
canonical spelling; no spelling (hypothesis), root-owned symlink or bind mount of a protected directory passes."""
from __future__ import absolute_import, division, print_function

__metaclass__ = type

import os

import pytest
from hypothesis import given, settings, strategies as st

from ansible_collections.residue.purge.plugins.module_utils import _paths
from ansible_collections.residue.purge.plugins.module_utils._profiles import (
    ProfileError, ProtectedPaths, User, check_path, protected_paths)

HOME = User("someone", 4242, 4242, "/home/someone")
PROTECTED = protected_paths([HOME])
SYSTEM = sorted(p for p in PROTECTED if os.path.isdir(p) and p != "/")


def respell(path, slashes, dots, trailing):
    """path with some separators doubled or tripled, '.' components inserted, maybe a trailing '/'."""
    parts = [p for p in path.split("/") if p]
    out = ""
    for i, part in enumerate(parts):
        out += "/" * slashes[i % len(slashes)] + ("./" * dots[i % len(dots)]) + part
    return out + ("/" if trailing else "")


@settings(max_examples=300, deadline=None)
@given(st.sampled_from(sorted(PROTECTED - {"/"})), st.lists(st.integers(1, 3), min_size=1, max_size=4),
       st.lists(st.integers(0, 2), min_size=1, max_size=4), st.booleans())
def test_no_spelling_of_a_protected_path_passes(path, slashes, dots, trailing):
    spelled = respell(path, slashes, dots, trailing)
    with pytest.raises(ProfileError, match="protected|root of a filesystem"):
        check_path(spelled, PROTECTED)


@settings(max_examples=200, deadline=None)
@given(st.sampled_from(SYSTEM), st.lists(st.integers(1, 3), min_size=1, max_size=4))
def test_identity_index_knows_every_existing_protected_directory_and_its_parents(path, slashes):
    index = PROTECTED.identities()
    spelled = respell(path, slashes, [0], False)
    hit = _paths.protected_identity(spelled, index)
    assert hit is not None and hit[1] is True
    parent = os.path.dirname(path)
    if parent != "/":
        assert _paths.protected_identity(parent, index) is not None


def test_a_root_symlink_to_a_protected_directory_is_refused_by_identity(tmp_path):
    link = tmp_path / "etc-again"
    os.symlink("/etc", str(link))
    with pytest.raises(ProfileError, match="is the protected directory /etc under another name"):
        check_path(str(link), PROTECTED)
    # and a plain set (callers that built their own) is checked the same way
    with pytest.raises(ProfileError, match="under another name"):
        check_path(str(link), set(PROTECTED))


def test_a_user_symlink_is_not_followed_so_it_is_not_an_identity(tmp_path):
    link = tmp_path / "users-link"
    os.symlink("/etc", str(link))
    os.lchown(str(link), 4242, 4242)
    # removing the link removes the link, never /etc: it passes, and the walk never follows it
    assert check_path(str(link), PROTECTED) == str(link)


def test_ordinary_paths_pass(tmp_path):
    (tmp_path / "residue").mkdir()
    assert check_path(str(tmp_path / "residue"), PROTECTED) == str(tmp_path / "residue")
    assert check_path("/nonexistent/x/y", PROTECTED) == "/nonexistent/x/y"
    assert isinstance(PROTECTED, ProtectedPaths) and "//etc" not in PROTECTED
