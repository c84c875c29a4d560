"""hf_cache: deleting one repo from a >= 160,000-entry hub cache, ours vs huggingface_hub, same result.

Ours: `hf_run.run` (what the module runs: scan, plan, lock probes, /proc open-file check, fd-based
deletion). Peer: `huggingface_hub.scan_cache_dir(...).delete_revisions(<every revision of the repo>).execute()`.
Each round works on two identical copies of the generated cache, each made equal to the source again before
the round (`cp -a` the first time, then `rsync -aH --delete`, which writes back only what the last round
deleted or rewrote: a ~230k-entry `cp -a` plus its removal took minutes per copy on this machine's disk) and
checked equal to it (every path, link target and manifest's content); after the round, the two trees must list
the same files (huggingface_hub leaves the repo's .locks entry, which hf_cache removes too: that folder is
excluded from the comparison) and the freed bytes must agree, or no time is reported. The copies are real
copies, not hard links: hf_cache's scan and freed-bytes accounting treat a file with more than one link
differently (counted once; a payload's bytes are freed with its last link only). Setup, checks and
the removal of the trees (`rm -rf`, once at the end) are outside the timed region.
"""
import os
import resource
import statistics
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(os.path.dirname(HERE), ".build", "collections"))

from ansible_collections.residue.purge.plugins.module_utils._hfcache import plan as hf_plan, run as hf_run  # noqa: E402
from ansible_collections.residue.purge.tests.unit.support import hfgen, hfshared  # noqa: E402

sys.path.insert(0, HERE)
import _hfbuild  # noqa: E402

REPOS = int(os.environ.get("BENCH_HF_REPOS", "420"))
FILES = int(os.environ.get("BENCH_HF_FILES", "120"))
ROUNDS = int(os.environ.get("BENCH_HF_ROUNDS", "5"))


def _cpu():
    """User+sys CPU of this process and its reaped children (the scan's forked child among them)."""
    return sum(u.ru_utime + u.ru_stime for u in (resource.getrusage(resource.RUSAGE_SELF),
                                                 resource.getrusage(resource.RUSAGE_CHILDREN)))


def timed(fn):
    cpu, start = _cpu(), time.perf_counter()
    result = fn()
    return time.perf_counter() - start, _cpu() - cpu, result


def listing_without_locks(root):
    """Every file, link target and manifest content, the repos' .locks folder aside."""
    return [p for p in hfshared.listing(root) if not p.startswith(".locks" + os.sep)]


def restore(source, path, expected):
    """Make path identical to source (cp -a when it is absent, else rsync -aH --delete), check it against
    source's listing `expected`, and flush the writes so that no writeback of the setup overlaps a timing."""
    if os.path.isdir(path):
        subprocess.run(["rsync", "-aH", "--delete", source + "/", path + "/"], check=True)
    else:
        subprocess.run(["cp", "-a", source, path], check=True)
    assert hfshared.listing(path) == expected, "%s differs from %s after the restore" % (path, source)
    os.sync()


def measure(workdir, source, victim):
    """(ours wall, ours CPU, theirs wall, theirs CPU, freed bytes, store payloads freed, [(ours wall, theirs wall)],
    [load average (1 min) before each round], median setup seconds per round): medians of ROUNDS rounds, each
    checked."""
    import huggingface_hub

    ours_w, ours_c, hf_w, hf_c, loads, setups = [], [], [], [], [], []
    payloads = 0
    expected = hfshared.listing(source)
    a, b = os.path.join(workdir, "ours"), os.path.join(workdir, "theirs")
    for dummy in range(ROUNDS):
        start = time.perf_counter()
        for path in (a, b):
            restore(source, path, expected)
        setups.append(time.perf_counter() - start)
        loads.append(os.getloadavg()[0])

        selection = hf_plan.RepoSelection(patterns=[victim.repo_id], revisions="all")
        wall, cpu, result = timed(lambda: hf_run.clean([a], selection))
        assert not result["failures"] and not result["held_back"], result
        ours_w.append(wall)
        ours_c.append(cpu)

        def theirs():
            info = huggingface_hub.scan_cache_dir(b)
            commits = [rev.commit_hash for r in info.repos if r.repo_id == victim.repo_id for rev in r.revisions]
            strategy = info.delete_revisions(*commits)
            strategy.execute()
            return strategy
        wall, cpu, strategy = timed(theirs)
        hf_w.append(wall)
        hf_c.append(cpu)

        assert [d["repo_id"] for d in result["deleted"]] == [victim.repo_id]
        assert result["freed_bytes"] == strategy.expected_freed_size
        assert listing_without_locks(a) == listing_without_locks(b)
        assert not os.path.exists(os.path.join(a, ".locks", victim.folder))
        payloads = result["deleted"][0]["store_payloads_deleted"]
        print("  round %d: ours %.2f s (CPU %.2f), huggingface_hub %.2f s (CPU %.2f), load %.1f, setup %.0f s" % (
            dummy + 1, ours_w[-1], ours_c[-1], hf_w[-1], hf_c[-1], loads[-1], setups[-1]), flush=True)
    med = statistics.median
    return (med(ours_w), med(ours_c), med(hf_w), med(hf_c), result["freed_bytes"], payloads,
            list(zip(ours_w, hf_w)), loads, med(setups), list(zip(ours_c, hf_c)))


def remove(*paths):
    """rm -rf, outside any timing (Python's rmtree is slower on this many entries)."""
    subprocess.run(["rm", "-rf", "--"] + [p for p in paths if os.path.lexists(p)], check=True)


def run(workdir):
    import huggingface_hub

    plain = _hfbuild.build(os.path.join(workdir, "source"), REPOS, FILES)
    source, entries = plain["path"], plain["entries"]
    print("  plain cache: %d entries, %s" % (entries, _hfbuild.how_built(plain)), flush=True)
    made = [hfgen.GenRepo(r[0], r[1], os.path.join(source, r[2])) for r in plain["repos"]]
    victim = made[len(made) // 2]
    load_before = os.getloadavg()
    started = time.time()
    ow, oc, hw, hc, _freed, _p, rounds, loads, setup, cpus = measure(workdir, source, victim)
    # the same cache, copied, with a quarter of the blobs moved into huggingface_hub 2.x's shared store by its
    # own code, payloads shared between repos (one payload per 16 repo blobs of the cache); built once, and
    # the two working copies are brought to it by rsync (only the difference is written)
    store = _hfbuild.build(os.path.join(workdir, "source-shared"), REPOS, FILES, share=True, copy_of=plain)
    shared, shared_entries = store["path"], store["entries"]
    print("  shared-store cache: %d entries, %s" % (shared_entries, _hfbuild.how_built(store)), flush=True)
    sw, sc, shw, shc, sfreed, spayloads, srounds, sloads, ssetup, scpus = measure(workdir, shared, victim)
    load_after = os.getloadavg()
    minutes = (time.time() - started) / 60
    remove(source, shared, os.path.join(workdir, "ours"), os.path.join(workdir, "theirs"))
    all_loads = loads + sloads

    return "\n".join([
        "## hf_cache: deleting one repo from a large hub cache",
        "",
        "Cache: %d repos x 2 revisions x %d files (80%% of blobs shared between revisions), %d entries, on the "
        "machine's ext4 disk; one repo (%s, %d blobs) removed whole. Machine: %s. Load average (1, 5, 15 min) "
        "before the timings %s, after them %s (%.0f minutes later); 1-min load average at the start of each "
        "round: %s (the two cores are shared with other jobs: the ratios, each against its peer measured in the "
        "same rounds, are the figures to compare). Wall and CPU (user+sys of the process and its children: our "
        "scan forks one) are medians of %d rounds; each round ours then huggingface_hub's, each on its own copy "
        "of the cache made equal to the source before the round (rsync -aH --delete, checked path by path; "
        "setup not timed: median %.0f s per round plain, %.0f s shared-store)." % (
            REPOS, FILES, entries, victim.repo_id, FILES + int(FILES * 0.2), machine(),
            "/".join("%.1f" % x for x in load_before), "/".join("%.1f" % x for x in load_after), minutes,
            "%.1f-%.1f" % (min(all_loads), max(all_loads)), ROUNDS, setup, ssetup),
        "Checked each round: both trees list the same files afterwards (the repo's .locks folder aside, which "
        "hf_cache also removes) and freed bytes equal huggingface_hub %s's expected_freed_size." % (
            huggingface_hub.__version__),
        "",
        "| tool | wall (median of %d) | CPU user+sys (median of %d) | ratio (CPU; wall) |" % (ROUNDS, ROUNDS),
        "|---|---|---|---|",
        "| residue.purge `hf_run.clean` (scan, plan, lock and open-file checks, delete) | %.3f s | %.3f s | 1.00 |" % (
            ow, oc),
        "| huggingface_hub `scan_cache_dir` + `delete_revisions().execute()` | %.3f s | %.3f s | "
        "ours is %.1fx faster (wall %.1fx) |" % (hw, hc, hc / oc, hw / ow),
        "",
        "Shared-store cache (huggingface_hub 2.x): the same cache with 25%% of the blobs moved into "
        "`<cache>/blobs/<xx>/<xet hash>` by huggingface_hub's own publish/link functions, %d payloads referenced "
        "by %d repo blobs across repos, %d entries (%s); the same repo removed, which frees %d bytes including "
        "%d payloads no other repo references. Checked each round as above, manifests' contents included." % (
            len(store["moved"]), sum(store["moved"].values()), shared_entries, _hfbuild.how_built(store), sfreed,
            spayloads),
        "",
        "| tool | wall (median of %d) | CPU user+sys (median of %d) | ratio (CPU; wall) |" % (ROUNDS, ROUNDS),
        "|---|---|---|---|",
        "| residue.purge `hf_run.clean` on the shared-store cache | %.3f s | %.3f s | 1.00 |" % (sw, sc),
        "| huggingface_hub `scan_cache_dir` + `delete_revisions().execute()` | %.3f s | %.3f s | "
        "ours is %.1fx faster (wall %.1fx) |" % (shw, shc, shc / sc, shw / sw),
        "",
        "Against huggingface_hub in the same rounds, ours is %.1fx faster in CPU (wall %.1fx) on the plain cache "
        "and %.1fx (wall %.1fx) on the shared-store one; ours on the shared-store cache takes %.2fx its CPU on the "
        "plain one (huggingface_hub: %.2fx)." % (hc / oc, hw / ow, shc / sc, shw / sw, sc / oc, shc / hc),
        "All rounds (wall s, ours / huggingface_hub): plain %s; shared-store %s." % tuple(
            ", ".join("%.2f/%.2f" % pair for pair in r) for r in (rounds, srounds)),
        "All rounds (CPU s, ours / huggingface_hub): plain %s; shared-store %s." % tuple(
            ", ".join("%.2f/%.2f" % pair for pair in r) for r in (cpus, scpus)),
        "",
        "Reproduce: `.venv/bin/python benchmarks/run.py hf_cache` (env BENCH_HF_REPOS, BENCH_HF_FILES resize it, "
        "BENCH_HF_ROUNDS sets the rounds; needs rsync).",
    ])


def machine():
    import platform
    return "%s, Python %s, %d cores" % (platform.platform(), platform.python_version(), os.cpu_count())


if __name__ == "__main__":
    import tempfile
    with tempfile.TemporaryDirectory() as tmp:
        print(run(tmp))
