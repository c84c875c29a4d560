# -*- coding: utf-8 -*-
# Copyright: residue.purge contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Issue 10 item 1 on Windows: whose rights each residue is acted on with (_WinActAs.cs).

The decisions are pure C# (Whose, Actors) and run here under Mono, through the same test driver as
test_windows_trust.py: which paths go under which user's token, which stay with the module's own rights, that an
unprivileged run keeps today's behaviour, and that a user whose token cannot be had gets failures and nothing
else (the fail-closed branch never reaches WinFiles: under Mono its Windows calls would raise, not fail politely).
The S4U logon, the restricted token and the impersonation (LsaLogonUser, CreateRestrictedToken,
ImpersonateLoggedOnUser) are Windows calls: they only compile here (test_windows_modules.py's compile check).
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import glob
import json
import os
import shutil
import subprocess

import pytest

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", "..", "..", ".."))
UTILS = os.path.join(ROOT, "plugins", "module_utils")
DRIVER = os.path.join(os.path.dirname(__file__), "windows", "Driver.cs")
RESTORE_CS = os.path.join(ROOT, "playbooks", "files", "ResidueRestore.cs")
ANSIBLE_CSHARP = os.path.join(os.path.dirname(__import__("ansible").__file__), "module_utils", "csharp")

ADMIN = {"name": "HOST\\admin", "sid": "S-1-5-21-1-1-1-500", "home": "C:\\Users\\admin"}
ALICE = {"name": "HOST\\alice", "sid": "S-1-5-21-1-1-1-1001", "home": "C:\\Users\\alice"}
BOB = {"name": "HOST\\bob", "sid": "S-1-5-21-1-1-1-1002", "home": "C:\\Users\\bob"}
# a profile below another one's directory (a roaming or redirected layout): the deepest profile wins
NESTED = {"name": "HOST\\nested", "sid": "S-1-5-21-1-1-1-1003", "home": "C:\\Users\\alice\\nested"}
# explicit homes owned by the system accounts (homes: [D:\shared] owned by the Administrators): nobody's residue
SHARED = {"name": "BUILTIN\\Administrators", "sid": "S-1-5-32-544", "home": "D:\\shared"}
DRIVE = {"name": "HOST\\carol", "sid": "S-1-5-21-1-1-1-1005", "home": "E:\\"}
USERS = [ADMIN, ALICE, BOB, NESTED, SHARED, DRIVE]


@pytest.fixture(scope="module")
def csharp(tmp_path_factory):
    mcs, mono = shutil.which("mcs"), shutil.which("mono")
    assert mcs and mono, "mcs/mono not found: tools/bootstrap.sh installs Debian's mono-mcs and mono-runtime"
    exe = str(tmp_path_factory.mktemp("driver") / "driver.exe")
    sources = sorted(glob.glob(os.path.join(UTILS, "*.cs"))) + [
        os.path.join(ANSIBLE_CSHARP, "Ansible.Privilege.cs"), os.path.join(ANSIBLE_CSHARP, "Ansible.AccessToken.cs"),
        DRIVER, RESTORE_CS]
    proc = subprocess.run([mcs, "-langversion:5", "-nowarn:169,414,649,219", "-d:WINDOWS", "-r:System.dll",
                           "-r:System.Core.dll", "-r:System.IO.Compression.dll", "-out:" + exe] + sources,
                          stdout=subprocess.PIPE, stderr=subprocess.STDOUT, universal_newlines=True, check=False)
    assert proc.returncode == 0, proc.stdout

    def call(fn, **args):
        run = subprocess.run([mono, exe], input=json.dumps([{"fn": fn, "args": args}]), stdout=subprocess.PIPE,
                             stderr=subprocess.PIPE, universal_newlines=True, check=False)
        assert run.returncode == 0, run.stderr
        (out,) = json.loads(run.stdout)
        assert "ok" in out, out
        return out["ok"]
    return call


def runners(csharp, items, elevated=True, self=0):
    out = csharp("act_as", users=USERS, elevated=elevated, self=self, items=items)
    return out["runners"], out["asked"]


def resolved(path, claimant, template="{user_cache}\\x"):
    return {"path": path, "claimant": claimant, "template": template}


def given(path):
    return {"path": path}


def test_a_users_profile_residue_goes_under_that_users_token(csharp):
    got, asked = runners(csharp, [
        resolved("C:\\Users\\alice\\AppData\\Local\\open-autoglm", ALICE["name"]),
        resolved("C:\\Users\\bob\\.cache\\huggingface", BOB["name"]),
        # spelled differently (case, forward slashes, a doubled separator): still alice's profile
        given("c:/users/ALICE//AppData/Local/x"),
        given("C:\\Users\\alice"),
    ])
    assert got == [ALICE["name"], BOB["name"], ALICE["name"], ALICE["name"]]
    assert asked == {ALICE["name"]: 1, BOB["name"]: 1}  # one logon per user, reused


def test_the_profile_decides_not_the_claimant(csharp):
    # bob's environment naming a place in alice's profile (vetting refuses that; were it to pass, alice's token
    # still acts on alice's files, never bob's or the module's)
    got, _asked = runners(csharp, [resolved("C:\\Users\\alice\\AppData\\Local\\x", BOB["name"])])
    assert got == [ALICE["name"]]


def test_the_deepest_profile_holds_a_path(csharp):
    got, _asked = runners(csharp, [given("C:\\Users\\alice\\nested\\cache"), given("C:\\Users\\alice\\nestedX")])
    assert got == [NESTED["name"], ALICE["name"]]


def test_a_name_that_only_starts_like_a_profile_is_not_in_it(csharp):
    got, _asked = runners(csharp, [given("C:\\Users\\alice.old\\x"), given("C:\\Users\\bobby")])
    assert got == [None, None]


def test_a_users_environment_outside_every_profile_goes_under_that_users_token(csharp):
    # alice's HF_HOME=D:\alice\hf, owned by her (vetted): hers, acted on as her
    got, _asked = runners(csharp, [resolved("D:\\alice\\hf\\hub", ALICE["name"], "{hf_hub_cache}")])
    assert got == [ALICE["name"]]


def test_hub_caches_go_to_their_profiles_user_else_to_the_user_whose_context_named_them(csharp):
    got, _asked = runners(csharp, [
        {"path": "D:\\alice\\hf\\hub", "claimant": ALICE["name"]},  # her HF_HOME on a data disk
        {"path": "C:\\Users\\bob\\.cache\\huggingface\\hub", "claimant": ALICE["name"]},  # in bob's profile
        {"path": "D:\\models\\hub", "claimant": None},  # extra_hf_caches / cache_dirs outside every profile
        {"path": "C:\\Users\\alice\\hub", "claimant": None},  # given, but in alice's profile
    ])
    assert got == [ALICE["name"], BOB["name"], None, ALICE["name"]]


def test_system_paths_and_given_paths_outside_profiles_stay_with_the_module(csharp):
    got, asked = runners(csharp, [
        resolved("C:\\ProgramData\\open-autoglm", ALICE["name"], "C:\\ProgramData\\open-autoglm"),
        resolved("C:\\ProgramData\\x", ALICE["name"], "%ProgramData%\\x".replace("%ProgramData%", "C:/ProgramData")),
        given("D:\\models\\old"),
    ])
    assert got == [None, None, None]
    assert asked == {}


def test_the_modules_own_profile_stays_with_the_module(csharp):
    got, asked = runners(csharp, [given("C:\\Users\\admin\\AppData\\Local\\x"),
                                  resolved("C:\\Users\\admin\\.cache\\y", ADMIN["name"])], self=0)
    assert got == [None, None]
    assert asked == {}


def test_system_owned_homes_and_drive_root_homes_hold_nobodys_residue(csharp):
    got, asked = runners(csharp, [given("D:\\shared\\cache"), given("E:\\anything"),
                                  resolved("D:\\shared\\x", SHARED["name"])])
    assert got == [None, None, None]
    assert asked == {}


def test_unprivileged_runs_act_with_their_own_rights_as_before(csharp):
    got, asked = runners(csharp, [resolved("C:\\Users\\alice\\AppData\\Local\\x", ALICE["name"]),
                                  given("C:\\Users\\bob\\x")], elevated=False)
    assert got == [None, None]
    assert asked == {}


def test_without_a_known_module_account_every_users_residue_is_theirs(csharp):
    # SYSTEM runs the module: its profile is none of the users'; the admin's residue is the admin's as a user
    got, _asked = runners(csharp, [given("C:\\Users\\admin\\x"), given("C:\\Users\\alice\\x")], self=None)
    assert got == [ADMIN["name"], ALICE["name"]]


def test_a_user_without_a_token_gets_failures_and_nothing_is_touched(csharp):
    why = "could not act as HOST\\bob: LsaLogonUser (MSV1_0_S4U_LOGON) refused it: network logon: denied"
    for dry_run in (True, False):
        out = csharp("act_refused", path="C:\\Users\\bob\\AppData\\Local\\x", error=why, dry_run=dry_run)
        assert out["failures"] == [["C:\\Users\\bob\\AppData\\Local\\x", why + "; left as it was (a user's residue is "
                                    "never acted on with the module's own rights)"]]
        assert out["removed"] == 0
        assert out["measured"] is False
        assert out["problems"] == ["C:\\Users\\bob\\AppData\\Local\\x: not sized: " + why]
        assert out["run_error"] == why and out["ran"] is False
        assert out["usable"] is False
        assert out["self_ran"] == "done"
        # a hub cache of that user: not scanned, nothing of it planned or deleted, one failure each
        left = why + "; left as it was (a user's residue is never acted on with the module's own rights)"
        assert out["scanned"] is False and out["scan_problems"] == []
        assert out["scan_failures"] == ["C:\\Users\\bob\\AppData\\Local\\x: not scanned: " + left]
        assert out["execute_failures"] == ["C:\\Users\\bob\\AppData\\Local\\x\\models--org--m: " + left]


@pytest.mark.parametrize("level,stage,refused", [
    (0, "logon", "anonymous-level"),
    (1, "logon", "identification-level, not impersonation-level: the logon was made without SeTcbPrivilege"),
    (1, "impersonation", "identification-level, not impersonation-level: the module's account lacks "
                         "SeImpersonatePrivilege"),
    (2, "impersonation", None),
    (3, "logon", None),
])
def test_only_impersonation_level_tokens_act(csharp, level, stage, refused):
    out = csharp("level_refusal", level=level, user="HOST\\bob", stage=stage)
    if refused is None:
        assert out is None
    else:
        assert out.startswith("could not act as HOST\\bob: its %s token is " % stage)
        assert refused in out
