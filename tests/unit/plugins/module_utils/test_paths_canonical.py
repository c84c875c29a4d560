"""The canonicaliser (_paths.canonical/open_parent/open_below/read_all): spellings, trusted and untrusted symlinks."""
from __future__ import absolute_import, division, print_function

__metaclass__ = type

import errno
import os
import pwd

import pytest
from hypothesis import given, settings, strategies as st

from ansible_collections.residue.purge.plugins.module_utils import _paths
from ansible_collections.residue.purge.plugins.module_utils._paths import PathRefused, canonical, lexical, open_parent

NOBODY = pwd.getpwnam("nobody")


def need_root():
    if os.geteuid() != 0:
        pytest.fail("this test creates files owned by another user and needs root (the lab runs as root)")


@st.composite
def spellings(draw, path):
    """path written another way: extra '/' runs, '.' components, a trailing '/'."""
    parts = [p for p in path.split("/") if p]
    out = "/" * draw(st.integers(1, 3))
    for i, part in enumerate(parts):
        for _dot in range(draw(st.integers(0, 2))):
            out += "." + "/" * draw(st.integers(1, 2))
        out += part
        if i < len(parts) - 1 or draw(st.booleans()):
            out += "/" * draw(st.integers(1, 3))
    return out


@settings(max_examples=300, deadline=None)
@given(st.data())
def test_every_spelling_of_a_path_is_the_same_location(data):
    path = data.draw(st.sampled_from(["/etc", "/usr/share/zoneinfo", "/var/lib", "/srv", "/tmp", "/usr"]))
    spelled = data.draw(spellings(path))
    assert lexical(spelled) == path
    got = canonical(spelled)
    assert got.path == os.path.realpath(path)
    assert got.exists == os.path.exists(path)
    if got.exists:
        st_real = os.stat(path)
        assert got.chain[-1] == (st_real.st_dev, st_real.st_ino)


@pytest.mark.parametrize("bad,msg", [("", "empty"), ("  ", "empty"), (None, "empty"), ("etc", "not an absolute"),
                                     ("./etc", "not an absolute"), ("/etc/../root", "'..'"), ("/a/..", "'..'"),
                                     ("/etc\0/x", "NUL")])
def test_bad_spellings_are_refused(bad, msg):
    with pytest.raises(PathRefused, match=msg):
        canonical(bad, field="paths[0]")


def test_root_owned_symlinks_are_followed_with_their_dotdot(tmp_path):
    (tmp_path / "data" / "home" / "alice").mkdir(parents=True)
    os.symlink("data/home", str(tmp_path / "home"))  # relative, like /lib -> usr/lib
    os.symlink("../data/home/alice", str(tmp_path / "data" / "alias"))  # '..' in a trusted target
    got = canonical(str(tmp_path / "home" / "alice" / ".cache" / "x"))
    assert got.path == str(tmp_path / "data" / "home" / "alice" / ".cache" / "x")
    assert got.exists is False and got.st is None
    got = canonical(str(tmp_path / "data" / "alias"))
    assert got.path == str(tmp_path / "data" / "home" / "alice") and got.exists
    real = os.stat(str(tmp_path / "data" / "home" / "alice"))
    assert got.chain[-1] == (real.st_dev, real.st_ino)
    assert len(got.chain) == got.path.count("/") + 1  # '/' and one per component


def test_a_users_symlink_is_never_followed_and_named(tmp_path):
    need_root()
    home = tmp_path / "home"
    home.mkdir()
    os.symlink("/etc", str(home / ".config"))
    os.lchown(str(home / ".config"), NOBODY.pw_uid, NOBODY.pw_gid)
    with pytest.raises(PathRefused) as err:
        canonical(str(home / ".config" / "open-autoglm"), field="XDG_CONFIG_HOME")
    text = str(err.value)
    assert "%s is a symlink owned by nobody (uid %d)" % (home / ".config", NOBODY.pw_uid) in text
    assert "open-autoglm" in text and "XDG_CONFIG_HOME" in text
    # the same link as the last component is refused too (what a path names must be the thing itself)
    with pytest.raises(PathRefused, match="not followed"):
        canonical(str(home / ".config"))


def test_a_hard_linked_root_symlink_is_not_trusted(tmp_path):
    """A second name for root's own link (possible where protected_hardlinks is off) is not the system's."""
    os.symlink("/etc", str(tmp_path / "root_link"))
    os.link(str(tmp_path / "root_link"), str(tmp_path / "planted"), follow_symlinks=False)
    with pytest.raises(PathRefused, match="planted is a symlink owned by root"):
        canonical(str(tmp_path / "planted" / "passwd"))


def test_symlink_loops_are_refused(tmp_path):
    os.symlink("b", str(tmp_path / "a"))
    os.symlink("a", str(tmp_path / "b"))
    with pytest.raises(PathRefused, match="too many levels"):
        canonical(str(tmp_path / "a" / "x"))


def test_open_parent_never_follows_a_component(tmp_path):
    (tmp_path / "real" / "sub").mkdir(parents=True)
    (tmp_path / "real" / "sub" / "f").write_text("x")
    os.symlink(str(tmp_path / "real"), str(tmp_path / "link"))
    fd, name = open_parent(str(tmp_path / "real" / "sub" / "f"))
    try:
        assert name == b"f"
        assert os.fstat(fd).st_ino == os.stat(str(tmp_path / "real" / "sub")).st_ino
    finally:
        os.close(fd)
    with pytest.raises(OSError) as err:
        open_parent(str(tmp_path / "link" / "sub" / "f"))
    assert err.value.errno in (errno.ELOOP, errno.ENOTDIR)
    for bad in ("/", "relative/x", "/a/../b"):
        with pytest.raises(ValueError):
            open_parent(bad)


def test_is_below():
    assert _paths.is_below("/home/alice/x", "/home/alice")
    assert _paths.is_below("/home/alice", "/home/alice/")
    assert not _paths.is_below("/home/alice2", "/home/alice")


def test_open_below_reaches_directories_and_never_a_link(tmp_path):
    """open_below (hf_cache's and ollama_models' deletions): each component relative to the one before, a
    symlink component refused (ELOOP/ENOTDIR), never followed; the caller's descriptor stays open."""
    (tmp_path / "a" / "b").mkdir(parents=True)
    (tmp_path / "outside").mkdir()
    os.symlink(str(tmp_path / "outside"), str(tmp_path / "a" / "link"))
    root = os.open(str(tmp_path), os.O_RDONLY)
    try:
        fd = _paths.open_below(root, ["a", "b"])
        try:
            assert os.fstat(fd).st_ino == os.stat(str(tmp_path / "a" / "b")).st_ino
        finally:
            os.close(fd)
        with pytest.raises(OSError) as err:
            _paths.open_below(root, ["a", "link"])
        assert err.value.errno in (errno.ELOOP, errno.ENOTDIR)
        os.fstat(root)  # still open
    finally:
        os.close(root)


def test_read_all_reads_past_one_chunk_and_from_where_the_descriptor_is(tmp_path):
    data = os.urandom(3 * 1000 + 7)
    path = tmp_path / "f"
    path.write_bytes(data)
    fd = os.open(str(path), os.O_RDONLY)
    try:
        assert _paths.read_all(fd, chunk=1000) == data
        assert _paths.read_all(fd) == b""
        os.lseek(fd, 10, os.SEEK_SET)
        assert _paths.read_all(fd, chunk=7) == data[10:]
    finally:
        os.close(fd)
