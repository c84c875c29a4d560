# -*- coding: utf-8 -*-
# Copyright: residue.purge contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""_pyenvs: environment discovery, metadata reading, marker evaluation and removal planning."""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import os
import shutil
import subprocess
import sys
import sysconfig
from collections import namedtuple

import pytest
from hypothesis import given, settings, strategies as st

from ansible_collections.residue.purge.plugins.module_utils import _pyenvs
from ansible_collections.residue.purge.plugins.module_utils._pyenvs import (
    Dist, PyEnv, Requirement, dependency_edges, egg_requires_to_requirements, find_environments,
    installed_distributions, normalize_name, plan_removal, resolve_environment,
)

User = namedtuple("User", "name home")
PY = "python%d.%d" % sys.version_info[:2]


def write(path, text=""):
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "w") as f:
        f.write(text)


def dist_info(site, name, version, requires=(), requested=False, installer="pip", extras=(), body=""):
    base = os.path.join(site, "%s-%s.dist-info" % (name.replace("-", "_"), version))
    lines = ["Metadata-Version: 2.1", "Name: " + name, "Version: " + version]
    lines += ["Provides-Extra: " + e for e in extras]
    lines += ["Requires-Dist: " + r for r in requires]
    write(os.path.join(base, "METADATA"), "\n".join(lines) + "\n\n" + body)
    if installer is not None:
        write(os.path.join(base, "INSTALLER"), installer + "\n")
    if requested:
        write(os.path.join(base, "REQUESTED"))
    return base


def make_venv(root, python_target=sys.executable):
    site = os.path.join(root, "lib", PY, "site-packages")
    os.makedirs(site)
    write(os.path.join(root, "pyvenv.cfg"), "home = /usr/bin\ninclude-system-site-packages = false\n")
    os.makedirs(os.path.join(root, "bin"))
    os.symlink(python_target, os.path.join(root, "bin", "python"))
    return site


# ---------------------------------------------------------------- names and metadata

@pytest.mark.parametrize("raw,expected", [
    ("Open_AutoGLM", "open-autoglm"), ("open.autoglm", "open-autoglm"), ("a__-._b", "a-b"),
    ("Torch", "torch"), ("zope.interface", "zope-interface"), (" tokenizers ", "tokenizers"),
])
def test_normalize_name(raw, expected):
    assert normalize_name(raw) == expected


def test_dist_info_fields_and_body_ignored(tmp_path):
    site = str(tmp_path)
    # the long description mentions a Requires-Dist line: only the header block counts
    dist_info(site, "Open_AutoGLM", "1.2.0", requires=["Torch>=2", 'b ; extra == "gpu"'], requested=True,
              extras=["gpu"], body="Requires-Dist: not-a-dependency\n")
    dist_info(site, "dep", "0.1", installer="conda")
    env = PyEnv(site, None, "venv", "root", [site], False)
    dists = dict((d.name, d) for d in installed_distributions(env))
    assert sorted(dists) == ["dep", "open-autoglm"]
    top = dists["open-autoglm"]
    assert (top.version, top.requested, top.installer, top.extras) == ("1.2.0", True, "pip", ("gpu",))
    assert top.requires == ["Torch>=2", 'b ; extra == "gpu"']
    assert top.location == site
    assert dists["dep"].requested is False and dists["dep"].installer == "conda"


def test_egg_info_dir_and_file(tmp_path):
    site = str(tmp_path)
    write(os.path.join(site, "Legacy.egg-info", "PKG-INFO"), "Metadata-Version: 1.1\nName: Legacy\nVersion: 3.0\n")
    write(os.path.join(site, "Legacy.egg-info", "requires.txt"),
          "six\n\n[:python_version < \"3\"]\nfutures\n\n[test]\npytest>=6\n\n[ssl:sys_platform == \"win32\"]\nwincert\n")
    write(os.path.join(site, "single-1.0.egg-info"), "Metadata-Version: 1.0\nName: single\nVersion: 1.0\n")
    env = PyEnv(site, None, "venv", "root", [site], False)
    dists = dict((d.name, d) for d in installed_distributions(env))
    assert dists["legacy"].requires == ["six", 'futures; (python_version < "3")', 'pytest>=6; extra == "test"',
                                        'wincert; (sys_platform == "win32") and extra == "ssl"']
    # egg-info has no REQUESTED marker: unknown counts as requested, so it is never an orphan
    assert dists["legacy"].requested is True and dists["single"].version == "1.0"


def test_first_site_dir_wins(tmp_path):
    first, second = str(tmp_path / "a"), str(tmp_path / "b")
    dist_info(first, "x", "2.0")
    dist_info(second, "x", "1.0")
    dist_info(second, "y", "1.0")
    env = PyEnv(str(tmp_path), None, "system", "root", [first, second], False)
    assert [(d.name, d.version, d.location) for d in installed_distributions(env)] == [
        ("x", "2.0", first), ("y", "1.0", second)]


def test_installed_distributions_matches_importlib_metadata():
    """Oracle: the running interpreter's own view of its site-packages (read only)."""
    import importlib.metadata as md
    site = sysconfig.get_paths()["purelib"]
    env = PyEnv(os.path.dirname(site), sys.executable, "venv", "root", [site], False)
    ours = dict((d.name, d.version) for d in installed_distributions(env))
    theirs = dict((normalize_name(d.metadata["Name"]), d.version) for d in md.distributions(path=[site]))
    assert ours == theirs and len(ours) > 3


def test_egg_requires_without_sections():
    assert egg_requires_to_requirements("# comment\na>=1\n\nb\n") == ["a>=1", "b"]


# ---------------------------------------------------------------- finding environments

def test_find_environments_layouts(tmp_path):
    root = tmp_path / "srv"
    venv_site = make_venv(str(root / "team" / "proj" / ".venv"))
    conda = root / "miniconda3"
    os.makedirs(str(conda / "conda-meta"))
    os.makedirs(str(conda / "lib" / PY / "site-packages"))
    os.makedirs(str(conda / "envs" / "ml" / "conda-meta"))
    os.makedirs(str(conda / "envs" / "ml" / "lib" / "python3.10" / "site-packages"))
    write(str(conda / "envs" / "ml" / "lib" / "python3.10" / "EXTERNALLY-MANAGED"), "[externally-managed]\n")
    # a venv inside a venv's site-packages and one behind a symlink: neither is walked into
    make_venv(os.path.join(venv_site, "vendored"))
    outside = tmp_path / "outside"
    make_venv(str(outside / "linked"))
    os.symlink(str(outside), str(root / "link"))
    # deeper than max_depth
    make_venv(str(root / "a" / "b" / "c" / "d" / "deep"))
    # a developer's ~/dev is searched (only /dev, /proc, /sys, /run are skipped); an HF repo dir is not
    make_venv(str(root / "dev" / "tool"))
    make_venv(str(root / "hub" / "models--org--name"))
    # a standalone interpreter prefix (as pyenv or a source build makes), the only Python 3.9 here
    write(str(root / "py39" / "lib" / "python3.9" / "os.py"))
    write(str(root / "py39" / "bin" / "python3.9"))
    home = tmp_path / "home" / "alice"
    write(str(home / ".local" / "lib" / "python3.11" / "site-packages" / "x.py"))
    write(str(home / ".local" / "lib" / "python3.9" / "site-packages" / "y.py"))
    make_venv(str(home / ".virtualenvs" / "tools"))

    envs = find_environments([str(root)], users=[User("alice", str(home))], include_system=False, max_depth=4)
    got = sorted((e.kind, os.path.relpath(e.path, str(tmp_path)), e.externally_managed) for e in envs)
    assert got == [
        ("conda", "srv/miniconda3", False),
        ("conda", "srv/miniconda3/envs/ml", True),
        ("system", "srv/py39", False),
        ("user-site", "home/alice/.local", False),
        ("user-site", "home/alice/.local", False),
        ("venv", "home/alice/.virtualenvs/tools", False),
        ("venv", "srv/dev/tool", False),
        ("venv", "srv/team/proj/.venv", False),
    ]
    venv = [e for e in envs if e.kind == "venv" and "proj" in e.path][0]
    assert venv.site_dirs == [venv_site]
    assert venv.python == os.path.join(venv.path, "bin", "python")
    user_sites = dict((e.site_dirs[0], e) for e in envs if e.kind == "user-site")
    user_site = user_sites[str(home / ".local/lib/python3.11/site-packages")]
    assert user_site.user == "alice"
    # its Python 3.9 user site goes with the one interpreter of that version
    assert user_sites[str(home / ".local/lib/python3.9/site-packages")].python == str(root / "py39/bin/python3.9")
    deeper = find_environments([str(root)], include_system=False, max_depth=6)
    assert any(e.path.endswith("/deep") for e in deeper)


def test_system_interpreters_found_without_running_them():
    envs = find_environments(include_system=True)
    system = [e for e in envs if e.kind == "system" and e.python and e.python.startswith("/usr/bin/")]
    assert system, "this Debian host has /usr/bin/python3"
    usr = system[0]
    assert usr.path == "/usr" and "/usr/lib/python3/dist-packages" in usr.site_dirs
    assert usr.externally_managed == os.path.exists("/usr/lib/%s/EXTERNALLY-MANAGED" % os.path.basename(
        os.path.realpath(usr.python)))


def test_resolve_environment(tmp_path):
    venv = str(tmp_path / "v")
    make_venv(venv, python_target=str(tmp_path / "gone" / "python3"))
    env = resolve_environment(venv)
    assert env.kind == "venv" and env.python == os.path.join(venv, "bin", "python")
    # the venv's (broken) interpreter names the same environment
    assert resolve_environment(os.path.join(venv, "bin", "python")).path == venv
    with pytest.raises(ValueError, match="not an absolute path"):
        resolve_environment("relative/venv")
    with pytest.raises(ValueError, match="does not exist"):
        resolve_environment(str(tmp_path / "nothing"))
    with pytest.raises(ValueError, match="not a Python environment"):
        resolve_environment(str(tmp_path))
    # a user base with scripts in bin/ is still a user site, used with the system interpreter of its version
    base = tmp_path / "home" / ".local"
    os.makedirs(str(base / "bin"))
    os.makedirs(str(base / "lib" / "python3.11" / "site-packages"))
    user_site = resolve_environment(str(base))
    assert (user_site.kind, user_site.path) == ("user-site", str(base))
    assert user_site.site_dirs == [str(base / "lib" / "python3.11" / "site-packages")]
    assert os.path.basename(os.path.realpath(user_site.python)) == "python3.11"
    assert len(_pyenvs.unique_environments([env, resolve_environment(venv + "/"), user_site])) == 2
    system = resolve_environment("/usr/bin/python3")
    assert system.kind == "system" and system.path == "/usr"


# ---------------------------------------------------------------- markers, evaluated by a real interpreter

def test_evaluate_requirements_in_interpreter():
    site = sysconfig.get_paths()["purelib"]
    env = PyEnv(os.path.dirname(site), sys.executable, "venv", "root", [site], False)
    top = Dist("top", "1", True, [
        "Base_Dep>=1", 'only-on-windows; sys_platform == "win32"', 'old-python; python_version < "3.0"',
        'gpu-dep[cuda]; extra == "gpu"', "this is not a requirement!"], site, "pip", ("gpu",))
    evaluated, unparsed = _pyenvs.evaluate_requirements(env, [top])
    assert evaluated["top"] == [
        Requirement("base-dep", (), True, ()),
        Requirement("only-on-windows", (), sys.platform == "win32", ()),
        Requirement("old-python", (), False, ()),
        Requirement("gpu-dep", ("cuda",), False, ("gpu",)),
    ]
    assert len(unparsed) == 1 and "this is not a requirement!" in unparsed[0]


def test_interpreter_that_does_not_use_the_site_dirs_is_refused(tmp_path):
    """An interpreter whose sys.path lacks the environment's site dirs would let pip act on another one."""
    site = str(tmp_path / "site-packages")
    dist_info(site, "a", "1", requires=["b"])
    env = PyEnv(str(tmp_path), sys.executable, "conda", "root", [site], False)
    with pytest.raises(_pyenvs.EnvError, match="does not use " + site):
        _pyenvs.evaluate_requirements(env, installed_distributions(env))


def test_broken_interpreter_is_an_env_error(tmp_path):
    env = PyEnv(str(tmp_path), str(tmp_path / "bin" / "python"), "venv", "root", [str(tmp_path)], False)
    with pytest.raises(_pyenvs.EnvError, match="does not exist"):
        _pyenvs.evaluate_requirements(env, [Dist("a", "1", False, ["b"], str(tmp_path))])


# ---------------------------------------------------------------- planning (pure)

def graph(spec, requested=(), installers=None, extras=None):
    """spec: {name: [dep, ...]} -> (dists, edges) with base requirements only."""
    dists = [Dist(n, "1.0", n in requested, list(deps), "/site", (installers or {}).get(n, "pip"),
                  tuple((extras or {}).get(n, ()))) for n, deps in spec.items()]
    evaluated = dict((n, [Requirement(d, (), True, ()) for d in deps]) for n, deps in spec.items())
    return dists, dependency_edges(dists, evaluated)


def names(entries):
    return [e["name"] for e in entries]


ISSUE_GRAPH = {"a": ["b", "c", "e"], "b": [], "c": ["f"], "d": ["b"], "e": [], "f": [], "pip": []}


def test_issue_scenario_with_orphans():
    dists, edges = graph(ISSUE_GRAPH, requested=("a", "d", "e"))
    plan = plan_removal(dists, edges, ["A"], orphans=True)
    assert names(plan.remove) == ["a"]
    assert names(plan.orphans) == ["c", "f"]  # f only through c: transitive orphan
    assert plan.kept_shared == [{"name": "b", "version": "1.0", "required_by": ["d"]}]
    assert plan.kept == [{"name": "e", "version": "1.0", "reason": "requested"}]


def test_without_orphans_dependencies_stay_and_say_why():
    dists, edges = graph(ISSUE_GRAPH, requested=("a", "d", "e"))
    plan = plan_removal(dists, edges, ["a"])
    assert names(plan.remove) == ["a"] and plan.orphans == []
    assert [(k["name"], k["reason"]) for k in plan.kept] == [("c", "orphan (orphans: false)"), ("e", "requested")]


def test_named_package_that_others_require_is_kept_unless_forced():
    dists, edges = graph(ISSUE_GRAPH, requested=("a", "d", "e"))
    plan = plan_removal(dists, edges, ["b"])
    assert plan.remove == [] and plan.kept_shared == [{"name": "b", "version": "1.0", "required_by": ["a", "d"]}]
    forced = plan_removal(dists, edges, ["b"], remove_required=True)
    assert names(forced.remove) == ["b"]
    # naming the dependents too removes them together
    assert names(plan_removal(dists, edges, ["a", "b", "d"]).remove) == ["a", "b", "d"]


def test_keep_protected_and_foreign_installers():
    spec = {"a": ["c", "pip", "setuptools", "g", "k"], "c": [], "pip": [], "setuptools": [], "g": [], "k": []}
    dists, edges = graph(spec, requested=("a",), installers={"g": "conda"})
    plan = plan_removal(dists, edges, ["a"], keep=["K"], orphans=True)
    assert names(plan.orphans) == ["c"]
    assert dict((k["name"], k["reason"]) for k in plan.kept) == {
        "g": "installed by conda", "k": "keep", "pip": "protected", "setuptools": "protected"}
    # named, pip is removed like anything else
    assert "pip" in names(plan_removal(dists, edges, ["a", "pip"], orphans=True).remove)


def test_cycles_are_removed_together_but_not_when_held():
    dists, edges = graph({"a": ["x"], "x": ["y"], "y": ["x"]}, requested=("a",))
    assert names(plan_removal(dists, edges, ["a"], orphans=True).orphans) == ["x", "y"]
    dists, edges = graph({"a": ["x"], "x": ["y"], "y": ["x"], "d": ["y"]}, requested=("a", "d"))
    plan = plan_removal(dists, edges, ["a"], orphans=True)
    assert plan.orphans == [] and plan.kept_shared == [{"name": "x", "version": "1.0", "required_by": ["y"]}]


def test_not_installed_is_reported():
    dists, edges = graph({"a": []})
    plan = plan_removal(dists, edges, ["a", "Missing_Pkg"])
    assert plan.not_installed == ["missing-pkg"] and names(plan.remove) == ["a"]


def test_extras_activate_requirements():
    # d (requested) needs b[fast]; b's "fast" extra needs speedup: speedup is shared, not an orphan
    dists = [Dist("a", "1", True, [], "/s", "pip"), Dist("d", "1", True, [], "/s", "pip"),
             Dist("b", "1", False, [], "/s", "pip", ("fast",)), Dist("speedup", "1", False, [], "/s", "pip")]
    evaluated = {"a": [Requirement("speedup", (), True, ())], "d": [Requirement("b", ("fast",), True, ())],
                 "b": [Requirement("speedup", (), False, ("fast",))]}
    edges = dependency_edges(dists, evaluated)
    assert edges["b"] == {"speedup"}
    plan = plan_removal(dists, edges, ["a"], orphans=True)
    assert plan.orphans == [] and plan.kept_shared == [{"name": "speedup", "version": "1", "required_by": ["b"]}]
    # without anyone asking for b[fast], speedup is an orphan of a
    evaluated["d"] = [Requirement("b", (), True, ())]
    edges = dependency_edges(dists, evaluated)
    assert names(plan_removal(dists, edges, ["a"], orphans=True).orphans) == ["speedup"]


def test_requested_distribution_extras_count_when_installed():
    # a requested package installed as top[cli]: its cli dependencies are present, so they count
    dists = [Dist("top", "1", True, [], "/s", "pip", ("cli", "docs")), Dist("a", "1", True, [], "/s", "pip"),
             Dist("click", "1", False, [], "/s", "pip")]
    evaluated = {"top": [Requirement("click", (), False, ("cli",)), Requirement("sphinx", (), False, ("docs",))],
                 "a": [Requirement("click", (), True, ())]}
    edges = dependency_edges(dists, evaluated)
    assert edges["top"] == {"click"}  # cli is fully installed, docs (sphinx) is not


@settings(max_examples=200, deadline=None)
@given(st.data())
def test_plan_never_breaks_a_remaining_distribution(data):
    """Property: after the plan, no remaining distribution requires a removed one (named ones are kept when
    required, unless remove_required)."""
    names_ = ["n%d" % i for i in range(data.draw(st.integers(1, 9)))]
    spec = dict((n, data.draw(st.lists(st.sampled_from(names_), max_size=3, unique=True))) for n in names_)
    requested = data.draw(st.lists(st.sampled_from(names_), unique=True))
    targets = data.draw(st.lists(st.sampled_from(names_), min_size=1, unique=True))
    keep = data.draw(st.lists(st.sampled_from(names_), max_size=2, unique=True))
    remove_required = data.draw(st.booleans())
    dists, edges = graph(spec, requested=requested)
    plan = plan_removal(dists, edges, targets, keep=keep, orphans=True, remove_required=remove_required)
    gone = set(names(plan.remove)) | set(names(plan.orphans))
    for name in set(names_) - gone:
        # an orphan is never required by what remains; a named package only when remove_required says so
        assert not (edges[name] - {name}) & set(names(plan.orphans)), (name, spec, targets)
        if not remove_required:
            assert not (edges[name] - {name}) & gone, (name, spec, targets)
    assert not gone & set(keep)
    assert set(names(plan.orphans)).isdisjoint(requested)
    assert set(names(plan.remove)) <= set(targets)
    if remove_required:
        assert set(names(plan.remove)) == set(targets) - set(keep)


# ---------------------------------------------------------------- input checks

@pytest.mark.parametrize("bad", ["", " ", "-r", "--target=/", "-e .", "a b", "../x", "/etc/passwd", "x;y", "a==1",
                                 "name[extra]", "-", ".hidden", "trailing-", None, 5, ["a"]])
def test_check_names_refuses_what_is_not_a_distribution_name(bad):
    with pytest.raises(ValueError, match="keep: .* is not a valid distribution name"):
        _pyenvs.check_names([bad], "keep")


def test_check_names_normalises():
    assert _pyenvs.check_names(["Open_AutoGLM", "zope.interface", "x"], "packages") == [
        "open-autoglm", "zope-interface", "x"]


def test_command_environment_drops_leaking_variables(monkeypatch):
    monkeypatch.setenv("PYTHONPATH", "/evil")
    monkeypatch.setenv("PIP_TARGET", "/evil")
    monkeypatch.setenv("PIP_REQUIRE_VIRTUALENV", "1")
    venv = PyEnv("/v", "/v/bin/python", "venv", "root", ["/v/lib"], False)
    env = _pyenvs.command_environment(venv)
    assert "PYTHONPATH" not in env and "PIP_TARGET" not in env and "PIP_REQUIRE_VIRTUALENV" not in env
    assert env["PIP_CONFIG_FILE"] == os.devnull and env["PYTHONNOUSERSITE"] == "1"
    user_site = PyEnv("/home/u/.local", "/usr/bin/python3", "user-site", "u", ["/home/u/.local/lib"], False)
    env = _pyenvs.command_environment(user_site, "/home/u")
    assert env["PYTHONUSERBASE"] == "/home/u/.local" and "PYTHONNOUSERSITE" not in env and env["HOME"] == "/home/u"


def test_break_system_packages_only_where_pip_checks_the_marker(tmp_path):
    """Read from this host's files (nothing runs): Debian's Python is EXTERNALLY-MANAGED and its pip (>= 23.0.1)
    refuses uninstalls there, in its user sites too, unless told; a venv never needs the flag."""
    system = resolve_environment("/usr/bin/python3")
    pip = _pyenvs.pip_version(installed_distributions(system))
    expected = system.externally_managed and pip is not None and pip >= (23, 0, 1)
    if os.path.exists("/etc/debian_version"):
        assert expected, "Debian 12's python3 is EXTERNALLY-MANAGED with pip 23.0.1"
    assert _pyenvs.needs_break_system_packages(system) is expected
    user_site = PyEnv(str(tmp_path), "/usr/bin/python3", "user-site", "u", [str(tmp_path)], False)
    assert _pyenvs.needs_break_system_packages(user_site) is expected
    venv = PyEnv(str(tmp_path), "/usr/bin/python3", "venv", "u", [str(tmp_path)], False)
    assert _pyenvs.needs_break_system_packages(venv) is False


@pytest.mark.parametrize("version,expected", [("23.0.1", (23, 0, 1)), ("24.2", (24, 2)), ("9.0.3", (9, 0, 3))])
def test_pip_version(version, expected):
    assert _pyenvs.pip_version([Dist("pip", version, False, [], "/s")]) == expected
    assert _pyenvs.pip_version([Dist("other", version, False, [], "/s")]) is None


@pytest.mark.skipif(os.geteuid() != 0, reason="dropping privileges needs root")
def test_root_runs_a_users_environment_as_that_user(tmp_path):
    """A site dir owned by nobody: its interpreter runs as nobody (it could hold a .pth file that runs code)."""
    nobody = __import__("pwd").getpwnam("nobody")
    site = tmp_path / "site-packages"
    site.mkdir()
    os.chown(str(site), nobody.pw_uid, nobody.pw_gid)
    os.chmod(str(tmp_path), 0o755)
    env = PyEnv(str(tmp_path), "/usr/bin/python3", "venv", "nobody", [str(site)], False)
    rc, out, _err = _pyenvs.run_in_environment(env, ["-c", "import os; print(os.getuid(), os.getgid())"])
    assert (rc, out.split()) == (0, [str(nobody.pw_uid), str(nobody.pw_gid)])
    # root-owned: runs as root
    os.chown(str(site), 0, 0)
    rc, out, _err = _pyenvs.run_in_environment(env, ["-c", "import os; print(os.getuid())"])
    assert out.split() == ["0"]


@pytest.mark.skipif(os.geteuid() != 0, reason="ownership by two users needs root to set up")
def test_environment_owned_by_two_users_is_refused(tmp_path):
    nobody = __import__("pwd").getpwnam("nobody")
    site = tmp_path / "site-packages"
    site.mkdir()
    os.chown(str(site), nobody.pw_uid, nobody.pw_gid)
    python = tmp_path / "python"
    shutil.copy("/bin/true", str(python))
    os.chown(str(python), 1, 1)  # daemon
    env = PyEnv(str(tmp_path), str(python), "venv", "nobody", [str(site)], False)
    with pytest.raises(_pyenvs.EnvError, match="belong to different users"):
        _pyenvs.run_in_environment(env, ["-c", "pass"])


def test_environment_without_pip_is_reported_not_guessed(tmp_path):
    """A real venv made --without-pip (as uv makes them) holding a target: nothing can evaluate or uninstall."""
    venv = str(tmp_path / "nopip")
    subprocess.run(["/usr/bin/python3", "-m", "venv", "--without-pip", venv], check=True)
    env = resolve_environment(venv)
    dist_info(env.site_dirs[0], "target", "1.0", requires=["dep"], requested=True)
    dist_info(env.site_dirs[0], "dep", "1.0")
    result = _pyenvs.purge_environment(env, ["target"], orphans=True)
    assert result["status"] == "broken" and "has no pip" in result["error"]
    assert result["found"] == [{"name": "target", "version": "1.0"}] and result["removed"] == []
    assert sorted(d.name for d in installed_distributions(env)) == ["dep", "target"]


def test_broken_by_is_what_the_removal_added_to_pip_check():
    # pip check's own lines (pip 23): what was broken before stays out, whatever its kind; a requirement on a
    # removed distribution is in, however the requiring metadata or the removal spelled the name
    after = [
        "agent-core 1.0 requires zope-interface, which is not installed.",   # removed as Zope.Interface
        "agent-core 1.0 requires old-thing, which is not installed.",        # missing before: not ours
        "tool 2.1 has requirement labeler>=2, but you have labeler 1.2.0.",  # a conflict: a removal makes none
        "tool 2.1 requires labeler-extra, which is not installed.",          # name only starts like a removed one
        "blob 0.1 is not supported on this platform",
        "other 3.0 requires labeler, which is not installed.",
    ]
    assert _pyenvs.broken_by(after, ["Zope.Interface", "labeler"]) == [after[0], after[5]]
    assert _pyenvs.broken_by(after, []) == []
    assert _pyenvs.broken_by(["No broken requirements found."], ["labeler"]) == []
