"""remove_tree (what residue.purge.remove runs per residue) against `rm -rf` on the same 160k-entry tree.

The tree is built once as a template and copied (`cp -a`) before every measurement, so both tools delete
identical trees. It lives on a private tmpfs: on this shared machine's disk (ext4 mounted with `discard`,
other people's I/O) one `rm -rf` of the tree took anywhere from 49 s to 145 s, which measures the disk and
the neighbours, not the tools. BENCH_REMOVE_DIR=<dir> measures on another filesystem instead.
"""
import os
import platform
import resource
import shutil
import statistics
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(HERE)
sys.path.insert(0, os.path.join(REPO, ".build", "collections"))

from ansible_collections.residue.purge.plugins.module_utils._walk import remove_tree  # noqa: E402

TOP, MID, FILES = 40, 40, 99  # 1 + 40 + 1600 directories, 158,400 files: 160,041 entries
ROUNDS = int(os.environ.get("BENCH_REMOVE_ROUNDS", "5"))


def build(template):
    os.makedirs(template)
    for a in range(TOP):
        for b in range(MID):
            d = os.path.join(template, "r%d" % a, "s%d" % b)
            os.makedirs(d)
            for c in range(FILES):
                with open(os.path.join(d, "f%d.bin" % c), "wb") as f:
                    f.write(b"x" * ((a * 131 + b * 17 + c * 37) % 3000))


def copy(template, dest):
    subprocess.run(["cp", "-a", template, dest], check=True)


def du_bytes(path):
    return int(subprocess.run(["du", "-sB1", path], capture_output=True, text=True, check=True).stdout.split()[0])


def timed_rm(path):
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    start = time.perf_counter()
    subprocess.run(["rm", "-rf", "--", path], check=True)
    wall = time.perf_counter() - start
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    return wall, (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)


def cpu_seconds():
    """This process and its reaped children (remove_tree forks one remover)."""
    own, children = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    return own.ru_utime + own.ru_stime + children.ru_utime + children.ru_stime


def timed_ours(path):
    before = cpu_seconds()
    start = time.perf_counter()
    result = remove_tree(path)
    wall = time.perf_counter() - start
    return wall, cpu_seconds() - before, result


def timed_ours_process(path):
    code = ("import sys\nsys.path.insert(0, %r)\n"
            "from ansible_collections.residue.purge.plugins.module_utils._walk import remove_tree\n"
            "r = remove_tree(sys.argv[1])\nassert r.root_removed and not r.failed_count\n"
            % os.path.join(REPO, ".build", "collections"))
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    start = time.perf_counter()
    subprocess.run([sys.executable, "-c", code, path], check=True)
    wall = time.perf_counter() - start
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    return wall, (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)


def run(workdir):
    base = os.environ.get("BENCH_REMOVE_DIR")
    mounted = False
    if not base:
        base = os.path.join(workdir, "tmpfs")
        os.makedirs(base)
        subprocess.run(["mount", "-t", "tmpfs", "-o", "size=3g", "tmpfs", base], check=True)
        mounted = True
    try:
        return measure(base, "private tmpfs" if mounted else base)
    finally:
        if mounted:
            subprocess.run(["umount", base], check=True)


def measure(base, where):
    template = os.path.join(base, "template")
    build(template)
    entries = int(subprocess.run("find %s | wc -l" % template, shell=True, capture_output=True, text=True,
                                 check=True).stdout)
    expected_bytes = du_bytes(template)
    rm_wall, rm_cpu, ours_wall, ours_cpu, proc_wall, proc_cpu = [], [], [], [], [], []
    for i in range(ROUNDS):
        order = ["rm", "ours", "proc"] if i % 2 == 0 else ["proc", "ours", "rm"]
        for who in order:
            tree = os.path.join(base, "tree-%s-%d" % (who, i))
            copy(template, tree)
            if who == "rm":
                wall, cpu = timed_rm(tree)
                rm_wall.append(wall)
                rm_cpu.append(cpu)
            elif who == "ours":
                wall, cpu, result = timed_ours(tree)
                # honest numbers only: the same tree must really be gone, every entry counted
                assert not os.path.lexists(tree), tree
                assert result.failed_count == 0 and result.root_removed
                assert result.files + result.dirs == entries, (result.files, result.dirs, entries)
                assert result.bytes == expected_bytes, (result.bytes, expected_bytes)
                ours_wall.append(wall)
                ours_cpu.append(cpu)
            else:
                wall, cpu = timed_ours_process(tree)
                proc_wall.append(wall)
                proc_cpu.append(cpu)
                assert not os.path.lexists(tree), tree
            assert not os.path.lexists(tree), tree
    shutil.rmtree(template)
    med = statistics.median
    lines = [
        "## remove: `remove_tree` vs `rm -rf`",
        "",
        "%s, Python %s, %d cores (shared with other sessions). Tree: %d entries (%d directories, %d files of"
        " 0-3000 bytes, %d bytes by `du -sB1`) on a %s, copied fresh with `cp -a` before each deletion; %d"
        " alternating rounds, medians." % (platform.platform(), platform.python_version(), os.cpu_count(),
                                           entries, 1 + TOP + TOP * MID, TOP * MID * FILES, expected_bytes, where,
                                           ROUNDS),
        "",
        "| what | median wall s | ratio vs `rm -rf` | median CPU s (user+sys) |",
        "|---|---:|---:|---:|",
        "| `rm -rf` | %.3f | 1.00x | %.3f |" % (med(rm_wall), med(rm_cpu)),
        "| `_walk.remove_tree()` (fd-based, counts bytes/files, symlink-safe; 2 processes) | %.3f | %.2fx | %.3f |"
        % (med(ours_wall), med(ours_wall) / med(rm_wall), med(ours_cpu)),
        "| a Python process running `remove_tree()` (interpreter start + import included) | %.3f | %.2fx | %.3f |"
        % (med(proc_wall), med(proc_wall) / med(rm_wall), med(proc_cpu)),
        "",
        "CPU ratio (less sensitive to the neighbours than wall time): remove_tree %.2fx `rm -rf`. remove_tree"
        " makes one `lstat` per entry that `rm -rf` does not (it reports bytes and files, and checks every"
        " directory's identity before entering it); on a tmpfs, where deleting costs only CPU, that is what the"
        " ratio shows. Target (median wall within 1.2x of `rm -rf`): %s in this run." % (
            med(ours_cpu) / med(rm_cpu), "met" if med(ours_wall) <= 1.2 * med(rm_wall) else "NOT met"),
        "",
        "All rounds (wall s): rm -rf %s; remove_tree %s; process %s." % (
            ", ".join("%.2f" % x for x in rm_wall), ", ".join("%.2f" % x for x in ours_wall),
            ", ".join("%.2f" % x for x in proc_wall)),
        "",
        "Checked in every round before a time counts: the tree is gone, remove_tree counted every entry and the"
        " same bytes as `du -sB1`, nothing failed.",
        "",
        "Reproduce (root, for the tmpfs): `.venv/bin/python benchmarks/run.py remove`"
        " (BENCH_REMOVE_ROUNDS=n; BENCH_REMOVE_DIR=/some/dir to measure on that filesystem).",
    ]
    return "\n".join(lines) + "\n"
