# -*- coding: utf-8 -*-
# Copyright: residue.purge contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""_profiles on a macOS host (the seam switched to Darwin, commands answered from recorded output): people from
dscl, residue places under ~/Library, daemons' environments from ps -E. The same code paths Linux runs."""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import os

import pytest

from ansible_collections.residue.purge.plugins.module_utils import _macos, _profiles
from ansible_collections.residue.purge.tests.unit.support.macos_host import MacHost, Pw, Replay, fixture


@pytest.fixture
def mac(tmp_path):
    """A macOS host whose /Users and /var/root live under tmp_path; homes owned by their users."""
    root = str(tmp_path)
    directory = {"root": Pw("root", 0, 0, root + "/var/root")}
    for name, uid in (("alice", 501), ("bob", 502), ("carol", 503)):
        directory[name] = Pw(name, uid, 20, "%s/Users/%s" % (root, name))
    for entry in directory.values():
        os.makedirs(entry.pw_dir)
        os.chown(entry.pw_dir, entry.pw_uid, entry.pw_gid)
    replay = Replay([
        (_macos.DSCL_USERS, (0, fixture("dscl_list_users_uniqueid.txt"), "")),
        (_macos.PS_PLAIN, (0, fixture("ps_A_ww_o_pid_ruid_uid_command.txt"), "")),
        (_macos.PS_ENV, (0, fixture("ps_A_E_ww_o_pid_ruid_uid_command.txt"), "")),
    ], rewrite=[(" /Users/", " %s/Users/" % root), ("=/Users/", "=%s/Users/" % root)])

    def lookup(name):
        return directory[name]
    with MacHost(replay):
        yield root, lookup, replay


def test_people_from_dscl_not_passwd(mac):
    root, lookup, replay = mac
    users = _profiles.list_users(directory=lookup)
    assert [(u.name, u.uid, u.home) for u in users] == [
        ("root", 0, root + "/var/root"), ("alice", 501, root + "/Users/alice"), ("bob", 502, root + "/Users/bob"),
        ("carol", 503, root + "/Users/carol")]
    assert replay.calls == [list(_macos.DSCL_USERS)] and not replay.unexpected


def test_named_users_and_unknown(mac):
    _root, lookup, replay = mac
    assert [u.name for u in _profiles.list_users(users=["bob"], directory=lookup)] == ["bob"]
    with pytest.raises(_profiles.ProfileError, match="no such user.*mallory"):
        _profiles.list_users(users=["bob", "mallory"], directory=lookup)
    assert replay.calls == []  # named users need no listing


def test_dscl_failure_is_an_error():
    with MacHost(Replay([(_macos.DSCL_USERS, (71, "", "DS Error: -14009 (eDSUnknownNodeName)"))])):
        with pytest.raises(_profiles.ProfileError, match="eDSUnknownNodeName"):
            _profiles.list_users(directory=lambda name: Pw(name, 0, 0, "/"))


def test_macos_residue_places(mac):
    root, lookup, _replay = mac
    users = _profiles.list_users(users=["alice"], directory=lookup)
    context = _profiles.EnvContext(users[0], {}, "default")
    protected = _profiles.protected_paths(users, [context])
    profiles = _profiles.load_profiles()
    home = root + "/Users/alice"
    paths = set(r.path for name in ("ollama", "pip_cache", "open_autoglm", "huggingface")
                for r in _profiles.resolve_paths(name, profiles[name], context, protected))
    for expected in ("/.ollama/models", "/.ollama/logs", "/Library/Application Support/Ollama",
                     "/Library/Caches/ollama", "/Library/Caches/com.electron.ollama",
                     "/Library/WebKit/com.electron.ollama",
                     "/Library/Saved Application State/com.electron.ollama.savedState",
                     "/Library/Caches/pip", "/Library/Caches/open-autoglm",
                     "/Library/Application Support/open-autoglm", "/.cache/huggingface/datasets"):
        assert home + expected in paths
    assert home + "/.ollama" not in paths  # holds the user's key: never a residue as a whole
    for shared in ("/Library", "/Library/Caches", "/Library/Application Support", "/.ollama"):
        with pytest.raises(_profiles.ProfileError):
            _profiles.check_path(home + shared, protected)


def test_daemon_environment_from_ps(mac):
    root, lookup, replay = mac
    users = _profiles.list_users(directory=lookup)
    os.makedirs(root + "/Users/alice/HF Cache/hf")
    os.chown(root + "/Users/alice/HF Cache/hf", 501, 20)
    os.chown(root + "/Users/alice/HF Cache", 501, 20)
    contexts = _profiles.user_environments(users, environ={})
    by_source = dict((c.source, c) for c in contexts if c.source.startswith("process"))
    assert by_source["process 812"].user.name == "alice"
    assert by_source["process 812"].environ["HF_HOME"] == root + "/Users/alice/HF Cache/hf"
    assert "process 1500" not in by_source  # setuid sudo: its invoker's environment, not root's
    assert "process 2001" not in by_source and "process 1" not in by_source
    assert [c for c in replay.calls if c[0] == "ps"] == [list(_macos.PS_PLAIN), list(_macos.PS_ENV)]
    locations = [loc for c in contexts for loc in _profiles.hub_cache_locations(c)]
    assert (root + "/Users/alice/HF Cache/hf/hub", "process 812 (HF_HOME)") in locations


def test_ps_values_are_evidence_under_the_same_trust_rules(mac):
    """issue 10's rules judge what ps -E gave as they judge /proc: bob's daemon's HF_HOME=/etc is dropped and
    named, his own ~/.cache stays his; the setuid sudo's environment is named and lends nothing."""
    root, lookup, _replay = mac
    users = _profiles.list_users(directory=lookup)
    os.makedirs(root + "/Users/bob/.cache")
    os.chown(root + "/Users/bob/.cache", 502, 20)
    problems = []
    contexts = _profiles.user_environments(users, environ={}, problems=problems)
    bob = [c for c in contexts if c.source == "process 901"]
    assert [c.environ for c in bob] == [{"XDG_CACHE_HOME": root + "/Users/bob/.cache"}]
    assert not any(c.environ.get("HF_HOME") == "/etc" for c in contexts)
    assert any("process 901" in p and "HF_HOME=/etc" in p for p in problems)
    assert any("process 1500" in p and "real uid 502, effective uid 0" in p for p in problems)
    # OLLAMA_MODELS=/Volumes/Models/ollama is not alice's (here it does not exist, and / is root's): dropped, named
    assert any("process 812" in p and "OLLAMA_MODELS" in p for p in problems)


def test_ps_unavailable_gives_no_process_contexts(mac):
    _root, lookup, _replay = mac
    users = _profiles.list_users(users=["alice"], directory=lookup)
    problems = []
    with MacHost(Replay([])) as replay:
        contexts = _profiles.user_environments(users, environ={}, problems=problems)
    assert [c.source for c in contexts] == ["default"]
    assert any("ps failed (rc 127)" in p for p in problems)
    assert replay.unexpected == [list(_macos.PS_PLAIN), list(_macos.PS_ENV)]
