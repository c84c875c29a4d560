# -*- coding: utf-8 -*-
# Copyright: residue.purge contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""discover then remove on a macOS home (the seam switched to macOS, ps answered from the recording): the same
code paths Linux runs, with ~/Library placeholders, run for real on files here. The user's key in ~/.ollama,
other tools' caches and everything outside the residues stay, byte for byte."""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import hashlib
import os

from ansible_collections.residue.purge.plugins.module_utils import _discover, _macos, _remove
from ansible_collections.residue.purge.plugins.module_utils._profiles import user_name
from ansible_collections.residue.purge.tests.unit.support.macos_host import MacHost, Replay, fixture

RESIDUES = ("Library/Caches/open-autoglm", "Library/Application Support/open-autoglm",
            "Library/Caches/com.electron.ollama", "Library/Application Support/Ollama",
            "Library/Saved Application State/com.electron.ollama.savedState", ".ollama/models", "Library/Caches/pip")
KEPT = ("Library/Caches/other-tool/cache.db", ".ollama/id_ed25519", ".ollama/id_ed25519.pub",
        "Library/Preferences/com.apple.finder.plist", "Library/Application Support/Other/state.json")


def write(path, data):
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "wb") as f:
        f.write(data)


def digest(top):
    out = {}
    for dirpath, _dirs, files in os.walk(top):
        for name in files:
            with open(os.path.join(dirpath, name), "rb") as f:
                out[os.path.join(dirpath, name)] = hashlib.sha256(f.read()).hexdigest()
    return out


def test_discover_then_remove_on_a_macos_home(tmp_path):
    root = str(tmp_path)
    home = root + "/Users/alice"
    for relative in RESIDUES:
        write(os.path.join(home, relative, "data.bin"), os.urandom(4096))
    write(home + "/.ollama/models/blobs/sha256-6a07", os.urandom(65536))
    for relative in KEPT:
        write(os.path.join(home, relative), os.urandom(512))
    for dirpath, dirs, files in os.walk(home):
        for name in dirs + files:
            os.lchown(os.path.join(dirpath, name), 501, 20)
    os.chown(home, 501, 20)
    kept_before = dict((p, d) for p, d in digest(root).items()
                       if not any(p.startswith(os.path.join(home, r) + "/") for r in RESIDUES))
    replay = Replay([(_macos.PS_PLAIN, (0, fixture("ps_A_ww_o_pid_ruid_uid_command.txt"), "")),
                     (_macos.PS_ENV, (0, fixture("ps_A_E_ww_o_pid_ruid_uid_command.txt"), "")),
                     (_macos.DSCL_USERS, (0, fixture("dscl_list_users_uniqueid.txt"), ""))])
    targets = ["open_autoglm", "ollama", "pip_cache"]
    with MacHost(replay):
        found = _discover.run(dict(targets=targets, profiles={}, homes=[home], users="all", extra_hf_caches=[],
                                   scan_processes=True, older_than=None, one_file_system=True, search_roots=[root]))
        paths = sorted(r["path"] for r in found["residues"])
        assert paths == sorted(os.path.join(home, r) for r in RESIDUES)
        assert found["users"] == [user_name(501)]  # homes: the owner from stat (no passwd entry here)
        result = _remove.run(dict(paths=[], targets=targets, profiles={}, homes=[home], users="all",
                                  older_than=None, time_field="atime", keep=[], backup=None, backup_format="tar.gz",
                                  cross_filesystems=False, scan_processes=True), environ={})
    assert sorted(r["path"] for r in result["removed"]) == sorted(os.path.join(home, r) for r in RESIDUES)
    assert result["failed_count"] == 0
    for relative in RESIDUES:
        assert not os.path.lexists(os.path.join(home, relative))
    for shared in ("Library", "Library/Caches", "Library/Application Support", ".ollama"):
        assert os.path.isdir(os.path.join(home, shared))
    assert digest(root) == kept_before
    # discover and remove: the same two process listings; discover also asks the directory once which home holds
    # the Python environment whose packages it reads (read as that home's owner)
    assert [c[0] for c in replay.calls] == ["ps", "ps", "dscl", "ps", "ps"] and not replay.unexpected
