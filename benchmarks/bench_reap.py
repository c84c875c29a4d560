"""reap: stop 200 matching processes (half ignore SIGTERM) with a 2 s grace period.

Ours: _procs.find_processes + stop_processes (signal all, one shared deadline, KILL the rest).
Peer: the usual shell loop, one process at a time: `kill PID; timeout 2 tail --pid=PID -f /dev/null || kill -9 PID`.
Both stop the same kind of process set, started fresh for each by a parent that reaps its children at once (so
neither side waits on zombies). Process names carry a random tag; only those PIDs are signalled.
"""
import json
import os
import shutil
import subprocess
import sys
import time
import uuid

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(os.path.dirname(HERE), ".build", "collections"))

from ansible_collections.residue.purge.plugins.module_utils import _procs  # noqa: E402  pylint: disable=C0413

COUNT = 200
GRACE = 2.0

# The parent of the benchmark processes: starts them (half with SIGTERM ignored, which survives exec), prints
# their pids, and reaps each one as soon as it exits.
SPAWNER = r"""
import json, os, signal, subprocess, sys
polite, stubborn, count = sys.argv[1], sys.argv[2], int(sys.argv[3])
def ignore_term():
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
kids = []
for i in range(count):
    if i % 2:
        kids.append(subprocess.Popen([stubborn, "600"], preexec_fn=ignore_term))
    else:
        kids.append(subprocess.Popen([polite, "600"]))
print(json.dumps([k.pid for k in kids]), flush=True)
for k in kids:
    k.wait()
"""


def start(workdir, tag, count):
    polite = os.path.join(workdir, tag + "-polite")
    stubborn = os.path.join(workdir, tag + "-stubborn")
    for link in (polite, stubborn):
        if not os.path.lexists(link):
            os.symlink(shutil.which("sleep"), link)
    spawner = subprocess.Popen([sys.executable, "-c", SPAWNER, polite, stubborn, str(count)], stdout=subprocess.PIPE)
    pids = json.loads(spawner.stdout.readline())
    # wait until every child runs the tagged executable (not the forked python any more)
    names = [os.path.basename(polite)[:15], os.path.basename(stubborn)[:15]]
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        ready = 0
        for pid in pids:
            try:
                with open("/proc/%d/comm" % pid) as f:
                    ready += f.read().strip() in names
            except OSError:
                pass
        if ready == len(pids):
            break
        time.sleep(0.05)
    return spawner, pids, [os.path.basename(polite), os.path.basename(stubborn)]


def cleanup(spawner, pids):
    for pid in pids:
        try:
            with open("/proc/%d/comm" % pid) as f:
                if "rp-bench" in f.read():
                    os.kill(pid, 9)
        except OSError:
            pass
    spawner.wait(30)


def ours(workdir, tag, count):
    spawner, pids, names = start(workdir, tag, count)
    try:
        began = time.monotonic()
        found = _procs.find_processes(names=names)
        terminated, survivors = _procs.stop_processes(found, grace=GRACE)
        elapsed = time.monotonic() - began
    finally:
        cleanup(spawner, pids)
    outcomes = {}
    for entry in terminated:
        outcomes[entry["outcome"]] = outcomes.get(entry["outcome"], 0) + 1
    return elapsed, len(found), outcomes, len(survivors)


def peer(workdir, tag, count):
    spawner, pids, _names = start(workdir, tag, count)
    script = ('for p in %s; do kill "$p"; timeout %g tail --pid="$p" -s 0.02 -f /dev/null || kill -9 "$p"; done'
              % (" ".join(str(p) for p in pids), GRACE))
    try:
        began = time.monotonic()
        subprocess.run(["bash", "-c", script], check=False)
        elapsed = time.monotonic() - began
    finally:
        cleanup(spawner, pids)
    return elapsed


def run(workdir):
    tag = "rp-bench-" + uuid.uuid4().hex[:6]
    ours_time, matched, outcomes, survivors = ours(workdir, tag + "a", COUNT)
    repeat_time, repeat_matched, repeat_outcomes, repeat_survivors = ours(workdir, tag + "b", COUNT)
    peer_time = peer(workdir, tag + "c", COUNT)
    lines = [
        "## reap: %d processes, half ignoring SIGTERM, grace %g s" % (COUNT, GRACE),
        "",
        "| run | wall time | matched | outcomes | survivors |",
        "|---|---|---|---|---|",
        "| ours (`_procs.stop_processes`, parallel wait) | %.2f s | %d | %s | %d |" % (
            ours_time, matched, ", ".join("%s %d" % kv for kv in sorted(outcomes.items())), survivors),
        "| ours, repeated on a fresh set | %.2f s | %d | %s | %d |" % (
            repeat_time, repeat_matched, ", ".join("%s %d" % kv for kv in sorted(repeat_outcomes.items())),
            repeat_survivors),
        "| peer: shell loop `kill; timeout %g tail --pid; kill -9` per PID | %.2f s | %d | - | - |" % (
            GRACE, peer_time, COUNT),
        "",
        "Ratio ours / peer: **%.3f** (peer is %.0fx slower). Ours is %.2f s above the %g s grace period "
        "(matching %d processes, signalling, polling, KILL and reaping included)." % (
            ours_time / peer_time, peer_time / ours_time, ours_time - GRACE, GRACE, COUNT),
        "",
        "Machine: %s, load average at the end %.2f (shared machine)." % (machine(), os.getloadavg()[0]),
        "Reproduce: `.venv/bin/python benchmarks/run.py reap`",
    ]
    return "\n".join(lines) + "\n"


def machine():
    import platform
    return "%s, Python %s, %d cores" % (platform.platform(), platform.python_version(), os.cpu_count())
