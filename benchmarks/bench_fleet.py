"""fleet: playbooks/purge.yml against 1, 10 and 50 lab hosts, next to an ansible.builtin.ping playbook on the same hosts.

Each size gets fresh lab hosts (tools/lab/lab.sh, lab name "awxb"), every host seeded alike (tools/lab/seed.yml with
lab_scale=1: the Open-AutoGLM installation of molecule/default), then, with forks = hosts:
  - purge.yml (targets open_autoglm) -- wall time, the host phases and the report play timed apart (a callback
    records when each play starts), controller peak memory (sum of PSS over ansible-playbook, its forks and their
    ssh/ProxyCommand children, sampled every 0.5 s); the fleet report must show every host ok;
  - a one-task ansible.builtin.ping playbook (what Ansible itself costs for that many hosts).
At the largest size the settings that matter at scale are measured one at a time, each on freshly seeded hosts:
pipelining off, strategy free, forks 5 (Ansible's default). SSH control sockets go to a fresh directory per run, so
no run reuses another's connections.
"""
import json
import os
import platform
import subprocess
import sys
import tempfile
import threading
import time

import psutil

HERE = os.path.dirname(os.path.abspath(__file__))
TOP = os.path.dirname(HERE)
LAB_SH = os.path.join(TOP, "tools", "lab", "lab.sh")
LAB = os.environ.get("BENCH_FLEET_LAB", "awxb")  # lab.sh name: several sessions may run labs at once
SIZES = [int(n) for n in os.environ.get("BENCH_FLEET_SIZES", "1,10,50").split(",")]
VARIANTS = os.environ.get("BENCH_FLEET_VARIANTS", "1") != "0"
PY = sys.executable
MAIN = {"label": "forks = hosts, pipelining on, strategy linear", "pipelining": True, "strategy": "linear"}
AT_SCALE = [
    {"label": "pipelining off", "pipelining": False, "strategy": "linear"},
    {"label": "strategy free", "pipelining": True, "strategy": "free"},
    {"label": "forks 5 (Ansible's default)", "pipelining": True, "strategy": "linear", "forks": 5},
]
CGROUP_ROOT = "/sys/fs/cgroup/cpuacct"  # cgroup v1 cpuacct (this machine); None of it is needed for the wall times
PING_PLAY = [{"name": "Ping", "hosts": "all", "gather_facts": False, "tasks": [{"ansible.builtin.ping": {}}]}]


def env(extra=None):
    out = dict(os.environ)
    out.update(ANSIBLE_COLLECTIONS_PATH=os.path.join(TOP, ".build", "collections"),
               ANSIBLE_COLLECTIONS_SCAN_SYS_PATH="false", ANSIBLE_NOCOLOR="1", ANSIBLE_RETRY_FILES_ENABLED="0",
               ANSIBLE_LOCALHOST_WARNING="0", PATH=os.path.dirname(PY) + os.pathsep + os.environ["PATH"])
    out.update(extra or {})
    return out


def lab(*args):
    return subprocess.run([LAB_SH, "--lab", LAB] + list(args), env=env(), capture_output=True, text=True, check=True,
                          timeout=600).stdout


def fresh_hosts(n):
    """n lab hosts, seeded alike; returns the inventory path and the seeding time."""
    lab("down")
    lab("up", str(n))
    inventory = lab("inventory").strip()
    start = time.perf_counter()
    # every host at once (forks = n), no byte-identical manifest (nothing here compares it)
    seed = subprocess.run(["ansible-playbook", "-i", inventory, os.path.join(TOP, "tools", "lab", "seed.yml"),
                           "-f", str(n), "-e", "lab_scale=1", "-e", "lab_manifest=false"],
                          env=env({"ANSIBLE_PIPELINING": "1", "ANSIBLE_TIMEOUT": "60"}),
                          capture_output=True, text=True, timeout=1800, check=False)
    if seed.returncode != 0:
        raise RuntimeError("seeding %d hosts failed:\n%s" % (n, seed.stdout[-3000:]))
    return inventory, time.perf_counter() - start


def cgroup(name):
    """A fresh cpuacct cgroup (its path), or None where there is no writable cgroup v1 cpuacct hierarchy."""
    path = os.path.join(CGROUP_ROOT, "bench-fleet-%s-%s" % (LAB, name))
    try:
        if os.path.isdir(path):
            os.rmdir(path)
        os.mkdir(path)
    except OSError:
        return None
    return path


def cgroup_cpu(path):
    if path is None:
        return None
    with open(os.path.join(path, "cpuacct.usage")) as f:
        return int(f.read().strip()) / 1e9


def cgroup_drop(path):
    """Move what is left in the cgroup back to the root and remove it."""
    if path is None:
        return
    for _attempt in range(5):
        with open(os.path.join(path, "cgroup.procs")) as f:
            pids = f.read().split()
        for pid in pids:
            try:
                with open(os.path.join(CGROUP_ROOT, "cgroup.procs"), "w") as f:
                    f.write(pid)
            except OSError:
                pass
        try:
            os.rmdir(path)
            return
        except OSError:
            time.sleep(0.2)


def host_processes():
    """Every process of this lab's hosts: the recorded unshare PIDs and all their descendants."""
    state = os.path.join(TOP, ".build", "lab", LAB)
    procs = []
    for name in sorted(os.listdir(state)) if os.path.isdir(state) else []:
        try:
            with open(os.path.join(state, name, "pid")) as f:
                root = psutil.Process(int(f.read().strip()))
            procs += [root] + root.children(recursive=True)
        except (IOError, OSError, ValueError, psutil.NoSuchProcess):
            continue
    return procs


def hosts_into(path):
    """Put every lab host process into the cgroup; what they start from now on is counted there too."""
    if path is None:
        return
    for _attempt in range(2):  # a process forked while moving the others is caught by the second pass
        for proc in host_processes():
            try:
                with open(os.path.join(path, "cgroup.procs"), "w") as f:
                    f.write(str(proc.pid))
            except OSError:
                pass


def tree_pss(root):
    total = 0
    try:
        procs = [root] + root.children(recursive=True)
    except psutil.NoSuchProcess:
        return 0
    for proc in procs:
        try:
            total += proc.memory_full_info().pss
        except (psutil.NoSuchProcess, psutil.AccessDenied):
            pass
    return total


def timed(cmd, run_env, workdir, name):
    """Run cmd; wall seconds, peak PSS of its process tree, the bench_timer record, rc, output file, and the CPU
    seconds of the controller (cmd and everything it starts, ssh masters included) and of the lab hosts, in all and
    at every task start (bench_cpu)."""
    timer = os.path.join(workdir, name + ".timer.json")
    cpu_out = os.path.join(workdir, name + ".cpu.json")
    log = os.path.join(workdir, name + ".log")
    controller, hosts = cgroup("controller"), cgroup("hosts")
    hosts_into(hosts)
    groups = ",".join("%s=%s" % (label, os.path.join(path, "cpuacct.usage"))
                      for label, path in (("controller", controller), ("hosts", hosts)) if path)
    run_env = dict(run_env, BENCH_TIMER_OUT=timer, ANSIBLE_CALLBACK_PLUGINS=os.path.join(HERE, "callback_plugins"),
                   ANSIBLE_CALLBACKS_ENABLED="bench_timer,bench_cpu", BENCH_CPU_OUT=cpu_out, BENCH_CPU_CGROUPS=groups,
                   ANSIBLE_SSH_CONTROL_PATH_DIR=tempfile.mkdtemp(prefix="cp-", dir=workdir))
    if controller:  # the command joins the controller's cgroup before it starts anything
        cmd = ["/bin/sh", "-c", 'echo $$ > "$0" && exec "$@"', os.path.join(controller, "cgroup.procs")] + cmd
    peak = [0]
    with open(log, "w") as out:
        start_wall = time.time()
        start = time.perf_counter()
        proc = subprocess.Popen(cmd, env=run_env, stdout=out, stderr=subprocess.STDOUT)
        root = psutil.Process(proc.pid)

        def sample():
            while proc.poll() is None:
                peak[0] = max(peak[0], tree_pss(root))
                time.sleep(0.5)

        sampler = threading.Thread(target=sample)
        sampler.start()
        rc = proc.wait()
        wall = time.perf_counter() - start
        sampler.join()
    time.sleep(1)  # ssh masters (ControlPersist) and the hosts' sshd sessions wind down
    cpu = {"controller": cgroup_cpu(controller), "hosts": cgroup_cpu(hosts)}
    cgroup_drop(controller)
    cgroup_drop(hosts)
    with open(timer) as f:
        record = json.load(f)
    record["process_start"] = start_wall
    marks = []
    if os.path.exists(cpu_out):
        with open(cpu_out) as f:
            marks = json.load(f)
    return {"wall": wall, "peak_pss": peak[0], "timer": record, "rc": rc, "log": log, "cpu": cpu, "marks": marks}


def per_task(marks, n):
    """[(task, controller CPU s, hosts CPU s)] per task (the time from its start to the next mark), per host."""
    out = []
    for a, b in zip(marks, marks[1:]):
        c = [(b["cpu"].get(k) or 0) - (a["cpu"].get(k) or 0) for k in ("controller", "hosts")]
        out.append((a["task"], c[0] / n, c[1] / n, b["time"] - a["time"]))
    return out


def run_config(n, config, workdir):
    inventory, seed_seconds = fresh_hosts(n)
    forks = config.get("forks", n)
    tag = "%d-%s" % (n, config["label"].split()[0] + config["label"].split()[1].strip("(,="))
    report_dir = os.path.join(workdir, "report-" + tag)
    run_env = env({"ANSIBLE_PIPELINING": "1" if config["pipelining"] else "0", "ANSIBLE_STRATEGY": config["strategy"],
                   "ANSIBLE_TIMEOUT": "60"})
    time.sleep(5)  # let the seeding's load settle
    load = os.getloadavg()[0]
    extra = json.dumps({"residue_targets": ["open_autoglm"], "residue_report_dir": report_dir})
    purge = timed(["ansible-playbook", "-i", inventory, os.path.join(TOP, "playbooks", "purge.yml"),
                   "-f", str(forks), "-e", extra], run_env, workdir, "purge-" + tag)
    if purge["rc"] != 0:
        with open(purge["log"]) as f:
            raise RuntimeError("purge on %d hosts (%s) failed:\n%s" % (n, config["label"], f.read()[-4000:]))
    with open(os.path.join(report_dir, "latest", "fleet.json")) as f:
        fleet = json.load(f)
    statuses = {r["host"]: r["status"] for r in fleet["hosts"]}
    if len(statuses) != n or set(statuses.values()) != {"ok"}:
        raise RuntimeError("purge on %d hosts (%s): not every host ok: %s" % (n, config["label"], statuses))
    if fleet["summary"]["stopped"] < n or fleet["summary"]["freed_bytes"] <= 0:
        raise RuntimeError("purge on %d hosts stopped or freed nothing: %s" % (n, fleet["summary"]))
    play = os.path.join(workdir, "ping.json")
    with open(play, "w") as f:
        json.dump(PING_PLAY, f)
    ping = timed(["ansible-playbook", "-i", inventory, play, "-f", str(forks)], run_env, workdir, "ping-" + tag)
    if ping["rc"] != 0:
        raise RuntimeError("ping on %d hosts failed" % n)
    plays = purge["timer"]["plays"]
    report_start = [p["start"] for p in plays if p["name"] == "Report"][0]
    return {
        "hosts": n, "label": config["label"], "forks": forks, "load": load, "seed": seed_seconds,
        "wall": purge["wall"], "peak_pss": purge["peak_pss"],
        "startup": plays[0]["start"] - purge["timer"]["process_start"],
        "phases": report_start - plays[0]["start"],
        "report": purge["timer"]["end"] - report_start,
        "ping": ping["wall"], "ping_pss": ping["peak_pss"],
        "freed": fleet["summary"]["freed_bytes"],
        "load_end": os.getloadavg()[0],
        "cpu": purge["cpu"], "ping_cpu": ping["cpu"], "tasks": per_task(purge["marks"], n),
    }


def row(r):
    mb = 1024.0 * 1024.0
    return "| %d | %s | %.1f | %.2f | %.1f | %.2f | %.1f | %.1f | %.0f MB | %.0f MB | %.1f |" % (
        r["hosts"], r["label"], r["wall"], r["wall"] / r["hosts"], r["phases"], r["report"], r["ping"],
        r["wall"] - r["ping"], r["peak_pss"] / mb, r["ping_pss"] / mb, r["load"])


def per_host(cpu, n, key):
    value = (cpu or {}).get(key)
    return "-" if value is None else "%.2f" % (value / n)


def cpu_row(r):
    """CPU seconds per host: controller (ansible-playbook and all it starts) and the lab hosts, purge and ping; the
    2-core bound they imply (the whole run's CPU over the 2 cores, when nothing else ran)."""
    n, cpu, ping = r["hosts"], r.get("cpu") or {}, r.get("ping_cpu") or {}
    total = (cpu.get("controller") or 0) + (cpu.get("hosts") or 0)
    ping_total = (ping.get("controller") or 0) + (ping.get("hosts") or 0)
    return "| %d | %s | %s | %s | %.2f | %s | %s | %.2f | %.0f | %.0f | %.1f -> %.1f |" % (
        n, r["label"], per_host(cpu, n, "controller"), per_host(cpu, n, "hosts"), total / n,
        per_host(ping, n, "controller"), per_host(ping, n, "hosts"), ping_total / n,
        total / (os.cpu_count() or 1), r["wall"], r["load"], r.get("load_end", 0.0))


def task_lines(r, top=14):
    """The tasks that cost the most CPU per host (controller + hosts) in run r."""
    tasks = sorted(r.get("tasks") or [], key=lambda t: -(t[1] + t[2]))[:top]
    lines = ["| task | controller CPU s per host | hosts CPU s per host |", "|---|---:|---:|"]
    lines += ["| %s | %.3f | %.3f |" % (t[0].replace("|", "/"), t[1], t[2]) for t in tasks]
    return lines


def run(workdir):
    results = []
    try:
        for n in SIZES:
            print("   fleet: %d host(s), %s" % (n, MAIN["label"]), flush=True)
            results.append(run_config(n, MAIN, workdir))
        if VARIANTS:
            for config in AT_SCALE:
                print("   fleet: %d host(s), %s" % (max(SIZES), config["label"]), flush=True)
                results.append(run_config(max(SIZES), config, workdir))
    finally:
        lab("down")
    main = dict((r["hosts"], r) for r in results if r["label"] == MAIN["label"])
    small, large = main[min(SIZES)], main[max(SIZES)]
    ratio = large["wall"] / small["wall"]
    lines = [
        "## fleet: a whole purge on 1 to %d hosts" % max(SIZES),
        "",
        "playbooks/purge.yml (targets `open_autoglm`) on fresh lab hosts (own network/PID/mount namespaces and sshd, "
        "reached over SSH), every host seeded alike (`tools/lab/seed.yml -e lab_scale=1`: a respawning daemon holding "
        "its model open, two users' caches and HF repos, a system HF cache, a shared virtualenv, cron lines); next to "
        "it a one-task `ansible.builtin.ping` playbook on the same hosts, same settings. Machine: %s, Python %s, %d "
        "cores; controller and all hosts share these cores. Load average (1 min) before each run in the last column."
        % (platform.platform(), platform.python_version(), os.cpu_count()),
        "",
        "| hosts | settings | purge wall s | s per host | host phases s | report play s | ping wall s "
        "| purge - ping s | controller peak PSS (purge) | (ping) | load |",
        "|---:|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ] + [row(r) for r in results] + [
        "",
        "CPU seconds per host (load-independent: cpuacct cgroups, one for ansible-playbook and everything it starts, "
        "ssh masters included, one for every process of the lab hosts; the hosts' column includes the seeded daemon "
        "until it is stopped). No run on these %d cores can be shorter than its CPU spread over them "
        "(column `purge CPU / cores`), next to the measured wall time; load average (1 min) at the start and the end."
        % (os.cpu_count() or 1),
        "",
        "| hosts | settings | purge: controller | hosts | all | ping: controller | hosts | all "
        "| purge CPU / cores s | purge wall s | load |",
        "|---:|---|---:|---:|---:|---:|---:|---:|---:|---:|---|",
    ] + [cpu_row(r) for r in results] + [
        "",
        "Where a host's CPU goes (the %d-host run; a task's cost is the CPU between its start and the next task's, "
        "the linear strategy runs it on every host before the next starts):" % large["hosts"],
        "",
    ] + task_lines(large) + [
        "",
        "- %d hosts take %.2fx the time of %d host (target: within 3x): %s. Ping alone, Ansible's fixed cost, grows "
        "%.2fx over the same range." % (max(SIZES), ratio, min(SIZES), "met" if ratio <= 3 else "NOT met",
                                        large["ping"] / small["ping"]),
        "- Report play (controller only: records, fleet JSON/Markdown/HTML, set_stats): %s. Each added host costs "
        "%s: a fixed cost plus a constant amount per host, i.e. linear in hosts."
        % (", ".join("%.2f s at %d host(s)" % (main[n]["report"], n) for n in sorted(main)),
           " and ".join("%.0f ms from %d to %d hosts" % (1000.0 * (main[b]["report"] - main[a]["report"]) / (b - a), a, b)
                        for a, b in zip(sorted(main), sorted(main)[1:]))),
        "- Every run's fleet report showed every host `ok` with the daemon stopped and bytes freed (checked before "
        "the figures are written). ssh timeout 60 s (ANSIBLE_TIMEOUT) for every run.",
        "- Seeding (not timed in the table; every host at once, forks = hosts, no manifest): %s."
        % ", ".join("%.0f s for %d host(s)" % (r["seed"], r["hosts"]) for r in results),
        "",
        "Reproduce: `.venv/bin/python benchmarks/run.py fleet` as root (BENCH_FLEET_SIZES=1,10,50, "
        "BENCH_FLEET_VARIANTS=0 skips the settings at scale, BENCH_FLEET_LAB names the lab).",
    ]
    return "\n".join(lines)
