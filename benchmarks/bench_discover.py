"""discover end to end: against `du -sB1`, huggingface_hub.scan_cache_dir and ansible.builtin.find, one run.

One generated HF-layout hub cache of >= 160,000 entries (hfgen: many small files, two revisions per repo
sharing 80% of their blobs). Measured, each in a fresh process so peak memory (ru_maxrss) is its own:
  - discover's scan (the module's logic, in-process, no Ansible around it) vs `du -sB1` and vs
    huggingface_hub.scan_cache_dir (per-repo blob_bytes checked equal to size_on_disk first), on the plain
    cache and on a copy of it with a quarter of its blobs in huggingface_hub 2.x's shared store; wall and CPU
    (the process and the scan's forked child), median of ROUNDS runs of each, run alternately;
  - the same at a quarter of the size, to show memory does not grow with file count;
  - end to end through ansible-playbook: residue.purge.discover vs ansible.builtin.find (recurse, hidden,
    file_type any) on the same tree, with the size of what each task returned.
"""
import json
import os
import platform
import resource
import statistics
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
TOP = os.path.dirname(HERE)
COLLECTIONS = os.path.join(TOP, ".build", "collections")
sys.path.insert(0, COLLECTIONS)

sys.path.insert(0, HERE)
from _ansible import PING, playbook  # noqa: E402
import _hfbuild  # noqa: E402

REPOS = int(os.environ.get("BENCH_DISCOVER_REPOS", "420"))
FILES = int(os.environ.get("BENCH_DISCOVER_FILES", "120"))
ROUNDS = int(os.environ.get("BENCH_DISCOVER_ROUNDS", "5"))
PY = sys.executable

SCAN = r"""
import json, resource, sys, time
sys.path.insert(0, %(collections)r)
from ansible_collections.residue.purge.plugins.module_utils._discover import run as discover
def cpu():
    return sum(u.ru_utime + u.ru_stime for u in (resource.getrusage(resource.RUSAGE_SELF),
                                                 resource.getrusage(resource.RUSAGE_CHILDREN)))
c = cpu()
t = time.perf_counter()
r = discover({"targets": ["huggingface"], "homes": [%(home)r], "scan_processes": False,
              "extra_hf_caches": [%(cache)r], "one_file_system": True})
s = time.perf_counter() - t
c = cpu() - c
print(json.dumps({"seconds": s, "cpu": c, "maxrss_kb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss,
                  "repos": dict((x["repo_id"], x["blob_bytes"]) for x in r["residues"] if x["kind"] == "hf_repo"),
                  "problems": r["problems"], "output_bytes": len(json.dumps(r))}))
"""

HF = r"""
import json, resource, time
from huggingface_hub import scan_cache_dir
def cpu():
    return sum(u.ru_utime + u.ru_stime for u in (resource.getrusage(resource.RUSAGE_SELF),
                                                 resource.getrusage(resource.RUSAGE_CHILDREN)))
c = cpu()
t = time.perf_counter()
info = scan_cache_dir(%(cache)r)
s = time.perf_counter() - t
c = cpu() - c
print(json.dumps({"seconds": s, "cpu": c, "maxrss_kb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss,
                  "repos": dict((x.repo_id, x.size_on_disk) for x in info.repos)}))
"""

BASELINE = r"""
import json, resource, sys
sys.path.insert(0, %(collections)r)
from ansible_collections.residue.purge.plugins.module_utils import _discover
print(json.dumps({"maxrss_kb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss}))
"""


def py(code, **kw):
    out = subprocess.run([PY, "-c", code % dict(kw, collections=COLLECTIONS)], capture_output=True, text=True,
                         check=True).stdout
    return json.loads(out.strip().splitlines()[-1])


def best_of(n, fn):
    results = [fn() for dummy in range(n)]
    return min(results, key=lambda r: r["seconds"])


def medians(runs):
    """One run's result (the first) with seconds and cpu the medians of all runs, maxrss_kb the highest."""
    out = dict(runs[0])
    out["seconds"] = statistics.median(r["seconds"] for r in runs)
    out["cpu"] = statistics.median(r["cpu"] for r in runs)
    out["maxrss_kb"] = max(r["maxrss_kb"] for r in runs)
    out["all"] = [r["seconds"] for r in runs]
    return out


def alternately(rounds, **fns):
    """{name: medians} of rounds runs of each fn, run in turn (ours, theirs, ours, ...) so that a change of the
    machine's load during the runs falls on both."""
    runs = dict((name, []) for name in fns)
    for dummy in range(rounds):
        for name in sorted(fns):
            runs[name].append(fns[name]())
    return dict((name, medians(r)) for name, r in runs.items())


def du_seconds(path):
    start = time.perf_counter()
    subprocess.run(["du", "-sB1", path], capture_output=True, check=True)
    return time.perf_counter() - start


def du_run(path):
    """`du -sB1 path` as one of alternately()'s runs: wall and CPU (du is a reaped child of this process)."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    seconds = du_seconds(path)
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    return {"seconds": seconds, "cpu": (after.ru_utime + after.ru_stime) - (before.ru_utime + before.ru_stime),
            "maxrss_kb": 0}


def run(workdir):
    home = os.path.join(workdir, "home")
    os.makedirs(home)
    plain = _hfbuild.build(os.path.join(workdir, "hub"), REPOS, FILES)
    cache, entries = plain["path"], plain["entries"]
    quarter = _hfbuild.build(os.path.join(workdir, "hub-quarter"), max(1, REPOS // 4), FILES)
    small, small_entries = quarter["path"], quarter["entries"]
    # the same cache, copied, with a quarter of its blobs moved into the shared store by huggingface_hub
    store = _hfbuild.build(os.path.join(workdir, "hub-shared"), REPOS, FILES, share=True, copy_of=plain)
    shared, shared_entries = store["path"], store["entries"]
    for path in (cache, small, shared):
        subprocess.run(["du", "-sB1", path], capture_output=True, check=True)  # page cache warm for everyone
    load_before = os.getloadavg()

    got = alternately(ROUNDS, ours_shared=lambda: py(SCAN, home=home, cache=shared),
                      hf_shared=lambda: py(HF, cache=shared),
                      ours=lambda: py(SCAN, home=home, cache=cache), hf=lambda: py(HF, cache=cache),
                      du=lambda: du_run(cache), du_shared=lambda: du_run(shared))
    ours_shared, hf_shared, ours, hf = got["ours_shared"], got["hf_shared"], got["ours"], got["hf"]
    du, du_shared = got["du"], got["du_shared"]
    assert not ours_shared["problems"], ours_shared["problems"][:3]
    assert ours_shared["repos"] == hf_shared["repos"], "shared store: per-repo blob_bytes differ from huggingface_hub"
    ours_small = best_of(3, lambda: py(SCAN, home=home, cache=small))
    baseline = py(BASELINE)
    assert not ours["problems"], ours["problems"][:3]
    assert ours["repos"] == hf["repos"] and len(ours["repos"]) == REPOS, "per-repo blob_bytes differ from huggingface_hub"
    load_after = os.getloadavg()

    discover_task = {"residue.purge.discover": {
        "targets": ["huggingface"], "homes": [home], "scan_processes": False, "extra_hf_caches": [cache]}}
    find_task = {"ansible.builtin.find": {"paths": [cache], "recurse": True, "hidden": True, "file_type": "any"}}
    with tempfile.TemporaryDirectory(dir=workdir) as tmp:
        e2e_ping = min(playbook(PING, tmp) for dummy in range(3))
        e2e_ours = min(playbook(discover_task, tmp) for dummy in range(3))
        out_ours = playbook(discover_task, tmp, register=True)
        e2e_find = playbook(find_task, tmp)
        out_find = playbook(find_task, tmp, register=True)

    mb = 1024.0
    lines = [
        "## discover: one pass over a Hugging Face cache",
        "",
        "Cache: %d repos x 2 revisions x %d files (80%% of blobs shared), %d entries; a quarter-size copy has %d "
        "entries. Each measurement in a fresh process, page cache warm. The four scans (discover and "
        "huggingface_hub, plain and shared-store cache) and `du -sB1` of both caches ran in turn, %d rounds: wall "
        "and CPU (user+sys of the process and its forked scan child; du's own) are the medians; quarter-size "
        "best of 3." % (REPOS, FILES, entries, small_entries, ROUNDS),
        "",
        "| measurement | wall s | CPU s | ratio (wall; CPU) | peak RSS |",
        "|---|---:|---:|---:|---:|",
        "| `du -sB1` on the cache | %.2f | %.2f | 1.00 (reference) | |" % (du["seconds"], du["cpu"]),
        "| discover scan (module logic, no Ansible) | %.2f | %.2f | %.2fx du (CPU %.2fx) | %.1f MB |" % (
            ours["seconds"], ours["cpu"], ours["seconds"] / du["seconds"], ours["cpu"] / du["cpu"],
            ours["maxrss_kb"] / mb),
        "| huggingface_hub `scan_cache_dir` | %.2f | %.2f | discover is %.1fx faster (CPU %.1fx) | %.1f MB |" % (
            hf["seconds"], hf["cpu"], hf["seconds"] / ours["seconds"], hf["cpu"] / ours["cpu"], hf["maxrss_kb"] / mb),
        "| discover scan, quarter-size cache | %.2f | %.2f | | %.1f MB |" % (
            ours_small["seconds"], ours_small["cpu"], ours_small["maxrss_kb"] / mb),
        "| `du -sB1`, shared-store cache (%d entries) | %.2f | %.2f | 1.00 (reference) | |" % (
            shared_entries, du_shared["seconds"], du_shared["cpu"]),
        "| discover scan, shared-store cache (exclusive_bytes, store totals) | %.2f | %.2f | %.2fx du (CPU %.2fx) "
        "| %.1f MB |" % (ours_shared["seconds"], ours_shared["cpu"], ours_shared["seconds"] / du_shared["seconds"],
                         ours_shared["cpu"] / du_shared["cpu"], ours_shared["maxrss_kb"] / mb),
        "| huggingface_hub `scan_cache_dir`, shared-store cache | %.2f | %.2f | discover is %.1fx faster (CPU %.1fx) "
        "| %.1f MB |" % (hf_shared["seconds"], hf_shared["cpu"], hf_shared["seconds"] / ours_shared["seconds"],
                         hf_shared["cpu"] / ours_shared["cpu"], hf_shared["maxrss_kb"] / mb),
        "| interpreter + imports only | | | | %.1f MB |" % (baseline["maxrss_kb"] / mb),
        "| `ansible-playbook` residue.purge.discover (best of 3) | %.2f | | | result %d bytes |" % (e2e_ours, out_ours),
        "| `ansible-playbook` ansible.builtin.find recurse | %.2f | | discover is %.1fx faster | result %d bytes |" % (
            e2e_find, e2e_find / e2e_ours, out_find),
        "| `ansible-playbook` ansible.builtin.ping (fixed cost of any one-task run, best of 3) | %.2f | | | |" % e2e_ping,
        "| the two tasks above without that fixed cost | %.2f vs %.2f | | discover is %.1fx faster | |" % (
            e2e_ours - e2e_ping, e2e_find - e2e_ping, (e2e_find - e2e_ping) / (e2e_ours - e2e_ping)),
        "",
        "Shared-store cache: a copy of the same cache with a quarter of the blobs moved into huggingface_hub "
        "2.x's shared store by huggingface_hub's own functions, %d payloads shared between repos (%s). "
        "Against huggingface_hub's scan of the same cache in the same rounds, discover is %.1fx faster on the "
        "plain cache and %.1fx on the shared-store one (CPU: %.1fx and %.1fx); discover on the shared-store cache "
        "takes %.2fx its time on the plain one (huggingface_hub: %.2fx)." % (
            len(store["moved"]), _hfbuild.how_built(store), hf["seconds"] / ours["seconds"],
            hf_shared["seconds"] / ours_shared["seconds"], hf["cpu"] / ours["cpu"], hf_shared["cpu"] / ours_shared["cpu"],
            ours_shared["seconds"] / ours["seconds"], hf_shared["seconds"] / hf["seconds"]),
        "All rounds (wall s): discover %s; shared-store %s; huggingface_hub %s; shared-store %s; du %s; "
        "shared-store %s." % tuple(", ".join("%.2f" % x for x in r["all"])
                                   for r in (ours, ours_shared, hf, hf_shared, du, du_shared)),
        "Machine: %s, %d cores; load average (1, 5, 15 min) before the scans %s, after them %s "
        "(the two cores are shared with other jobs: the ratios, each against its peer measured in the same "
        "rounds, are the figures to compare)." % (
            platform.platform(), os.cpu_count(), "/".join("%.1f" % x for x in load_before),
            "/".join("%.1f" % x for x in load_after)),
        "Per-repo `blob_bytes` equal huggingface_hub's `size_on_disk` for all %d repos, in both caches (checked "
        "before timing is reported). Memory above the interpreter baseline: %.1f MB at %d entries, %.1f MB at %d entries."
        % (len(ours["repos"]), (ours["maxrss_kb"] - baseline["maxrss_kb"]) / mb, entries,
           (ours_small["maxrss_kb"] - baseline["maxrss_kb"]) / mb, small_entries),
        "",
        "Reproduce: `make bench` or `.venv/bin/python benchmarks/run.py discover` "
        "(BENCH_DISCOVER_REPOS / BENCH_DISCOVER_FILES change the size, BENCH_DISCOVER_ROUNDS the rounds).",
    ]
    return "\n".join(lines)
