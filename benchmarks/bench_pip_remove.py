"""pip_remove's module_utils (_pyenvs) against the tools people use instead, same data, same run.

1. Reading an environment's distributions (discover does it for every environment): _pyenvs.installed_distributions
   vs importlib.metadata (in-process, names/versions/requirements) and vs `python -m pip list --path SITE --format
   json` (a process, as a user or script would run it), on a generated site-packages of DISTS dist-info dirs with
   a 20 KB long description each. Names and versions are checked equal before any time is reported.
2. Finding environments: _pyenvs.search_environments vs `find ROOT -maxdepth 5 ( -name pyvenv.cfg -o -name
   conda-meta )` on a generated tree of venvs among many plain directories; the sets found are checked equal.
3. Removing one package and its orphans from a real venv: _pyenvs.purge_environment (marker evaluation in the
   venv, plan, pip uninstall, pip check before and after) vs a bare `python -m pip uninstall -y` of the same
   distributions, each on its own copy of the same venv.
Times are the best of several rounds.
"""
import json
import os
import shutil
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
TOP = os.path.dirname(HERE)
sys.path.insert(0, os.path.join(TOP, ".build", "collections"))
sys.path.insert(0, os.path.join(TOP, "tests", "integration"))

from ansible_collections.residue.purge.plugins.module_utils import _pyenvs  # noqa: E402
from wheels import build_wheel  # noqa: E402

DISTS = int(os.environ.get("BENCH_PIP_DISTS", "2000"))
TREE_DIRS = int(os.environ.get("BENCH_PIP_TREE_DIRS", "20000"))
ROUNDS = 5
SYSTEM_PYTHON = "/usr/bin/python3"


def best(fn, rounds=ROUNDS):
    times, value = [], None
    for _round in range(rounds):
        t = time.perf_counter()
        value = fn()
        times.append(time.perf_counter() - t)
    return min(times), value


def make_site(site):
    body = ("A long description line that pip keeps in METADATA.\n" * 400)
    for i in range(DISTS):
        name = "bench-dist-%05d" % i
        d = os.path.join(site, "bench_dist_%05d-1.%d.dist-info" % (i, i % 7))
        os.makedirs(d)
        reqs = "".join("Requires-Dist: bench-dist-%05d>=1; python_version >= \"3\"\n" % ((i + k) % DISTS)
                       for k in range(1, 6))
        with open(os.path.join(d, "METADATA"), "w") as f:
            f.write("Metadata-Version: 2.1\nName: %s\nVersion: 1.%d\n%s\n%s" % (name, i % 7, reqs, body))
        with open(os.path.join(d, "INSTALLER"), "w") as f:
            f.write("pip\n")
        with open(os.path.join(d, "RECORD"), "w") as f:
            f.write("")
        if i % 3 == 0:
            open(os.path.join(d, "REQUESTED"), "w").close()


def bench_read(workdir):
    site = os.path.join(workdir, "site", "lib", "python3.11", "site-packages")
    make_site(site)
    env = _pyenvs.PyEnv(os.path.dirname(site), None, "venv", "root", [site], False)
    ours_s, ours = best(lambda: _pyenvs.installed_distributions(env))
    import importlib.metadata as md

    def via_importlib():
        return [(d.metadata["Name"], d.version, d.requires) for d in md.distributions(path=[site])]
    imp_s, imp = best(via_importlib)
    cmd = [sys.executable, "-m", "pip", "list", "--path", site, "--format", "json", "--disable-pip-version-check"]
    pip_s, out = best(lambda: subprocess.run(cmd, check=True, capture_output=True, text=True).stdout, rounds=3)
    want = dict((d.name, d.version) for d in ours)
    if want != dict((_pyenvs.normalize_name(n), v) for n, v, _r in imp):
        raise AssertionError("importlib.metadata disagrees")
    if want != dict((_pyenvs.normalize_name(d["name"]), d["version"]) for d in json.loads(out)):
        raise AssertionError("pip list disagrees")
    if sum(len(d.requires) for d in ours) != sum(len(r or ()) for _n, _v, r in imp):
        raise AssertionError("requirement counts differ")
    return [
        "| read %d distributions | seconds | ours / it |" % len(ours),
        "|---|---:|---:|",
        "| `_pyenvs.installed_distributions` | %.3f | 1.00 |" % ours_s,
        "| `importlib.metadata.distributions` (name, version, requires) | %.3f | %.2f |" % (imp_s, ours_s / imp_s),
        "| `python -m pip list --path SITE --format json` (process) | %.3f | %.2f |" % (pip_s, ours_s / pip_s),
    ]


def make_tree(root):
    venvs = set()
    count = 0
    for a in range(20):
        for b in range(max(1, TREE_DIRS // 20 // 50)):
            for c in range(50):
                path = os.path.join(root, "u%02d" % a, "p%03d" % b, "d%02d" % c)
                os.makedirs(path)
                count += 1
                if c == 0:
                    venv = os.path.join(path, ".venv")
                    site = os.path.join(venv, "lib", "python3.11", "site-packages")
                    os.makedirs(site)
                    # a site-packages with content: the walk must not descend into it, find does
                    for k in range(20):
                        os.makedirs(os.path.join(site, "pkg%02d" % k, "sub"))
                    with open(os.path.join(venv, "pyvenv.cfg"), "w") as f:
                        f.write("home = /usr/bin\n")
                    venvs.add(venv)
    return venvs, count


def bench_find(workdir):
    root = os.path.join(workdir, "tree")
    venvs, count = make_tree(root)
    ours_s, found = best(lambda: _pyenvs.search_environments([root], max_depth=4))
    cmd = ["find", root, "-maxdepth", "5", "(", "-name", "pyvenv.cfg", "-o", "-name", "conda-meta", ")"]
    find_s, out = best(lambda: subprocess.run(cmd, check=True, capture_output=True, text=True).stdout)
    from_find = set(os.path.dirname(p) for p in out.split())
    if set(e.path for e in found) != venvs or from_find != venvs:
        raise AssertionError("environment sets differ")
    return [
        "| find %d venvs among %d directories | seconds | ours / it |" % (len(venvs), count),
        "|---|---:|---:|",
        "| `_pyenvs.search_environments(max_depth=4)` | %.3f | 1.00 |" % ours_s,
        "| `find ROOT -maxdepth 5 ( -name pyvenv.cfg -o -name conda-meta )` | %.3f | %.2f |"
        % (find_s, ours_s / find_s),
    ]


def bench_remove(workdir):
    wheels = os.path.join(workdir, "wheels")
    os.makedirs(wheels)
    build_wheel(wheels, "bench-a", "1.0", requires=["bench-b", "bench-c"])
    build_wheel(wheels, "bench-b", "1.0")
    build_wheel(wheels, "bench-c", "1.0", requires=["bench-f"])
    build_wheel(wheels, "bench-d", "1.0", requires=["bench-b"])
    build_wheel(wheels, "bench-f", "1.0")
    template = os.path.join(workdir, "template")
    subprocess.run([SYSTEM_PYTHON, "-m", "venv", template], check=True)
    subprocess.run([os.path.join(template, "bin", "python"), "-m", "pip", "install", "-q", "--no-index",
                    "--find-links", wheels, "--disable-pip-version-check", "bench-a", "bench-d"], check=True, cwd="/")
    ours_t, bare_t = [], []
    for i in range(3):
        venv = os.path.join(workdir, "ours%d" % i)
        shutil.copytree(template, venv, symlinks=True)
        env = _pyenvs.resolve_environment(venv)
        t = time.perf_counter()
        result = _pyenvs.purge_environment(env, ["bench-a"], orphans=True)
        ours_t.append(time.perf_counter() - t)
        gone = sorted(e["name"] for e in result["removed"] + result["orphans_removed"])
        if gone != ["bench-a", "bench-c", "bench-f"] or result["status"] != "changed":
            raise AssertionError("unexpected result %r" % result)
        venv = os.path.join(workdir, "bare%d" % i)
        shutil.copytree(template, venv, symlinks=True)
        t = time.perf_counter()
        subprocess.run([os.path.join(venv, "bin", "python"), "-m", "pip", "uninstall", "-y", "-q",
                        "--disable-pip-version-check"] + gone, check=True, cwd="/")
        bare_t.append(time.perf_counter() - t)
    return [
        "| remove a package and its 2 orphans from a real venv | seconds | ours / it |",
        "|---|---:|---:|",
        "| `_pyenvs.purge_environment(orphans=True)` (markers, plan, uninstall, 2x pip check) | %.3f | 1.00 |"
        % min(ours_t),
        "| bare `python -m pip uninstall -y` of the same 3 (no planning, no check) | %.3f | %.2f |"
        % (min(bare_t), min(ours_t) / min(bare_t)),
    ]


def run(workdir):
    lines = ["## pip_remove (_pyenvs)", "",
             "Reproduce: `.venv/bin/python benchmarks/run.py pip_remove` (BENCH_PIP_DISTS=%d, BENCH_PIP_TREE_DIRS=%d)."
             % (DISTS, TREE_DIRS), "Best of %d rounds (3 for processes); results checked equal before timing is "
             "reported." % ROUNDS, ""]
    for part in (bench_read, bench_find, bench_remove):
        lines += part(workdir) + [""]
    lines.append("Reading metadata never runs the environment's interpreter (it works for broken ones) and stops at "
                 "the header block; the search walk skips site-packages and does not follow symlinks. The removal "
                 "costs more than a bare uninstall because it evaluates markers in the environment and runs pip "
                 "check before and after; a bare uninstall of the same set does not know which set is safe.")
    return "\n".join(lines)
