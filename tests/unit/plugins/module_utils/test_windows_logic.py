# -*- coding: utf-8 -*-
# Copyright: residue.purge contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The pure logic of the Windows C# module_utils, run under Mono, against the Python module_utils it ports.

The Python code is the contract (and already tested): placeholders and protected paths (_profiles with
system="Windows"), durations and sizes (_units), the pip removal plan (_pyenvs.plan_removal) and the HF cache
deletion plan (_hfcache.plan_cache). Hundreds of generated cases each; any difference fails with the case.
Windows APIs (registry, files, Restart Manager, processes) cannot run here and are not exercised.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import glob
import json
import os
import random
import re
import shutil
import subprocess
import time

import pytest

from ansible_collections.residue.purge.plugins.module_utils import _profiles, _pyenvs, _units
from ansible_collections.residue.purge.plugins.module_utils._hfcache.model import HFCache, HFRepo, HFRevision, RepoLayout
from ansible_collections.residue.purge.plugins.module_utils._hfcache.plan import RepoSelection as Selection, plan_cache

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", "..", "..", ".."))
UTILS = os.path.join(ROOT, "plugins", "module_utils")
DRIVER = os.path.join(os.path.dirname(__file__), "windows", "Driver.cs")
RESTORE_CS = os.path.join(ROOT, "playbooks", "files", "ResidueRestore.cs")  # restore.yml on Windows
ANSIBLE_CSHARP = os.path.join(os.path.dirname(__import__("ansible").__file__), "module_utils", "csharp")
NOW = 1764150000.0


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


def python_result(fn, *args):
    try:
        return {"ok": fn(*args)}
    except ValueError as e:  # ProfileError is one
        return {"error": str(e)}


# ------------------------------------------------------------------ placeholders and protected paths

ENV_VALUES = ["D:\\hf", "D:/data/hf", "C:\\Users\\ana\\cache\\..\\models", "~/hf", "~", "relative\\hf", "",
              "E:\\", "C:\\Users\\ana\\AppData\\Local", "\\\\server\\share\\hf", "C:\\x\\.\\y\\",
              # Windows spellings Python's ntpath and the C# port once disagreed on: '~\', root-relative (\x is
              # on the current drive), drive-relative, a share without its share name, the device namespaces
              "~\\hf", "\\rooted\\hf", "C:rel\\hf", "\\\\server", "\\\\?\\C:\\hf", "\\\\.\\pipe\\hf",
              "c:\\users\\ANA\\AppData\\Local\\Temp"]


def random_env(rng):
    names = rng.sample(list(_profiles.CACHE_ENV_VARS + _profiles.WINDOWS_TEMP_VARS), rng.randint(0, 6))
    return dict((n, rng.choice(ENV_VALUES)) for n in names)


def test_placeholders_match_python(csharp):
    rng = random.Random(14)
    cases, expected = [], []
    for _round in range(400):
        home = rng.choice(["C:\\Users\\ana", "D:\\Profiles\\bob", "C:\\Users\\Ren Ma"])
        env = random_env(rng)
        cases.append({"fn": "placeholders", "args": {"home": home, "env": env}})
        expected.append(_profiles.placeholder_values(_profiles.User("u", None, None, home), env, "Windows"))
    for case, want, got in zip(cases, expected, csharp(cases)):
        assert got == {"ok": want}, case


def test_template_expansion_matches_python(csharp):
    rng = random.Random(15)
    values = _profiles.placeholder_values(_profiles.User("u", None, None, "C:\\Users\\ana"),
                                          {"OLLAMA_MODELS": "D:\\ollama"}, "Windows")
    templates = ["{user_cache}/open-autoglm", "{hf_home}\\datasets", "~/x/y", "{env:OLLAMA_MODELS}", "{env:NOPE}/x",
                 "/usr/share/ollama/.ollama/models",
                 "{bogus}/x", "C:/Program Files/x/../y", "{tmp}/./z", "{home}"]
    cases = [{"fn": "expand", "args": {"template": rng.choice(templates), "values": values}} for _round in range(60)]
    for case, got in zip(cases, csharp(cases)):
        want = python_result(_profiles.expand_template, case["args"]["template"], values, "Windows")
        if "error" in want:
            assert "error" in got and "{bogus}" in got["error"], case
        else:
            assert got == want, case


def test_builtin_profiles_resolve_on_windows_as_in_python(csharp):
    """Every built-in profile resolves on a Windows host without error (a POSIX system path such as
    /usr/share/ollama/... names nothing there and is left out), and to the paths the Python rules give."""
    users = [_profiles.User("ana", None, None, "C:\\Users\\ana")]
    protected = sorted(_profiles.protected_paths(users, [], "Windows"))
    profiles = _profiles.load_profiles()
    envs = [{}, {"HF_HOME": "D:\\hf", "OLLAMA_MODELS": "E:\\models", "TEMP": "F:\\t"}]
    cases, expected = [], []
    for name, profile in sorted(profiles.items()):
        for env in envs:
            context = _profiles.EnvContext(users[0], env, "env")
            expected.append([r.path for r in _profiles.resolve_paths(name, profile, context, set(protected), "Windows")])
            cases.append({"fn": "resolve", "args": {"templates": profile["paths"], "home": users[0].home, "env": env,
                                                    "protected": protected}})
    assert any("/" in t[:1] for p in profiles.values() for t in p["paths"])  # a POSIX path is among them
    for case, want, got in zip(cases, expected, csharp(cases)):
        assert got == {"ok": want}, case


def test_check_path_matches_python(csharp):
    rng = random.Random(16)
    users = [_profiles.User("ana", None, None, "C:\\Users\\ana")]
    protected = sorted(_profiles.protected_paths(users, [], "Windows"))
    paths = ["", "   ", "relative\\x", "~\\x", "C:\\", "C:", "D:\\", "C:\\Users", "C:\\Users\\ana\\..",
             "C:\\Users\\ana\\AppData", "C:\\Users\\ana\\AppData\\Local\\open-autoglm", "C:\\Users\\ana\\*.bin",
             "C:/Users/ana/AppData/Local/x", "C:\\Windows\\Temp\\x", "C:\\Users\\ana\\AppData\\Local\\pip\\Cache",
             "C:\\data", "\\\\server\\share\\models", "C:\\Program Files", "C:\\x\\.\\y",
             # case (NTFS compares names without case), shares, root- and drive-relative, device namespaces, temp
             "c:\\USERS\\ana\\appdata", "c:\\windows", "C:\\WINDOWS\\temp", "C:\\Users\\ANA\\AppData\\Local\\Temp",
             "C:\\Users\\ana\\AppData\\Local\\Temp\\ollama", "\\\\server\\share", "\\\\server\\share\\",
             "//server/share/models", "\\\\server", "\\sub", "/sub", "C:sub", "\\\\?\\C:\\x", "\\\\.\\pipe\\x"]
    cases = [{"fn": "check_path", "args": {"path": p, "protected": protected, "field": "paths"}} for p in paths]
    cases += [{"fn": "check_path", "args": {"path": rng.choice(paths[4:]) + "\\sub", "protected": protected,
                                            "field": "paths"}} for _round in range(40)]
    for case, got in zip(cases, csharp(cases)):
        want = python_result(_profiles.check_path, case["args"]["path"], set(protected), "paths", "Windows")
        # The normalised path must agree; refusals must agree (the messages quote paths differently: %r vs '...').
        assert ("error" in got) == ("error" in want), (case, want, got)
        if "ok" in want:
            assert got["ok"] == want["ok"], case


def test_windows_spellings_are_refused_by_both(csharp):
    """Python and C# agree above; this says what they agree on for the spellings that once differed."""
    protected = sorted(_profiles.protected_paths([_profiles.User("ana", None, None, "C:\\Users\\ana"),
                                                  _profiles.User("bob", None, None, "D:\\Profiles\\bob")], [], "Windows"))
    refused = {"c:\\USERS\\ana\\appdata": "protected", "C:\\WINDOWS\\temp": "protected",
               "c:\\users\\ana\\appdata\\local\\TEMP": "protected", "d:\\PROFILES": "contains the protected",
               "\\\\server\\share": "root of a filesystem", "//server/share/": "root of a filesystem",
               "\\\\server": "not an absolute path", "\\sub": "not an absolute path", "C:sub": "not an absolute path",
               "\\\\?\\C:\\x": "not an absolute path", "\\\\.\\pipe\\x": "not an absolute path"}
    got = csharp([{"fn": "check_path", "args": {"path": p, "protected": protected, "field": "f"}} for p in refused])
    for (path, why), result in zip(refused.items(), got):
        assert why in result.get("error", ""), (path, result)
        with pytest.raises(_profiles.ProfileError, match=why):
            _profiles.check_path(path, set(protected), "f", "Windows")
    assert _profiles.check_path("\\\\server\\share\\models", set(protected), "f", "Windows") == "\\\\server\\share\\models"


def test_hub_cache_locations_match_python(csharp):
    """Where huggingface_hub would put a user's hub cache on Windows, and which variable said so."""
    rng = random.Random(18)
    cases, expected = [], []
    for _round in range(300):
        home = rng.choice(["C:\\Users\\ana", "D:\\Profiles\\bob"])
        env = random_env(rng)
        source = rng.choice(["env", "default", "registry:HKU\\S-1-5-21-1\\Environment"])
        cases.append({"fn": "hub_caches", "args": {"home": home, "env": env, "source": source}})
        # the C# names a registry source itself; the Python has no registry: compare the paths and variables
        context = _profiles.EnvContext(_profiles.User("u", None, None, home), env, "env" if source == "env" else "x")
        expected.append(_profiles.hub_cache_locations(context, "Windows"))

    def variable(source):  # 'default' -> None, 'env HF_HOME' / '... (HF_HOME)' -> 'HF_HOME'
        match = re.match(r"^env (\w+)$", source) or re.search(r"\((\w+)\)$", source)
        return match.group(1) if match else None

    for case, want, got in zip(cases, expected, csharp(cases)):
        assert [p for p, _s in got["ok"]] == [p for p, _s in want], case
        assert [variable(s) for _p, s in got["ok"]] == [variable(s) for _p, s in want], case
    assert any(variable(s) for w in expected for _p, s in w) and any(len(w) == 2 for w in expected)


def test_temp_is_the_users_own(csharp):
    """{tmp} on Windows: the user's TMP, then TEMP (GetTempPath's order), by default %LOCALAPPDATA%\\Temp."""
    user = _profiles.User("ana", None, None, "C:\\Users\\ana")
    cases = [{}, {"TEMP": "D:\\t"}, {"TMP": "E:\\tmp", "TEMP": "D:\\t"}, {"LOCALAPPDATA": "F:\\L"}, {"TMPDIR": "G:\\x"}]
    want = ["C:\\Users\\ana\\AppData\\Local\\Temp", "D:\\t", "E:\\tmp", "F:\\L\\Temp",
            "C:\\Users\\ana\\AppData\\Local\\Temp"]
    got = csharp([{"fn": "placeholders", "args": {"home": user.home, "env": env}} for env in cases])
    assert [g["ok"]["tmp"] for g in got] == want
    assert [_profiles.placeholder_values(user, env, "Windows")["tmp"] for env in cases] == want
    assert "C:\\Users\\ana\\AppData\\Local\\Temp" in _profiles.protected_paths([user], [], "Windows")


def test_protected_paths_match_python(csharp):
    rng = random.Random(17)
    cases, expected = [], []
    for _round in range(30):
        users = [_profiles.User(n, None, None, h) for n, h in
                 rng.sample([("ana", "C:\\Users\\ana"), ("bob", "D:\\Profiles\\bob"), ("svc", "C:\\svc")], 2)]
        contexts = [_profiles.EnvContext(users[rng.randint(0, 1)], random_env(rng), "env") for _round in range(2)]
        expected.append(_profiles.protected_paths(users, contexts, "Windows"))
        cases.append({"fn": "protected", "args": {"users": [{"name": u.name, "home": u.home} for u in users],
                                                  "contexts": [{"user": users.index(c.user), "env": c.environ}
                                                               for c in contexts]}})
    for case, want, got in zip(cases, expected, csharp(cases)):
        assert sorted(set(p.lower() for p in got["ok"])) == sorted(set(p.lower() for p in want)), case


@pytest.mark.parametrize("fn,parse,texts", [
    ("duration", _units.parse_duration, ["30d", "12h", "1w2d", "90", " 5 m ", "1y", "", "d", "10d junk", "0"]),
    ("size", _units.parse_size, ["10G", "512M", "1.5T", "4096", "7KiB", "2 gb", "G", "-1", "1.5.2G", "0b"]),
])
def test_units_match_python(csharp, fn, parse, texts):
    got = csharp([{"fn": fn, "args": {"text": t}} for t in texts])
    for text, result in zip(texts, got):
        want = python_result(parse, text)
        assert ("error" in result) == ("error" in want), (text, want, result)
        if "ok" in want:
            assert result["ok"] == want["ok"], text


# ------------------------------------------------------------------ pip removal plan

NAMES = ["agent", "core", "shared", "torch", "numpy", "pip", "setuptools", "other", "extra", "wheel"]


def random_environment(rng):
    dists = []
    for name in rng.sample(NAMES, rng.randint(2, len(NAMES))):
        dists.append({"name": name, "version": "1.0", "requested": rng.random() < 0.3,
                      "installer": rng.choice(["pip", "pip", "uv", "conda", ""]),
                      "requires": rng.sample(NAMES + ["missing"], rng.randint(0, 3))})
    return dists


def test_pip_plan_matches_python(csharp):
    rng = random.Random(18)
    cases, expected = [], []
    for _round in range(500):
        dists = random_environment(rng)
        args = {"dists": dists, "packages": rng.sample(NAMES + ["absent"], rng.randint(1, 3)),
                "keep": rng.sample(NAMES, rng.randint(0, 2)), "orphans": rng.random() < 0.5,
                "remove_required": rng.random() < 0.2}
        py_dists = [_pyenvs.Dist(d["name"], d["version"], d["requested"], [], "", d["installer"]) for d in dists]
        installed = set(d["name"] for d in dists)
        edges = dict((d["name"], set(r for r in d["requires"] if r in installed and r != d["name"])) for d in dists)
        plan = _pyenvs.plan_removal(py_dists, edges, args["packages"], keep=args["keep"], orphans=args["orphans"],
                                    remove_required=args["remove_required"])
        cases.append({"fn": "pip_plan", "args": args})
        expected.append({
            "remove": [e["name"] for e in plan.remove], "orphans": [e["name"] for e in plan.orphans],
            "kept_shared": [[e["name"], e["required_by"]] for e in plan.kept_shared],
            "kept": [[e["name"], e["reason"]] for e in plan.kept], "not_installed": plan.not_installed})
    for case, want, got in zip(cases, expected, csharp(cases)):
        assert got == {"ok": want}, case


# ------------------------------------------------------------------ HF cache plan

def random_cache(rng):
    repos = []
    ids = rng.sample(["org1/a", "org1/b", "org2/m1", "org2/m2", "zai-org/AutoGLM-9B", "other/x"], rng.randint(1, 5))
    for n, repo_id in enumerate(ids):
        repo_type = rng.choice(["model", "model", "dataset"])
        path = "C:\\hf\\hub\\%ss--%s" % (repo_type, repo_id.replace("/", "--"))
        blobs = dict(("%040x" % rng.getrandbits(160), rng.randint(0, 5000)) for _round in range(rng.randint(0, 6)))
        revisions = []
        refs_pool = ["main", "v1", "refs/pr/1"]
        rng.shuffle(refs_pool)
        for i in range(rng.randint(0, 4)):
            commit = "%040x" % rng.getrandbits(160)
            refs = [refs_pool.pop()] if refs_pool and rng.random() < 0.5 else []
            revisions.append({"commit": commit, "refs": refs,
                              "blobs": rng.sample(sorted(blobs), rng.randint(0, len(blobs))),
                              "copy_bytes": rng.choice([0, 0, rng.randint(1, 3000)]),
                              "last_modified": NOW - rng.randint(0, 100) * 86400 - i,
                              "last_access": NOW - rng.randint(0, 100) * 86400 - n})
        incomplete = [["%040x.incomplete" % rng.getrandbits(160), rng.randint(1, 999), NOW - rng.randint(0, 5) * 86400]
                      for _round in range(rng.choice([0, 0, 1, 2]))]
        referenced = set(b for r in revisions for b in r["blobs"])
        repos.append({"repo_id": repo_id, "repo_type": repo_type, "path": path,
                      "blob_bytes": sum(blobs[b] for b in referenced) + sum(r["copy_bytes"] for r in revisions),
                      "revisions": [dict((k, r[k]) for k in ("commit", "refs", "last_modified", "last_access"))
                                    for r in revisions],
                      "incomplete": incomplete, "blob_sizes": blobs,
                      "revision_blobs": dict((r["commit"], r["blobs"]) for r in revisions),
                      "revision_copy_bytes": dict((r["commit"], r["copy_bytes"]) for r in revisions)})
    return repos


def random_selection(rng):
    return {"patterns": rng.choice([[], ["org1/*"], ["*"], ["org2/m?"], ["zai-org/AutoGLM-*", "other/*"]]),
            "repo_type": rng.choice(["any", "any", "model", "dataset"]),
            "keep": rng.choice([[], [], ["org1/b"], ["*/x"]]),
            "revisions": rng.choice([None, "all", "unreferenced"]),
            "older_than": rng.choice([None, None, 10 * 86400.0, 50 * 86400.0]),
            "age_by": rng.choice(["accessed", "modified"]),
            "max_size": rng.choice([None, None, 0, rng.randint(0, 20000)]),
            "incomplete_older_than": rng.choice([None, 86400.0, 3 * 86400.0]),
            "now": NOW}


def python_plan(repos, sel, held):
    cache = HFCache("C:\\hf\\hub")
    layouts = {}
    for r in repos:
        repo = HFRepo(r["repo_id"], r["repo_type"], r["path"])
        repo.blob_bytes = r["blob_bytes"]
        repo.incomplete = [tuple(i) for i in r["incomplete"]]
        for rv in r["revisions"]:
            rev = HFRevision(rv["commit"], r["path"] + "\\snapshots\\" + rv["commit"])
            rev.refs = list(rv["refs"])
            rev.last_modified, rev.last_access = rv["last_modified"], rv["last_access"]
            repo.revisions.append(rev)
        layout = RepoLayout()
        layout.blob_sizes = dict(r["blob_sizes"])
        layout.revision_blobs = dict((c, set(b)) for c, b in r["revision_blobs"].items())
        layout.revision_copy_bytes = dict(r["revision_copy_bytes"])
        layouts[r["path"]] = layout
        cache.repos.append(repo)
    selection = Selection(patterns=sel["patterns"], repo_type=sel["repo_type"], keep=sel["keep"],
                          revisions=sel["revisions"], older_than=sel["older_than"], age_by=sel["age_by"],
                          max_size=sel["max_size"], incomplete_older_than=sel["incomplete_older_than"], now=sel["now"])
    plan = plan_cache(cache, selection, lambda repo: layouts[repo.path],
                      lambda repo, whole: tuple(held[repo.path + "|" + ("whole" if whole else "part")])
                      if repo.path + "|" + ("whole" if whole else "part") in held else None)
    return {
        "repos": [{"repo_id": rp.repo.repo_id, "revisions": list(rp.revisions), "whole": rp.whole, "blobs": list(rp.blobs),
                   "blobs_kept_shared": rp.blobs_kept_shared, "refs": list(rp.refs), "freed_bytes": rp.freed_bytes,
                   "incomplete": [n for n, _s in rp.incomplete], "reason": list(rp.reason)} for rp in plan.repos],
        "held_back": [[h["repo_id"], h["repo_type"], h["reason"], h["detail"]] for h in plan.held_back],
        "bytes_before": plan.bytes_before, "bytes_after": plan.bytes_after,
        "kept_over_budget": list(plan.kept_over_budget),
    }


def test_hf_plan_matches_python(csharp):
    rng = random.Random(19)
    cases, expected = [], []
    planned = 0
    for _round in range(400):
        repos = random_cache(rng)
        sel = random_selection(rng)
        held = {}
        for r in repos:
            if rng.random() < 0.15:
                held[r["path"] + "|" + rng.choice(["whole", "part"])] = ["locked", "lock of " + r["repo_id"]]
        want = python_plan(repos, sel, held)
        planned += len(want["repos"])
        cases.append({"fn": "hf_plan", "args": {"cache": "C:\\hf\\hub", "repos": repos, "selection": sel, "held": held}})
        expected.append(want)
    assert planned > 200  # the generator makes plans, not only empty ones
    for case, want, got in zip(cases, expected, csharp(cases)):
        assert got == {"ok": want}, json.dumps(case)[:2000]


# ------------------------------------------------------------------ remove's backup on Windows (_WinBackup.cs)
# The archive writer, its manifest and the read-back check are plain .NET and run here; the walk that feeds them
# (WinFiles.RemoveTree's dry run with OnEntry, OpenVisited's identity check) is Windows-only.

def test_archive_member_names(csharp):
    names = {"C:\\Users\\ana\\.ollama\\models": "C/Users/ana/.ollama/models", "c:\\x": "C/x",
             "C:/a/./b/": "C/a/b", "\\\\?\\C:\\long\\path": "C/long/path", "\\\\srv\\share\\m": "UNC/srv/share/m",
             "\\\\?\\UNC\\srv\\share\\m": "UNC/srv/share/m", "D:\\Ren Ma\\\u00e9\U0001F600": "D/Ren Ma/\u00e9\U0001F600"}
    refused = ["relative\\x", "\\rooted", "\\\\.\\pipe\\x", "C:\\a\\..\\b", "\\\\srv", "C:x", ""]
    got = csharp([{"fn": "entry_name", "args": {"path": p}} for p in list(names) + refused])
    assert [g.get("ok") for g in got[:len(names)]] == list(names.values())
    for path, result in zip(refused, got[len(names):]):
        assert "error" in result, (path, result)


def test_manifest_strings_are_json_dumps(csharp):
    rng = random.Random(19)
    alphabet = ["a", " ", '"', "\\", "/", "\n", "\t", "\x00", "\x1f", "\x7f", "\x80", "\u00e9", "\u200f", "\ufeff",
                "\U0001F600", "\u4e2d", "{", ":", ","]
    texts = ["".join(rng.choice(alphabet) for _i in range(rng.randint(0, 12))) for _round in range(300)]
    got = csharp([{"fn": "manifest_quote", "args": {"text": t}} for t in texts])
    for text, result in zip(texts, got):
        assert result["ok"] == json.dumps(text), text


STAMP = time.strftime("%Y%m%dT%H%M%SZ", time.gmtime(NOW))  # _remove.BackupWriter's stamp


def _backup_tree(tmp_path, rng):
    """Linux files standing in for a Windows residue; [{path (Windows), type, source, mtime}] in walk order."""
    src = tmp_path / "src"
    src.mkdir()
    names = ["model.safetensors", "with space.bin", "quote\"d.txt", "caf\u00e9.json", "\U0001F600.gguf", "empty"]
    entries = []
    for i, name in enumerate(names):
        data = b"" if name == "empty" else os.urandom(rng.randint(1, 200000)) + b"x" * rng.randint(0, 70000)
        source = src / ("f%d" % i)
        source.write_bytes(data)
        mtime = rng.choice([0.0, 1764150000.5, 4102444800.0 * 2, 315532801.0])  # 1970, 2025, year 2229, 1980
        entries.append({"path": "C:\\Users\\ana\\.ollama\\models\\sub\\" + name, "type": "file",
                        "source": str(source), "mtime": mtime, "data": data})
    entries.append({"path": "C:\\Users\\ana\\.ollama\\models\\sub", "type": "dir", "source": None, "mtime": NOW})
    entries.append({"path": "\\\\srv\\share\\models\\a.bin", "type": "file", "source": str(src / "f0"),
                    "mtime": NOW, "data": entries[0]["data"]})
    entries.append({"path": "C:\\Users\\ana\\.ollama\\models", "type": "dir", "source": None, "mtime": NOW})
    return entries


def _write(csharp, directory, entries, **extra):
    args = dict({"directory": str(directory), "now": NOW, "pid": 4242,
                 "entries": [dict((k, v) for k, v in e.items() if k != "data") for e in entries]}, **extra)
    return csharp([{"fn": "zip_write", "args": args}])[0]


def test_backup_archive_and_manifest(csharp, tmp_path):
    """What C# writes is a zip any reader takes (Python's zipfile here, Expand-Archive on Windows), holding the
    files under their member names, and a manifest in the POSIX backup's format, line for line."""
    import hashlib
    import zipfile
    entries = _backup_tree(tmp_path, random.Random(20))
    out = tmp_path / "backups"
    out.mkdir()
    got = _write(csharp, out, entries)["ok"]
    assert os.path.basename(got["archive"]) == "residue-purge-%s-4242-0.zip" % STAMP
    assert got["manifest"] == got["archive"][:-len(".zip")] + ".manifest.jsonl"
    assert got["entries"] == len(entries)
    with open(got["archive"], "rb") as f:
        assert got["sha256"] == hashlib.sha256(f.read()).hexdigest()
    with zipfile.ZipFile(got["archive"]) as archive:
        assert archive.testzip() is None
        names = archive.namelist()
        want_names = csharp([{"fn": "entry_name", "args": {"path": e["path"]}} for e in entries])
        assert names == [n["ok"] + ("/" if e["type"] == "dir" else "") for n, e in zip(want_names, entries)]
        for name, entry in zip(names, entries):
            if entry["type"] == "file":
                assert archive.read(name) == entry["data"], name
            info = archive.getinfo(name)
            assert (1980, 1, 1) <= info.date_time[:3] <= (2107, 12, 31)
    with open(got["manifest"], "rb") as f:
        lines = f.read().decode("ascii").splitlines()
    expected = []
    for entry in entries:
        if entry["type"] == "file":
            record = {"path": entry["path"], "type": "file", "size": len(entry["data"]),
                      "sha256": hashlib.sha256(entry["data"]).hexdigest()}
        else:
            record = {"path": entry["path"], "type": "dir", "size": 0, "sha256": None}
        expected.append(json.dumps(record, sort_keys=True))  # _remove.BackupWriter's line
    assert lines == expected
    # the free space remove demands (WinBackup.Plan: the sum of EntryNeeds) covers what was written
    needs = csharp([{"fn": "entry_needs", "args": {"path": e["path"], "size": len(e.get("data", b""))}}
                    for e in entries])
    written = os.path.getsize(got["archive"]) + os.path.getsize(got["manifest"])
    assert written <= sum(n["ok"] for n in needs), (written, needs)


def _tampered(tmp_path, got, name, archive_bytes=None, manifest_lines=None):
    import shutil as _shutil
    archive, manifest = str(tmp_path / (name + ".zip")), str(tmp_path / (name + ".manifest.jsonl"))
    _shutil.copy(got["archive"], archive)
    _shutil.copy(got["manifest"], manifest)
    if archive_bytes is not None:
        with open(archive, "wb") as f:
            f.write(archive_bytes)
    if manifest_lines is not None:
        with open(manifest, "w") as f:
            f.write("".join(line + "\n" for line in manifest_lines))
    return {"fn": "zip_verify", "args": {"archive": archive, "manifest": manifest}}


def test_read_back_catches_every_kind_of_damage(csharp, tmp_path):
    import zipfile
    entries = _backup_tree(tmp_path, random.Random(21))
    out = tmp_path / "backups"
    out.mkdir()
    got = _write(csharp, out, entries)["ok"]
    with open(got["archive"], "rb") as f:
        data = f.read()
    with open(got["manifest"]) as f:
        lines = f.read().splitlines()
    with zipfile.ZipFile(got["archive"]) as archive:
        first = archive.infolist()[0]
    start = first.header_offset + 30 + len(first.filename.encode("utf-8")) + len(first.extra) + 5
    flipped = data[:start] + bytes([data[start] ^ 0xFF]) + data[start + 1:]
    record = json.loads(lines[0])

    def edit(**changes):
        return [json.dumps(dict(record, **changes), sort_keys=True)] + lines[1:]

    cases = {
        "intact": (None, None, None),
        "a flipped byte of stored content": (flipped, None, "backup"),
        "another sha256 in the manifest": (None, edit(sha256="0" * 64), "sha256"),
        "another size in the manifest": (None, edit(size=record["size"] + 1), "size"),
        "another path in the manifest": (None, edit(path="C:\\Users\\ana\\other"), "in its place"),
        "a member the manifest does not list": (None, lines[:-1], "does not list"),
        "a manifest line without a member": (None, lines + lines[-1:], "not in the archive"),
        "a truncated archive": (data[:len(data) // 2], None, "could not be read back"),
        "a manifest line that is not JSON": (None, ["{\"path\": "] + lines[1:], "could not be read back"),
    }
    calls = [_tampered(tmp_path, got, "case%d" % i, a, m) for i, (a, m, _w) in enumerate(cases.values())]
    for (what, (_a, _m, why)), result in zip(cases.items(), csharp(calls)):
        if why is None:
            assert result == {"ok": len(entries)}, what
        else:
            assert why in result.get("error", ""), (what, result)


def test_a_failed_backup_leaves_nothing_and_plants_are_not_opened(csharp, tmp_path):
    entries = _backup_tree(tmp_path, random.Random(22))
    out = tmp_path / "backups"
    out.mkdir()
    failed = _write(csharp, out, entries, fail_after=2)
    assert "simulated read error" in failed["error"] and "nothing was removed" in failed["error"]
    assert os.listdir(str(out)) == []
    # a link planted under the name the backup would take is never written through: the next name is used
    victim = tmp_path / "victim"
    victim.write_bytes(b"keep me")
    os.symlink(str(victim), str(out / ("residue-purge-%s-4242-0.zip" % STAMP)))
    got = _write(csharp, out, entries)["ok"]
    assert got["archive"].endswith("-4242-1.zip") and victim.read_bytes() == b"keep me"
    # a name a zip cannot hold (an unpaired surrogate, which NTFS allows) fails the backup, never mangles it
    lone = [dict(entries[0], path="C:\\Users\\ana\\bad\ud800name")]
    result = _write(csharp, tmp_path, lone)
    assert "unpaired UTF-16 surrogate" in result["error"]


# ------------------------------------------------------------------ restore.yml's Windows branch

def _restore(csharp, got, root, dry_run=False, archive=None, manifest=None):
    return csharp([{"fn": "zip_restore", "args": {"archive": archive or got["archive"], "root": str(root),
                                                  "manifest": manifest or got["manifest"], "dry_run": dry_run}}])[0]


def _tree(root):
    found = {}
    for top, dirs, files in os.walk(str(root)):
        for d in dirs:
            found[os.path.relpath(os.path.join(top, d), str(root))] = None
        for f in files:
            with open(os.path.join(top, f), "rb") as fh:
                found[os.path.relpath(os.path.join(top, f), str(root))] = fh.read()
    return found


def test_restore_puts_every_entry_back(csharp, tmp_path):
    """playbooks/files/ResidueRestore.cs (restore.yml on Windows) on a backup _WinBackup wrote: every file back with
    its content, under a staging root standing in for the drives and shares; a dry run writes nothing."""
    entries = _backup_tree(tmp_path, random.Random(30))
    (tmp_path / "backups").mkdir()
    got = _write(csharp, tmp_path / "backups", entries)["ok"]
    root = tmp_path / "restored"
    root.mkdir()
    dry = _restore(csharp, got, root, dry_run=True)["ok"]
    assert dry["refused"] == [] and len(dry["files"]) == len(entries) and _tree(root) == {}
    done = _restore(csharp, got, root)["ok"]
    assert done["refused"] == [] and done["files"] == [e["path"] for e in entries] and done["entries"] == len(entries)
    names = csharp([{"fn": "entry_name", "args": {"path": e["path"]}} for e in entries])
    tree = _tree(root)
    for name, entry in zip(names, entries):
        rel = name["ok"].replace("/", os.sep)
        if entry["type"] == "file":
            assert tree[rel] == entry["data"], rel
        else:
            assert os.path.isdir(os.path.join(str(root), rel)), rel


def test_restore_writes_nothing_from_a_damaged_archive(csharp, tmp_path):
    entries = _backup_tree(tmp_path, random.Random(31))
    (tmp_path / "backups").mkdir()
    got = _write(csharp, tmp_path / "backups", entries)["ok"]
    with open(got["manifest"]) as f:
        lines = f.read().splitlines()
    record = json.loads(lines[1])
    record["sha256"] = "0" * 64
    damaged = _tampered(tmp_path, got, "sha", manifest_lines=[lines[0], json.dumps(record, sort_keys=True)] + lines[2:])
    root = tmp_path / "restored"
    root.mkdir()
    out = _restore(csharp, got, root, archive=damaged["args"]["archive"], manifest=damaged["args"]["manifest"])
    assert "sha256" in out.get("error", ""), out
    assert _tree(root) == {}


def test_restore_never_writes_through_a_link(csharp, tmp_path):
    """A directory of the destination replaced by a link since the backup (to a place the user wants written):
    its entries are refused and named, nothing is written there; the rest is restored."""
    entries = _backup_tree(tmp_path, random.Random(32))
    (tmp_path / "backups").mkdir()
    got = _write(csharp, tmp_path / "backups", entries)["ok"]
    root = tmp_path / "restored"
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    (root / "C" / "Users" / "ana" / ".ollama").mkdir(parents=True)
    os.symlink(str(elsewhere), str(root / "C" / "Users" / "ana" / ".ollama" / "models"))
    out = _restore(csharp, got, root)["ok"]
    assert os.listdir(str(elsewhere)) == []
    refused = [r for r in out["refused"] if "reparse point" in r]
    assert len(refused) == len([e for e in entries if e["path"].startswith("C:\\Users\\ana\\.ollama\\models")]), out
    assert out["files"] == ["\\\\srv\\share\\models\\a.bin"]
    assert _tree(root / "UNC")["srv/share/models/a.bin".replace("/", os.sep)] == entries[0]["data"]
