"""_walk.usage (what discover sizes residues with) against `du -sB1` on the same 160k-entry tree.

The tree is on this machine's ordinary disk (ext4), page cache warm (one untimed pass of each first).
Read-only, so disk noise from other sessions matters far less than for removal.
"""
import os
import platform
import resource
import statistics
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(HERE)
sys.path.insert(0, os.path.join(REPO, ".build", "collections"))

from ansible_collections.residue.purge.plugins.module_utils._walk import usage  # noqa: E402

TOP, MID, FILES = 40, 40, 99  # 1 + 40 + 1600 directories, 158,400 files: 160,041 entries
ROUNDS = int(os.environ.get("BENCH_WALK_ROUNDS", "7"))


def build(root):
    for a in range(TOP):
        for b in range(MID):
            d = os.path.join(root, "r%d" % a, "s%d" % b)
            os.makedirs(d)
            for c in range(FILES):
                name = os.path.join(d, "f%d.bin" % c)
                with open(name, "wb") as f:
                    f.write(b"x" * ((a * 131 + b * 17 + c * 37) % 9000))
                if c % 50 == 0:  # some hard links, which both count once
                    os.link(name, name + ".link")


def du_run(path):
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    start = time.perf_counter()
    out = subprocess.run(["du", "-sB1", path], capture_output=True, text=True, check=True).stdout
    wall = time.perf_counter() - start
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    return wall, (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime), int(out.split()[0])


def cpu_seconds():
    """This process and its reaped children (usage() forks one walker)."""
    own, children = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    return own.ru_utime + own.ru_stime + children.ru_utime + children.ru_stime


def ours_run(path):
    before = cpu_seconds()
    start = time.perf_counter()
    result = usage(path)
    wall = time.perf_counter() - start
    return wall, cpu_seconds() - before, result


def run(workdir):
    root = os.path.join(workdir, "tree")
    build(root)
    entries = 1 + sum(len(d) + len(f) for _p, d, f in os.walk(root))
    du_run(root)
    ours_run(root)
    du_wall, du_cpu, our_wall, our_cpu = [], [], [], []
    for i in range(ROUNDS):
        for who in (("du", "ours") if i % 2 == 0 else ("ours", "du")):
            if who == "du":
                wall, cpu, du_bytes = du_run(root)
                du_wall.append(wall)
                du_cpu.append(cpu)
            else:
                wall, cpu, result = ours_run(root)
                our_wall.append(wall)
                our_cpu.append(cpu)
        # honest numbers only: same answer as du in every round
        assert result.bytes == du_bytes and not result.problems, (result.bytes, du_bytes)
    med = statistics.median
    subprocess.run(["rm", "-rf", "--", root], check=True)
    lines = [
        "## walk: `_walk.usage()` vs `du -sB1`",
        "",
        "%s, Python %s, %d cores (shared with other sessions). Tree: %d entries (%d directories, files of"
        " 0-9000 bytes, every 50th file hard-linked once) on the machine's ext4 disk, page cache warm; %d"
        " alternating rounds, medians." % (platform.platform(), platform.python_version(), os.cpu_count(), entries,
                                           1 + TOP + TOP * MID, ROUNDS),
        "",
        "| what | median wall s | ratio vs `du -sB1` | median CPU s (user+sys) |",
        "|---|---:|---:|---:|",
        "| `du -sB1` | %.3f | 1.00x | %.3f |" % (med(du_wall), med(du_cpu)),
        "| `_walk.usage()` (fd-based, hard links once, times, problems; 2 processes) | %.3f | %.2fx | %.3f |"
        % (med(our_wall), med(our_wall) / med(du_wall), med(our_cpu)),
        "",
        "All rounds (wall s): du %s; usage %s." % (", ".join("%.3f" % x for x in du_wall),
                                                   ", ".join("%.3f" % x for x in our_wall)),
        "",
        "Checked in every round: `usage().bytes` equals `du -sB1` (%d bytes), no problems. Target (median wall"
        " within 2x of `du -sB1`): %s in this run." % (du_bytes, "met" if med(our_wall) <= 2 * med(du_wall) else "NOT met"),
        "",
        "Reproduce: `.venv/bin/python benchmarks/run.py walk` (BENCH_WALK_ROUNDS=n).",
    ]
    return "\n".join(lines) + "\n"
