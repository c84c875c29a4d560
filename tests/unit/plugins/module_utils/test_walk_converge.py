# -*- coding: utf-8 -*-
# Copyright: residue.purge contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Removal converges on a tree that changes while it is removed: a racing renamer moves directories and files
around inside the target and a writer adds files and directories, both in separate processes, while remove (the
module's run) and the HF cache's engine (_walk.remove_at) empty it. The target must be gone at the end, nothing
outside it changed (checksums), and the result must name no failure. Repeated 20 times each."""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import errno
import hashlib
import os
import stat
import subprocess
import sys
import time

import pytest

from ansible_collections.residue.purge.plugins.module_utils import _walk
from ansible_collections.residue.purge.plugins.module_utils._remove import run
from ansible_collections.residue.purge.tests.unit.support import tmpfs

RACER = r'''
import os, random, sys, time
target, mode, seed, go = sys.argv[1], sys.argv[2], int(sys.argv[3]), sys.argv[4]
rng = random.Random(seed)
open(go + "." + mode, "w").close()          # ready
while not os.path.exists(go):
    time.sleep(0.0005)
def dirs():
    out = []
    for dirpath, dirnames, _files in os.walk(target):
        out.extend(os.path.join(dirpath, d) for d in dirnames if not os.path.islink(os.path.join(dirpath, d)))
    return out
n = 0
deadline = time.monotonic() + 1.5
while time.monotonic() < deadline and os.path.isdir(target):
    n += 1
    try:
        found = dirs()
        if mode == "renamer" and found:
            src = rng.choice(found)
            # a rename inside the target: the same directory, or into another directory of the target
            parent = rng.choice(found + [target]) if rng.random() < 0.5 else os.path.dirname(src)
            if not (parent + "/").startswith(src + "/"):
                os.rename(src, os.path.join(parent, "mv%d-%d" % (seed, n)))
        elif mode == "writer":
            where = rng.choice(found + [target])
            if rng.random() < 0.2:
                os.mkdir(os.path.join(where, "new%d" % n))
            else:
                with open(os.path.join(where, "late%d" % n), "w") as f:
                    f.write("x" * rng.randint(0, 5000))
            if n > 400:
                break                            # a writer that is still finishing, then done
    except OSError:
        pass                                     # the tree moves under us too
    time.sleep(rng.random() * 0.002)
'''


def checksums(root):
    found = {}
    for dirpath, dirnames, filenames in os.walk(root):
        for name in dirnames + filenames:
            path = os.path.join(dirpath, name)
            st = os.lstat(path)
            detail = None
            if stat.S_ISREG(st.st_mode):
                with open(path, "rb") as f:
                    detail = hashlib.sha256(f.read()).hexdigest()
            elif stat.S_ISLNK(st.st_mode):
                detail = os.readlink(path)
            found[os.path.relpath(path, root)] = (stat.S_IFMT(st.st_mode), detail, st.st_ino)
    return found


def build(target, outside, width=12, depth=3):
    os.makedirs(os.path.join(outside, "keep", "deep"))
    for i in range(20):
        with open(os.path.join(outside, "keep", "f%d" % i), "w") as f:
            f.write("outside %d" % i)
    os.symlink(os.path.join(outside, "keep"), os.path.join(outside, "link-to-keep"))
    os.makedirs(target)

    def fill(d, level):
        for i in range(width):
            with open(os.path.join(d, "f%d" % i), "w") as f:
                f.write("residue %d" % i)
        os.symlink(os.path.join(outside, "keep"), os.path.join(d, "to-outside"))
        if level < depth:
            for i in range(3):
                sub = os.path.join(d, "d%d" % i)
                os.mkdir(sub)
                fill(sub, level + 1)
    fill(target, 0)


def race(tmp_path, seed, remove):
    target, outside, go = str(tmp_path / "residue"), str(tmp_path / "outside"), str(tmp_path / "go")
    build(target, outside)
    before = checksums(outside)
    racers = [subprocess.Popen([sys.executable, "-c", RACER, target, mode, str(seed), go])
              for mode in ("renamer", "writer")]
    try:
        deadline = time.monotonic() + 30
        while not all(os.path.exists(go + "." + m) for m in ("renamer", "writer")):
            assert time.monotonic() < deadline
            time.sleep(0.001)
        open(go, "w").close()
        time.sleep(0.005)  # both are moving things when the removal starts
        outcome = remove(target)
    finally:
        for racer in racers:
            racer.wait(30)
    assert not os.path.lexists(target), (sorted(os.listdir(target))[:10], outcome)
    assert checksums(outside) == before
    return outcome


@pytest.mark.parametrize("seed", range(20))
def test_remove_converges_on_a_tree_renamed_and_written_during_removal(tmp_path, seed):
    def remove(target):
        params = dict(paths=[target], targets=[], profiles={}, homes=[], users="all", older_than=None,
                      time_field="atime", keep=[], backup=None, backup_format="tar.gz", cross_filesystems=False,
                      scan_processes=False)
        return run(params)

    # on a tmpfs of its own: the module protects every home by identity, and a directory the writer makes on the
    # shared disk can take the inode of a test user's home that a parallel test just removed (a refusal, rightly)
    with tmpfs.private_tmpfs(tmp_path) as base:
        result = race(base, seed, remove)
    assert result["failures"] == [] and result["failed_count"] == 0, result["failures"]
    assert [r["whole"] for r in result["removed"]] == [True]


@pytest.mark.parametrize("seed", range(20))
def test_the_engine_hf_cache_uses_converges_too(tmp_path, seed):
    def remove(target):
        parent_fd = os.open(os.path.dirname(target), os.O_RDONLY | os.O_DIRECTORY)
        try:
            return _walk.remove_at(parent_fd, os.path.basename(target), target, parallel=False)
        finally:
            os.close(parent_fd)

    result = race(tmp_path, seed, remove)
    assert result.failed == [] and result.failed_count == 0, result.failed
    assert result.root_removed


def test_a_directory_that_keeps_gaining_entries_fails_after_the_stated_bound(tmp_path):
    """Bounded: a directory refilled after every pass is left in place after MAX_PASSES, named as a failure."""
    target = tmp_path / "busy"
    target.mkdir()
    (target / "f").write_text("x")
    passes = []
    real_rmdir = os.rmdir

    def refilling_rmdir(name, dir_fd=None):  # a writer that is faster than any number of passes
        if name == b"busy" or name == "busy":
            passes.append(1)
            with open(str(target / ("again%d" % len(passes))), "w") as f:
                f.write("x")
        return real_rmdir(name, dir_fd=dir_fd)

    os.rmdir = refilling_rmdir
    try:
        result = _walk.remove_tree(str(target), parallel=False)
    finally:
        os.rmdir = real_rmdir
    assert len(passes) == _walk.MAX_PASSES
    assert [text for _p, text in result.failed] == [
        "still gaining entries after %d passes; left in place" % _walk.MAX_PASSES]
    assert target.is_dir() and not result.root_removed


def test_an_ancestor_renamed_into_its_own_former_child_is_reached_again_not_left(tmp_path):
    """The renames a racer can make: T moved out of F, then F into T, after T was opened. The walk then lists F
    inside T while F is its own ancestor. Without a bind mount that is a rename (same mount): the tree is still
    removed, with no failure and no loop note (it used to be left in place, silently, as a bind mount loop)."""
    target = tmp_path / "residue"
    deep = target / "F" / "T" / "U"
    deep.mkdir(parents=True)
    for d in (target, target / "F", target / "F" / "T", deep):
        (d / "file").write_text("x")
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "keep").write_text("stays")
    moved = []

    def rename_on_entering_t(path, st, dir_fd, name):
        if stat.S_ISDIR(st.st_mode) and path.endswith(b"/F/T") and not moved:
            moved.append(path)
            os.rename(str(target / "F" / "T"), str(target / "T2"))
            os.rename(str(target / "F"), str(target / "T2" / "F"))

    parent_fd = os.open(str(tmp_path), os.O_RDONLY | os.O_DIRECTORY)
    try:
        result = _walk.remove_at(parent_fd, "residue", str(target), on_entry=rename_on_entering_t, parallel=False)
    finally:
        os.close(parent_fd)
    assert moved, "the renames did not happen: the test did not exercise the race"
    assert not os.path.lexists(str(target)), sorted(os.listdir(str(target)))
    assert result.failed == [] and result.problems == [] and result.root_removed
    assert result.files == 4 and result.dirs == 4
    assert os.listdir(str(outside)) == ["keep"] and (outside / "keep").read_text() == "stays"


def test_an_entry_that_vanished_is_gone_not_failed(tmp_path):
    """The root itself renamed away between the look and the removal: gone, no failure, nothing else touched."""
    target = tmp_path / "gone"
    (target / "sub").mkdir(parents=True)
    elsewhere = tmp_path / "elsewhere"
    real_open = os.open
    moved = []

    def moving_open(path, flags, mode=0o777, dir_fd=None):
        if (path in (b"gone", "gone")) and not moved:
            moved.append(1)
            os.rename(str(target), str(elsewhere))
        return real_open(path, flags, mode, dir_fd=dir_fd)

    os.open = moving_open
    try:
        result = _walk.remove_tree(str(target), parallel=False)
    finally:
        os.open = real_open
    assert moved and result.failed == [] and result.failed_count == 0
    assert (elsewhere / "sub").is_dir()  # what moved out of the target is not chased


def test_enoent_is_the_only_vanished_error():
    assert errno.ENOENT not in _walk._NOT_EMPTY  # pylint: disable=protected-access
