# -*- coding: utf-8 -*-
# Copyright: residue.purge contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""residue.purge.pip_remove against real environments: venvs made by `python -m venv`, a real user-site install
of a throwaway user, hand-built wheels installed with pip --no-index (no network)."""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import hashlib
import json
import os
import pwd
import shutil
import subprocess
import tempfile
import uuid

import pytest

from conftest import run_tasks

from wheels import build_wheel

SYSTEM_PYTHON = "/usr/bin/python3"
TAG = "rp" + uuid.uuid4().hex[:6]  # distribution names no real environment has
A, B, C, D, E, F, S = ("%s-%s" % (TAG, x) for x in "abcdefs")


def mod(name):
    return name.replace("-", "_")


def run(cmd, **kw):
    return subprocess.run(cmd, check=True, capture_output=True, text=True, **kw)


@pytest.fixture(scope="session")
def workroot():
    # world-readable (the throwaway user installs from the wheelhouse and owns a home below it)
    root = tempfile.mkdtemp(prefix="residue-pip-")
    os.chmod(root, 0o755)
    yield root
    shutil.rmtree(root, ignore_errors=True)


@pytest.fixture(scope="session")
def wheelhouse(workroot):
    """A needs B, C, E and S; D (unrelated) needs B[speed] and, on Windows only, C; B[speed] needs S;
    C needs F; a Python 2-only dependency of A is never installed."""
    wheels = os.path.join(workroot, "wheels")
    os.makedirs(wheels)
    build_wheel(wheels, A, "1.0", requires=[B, C, E, S, TAG + '-py2only; python_version < "3"'])
    build_wheel(wheels, B, "1.0", requires=[S + '; extra == "speed"'], extras=["speed"])
    build_wheel(wheels, C, "1.0", requires=[F])
    build_wheel(wheels, D, "1.0", requires=[B + "[speed]", C + '; sys_platform == "win32"'], imports=[mod(B)])
    build_wheel(wheels, E, "1.0")
    build_wheel(wheels, F, "1.0")
    build_wheel(wheels, S, "1.0")
    return wheels


def pip_install(python, wheels):
    run([python, "-m", "pip", "install", "-q", "--no-index", "--find-links", wheels, "--disable-pip-version-check",
         A, D, E], cwd="/")


@pytest.fixture(scope="session")
def template_venv(workroot, wheelhouse):
    """One real venv with pip (ensurepip, offline) and A, D, E installed on request; tests copy it."""
    path = os.path.join(workroot, "template")
    run([SYSTEM_PYTHON, "-m", "venv", path])
    pip_install(os.path.join(path, "bin", "python"), wheelhouse)
    return path


@pytest.fixture
def venv_copy(template_venv, workroot):
    """A private copy of the template venv (venvs run fine from a copy: bin/python links to the base)."""
    made = []

    def make(parent=None, name="venv"):
        parent = parent or tempfile.mkdtemp(prefix="t-", dir=workroot)
        path = os.path.join(parent, name)
        shutil.copytree(template_venv, path, symlinks=True)
        made.append(parent)
        return path

    yield make
    for parent in made:
        shutil.rmtree(parent, ignore_errors=True)


@pytest.fixture
def throwaway_user(workroot, wheelhouse):
    """A real user with a user-site install of A, D, E (made with the system Python's pip, as that user)."""
    name = "rpu" + uuid.uuid4().hex[:8]
    home = os.path.join(workroot, name)
    run(["useradd", "--home-dir", home, "--create-home", "--shell", "/usr/sbin/nologin", name])
    try:
        # PEP 668: Debian's Python refuses --user installs unless told; only this test setup does that
        run(["runuser", "-u", name, "--", "env", "HOME=" + home, "PIP_NO_CACHE_DIR=1", SYSTEM_PYTHON, "-m", "pip",
             "install", "-q", "--no-index", "--find-links", wheelhouse, "--disable-pip-version-check", "--user",
             "--break-system-packages", A, D, E], cwd="/")
        yield pwd.getpwnam(name)
    finally:
        subprocess.run(["userdel", name], check=False, capture_output=True)
        shutil.rmtree(home, ignore_errors=True)


def venv_python(venv):
    return os.path.join(venv, "bin", "python")


def installed(python, user=None, home=None):
    """What the environment's own pip lists (the oracle): {name: version}."""
    cmd = [python, "-m", "pip", "list", "--format", "json", "--disable-pip-version-check"]
    if user:
        cmd = ["runuser", "-u", user, "--", "env", "HOME=" + home, python, "-m", "pip", "list", "--user",
               "--format", "json", "--disable-pip-version-check"]
    out = run(cmd, cwd="/").stdout
    return dict((d["name"].lower().replace("_", "-"), d["version"]) for d in json.loads(out))


def ours(mapping):
    return sorted(n for n in mapping if n.startswith(TAG))


def tree_digest(path):
    """Every path, mode and content under path: equal digests mean nothing changed."""
    h = hashlib.sha256()
    for dirpath, dirnames, filenames in os.walk(path):
        dirnames.sort()
        for name in sorted(dirnames + filenames):
            full = os.path.join(dirpath, name)
            st = os.lstat(full)
            h.update(("%s %o %d\n" % (os.path.relpath(full, path), st.st_mode, st.st_uid)).encode())
            if os.path.isfile(full) and not os.path.islink(full):
                with open(full, "rb") as f:
                    h.update(f.read())
    return h.hexdigest()


def by_path(result):
    return dict((e["path"], e) for e in result["environments"])


def names(entries):
    return [e["name"] for e in entries]


# ---------------------------------------------------------------- the scenario

def test_remove_target_and_orphans_keep_shared_and_requested(module_runner, venv_copy):
    venv = venv_copy()
    args = dict(packages=[A.upper().replace("-", "_")], environments=[venv], orphans=True)
    assert ours(installed(venv_python(venv))) == sorted([A, B, C, D, E, F, S])

    before = tree_digest(venv)
    plan = module_runner("pip_remove", args, check=True, diff=True)
    assert tree_digest(venv) == before, "check mode changed the environment"
    assert plan["changed"] is True and not plan.get("failed")
    entry = plan["environments"][0]
    assert entry["status"] == "planned"
    assert names(entry["removed"]) == [A] and names(entry["orphans_removed"]) == [C, F]

    # the real run and the second one in one ansible-playbook (the second changes nothing: asserted below)
    result, again = run_tasks([{"module": "pip_remove", "args": args}] * 2, diff=True)
    assert result["changed"] is True and not result.get("failed"), result.get("msg")
    entry = result["environments"][0]
    assert entry["status"] == "changed" and entry["kind"] == "venv"
    assert entry["removed"] == [{"name": A, "version": "1.0"}]
    assert names(entry["orphans_removed"]) == [C, F]  # C only needed by A (D needs it on Windows only); F by C
    assert entry["kept_shared"] == [{"name": B, "version": "1.0", "required_by": [D]},
                                    {"name": S, "version": "1.0", "required_by": [B]}]  # via D's B[speed]
    assert entry["kept"] == [{"name": E, "version": "1.0", "reason": "requested"}]
    assert entry["pip_check"] == {"ok": True, "output": ["No broken requirements found."], "new": []}
    # check mode planned exactly what the real run did
    assert (plan["environments"][0]["removed"], plan["environments"][0]["orphans_removed"]) == (
        entry["removed"], entry["orphans_removed"])
    assert "%s: %s==1.0" % (venv, A) in result["diff"]["before"] and result["diff"]["after"] == ""
    assert "-%s: %s==1.0" % (venv, C) in result["_stdout"]

    # the oracle: the environment's own pip, and D still imports (it imports B at import time)
    assert ours(installed(venv_python(venv))) == sorted([B, D, E, S])
    run([venv_python(venv), "-c", "import %s, %s" % (mod(D), mod(E))], cwd="/")

    assert again["changed"] is False and not again.get("failed")
    assert again["environments"][0]["status"] == "absent"


def test_named_package_others_need_is_kept_unless_forced(module_runner, venv_copy):
    venv = venv_copy()
    kept = module_runner("pip_remove", dict(packages=[B], environments=[venv]))
    assert kept["changed"] is False and not kept.get("failed")
    entry = kept["environments"][0]
    assert entry["status"] == "unchanged" and entry["removed"] == []
    assert entry["kept_shared"] == [{"name": B, "version": "1.0", "required_by": [A, D]}]
    assert B in installed(venv_python(venv))
    assert kept["problems"] == ["%s: %s not removed: required by %s, %s (remove_required: true removes it anyway)"
                                % (venv, B, A, D)]

    forced = module_runner("pip_remove", dict(packages=[B], environments=[venv], remove_required=True))
    entry = forced["environments"][0]
    assert forced["changed"] is True and names(entry["removed"]) == [B]
    # pip check tells the truth about what that broke, and it is surfaced as a problem
    assert entry["pip_check"]["ok"] is False
    assert sorted(entry["pip_check"]["new"]) == [
        "%s 1.0 requires %s, which is not installed." % (name, B) for name in (A, D)]
    assert any("pip check" in p for p in forced["problems"])
    assert B not in installed(venv_python(venv))


# ---------------------------------------------------------------- several environments, discovered

def test_discovers_venvs_user_site_and_reports_broken(module_runner, venv_copy, workroot, throwaway_user):
    root = tempfile.mkdtemp(prefix="roots-", dir=workroot)
    good = venv_copy(os.path.join(root, "team", "proj"), ".venv")
    broken = venv_copy(root, "broken")
    # bin/python and bin/python3.X lead to bin/python3, the link to the base interpreter: make it point nowhere
    os.remove(os.path.join(broken, "bin", "python3"))
    os.symlink(os.path.join(root, "no-such-python"), os.path.join(broken, "bin", "python3"))
    broken_before = tree_digest(broken)
    user, home = throwaway_user.pw_name, throwaway_user.pw_dir
    assert ours(installed(SYSTEM_PYTHON, user, home)) == sorted([A, B, C, D, E, F, S])

    # the package comes from a residue profile's pip list, as the purge role passes it
    args = dict(targets=["agent"], profiles={"agent": {"pip": [A]}}, search_roots=[root], homes=[home],
                include_system=False)
    # the real run and the second one in one ansible-playbook (the second changes nothing: asserted below)
    result, again = run_tasks([{"module": "pip_remove", "args": args}] * 2)
    assert result["packages"] == [A]
    envs = by_path(result)
    user_base = os.path.join(home, ".local")
    assert sorted(envs) == sorted([good, broken, user_base])

    # the broken environment holds A: reported, untouched, and the task fails at the end ...
    assert result.get("failed") is True and broken in result["msg"], json.dumps(result, indent=1)
    assert envs[broken]["status"] == "broken" and "does not exist" in envs[broken]["error"]
    assert names(envs[broken]["found"]) == [A]
    assert tree_digest(broken) == broken_before
    assert any(broken in p for p in result["problems"])
    # ... after the others were done (orphans: false, so only A goes)
    assert envs[good]["status"] == "changed" and names(envs[good]["removed"]) == [A]
    assert ours(installed(venv_python(good))) == sorted([B, C, D, E, F, S])
    site = envs[user_base]
    assert (site["kind"], site["user"]) == ("user-site", user)
    assert os.path.realpath(site["python"]) == os.path.realpath(SYSTEM_PYTHON)
    assert site["status"] == "changed" and names(site["removed"]) == [A]
    assert [(k["name"], k["reason"]) for k in site["kept"]] == [(C, "orphan (orphans: false)"), (E, "requested")]
    # pip check of a user site also sees the system's site-packages (whose own state is not ours): nothing new
    assert site["pip_check"]["new"] == []
    assert ours(installed(SYSTEM_PYTHON, user, home)) == sorted([B, C, D, E, F, S])
    # pip ran as the user: nothing in the home became root's
    for dirpath, dirnames, filenames in os.walk(home):
        for name in dirnames + filenames:
            assert os.lstat(os.path.join(dirpath, name)).st_uid == throwaway_user.pw_uid, name

    # second run: the user site and the good venv are done; the broken one still holds A and still fails
    assert again["changed"] is False
    assert [by_path(again)[p]["status"] for p in (good, user_base, broken)] == ["absent", "absent", "broken"]


def test_crafted_record_in_user_site_cannot_make_root_delete(module_runner, workroot, throwaway_user):
    """A user's RECORD naming a root-owned file: pip runs as the user, so the file survives."""
    victim_dir = tempfile.mkdtemp(prefix="victim-", dir=workroot)
    os.chmod(victim_dir, 0o755)
    victim = os.path.join(victim_dir, "precious")
    with open(victim, "w") as f:
        f.write("root's data\n")
    home = throwaway_user.pw_dir
    site = [os.path.join(d, "site-packages") for d in
            [os.path.join(home, ".local", "lib", p) for p in os.listdir(os.path.join(home, ".local", "lib"))]][0]
    record = os.path.join(site, "%s-1.0.dist-info" % mod(E), "RECORD")
    with open(record, "a") as f:
        f.write("%s,,\n" % os.path.relpath(victim, site))

    result = module_runner("pip_remove", dict(packages=[E], environments=[os.path.join(home, ".local")],
                                              remove_required=True))
    assert os.path.exists(victim), "root deleted a file named by a user's RECORD"
    with open(victim) as f:
        assert f.read() == "root's data\n"
    entry = result["environments"][0]
    assert entry["kind"] == "user-site"
    # pip (as the user) could not remove the foreign file: the package stays and the task says so
    assert result.get("failed") is True and entry["status"] == "failed" and E in entry["error"]


# ---------------------------------------------------------------- EXTERNALLY-MANAGED and foreign interpreters

@pytest.fixture
def managed_prefix(workroot, template_venv):
    """A conda-style prefix marked EXTERNALLY-MANAGED whose distributions are copies of the template's, and
    whose bin/python is the system interpreter (which does not use this prefix's site-packages)."""
    prefix = tempfile.mkdtemp(prefix="managed-", dir=workroot)
    lib = os.listdir(os.path.join(template_venv, "lib"))[0]
    shutil.copytree(os.path.join(template_venv, "lib", lib, "site-packages"),
                    os.path.join(prefix, "lib", lib, "site-packages"), symlinks=True)
    with open(os.path.join(prefix, "lib", lib, "EXTERNALLY-MANAGED"), "w") as f:
        f.write("[externally-managed]\nError=use the package manager\n")
    os.makedirs(os.path.join(prefix, "conda-meta"))
    os.makedirs(os.path.join(prefix, "bin"))
    os.symlink(SYSTEM_PYTHON, os.path.join(prefix, "bin", "python"))
    yield prefix
    shutil.rmtree(prefix, ignore_errors=True)


def test_externally_managed_is_reported_not_changed(module_runner, managed_prefix):
    before = tree_digest(managed_prefix)
    result = module_runner("pip_remove", dict(packages=[A], environments=[managed_prefix]))
    entry = result["environments"][0]
    assert result["changed"] is False and not result.get("failed")
    assert entry["externally_managed"] is True and entry["status"] == "externally_managed"
    assert names(entry["found"]) == [A] and "allow_system" in entry["error"]
    assert tree_digest(managed_prefix) == before

    # allowed, but its interpreter does not use that site dir: pip would act elsewhere, so nothing runs
    allowed = module_runner("pip_remove", dict(packages=[A], environments=[managed_prefix], allow_system=True))
    entry = allowed["environments"][0]
    assert allowed.get("failed") is True and entry["status"] == "broken" and "does not use" in entry["error"]
    assert tree_digest(managed_prefix) == before


# ---------------------------------------------------------------- bad input

# each case is a task of one ansible-playbook run; the validators themselves are unit-tested with more hostile values
BAD_INPUT = [
    (dict(packages=["-r/etc/passwd"]), "packages: '-r/etc/passwd' is not a valid distribution name"),
    (dict(packages=["Open_AutoGLM"], keep=["open-autoglm"]), "packages and keep both name open-autoglm"),
    (dict(packages=["a"], environments=["/etc"]), "/etc is not a Python environment"),
]


def test_bad_input_fails_clearly(module_batch_runner):
    results = module_batch_runner("pip_remove", [dict(args, include_system=False) for args, _message in BAD_INPUT])
    assert len(results) == len(BAD_INPUT)
    for result, (args, message) in zip(results, BAD_INPUT):
        assert result.get("failed") is True and message in result["msg"], (args, result.get("msg"))
        assert "Traceback" not in result.get("module_stderr", "") + result["msg"], args
        assert result.get("changed") is False, args
