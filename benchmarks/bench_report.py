"""report: the report play alone (roles/report on the controller) for 1, 10 and 50 hosts.

No host is contacted: every host of the run is a local inventory entry whose facts are the real module results of
a whole purge stored for the report's contract test (tests/unit/plugins/filter/fixtures/module_results/clean.json,
registered under the roles' names as purge.yml registers them). The first play only records the run and sets those
facts; the Report play (the bench_timer callback gives its start) is what is timed, from its start to the end of
the run: the records, the per-host JSON files, fleet.json/md/html, summary.txt, the latest link and set_stats.
Checked before a figure is kept: one hosts/<name>.json per host and a fleet.json that lists every host.
"""
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
TOP = os.path.dirname(HERE)
SIZES = [int(n) for n in os.environ.get("BENCH_REPORT_SIZES", "1,10,50").split(",")]
ROUNDS = int(os.environ.get("BENCH_REPORT_ROUNDS", "3"))
PY = sys.executable
FIXTURE = os.path.join(TOP, "tests", "unit", "plugins", "filter", "fixtures", "module_results", "clean.json")
# the names the roles register each module's result under, by the report's slot (as test_report_contract.py)
REGISTERED = {"found": "preflight_found", "autostart": "stop_autostart", "reaped": "stop_reaped", "hf": "sweep_hf",
              "removed": "sweep_removed", "pip": "sweep_pip", "pinned": "verify_pinned", "after": "verify_after"}
PLAY = """
- name: The hosts of the run, with the results their roles registered
  hosts: run
  gather_facts: false
  vars:
    residue_playbook: purge
    residue_targets: {targets}
  pre_tasks:
    - name: Record the run
      ansible.builtin.import_tasks: {record_run}
  tasks:
    - name: Register the stored results under the roles' names
      ansible.builtin.set_fact:
        "{{{{ item.key }}}}": "{{{{ item.value }}}}"
      loop: "{{{{ lookup('ansible.builtin.file', bench_results) | from_json | dict2items }}}}"
    - name: Mark the host done
      ansible.builtin.set_fact:
        residue_completed: true

- name: Report
  hosts: localhost
  gather_facts: false
  roles:
    - role: residue.purge.report
      vars:
        residue_run: "{{{{ hostvars['localhost']['residue_run'] }}}}"
"""


def env(extra=None):
    out = dict(os.environ)
    out.update(ANSIBLE_COLLECTIONS_PATH=os.path.join(TOP, ".build", "collections"),
               ANSIBLE_COLLECTIONS_SCAN_SYS_PATH="false", ANSIBLE_NOCOLOR="1", ANSIBLE_RETRY_FILES_ENABLED="0",
               ANSIBLE_LOCALHOST_WARNING="0", PATH=os.path.dirname(PY) + os.pathsep + os.environ["PATH"],
               ANSIBLE_CALLBACK_PLUGINS=os.path.join(HERE, "callback_plugins"), ANSIBLE_CALLBACKS_ENABLED="bench_timer")
    out.update(extra or {})
    return out


def report_once(workdir, n, round_no):
    with open(FIXTURE) as f:
        doc = json.load(f)
    results = os.path.join(workdir, "results.json")
    with open(results, "w") as f:
        json.dump(dict((REGISTERED[s["slot"]], s["result"]) for s in doc["steps"] if s["slot"] in REGISTERED), f)
    inventory = os.path.join(workdir, "inventory-%d.ini" % n)
    with open(inventory, "w") as f:
        f.write("localhost ansible_connection=local ansible_python_interpreter=%s\n[run]\n" % PY)
        for i in range(1, n + 1):
            f.write("host-%02d ansible_connection=local ansible_python_interpreter=%s bench_results=%s\n" % (i, PY, results))
    play = os.path.join(workdir, "play.yml")
    with open(play, "w") as f:
        f.write(PLAY.format(targets=json.dumps([doc["target"]]),
                            record_run=os.path.join(TOP, "playbooks", "tasks", "record_run.yml")))
    report = tempfile.mkdtemp(prefix="report-%d-%d-" % (n, round_no), dir=workdir)
    timer = os.path.join(workdir, "timer-%d-%d.json" % (n, round_no))
    start = time.time()
    proc = subprocess.run(["ansible-playbook", "-i", inventory, play, "-f", str(min(n, 10)),
                           "-e", "residue_report_dir=%s" % report], env=env({"BENCH_TIMER_OUT": timer}),
                          capture_output=True, text=True, timeout=1800, check=False)
    if proc.returncode != 0:
        raise RuntimeError("report play on %d hosts failed:\n%s" % (n, proc.stdout[-4000:]))
    with open(timer) as f:
        record = json.load(f)
    latest = os.path.join(report, "latest")
    hosts = sorted(os.listdir(os.path.join(latest, "hosts")))
    with open(os.path.join(latest, "fleet.json")) as f:
        fleet = json.load(f)
    if len(hosts) != n or sorted(r["host"] for r in fleet["hosts"]) != ["host-%02d" % i for i in range(1, n + 1)]:
        raise RuntimeError("report on %d hosts: %d record files, fleet lists %d" % (n, len(hosts), len(fleet["hosts"])))
    report_start = [p["start"] for p in record["plays"] if p["name"] == "Report"][0]
    return record["end"] - report_start, record["end"] - start


def run(workdir):
    rows = []
    for n in SIZES:
        load = os.getloadavg()[0]
        times = [report_once(workdir, n, r) for r in range(ROUNDS)]
        rows.append((n, statistics.median(t[0] for t in times), statistics.median(t[1] for t in times), load))
        print("   report: %d host(s): %.2f s" % (n, rows[-1][1]), flush=True)
    lines = [
        "## report: the report play alone, 1 to %d hosts" % max(SIZES),
        "",
        "roles/report on the controller over hosts whose facts are the stored real results of a whole purge "
        "(`clean.json`, the report contract's fixture), so no host is contacted and only the report is timed: "
        "records, hosts/*.json, fleet.json/md/html, summary.txt, the latest link, set_stats. Median of %d runs; "
        "machine shared with other sessions, load average (1 min) before each size in the last column." % ROUNDS,
        "",
        "| hosts | report play s | per host ms | whole ansible-playbook s | load |",
        "|---:|---:|---:|---:|---:|",
    ] + ["| %d | %.2f | %.0f | %.2f | %.1f |" % (n, t, 1000.0 * t / n, w, load) for n, t, w, load in rows] + [
        "",
        "- Added cost per host: %s." % " and ".join(
            "%.0f ms from %d to %d hosts" % (1000.0 * (b[1] - a[1]) / (b[0] - a[0]), a[0], b[0])
            for a, b in zip(rows, rows[1:])),
        "",
        "Reproduce: `.venv/bin/python benchmarks/run.py report` (BENCH_REPORT_SIZES=1,10,50, BENCH_REPORT_ROUNDS=3).",
    ]
    return "\n".join(lines)
