# -*- coding: utf-8 -*-
# Copyright: residue.purge contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""pip_remove's environments on a macOS layout built under a test directory: python.org's framework, Homebrew's
Cellar framework (externally managed, its site-packages a link into /opt/homebrew/lib), the Command Line Tools'
python3, a pyenv build, and each one's user site (~/Library/Python/X.Y for framework builds, ~/.local for pyenv)."""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import os

from ansible_collections.residue.purge.plugins.module_utils import _pyenvs
from ansible_collections.residue.purge.plugins.module_utils._profiles import User


def touch(path, data="", mode=0o644):
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "w") as f:
        f.write(data)
    os.chmod(path, mode)
    return path


def interpreter(prefix, version):
    """prefix/bin/pythonX.Y (+ python3 link) and prefix/lib/pythonX.Y/{os.py, site-packages}."""
    python = touch("%s/bin/python%s" % (prefix, version), "#!/bin/sh\nexit 1\n", 0o755)
    os.symlink("python" + version, prefix + "/bin/python3")
    touch("%s/lib/python%s/os.py" % (prefix, version))
    return python


def dist(site, name, version):
    touch("%s/%s-%s.dist-info/METADATA" % (site, name, version), "Name: %s\nVersion: %s\n\n" % (name, version))
    touch("%s/%s-%s.dist-info/INSTALLER" % (site, name, version), "pip\n")


def build(root):
    org = root + "/Library/Frameworks/Python.framework/Versions/3.12"
    interpreter(org, "3.12")
    dist(org + "/lib/python3.12/site-packages", "torch", "2.3.0")
    os.symlink("3.12", root + "/Library/Frameworks/Python.framework/Versions/Current")
    brew = root + "/opt/homebrew/Cellar/python@3.11/3.11.9/Frameworks/Python.framework/Versions/3.11"
    brew_python = interpreter(brew, "3.11")
    touch(brew + "/lib/python3.11/EXTERNALLY-MANAGED", "[externally-managed]\n")
    os.makedirs(root + "/opt/homebrew/lib/python3.11/site-packages")
    os.symlink(root + "/opt/homebrew/lib/python3.11/site-packages", brew + "/lib/python3.11/site-packages")
    os.makedirs(root + "/opt/homebrew/bin")
    os.symlink(brew_python, root + "/opt/homebrew/bin/python3.11")
    clt = root + "/Library/Developer/CommandLineTools/Library/Frameworks/Python3.framework/Versions/3.9"
    interpreter(clt, "3.9")
    os.makedirs(clt + "/lib/python3.9/site-packages")
    home = root + "/Users/alice"
    pyenv = home + "/.pyenv/versions/3.10.14"
    interpreter(pyenv, "3.10")
    dist(pyenv + "/lib/python3.10/site-packages", "open-autoglm", "0.4.1")
    dist(home + "/Library/Python/3.12/lib/python/site-packages", "open-autoglm", "0.4.0")
    os.makedirs(home + "/Library/Python/3.9/lib/python/site-packages")
    dist(home + "/.local/lib/python3.10/site-packages", "transformers", "4.44.0")
    return org, brew, clt, pyenv, User("alice", 501, 20, home)


def test_framework_bin_dirs_newest_first_without_current(tmp_path):
    root = str(tmp_path)
    os.makedirs(root + "/Library/Frameworks/Python.framework/Versions/3.9/bin")
    os.makedirs(root + "/Library/Frameworks/Python.framework/Versions/3.13/bin")
    os.symlink("3.13", root + "/Library/Frameworks/Python.framework/Versions/Current")
    assert _pyenvs.framework_bin_dirs(root) == [
        root + "/Library/Frameworks/Python.framework/Versions/3.13/bin",
        root + "/Library/Frameworks/Python.framework/Versions/3.9/bin"]
    assert _pyenvs.framework_bin_dirs(str(tmp_path / "empty")) == []


def test_macos_interpreters_and_user_sites(tmp_path):
    root = str(tmp_path)
    org, brew, clt, pyenv, alice = build(root)
    interpreters = _pyenvs.system_interpreters([root + "/opt/homebrew/bin"] + _pyenvs.framework_bin_dirs(root))
    by_prefix = dict((e.path, e) for e in interpreters)
    assert sorted(by_prefix) == sorted([org, brew, clt])
    assert by_prefix[org].site_dirs == [org + "/lib/python3.12/site-packages"]
    assert not by_prefix[org].externally_managed
    assert by_prefix[brew].externally_managed  # Homebrew's python refuses pip without --break-system-packages
    assert by_prefix[brew].site_dirs == [brew + "/lib/python3.11/site-packages"]
    assert by_prefix[brew].python == root + "/opt/homebrew/bin/python3.11"
    assert [d.name for d in _pyenvs.installed_distributions(by_prefix[org])] == ["torch"]

    found = _pyenvs.search_environments([alice.home + "/.pyenv/versions"])
    assert [(e.path, e.kind) for e in found] == [(pyenv, "system")]
    sites = _pyenvs.user_site_environments(alice, interpreters + found)
    pairs = sorted((e.site_dirs[0][len(alice.home):], e.python) for e in sites)
    assert pairs == [
        ("/.local/lib/python3.10/site-packages", pyenv + "/bin/python3.10"),
        ("/Library/Python/3.12/lib/python/site-packages", org + "/bin/python3.12"),
        ("/Library/Python/3.9/lib/python/site-packages", clt + "/bin/python3.9"),
    ]
    assert all(e.kind == "user-site" and e.user == "alice" for e in sites)
    user_site = [e for e in sites if "/Library/Python/3.12/" in e.site_dirs[0]][0]
    assert [(d.name, d.version) for d in _pyenvs.installed_distributions(user_site)] == [("open-autoglm", "0.4.0")]
