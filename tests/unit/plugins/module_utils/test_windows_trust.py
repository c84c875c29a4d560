# -*- coding: utf-8 -*-
# Copyright: residue.purge contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Issue 10 on Windows: a user's registry environment is evidence, not authority (item 2), and a user's residue is
acted on with that user's rights (item 1, at the end).

_WinHost.cs's Trust (the port of _profiles.vet_value / _paths.canonical) runs here under Mono against a described
Windows file system (the test driver's FakeFacts: each component's on-disk name, owner SID, reparse flag and
identity); WindowsPathFacts, which reads those from a real NTFS volume, only compiles here. Hostile values a user
can put in HKU\\<SID>\\Environment: system directories in every spelling Windows accepts (C:/Windows,
c:\\windows\\., \\\\?\\C:\\Windows, trailing dots and spaces, 8.3 aliases, \\\\localhost\\C$ shares, '..'), another
user's profile, the user's own junction to a system directory, an administrator's junction to another profile.
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
RESTORE_CS = os.path.join(ROOT, "playbooks", "files", "ResidueRestore.cs")  # restore.yml on Windows
ANSIBLE_CSHARP = os.path.join(os.path.dirname(__import__("ansible").__file__), "module_utils", "csharp")

TI = "S-1-5-80-956008885-3418522649-1831038044-1853292631-2271478464"
SYSTEM, ADMINS = "S-1-5-18", "S-1-5-32-544"
MALLORY, CAROL, ANA = "S-1-5-21-1-1-1-1001", "S-1-5-21-1-1-1-1002", "S-1-5-21-1-1-1-1003"
ACCOUNTS = {TI: "NT SERVICE\\TrustedInstaller", SYSTEM: "NT AUTHORITY\\SYSTEM", ADMINS: "BUILTIN\\Administrators",
            MALLORY: "HOST\\mallory", CAROL: "HOST\\carol", ANA: "HOST\\ana"}


def d(owner, ident, name=None, **extra):
    entry = {"owner": owner, "id": ident}
    if name:
        entry["name"] = name
    entry.update(extra)
    return entry


# One host: C: (system, profiles), D: (data), \\localhost\C$ (the same volume as C:), a file server.
FS = {
    "C:\\": d(TI, "c:5"),
    "C:\\Windows": d(TI, "c:10", "Windows"),
    "C:\\Windows\\System32": d(TI, "c:11", "System32"),
    "C:\\Windows\\Temp": d(SYSTEM, "c:12", "Temp"),
    "C:\\Program Files": d(TI, "c:20", "Program Files"),
    "C:\\PROGRA~1": d(TI, "c:20", "Program Files"),  # the 8.3 alias: the same directory
    "C:\\ProgramData": d(SYSTEM, "c:21", "ProgramData"),
    "C:\\Users": d(SYSTEM, "c:30", "Users"),
    # Windows' own compatibility junction (owned by SYSTEM): followed, like root's /home -> /data/home
    "C:\\Documents and Settings": d(SYSTEM, "c:31", "Documents and Settings", reparse=True, target="C:\\Users"),
    "C:\\Users\\mallory": d(MALLORY, "c:40", "mallory"),
    "C:\\Users\\mallory\\AppData": d(MALLORY, "c:41", "AppData"),
    "C:\\Users\\mallory\\AppData\\Local": d(MALLORY, "c:42", "Local"),
    "C:\\Users\\mallory\\sys": d(MALLORY, "c:43", "sys", reparse=True, target="C:\\Windows"),  # her junction
    "C:\\Users\\mallory\\carol": d(MALLORY, "c:44", "carol", reparse=True, target="C:\\Users\\carol"),
    "C:\\Users\\mallory\\data": d(MALLORY, "c:45", "data"),
    "C:\\Users\\mallory\\admin-made": d(ADMINS, "c:46", "admin-made"),  # in her profile, an admin's: hers
    "C:\\Users\\carol": d(CAROL, "c:50", "carol"),
    "C:\\Users\\CAROL~1": d(CAROL, "c:50", "carol"),
    "C:\\Users\\carol\\AppData": d(CAROL, "c:51", "AppData"),
    "C:\\Users\\carol\\AppData\\Local": d(CAROL, "c:52", "Local"),
    "C:\\Users\\carol\\AppData\\Local\\open-autoglm": d(CAROL, "c:53", "open-autoglm"),
    "C:\\Users\\ana": d(ANA, "c:60", "ana"),
    "D:\\": d(ADMINS, "d:5"),
    "D:\\mallory": d(MALLORY, "d:10", "mallory"),
    "D:\\shared": d(ADMINS, "d:20", "shared"),  # writable by everyone (its ACL), owned by the admins
    "D:\\shared\\hf": d(MALLORY, "d:21", "hf", reparse=True, target="C:\\Windows"),
    "D:\\shared\\ana": d(ANA, "d:22", "ana"),
    "D:\\mnt": d(ADMINS, "d:30", "mnt", reparse=True, target="E:\\"),  # an administrator's mount point
    "E:\\": d(ADMINS, "e:5"),
    "E:\\mallory": d(MALLORY, "e:10", "mallory"),
    "\\\\localhost\\C$": d(TI, "c:5"),
    "\\\\localhost\\C$\\Windows": d(TI, "c:10", "Windows"),
    "\\\\localhost\\C$\\Users": d(SYSTEM, "c:30", "Users"),
    "\\\\localhost\\C$\\Users\\carol": d(CAROL, "c:50", "carol"),
    "\\\\localhost\\C$\\Users\\mallory": d(MALLORY, "c:40", "mallory"),
    "\\\\localhost\\C$\\Users\\mallory\\admin-made": d(ADMINS, "c:46", "admin-made"),
    "C:\\Users\\mallory.old": d(ADMINS, "c:47", "mallory.old"),  # a name that starts like her profile's
    "\\\\nas\\home": d(ADMINS, "nas:5"),
    "\\\\nas\\home\\mallory": d(MALLORY, "nas:10", "mallory"),
}

USERS = {
    "mallory": {"name": "HOST\\mallory", "sid": MALLORY, "home": "C:\\Users\\mallory"},
    "carol": {"name": "HOST\\carol", "sid": CAROL, "home": "C:\\Users\\carol"},
    "ana": {"name": "HOST\\ana", "sid": ANA, "home": "C:\\Users\\ana"},
}


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

    def call(cases):
        run = subprocess.run([mono, exe], input=json.dumps(cases), stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                             universal_newlines=True, check=False)
        assert run.returncode == 0, run.stderr
        out = json.loads(run.stdout)
        assert len(out) == len(cases)
        return out
    return call


def vet(csharp, values, user="mallory", name="HF_HOME", fs=None):
    cases = [{"fn": "vet", "args": {"fs": fs or FS, "accounts": ACCOUNTS, "user": USERS[user], "name": name,
                                    "value": v}} for v in values]
    results = csharp(cases)
    for value, result in zip(values, results):
        assert "ok" in result, (value, result)
    return dict((v, r["ok"]) for v, r in zip(values, results))


# Each: a value mallory can write into her own HKU\<SID>\Environment, and a word of why it must be refused.
HOSTILE = {
    "C:\\Windows": "owned by NT SERVICE\\TrustedInstaller",
    "C:/Windows": "owned by NT SERVICE\\TrustedInstaller",
    "c:\\windows\\.": "owned by NT SERVICE\\TrustedInstaller",
    "c:\\WINDOWS\\\\System32\\": "owned by NT SERVICE\\TrustedInstaller",
    "C:\\Windows\\new-dir": "does not exist and C:\\Windows is owned by NT SERVICE\\TrustedInstaller",
    "C:\\Windows\\Temp": "owned by NT AUTHORITY\\SYSTEM",
    "\\\\?\\C:\\Windows": "device path",
    "//?/C:/Windows": "device path",
    "\\\\.\\C:\\Windows": "device path",
    "\\??\\C:\\Windows": "device path",
    "C:\\Windows.": "ends in a dot or a space",
    "C:\\Windows ": "ends in a dot or a space",
    "C:\\Windows. . .\\System32": "ends in a dot or a space",
    "C:\\Windows::$DATA": "alternate data stream",
    "C:\\Win*": "wildcard",
    "C:\\PROGRA~1": "C:\\Program Files is owned by NT SERVICE\\TrustedInstaller",
    "C:\\PROGRA~1\\x": "C:\\Program Files\\x does not exist and C:\\Program Files is owned by",
    "C:\\Users\\carol": "owned by HOST\\carol",
    "C:\\Users\\CAROL~1\\AppData\\Local": "C:\\Users\\carol\\AppData\\Local is owned by HOST\\carol",
    "c:\\users\\carol\\appdata\\local\\open-autoglm": "owned by HOST\\carol",
    "C:\\Users\\mallory\\..\\carol": "must not contain '..'",
    "C:\\Users\\mallory\\x\\..\\..\\carol": "must not contain '..'",
    "C:\\Users": "owned by NT AUTHORITY\\SYSTEM",
    "C:\\Users\\mallory.old\\hf": "does not exist and C:\\Users\\mallory.old is owned by BUILTIN\\Administrators",
    "C:\\Users\\new-user": "does not exist and C:\\Users is owned by NT AUTHORITY\\SYSTEM",
    "\\\\localhost\\C$\\Windows": "owned by NT SERVICE\\TrustedInstaller",
    "\\\\localhost\\C$\\Users\\carol": "owned by HOST\\carol",
    # her own junctions, even inside her own profile: not followed
    "C:\\Users\\mallory\\sys": "C:\\Users\\mallory\\sys is a junction or symbolic link owned by HOST\\mallory",
    "C:\\Users\\mallory\\sys\\System32": "junction or symbolic link owned by HOST\\mallory",
    "C:\\Users\\mallory\\carol\\AppData": "junction or symbolic link owned by HOST\\mallory",
    "D:\\shared\\hf": "D:\\shared\\hf is a junction or symbolic link owned by HOST\\mallory",
    # an administrator's junction is followed, to where it leads: carol's profile
    "C:\\Documents and Settings\\carol\\AppData": "C:\\Users\\carol\\AppData is owned by HOST\\carol",
    "D:\\shared\\new": "does not exist and D:\\shared is owned by BUILTIN\\Administrators",
    "D:\\shared\\ana": "owned by HOST\\ana",
    "D:\\": "owned by BUILTIN\\Administrators",
    "\\\\nas\\home": "owned by BUILTIN\\Administrators",
    "\\\\unknown\\share\\x": "cannot be looked at",
}

ACCEPTED = {
    "C:\\Users\\mallory\\hf": "C:\\Users\\mallory\\hf",  # does not exist yet: in her profile
    "c:/users/MALLORY/appdata/local/x": "C:\\Users\\mallory\\AppData\\Local\\x",  # the names as on disk
    "C:\\Users\\mallory\\admin-made\\hf": "C:\\Users\\mallory\\admin-made\\hf",  # in her profile
    "D:\\mallory\\hf": "D:\\mallory\\hf",  # hers
    "D:\\mallory": "D:\\mallory",
    "D:\\mnt\\mallory\\hf": "E:\\mallory\\hf",  # an administrator's mount point, followed
    "\\\\nas\\home\\mallory\\hf": "\\\\nas\\home\\mallory\\hf",  # a share: the owner on the server
    "\\\\localhost\\C$\\Users\\mallory\\hf": "\\\\localhost\\C$\\Users\\mallory\\hf",  # her profile by identity
    # in her profile by identity (not by spelling), though an administrator owns the directory
    "\\\\localhost\\C$\\Users\\mallory\\admin-made\\hf": "\\\\localhost\\C$\\Users\\mallory\\admin-made\\hf",
    "C:\\Documents and Settings\\mallory\\hf": "C:\\Users\\mallory\\hf",  # Windows' junction, to her profile
    "~\\hf": "C:\\Users\\mallory\\hf",
    "~": "C:\\Users\\mallory",
}


def test_hostile_values_are_refused_and_say_why(csharp):
    got = vet(csharp, sorted(HOSTILE))
    for value, why in sorted(HOSTILE.items()):
        assert got[value]["path"] is None, (value, got[value])
        assert why in (got[value]["why"] or ""), (value, got[value])


def test_a_users_own_locations_are_accepted_as_they_are_on_disk(csharp):
    got = vet(csharp, sorted(ACCEPTED))
    for value, path in sorted(ACCEPTED.items()):
        assert got[value] == {"path": path, "why": None, "foreign": False}, value


def test_values_that_name_no_location_are_ignored_silently(csharp):
    """As on POSIX (and EnvPath): a relative, root-relative or drive-relative value names no place."""
    got = vet(csharp, ["hf", "\\hf", "C:hf", "", ".\\x"])
    assert all(r == {"path": None, "why": None, "foreign": False} for r in got.values()), got


def test_the_same_location_is_refused_or_kept_per_user(csharp):
    """carol's own directory is hers, not mallory's; the rule compares SIDs, not spellings of names."""
    value = "C:\\Users\\CAROL~1\\AppData\\Local\\open-autoglm"
    assert vet(csharp, [value], user="carol")[value]["path"] == "C:\\Users\\carol\\AppData\\Local\\open-autoglm"
    assert vet(csharp, [value], user="mallory")[value]["foreign"] is True
    assert vet(csharp, ["D:\\shared\\ana"], user="ana")["D:\\shared\\ana"]["path"] == "D:\\shared\\ana"


def test_a_profile_that_is_a_users_junction_counts_for_nothing(csharp):
    """A profile path that leads through a junction its user made is not 'her profile' for the home rule."""
    fs = dict(FS)
    fs["C:\\Users\\mallory"] = d(MALLORY, "c:40", "mallory", reparse=True, target="C:\\Windows")
    got = vet(csharp, ["C:\\Users\\mallory\\hf", "C:\\Windows\\hf"], fs=fs)
    assert got["C:\\Users\\mallory\\hf"]["path"] is None and "junction" in got["C:\\Users\\mallory\\hf"]["why"]
    assert got["C:\\Windows\\hf"]["foreign"] is True


def test_junction_loops_end(csharp):
    fs = dict(FS)
    fs["D:\\loop"] = d(ADMINS, "d:90", "loop", reparse=True, target="D:\\loop")
    got = vet(csharp, ["D:\\loop\\x"], fs=fs)["D:\\loop\\x"]
    assert got["path"] is None and "too many levels" in got["why"]


def contexts(csharp, machine=None, user_envs=None, own=None, mine=None, users=("mallory", "carol", "ana")):
    args = {"fs": FS, "accounts": ACCOUNTS, "users": [USERS[u] for u in users], "machine": machine or {},
            "user_envs": user_envs or {}, "own": own or {}, "mine": mine}
    (result,) = csharp([{"fn": "contexts", "args": args}])
    assert "ok" in result, result
    return result["ok"]


def test_registry_environments_apply_to_their_own_user_only(csharp):
    out = contexts(csharp, user_envs={
        MALLORY: {"XDG_CACHE_HOME": "C:\\Users\\carol\\AppData\\Local", "MODELSCOPE_CACHE": "C:\\Windows",
                  "TMP": "\\\\?\\C:\\Windows\\Temp", "HF_HOME": "D:\\mallory\\hf", "TORCH_HOME": "relative"},
        CAROL: {"HF_HOME": "C:\\Users\\carol\\hf"}})
    by_user = {}
    for c in out["contexts"]:
        by_user.setdefault(c["user"], []).append(c)
    assert [c["env"] for c in by_user["HOST\\mallory"] if c["source"] != "default"] == [{"HF_HOME": "D:\\mallory\\hf"}]
    assert [c["env"] for c in by_user["HOST\\carol"] if c["source"] != "default"] == [{"HF_HOME": "C:\\Users\\carol\\hf"}]
    assert [c["source"] for c in by_user["HOST\\ana"]] == ["default"]
    problems = out["problems"]
    assert len(problems) == 3, problems  # the relative TORCH_HOME names nothing: no problem
    head = "registry HKU\\%s\\Environment (user HOST\\mallory): " % MALLORY
    assert head + ("XDG_CACHE_HOME=C:\\Users\\carol\\AppData\\Local is not used: C:\\Users\\carol\\AppData\\Local is "
                   "owned by HOST\\carol, not by HOST\\mallory, and is not in HOST\\mallory's profile") in problems
    assert head + ("MODELSCOPE_CACHE=C:\\Windows is not used: C:\\Windows is owned by NT SERVICE\\TrustedInstaller, "
                   "not by HOST\\mallory, and is not in HOST\\mallory's profile") in problems
    assert any(p.startswith(head + "TMP=\\\\?\\C:\\Windows\\Temp is not used: ") and "device path" in p for p in problems)


def test_protection_is_per_user(csharp):
    """mallory's TMP naming carol's residue neither protects it for carol nor makes carol's purge fail (the
    denial of service POSIX had): mallory's value is refused, and even a value mallory may use protects only
    for her."""
    out = contexts(csharp, user_envs={
        MALLORY: {"TMP": "C:\\Users\\carol\\AppData\\Local\\open-autoglm", "HF_HOME": "D:\\mallory\\hf"}})
    assert all("open-autoglm" not in p for ps in out["protected"].values() for p in ps)
    assert "D:\\mallory\\hf" in out["protected"]["HOST\\mallory"]
    assert "D:\\mallory\\hf" not in out["protected"]["HOST\\carol"]


def test_machine_values_are_vetted_for_each_user(csharp):
    """HKLM's environment is /etc/environment: %USERPROFILE% is each user's own, the value is vetted for each
    user in turn, and a refusal is one problem naming the users. The machine's TMP/TEMP (the services' temp
    directory) are not applied to users."""
    out = contexts(csharp, machine={"HF_HOME": "%USERPROFILE%\\hf", "MODELSCOPE_CACHE": "C:\\Windows",
                                    "TEMP": "C:\\Windows\\Temp", "TMP": "C:\\Windows\\Temp",
                                    "XDG_CACHE_HOME": "D:\\shared\\ana"})
    machine = dict((c["user"], c["env"]) for c in out["contexts"] if c["source"] == "registry:HKLM\\Environment")
    assert machine == {"HOST\\mallory": {"HF_HOME": "C:\\Users\\mallory\\hf"},
                       "HOST\\carol": {"HF_HOME": "C:\\Users\\carol\\hf"},
                       "HOST\\ana": {"HF_HOME": "C:\\Users\\ana\\hf", "XDG_CACHE_HOME": "D:\\shared\\ana"}}
    assert sorted(out["problems"]) == sorted([
        "HKLM\\Environment: MODELSCOPE_CACHE=C:\\Windows is not used for HOST\\mallory, HOST\\carol, HOST\\ana: "
        "C:\\Windows is owned by NT SERVICE\\TrustedInstaller, not by them, and is not in their profile",
        "HKLM\\Environment: XDG_CACHE_HOME=D:\\shared\\ana is not used for HOST\\mallory, HOST\\carol: "
        "D:\\shared\\ana is owned by HOST\\ana, not by them, and is not in their profile"])


def test_the_modules_own_environment_is_vetted_for_its_user(csharp):
    out = contexts(csharp, own={"HF_HOME": "C:\\Windows\\System32", "PIP_CACHE_DIR": "D:\\mallory\\pip"}, mine=0)
    assert [c["env"] for c in out["contexts"] if c["source"] == "env"] == [{"PIP_CACHE_DIR": "D:\\mallory\\pip"}]
    assert out["problems"] == [
        "the module's environment (user HOST\\mallory): HF_HOME=C:\\Windows\\System32 is not used: "
        "C:\\Windows\\System32 is owned by NT SERVICE\\TrustedInstaller, not by HOST\\mallory, and is not in "
        "HOST\\mallory's profile"]


def test_an_unpaired_surrogate_in_a_value_is_escaped_in_the_problem(csharp):
    out = contexts(csharp, user_envs={MALLORY: {"HF_HOME": "C:\\Windows\\\ud800x"}})
    assert len(out["problems"]) == 1 and "\\ud800x" in out["problems"][0], out["problems"]


def test_resolution_leaves_out_what_a_users_environment_makes_refused(csharp):
    """_profiles.resolve_all on Windows (WinHost.ResolveAll): a user's accepted environment that makes one of
    her paths protected leaves that path out with a problem; a user's defaults that do so are a bad profile."""
    profiles = {"open_autoglm": {"paths": ["{user_cache}/open-autoglm", "{tmp}/open-autoglm"]},
                "bad": {"paths": ["{home}"]}}
    users = [USERS["mallory"], USERS["carol"]]
    ctx = [{"user": 0, "env": {}, "source": "default"}, {"user": 1, "env": {}, "source": "default"},
           {"user": 0, "env": {"TMP": "C:\\Users\\mallory\\AppData\\Local\\open-autoglm"},
            "source": "registry:HKU\\%s\\Environment" % MALLORY}]
    out = csharp([{"fn": "resolve_all", "args": {"profiles": profiles, "selected": ["open_autoglm"], "users": users,
                                                 "contexts": ctx}},
                  {"fn": "resolve_all", "args": {"profiles": profiles, "selected": ["bad"], "users": users,
                                                 "contexts": ctx}}])
    good, bad = out
    assert "ok" in good, good
    # her TMP makes her own {user_cache}/open-autoglm protected for her: that path is left out (in her defaults
    # too: her environment must not fail the run for everyone), the rest goes on
    assert [r["path"] for r in good["ok"]["resolved"]] == [
        "C:\\Users\\mallory\\AppData\\Local\\Temp\\open-autoglm",
        "C:\\Users\\carol\\AppData\\Local\\open-autoglm", "C:\\Users\\carol\\AppData\\Local\\Temp\\open-autoglm",
        "C:\\Users\\mallory\\AppData\\Local\\open-autoglm\\open-autoglm"]  # {tmp}/open-autoglm by her TMP
    field = "profile 'open_autoglm' field paths[0] ({user_cache}/open-autoglm): "
    assert good["ok"]["problems"] == [
        "defaults of user HOST\\mallory: " + field + "'C:\\Users\\mallory\\AppData\\Local\\open-autoglm' is a protected "
        "directory, by the environment of user HOST\\mallory; left out",
        "registry HKU\\%s\\Environment (user HOST\\mallory): " % MALLORY + field +
        "'C:\\Users\\mallory\\AppData\\Local\\open-autoglm' is a protected directory; left out"]
    assert "is a protected directory" in bad["error"] and "defaults" not in bad["error"]


# ------------------------------------------------------------------ rule 4: whose rights act on a residue

# Issue 10 item 1 on Windows (_WinActAs.cs): which paths go under which user's token, which stay with the module's
# own rights, that an unprivileged run keeps today's behaviour, and that a user whose token cannot be had gets
# failures and nothing else (the fail-closed branch never reaches WinFiles: under Mono its Windows calls would
# raise, not fail politely). The S4U logon, the restricted token and the impersonation (LsaLogonUser,
# CreateRestrictedToken, ImpersonateLoggedOnUser) are Windows calls: they only compile here.

ACT_ADMIN = {"name": "HOST\\admin", "sid": "S-1-5-21-1-1-1-500", "home": "C:\\Users\\admin"}
ACT_ALICE = {"name": "HOST\\alice", "sid": "S-1-5-21-1-1-1-1001", "home": "C:\\Users\\alice"}
ACT_BOB = {"name": "HOST\\bob", "sid": "S-1-5-21-1-1-1-1002", "home": "C:\\Users\\bob"}
# a profile below another one's directory (a roaming or redirected layout): the deepest profile wins
ACT_NESTED = {"name": "HOST\\nested", "sid": "S-1-5-21-1-1-1-1003", "home": "C:\\Users\\alice\\nested"}
# explicit homes owned by the system accounts (homes: [D:\shared] owned by the Administrators): nobody's residue
ACT_SHARED = {"name": "BUILTIN\\Administrators", "sid": "S-1-5-32-544", "home": "D:\\shared"}
ACT_DRIVE = {"name": "HOST\\carol", "sid": "S-1-5-21-1-1-1-1005", "home": "E:\\"}
ACT_USERS = [ACT_ADMIN, ACT_ALICE, ACT_BOB, ACT_NESTED, ACT_SHARED, ACT_DRIVE]


def one(csharp, fn, **args):
    (out,) = csharp([{"fn": fn, "args": args}])
    assert "ok" in out, out
    return out["ok"]


def runners(csharp, items, elevated=True, self=0, self_sid=None):
    out = one(csharp, "act_as", users=ACT_USERS, elevated=elevated, self=self, self_sid=self_sid, items=items)
    return out["runners"], out["asked"]


def resolved(path, claimant, template="{user_cache}\\x"):
    return {"path": path, "claimant": claimant, "template": template}


def given(path):
    return {"path": path}


def test_a_users_profile_residue_goes_under_that_users_token(csharp):
    got, asked = runners(csharp, [
        resolved("C:\\Users\\alice\\AppData\\Local\\open-autoglm", ACT_ALICE["name"]),
        resolved("C:\\Users\\bob\\.cache\\huggingface", ACT_BOB["name"]),
        # spelled differently (case, forward slashes, a doubled separator): still alice's profile
        given("c:/users/ALICE//AppData/Local/x"),
        given("C:\\Users\\alice"),
    ])
    assert got == [ACT_ALICE["name"], ACT_BOB["name"], ACT_ALICE["name"], ACT_ALICE["name"]]
    assert asked == {ACT_ALICE["name"]: 1, ACT_BOB["name"]: 1}  # one logon per user, reused


def test_the_profile_decides_not_the_claimant(csharp):
    # bob's environment naming a place in alice's profile (vetting refuses that; were it to pass, alice's token
    # still acts on alice's files, never bob's or the module's)
    got, _asked = runners(csharp, [resolved("C:\\Users\\alice\\AppData\\Local\\x", ACT_BOB["name"])])
    assert got == [ACT_ALICE["name"]]


def test_the_deepest_profile_holds_a_path(csharp):
    got, _asked = runners(csharp, [given("C:\\Users\\alice\\nested\\cache"), given("C:\\Users\\alice\\nestedX")])
    assert got == [ACT_NESTED["name"], ACT_ALICE["name"]]


def test_a_name_that_only_starts_like_a_profile_is_not_in_it(csharp):
    got, _asked = runners(csharp, [given("C:\\Users\\alice.old\\x"), given("C:\\Users\\bobby")])
    assert got == [None, None]


def test_a_users_environment_outside_every_profile_goes_under_that_users_token(csharp):
    # alice's HF_HOME=D:\alice\hf, owned by her (vetted): hers, acted on as her
    got, _asked = runners(csharp, [resolved("D:\\alice\\hf\\hub", ACT_ALICE["name"], "{hf_hub_cache}")])
    assert got == [ACT_ALICE["name"]]


def test_hub_caches_go_to_their_profiles_user_else_to_the_user_whose_context_named_them(csharp):
    got, _asked = runners(csharp, [
        {"path": "D:\\alice\\hf\\hub", "claimant": ACT_ALICE["name"]},  # her HF_HOME on a data disk
        {"path": "C:\\Users\\bob\\.cache\\huggingface\\hub", "claimant": ACT_ALICE["name"]},  # in bob's profile
        {"path": "D:\\models\\hub", "claimant": None},  # extra_hf_caches / cache_dirs outside every profile
        {"path": "C:\\Users\\alice\\hub", "claimant": None},  # given, but in alice's profile
    ])
    assert got == [ACT_ALICE["name"], ACT_BOB["name"], None, ACT_ALICE["name"]]


def test_system_paths_and_given_paths_outside_profiles_stay_with_the_module(csharp):
    got, asked = runners(csharp, [
        resolved("C:\\ProgramData\\open-autoglm", ACT_ALICE["name"], "C:\\ProgramData\\open-autoglm"),
        resolved("C:\\ProgramData\\x", ACT_ALICE["name"], "%ProgramData%\\x".replace("%ProgramData%", "C:/ProgramData")),
        given("D:\\models\\old"),
    ])
    assert got == [None, None, None]
    assert asked == {}


def test_the_modules_own_profile_stays_with_the_module(csharp):
    got, asked = runners(csharp, [given("C:\\Users\\admin\\AppData\\Local\\x"),
                                  resolved("C:\\Users\\admin\\.cache\\y", ACT_ADMIN["name"])], self=0)
    assert got == [None, None]
    assert asked == {}


def test_a_home_of_the_modules_own_account_elsewhere_stays_with_the_module(csharp):
    # homes: [D:\\box\\admin-owned] created by the administrator running the module: the module's own account,
    # found by its SID (its profile is elsewhere or unknown), acts with its own rights, not a logon of itself
    got, asked = runners(csharp, [given("C:\\Users\\admin\\x"), given("C:\\Users\\alice\\x")], self=None,
                         self_sid=ACT_ADMIN["sid"])
    assert got == [None, ACT_ALICE["name"]]
    assert asked == {ACT_ALICE["name"]: 1}


def test_system_owned_homes_and_drive_root_homes_hold_nobodys_residue(csharp):
    got, asked = runners(csharp, [given("D:\\shared\\cache"), given("E:\\anything"),
                                  resolved("D:\\shared\\x", ACT_SHARED["name"])])
    assert got == [None, None, None]
    assert asked == {}


def test_unprivileged_runs_act_with_their_own_rights_as_before(csharp):
    got, asked = runners(csharp, [resolved("C:\\Users\\alice\\AppData\\Local\\x", ACT_ALICE["name"]),
                                  given("C:\\Users\\bob\\x")], elevated=False)
    assert got == [None, None]
    assert asked == {}


def test_without_a_known_module_account_every_users_residue_is_theirs(csharp):
    # SYSTEM runs the module: its profile is none of the users'; the admin's residue is the admin's as a user
    got, _asked = runners(csharp, [given("C:\\Users\\admin\\x"), given("C:\\Users\\alice\\x")], self=None)
    assert got == [ACT_ADMIN["name"], ACT_ALICE["name"]]


def test_a_user_without_a_token_gets_failures_and_nothing_is_touched(csharp):
    why = "could not act as HOST\\bob: LsaLogonUser (MSV1_0_S4U_LOGON) refused it: network logon: denied"
    for dry_run in (True, False):
        out = one(csharp, "act_refused", path="C:\\Users\\bob\\AppData\\Local\\x", error=why, dry_run=dry_run)
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
        # its lock files are not probed by the module either: the repo counts as locked (held back)
        locks = "C:\\Users\\bob\\AppData\\Local\\x\\.locks\\models--org--m"
        assert out["lock"] == "%s (its lock files could not be probed: %s)" % (locks, why)


def test_metadata_is_read_with_the_users_rights_and_never_through_a_link(csharp, tmp_path):
    # ActingUser.ReadHead (discover's package inventory): the module's own rights run here for real under Mono
    meta = tmp_path / "METADATA"
    meta.write_bytes(b"Metadata-Version: 2.1\r\nName: evil\r\nVersion: 1.0\r\n\r\n" + b"x" * 100000)
    secret = tmp_path / "secret"
    secret.write_text("Name: root-only\n")
    link = tmp_path / "linked"
    link.symlink_to(secret)

    def head(path, lines=40, size=65536, refused=False):
        return one(csharp, "read_head", path=str(path), lines=lines, bytes=size, refused=refused)

    assert head(meta)[:4] == ["Metadata-Version: 2.1", "Name: evil", "Version: 1.0", ""]
    assert len(head(meta, lines=1000)) == 5  # only the first 64 KiB: the long last line is cut there
    assert len(head(meta, lines=1000)[4]) == 65536 - len("Metadata-Version: 2.1\r\nName: evil\r\nVersion: 1.0\r\n\r\n")
    assert head(meta, lines=2) == ["Metadata-Version: 2.1", "Name: evil"]
    assert head(link) is None  # a link is not followed, whoever made it
    assert head(tmp_path / "missing") is None
    assert head(meta, refused=True) is None  # no token: nothing read, not read with the module's rights


@pytest.mark.parametrize("level,stage,refused", [
    (0, "logon", "anonymous-level"),
    (1, "logon", "identification-level, not impersonation-level: the logon was made without SeTcbPrivilege"),
    (1, "impersonation", "identification-level, not impersonation-level: the module's account lacks "
                         "SeImpersonatePrivilege"),
    (2, "impersonation", None),
    (3, "logon", None),
])
def test_only_impersonation_level_tokens_act(csharp, level, stage, refused):
    out = one(csharp, "level_refusal", level=level, user="HOST\\bob", stage=stage)
    if refused is None:
        assert out is None
    else:
        assert out.startswith("could not act as HOST\\bob: its %s token is " % stage)
        assert refused in out


# win_pip_remove: a user's Python environment is read and uninstalled by a pip process started with that user's
# token (ActingUser.Start: CreateProcessWithTokenW). Which environment runs under whose token, the environment
# that process gets, and the fail-closed branch run here; the process creation itself is a Windows call and only
# compiles here.

def env_actors(csharp, items, elevated=True):
    return one(csharp, "env_actors", users=ACT_USERS, elevated=elevated,
               items=[{"path": p, "owner": o} for p, o in items])


def test_a_users_environment_runs_pip_under_that_users_token(csharp):
    got = env_actors(csharp, [
        # her venv and her user site: her profile decides, whoever owns the directory
        ("C:\\Users\\alice\\venvs\\ml", ACT_ALICE["name"]),
        ("C:\\Users\\alice\\AppData\\Roaming\\Python\\Python311", ACT_ALICE["name"]),
        ("C:\\Users\\bob\\project\\.venv", "BUILTIN\\Administrators"),
        # her per-user Python install (PEP 514 under HKU): in her profile
        ("C:\\Users\\alice\\AppData\\Local\\Programs\\Python\\Python311", None),
        # outside every profile: its owner, when that is one of the users
        ("D:\\venvs\\alice", ACT_ALICE["name"]),
        ("d:\\VENVS\\bob", "host\\BOB"),
    ])
    assert got == [ACT_ALICE["name"], ACT_ALICE["name"], ACT_BOB["name"], ACT_ALICE["name"], ACT_ALICE["name"],
                   ACT_BOB["name"]]


def test_system_interpreters_and_unknown_owners_stay_with_the_module(csharp):
    got = env_actors(csharp, [
        ("C:\\Program Files\\Python311", "NT SERVICE\\TrustedInstaller"),
        ("C:\\Python311", "BUILTIN\\Administrators"),  # an administrator's install, owned by the Administrators
        ("D:\\shared\\venv", "BUILTIN\\Administrators"),  # an explicit home of the Administrators: nobody's
        ("D:\\opt\\venv", None),  # owner unreadable
    ])
    assert got == [None, None, None, None]
    # an unprivileged run starts every pip as before, with its own rights
    assert env_actors(csharp, [("C:\\Users\\alice\\venv", ACT_ALICE["name"])], elevated=False) == [None]


def test_a_user_without_a_token_gets_no_pip_process(csharp):
    why = "could not act as HOST\\bob: LsaLogonUser (MSV1_0_S4U_LOGON) refused it: network logon: denied"
    out = one(csharp, "start_refused", error=why)
    assert out["error"] == why
    assert out["started"] == 0  # no process was asked of Windows, as the user or as the module
    assert out["self"] == "refused"  # the module's own pip is started by the module as it always was


def test_a_users_pip_gets_her_own_places_not_the_modules(csharp):
    module = {"Path": "C:\\Windows\\system32;C:\\Windows", "TEMP": "C:\\Windows\\TEMP", "tmp": "C:\\Windows\\TEMP",
              "APPDATA": "C:\\Windows\\system32\\config\\systemprofile\\AppData\\Roaming",
              "LOCALAPPDATA": "C:\\Windows\\system32\\config\\systemprofile\\AppData\\Local",
              "USERPROFILE": "C:\\Windows\\system32\\config\\systemprofile", "USERNAME": "HOST$",
              "USERDOMAIN": "WORKGROUP", "SystemRoot": "C:\\Windows", "OneDrive": "C:\\Users\\admin\\OneDrive"}
    out = one(csharp, "user_env", module=module, user=ACT_ALICE,
              extra={"APPDATA": "C:\\Users\\alice\\AppData\\Roaming", "PYTHONIOENCODING": "utf-8"})
    env = {k.upper(): v for k, v in out["env"].items()}
    assert len(env) == len(out["env"])  # one entry per name, whatever its case
    assert env == {
        "PATH": "C:\\Windows\\system32;C:\\Windows", "SYSTEMROOT": "C:\\Windows", "PYTHONIOENCODING": "utf-8",
        "USERNAME": "alice", "USERDOMAIN": "HOST", "USERPROFILE": "C:\\Users\\alice",
        "APPDATA": "C:\\Users\\alice\\AppData\\Roaming", "LOCALAPPDATA": "C:\\Users\\alice\\AppData\\Local",
        "TEMP": "C:\\Users\\alice\\AppData\\Local\\Temp", "TMP": "C:\\Users\\alice\\AppData\\Local\\Temp",
        "HOMEDRIVE": "C:", "HOMEPATH": "\\Users\\alice"}
    block = out["block"]
    assert block.endswith("\0\0") and "systemprofile" not in block and "Windows\\TEMP" not in block
    names = [entry.split("=", 1)[0] for entry in block[:-2].split("\0")]
    assert names == sorted(names, key=str.upper)  # Windows wants the block sorted by name
    # a user without a profile gets none of the module account's places either
    bare = one(csharp, "user_env", module=module, user={"name": "HOST\\dan", "sid": None, "home": None}, extra=None)
    assert {k.upper() for k in bare["env"]} == {"PATH", "SYSTEMROOT", "USERNAME", "USERDOMAIN"}


# win_discover / win_pip_remove: the search for Python environments (Actors.FindEnvironments). The walk runs here
# for real with the module's own rights; a user's part of the tree goes to that user's token, refused here.

def _env_tree(tmp_path):
    top = tmp_path / "Users"
    made = {}
    for who in ("alice", "bob"):
        venv = top / who / "proj" / ".venv"
        (venv / "Scripts").mkdir(parents=True)
        (venv / "pyvenv.cfg").write_text("home = C:\\Python311\n")
        (venv / "Scripts" / "python.exe").write_text("")
        made[who] = str(venv)
    # a venv inside a venv is not looked for; a conda environment is, and below it too
    inner = top / "alice" / "proj" / ".venv" / "inner"
    (inner / "Scripts").mkdir(parents=True)
    (inner / "pyvenv.cfg").write_text("")
    (inner / "Scripts" / "python.exe").write_text("")
    conda = tmp_path / "ProgramData" / "miniconda"
    (conda / "conda-meta").mkdir(parents=True)
    (conda / "python.exe").write_text("")
    nested = conda / "envs" / "tool"
    (nested / "conda-meta").mkdir(parents=True)
    (nested / "python.exe").write_text("")
    made["conda"], made["nested"] = str(conda), str(nested)
    # a link to alice's venv (a junction on Windows) is never followed
    (tmp_path / "ProgramData" / "link").symlink_to(top / "alice" / "proj")
    users = [{"name": "HOST\\alice", "sid": "S-1-5-21-1-1-1-1001", "home": str(top / "alice")},
             {"name": "HOST\\bob", "sid": "S-1-5-21-1-1-1-1002", "home": str(top / "bob")}]
    return made, users, [str(top), str(tmp_path / "ProgramData")]


def find_envs(csharp, users, roots, elevated=True, self=None, max_depth=4):
    out = one(csharp, "find_envs", users=users, roots=roots, elevated=elevated, self=self, max_depth=max_depth)
    return sorted(f[0] for f in out["found"]), out["problems"], out["asked"]


def test_the_environment_search_finds_venvs_and_conda_and_follows_no_link(csharp, tmp_path):
    made, users, roots = _env_tree(tmp_path)
    found, problems, asked = find_envs(csharp, users, roots, elevated=False)
    assert found == sorted([made["alice"], made["bob"], made["conda"], made["nested"]])
    assert problems == [] and asked == {}
    found, _problems, _asked = find_envs(csharp, users, roots, elevated=False, max_depth=2)
    assert found == [made["conda"]]  # the venvs are 3 deep, the nested conda 3 deep


def test_a_users_home_is_searched_only_with_that_users_rights(csharp, tmp_path):
    made, users, roots = _env_tree(tmp_path)
    # elevated, no token for anyone: the homes met while walking C:\Users are handed to their users and left out,
    # each named once; the rest is searched with the module's rights; one logon asked per user
    found, problems, asked = find_envs(csharp, users, roots)
    assert found == sorted([made["conda"], made["nested"]])
    assert sorted(problems) == sorted(
        "%s: not searched for Python environments: no token for %s" % (u["home"], u["name"]) for u in users)
    assert asked == {"HOST\\alice": 1, "HOST\\bob": 1}
    # a root inside a home: that user's from the start
    found, problems, _asked = find_envs(csharp, users, [made["alice"]])
    assert found == [] and problems == ["%s: not searched for Python environments: no token for HOST\\alice"
                                        % made["alice"]]
    # the module's own account's home is searched with its own rights
    found, problems, asked = find_envs(csharp, users, roots, self=0)
    assert found == sorted([made["alice"], made["conda"], made["nested"]])
    assert problems == ["%s: not searched for Python environments: no token for HOST\\bob" % users[1]["home"]]
    assert asked == {"HOST\\bob": 1}
