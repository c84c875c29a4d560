#!/usr/bin/env bash
# make demo: retire Open-AutoGLM from one disposable lab host, the way it is done on a fleet.
#   1. start a lab host (a namespace "machine" with its own sshd, users, processes; tools/lab/lab.sh)
#   2. seed a realistic Open-AutoGLM installation on it (daemon + supervisor, two users' caches and HF
#      models, a system HF cache only its daemon knows, cron lines, a shared virtualenv)
#   3. ansible-playbook residue.purge.purge --check   (the preview: nothing changes)
#   4. ansible-playbook residue.purge.purge           (for real), and print the fleet report's summary
# Without root there is no lab: the purge runs against a throwaway sandbox home instead.
set -euo pipefail
top=$(cd "$(dirname "$0")/.." && pwd)
export PATH="$top/.venv/bin:$PATH" ANSIBLE_COLLECTIONS_PATH="$top/.build/collections" ANSIBLE_COLLECTIONS_SCAN_SYS_PATH=false \
  ANSIBLE_LOCALHOST_WARNING=0 ANSIBLE_INVENTORY_UNPARSED_WARNING=0 ANSIBLE_NOCOLOR=1 ANSIBLE_RETRY_FILES_ENABLED=0
report_dir="$top/report"
logs=$(mktemp -d /tmp/residue-demo.XXXXXX)
targets='{"residue_targets": ["open_autoglm"], "residue_report_dir": "'"$report_dir"'"}'

summary() {  # the fleet report of the latest run, in a few lines
  python3 - "$report_dir/latest" "$1" <<'PY'
import json, os, sys
run = os.path.realpath(sys.argv[1]); label = sys.argv[2]
fleet = json.load(open(os.path.join(run, "fleet.json")))
s, verb = fleet["summary"], ("would free" if fleet["run"]["check_mode"] else "freed")
h = lambda n: "%.1f MiB" % (n / 1048576.0) if n >= 1048576 else "%.1f KiB" % (n / 1024.0)
print("== %s: %d host(s) %s; found %s, %s %s, %d process(es) %s" % (
    label, s["hosts"], ", ".join("%d %s" % (n, k) for k, n in sorted(s["status_counts"].items())),
    h(s["found_bytes"]), verb, h(s["freed_bytes"]), s["stopped"], "to stop" if fleet["run"]["check_mode"] else "stopped"))
for r in fleet["hosts"]:
    for i in r["removed"]:
        what = {"hf_repo": lambda: "%s in %s" % (i["repo_id"], i["cache"]),
                "pip": lambda: "%s in %s" % (i["package"], i["path"])}.get(i["kind"], lambda: i["path"])()
        print("   %-8s %10s  %s" % (i["kind"], h(i["bytes"]) if i["bytes"] else "", what))
    for b in r.get("held_back", []):
        print("   held back: %s %s (%s: %s)%s" % (b["kind"], b["item"], b["reason"], b.get("detail") or "",
              " -- its holder is stopped first in a real run" if fleet["run"]["check_mode"] else ""))
    if r["verified"]:
        print("   verified: %s" % ("nothing of the target left, nothing pinned" if r["verified"]["clean"] else "NOT clean"))
for f in s["failures"]:
    print("   FAILED %s [%s] %s: %s" % (f["host"], f["phase"], f["item"], f["error"]))
print("   report: %s/fleet.html (fleet.md, hosts/*.json)" % run)
PY
}

run_playbook() {  # label, log name, ansible-playbook args...
  local label=$1 log="$logs/$2.log"; shift 2
  echo "== $label"
  if ! ansible-playbook "$@" >"$log" 2>&1; then
    tail -40 "$log"; echo "== $label failed (full log: $log)"; return 1
  fi
}

if [ "$(id -u)" = 0 ]; then
  lab="$top/tools/lab/lab.sh --lab demo"
  trap '$lab down >/dev/null 2>&1 || true' EXIT
  echo "== starting a disposable lab host (network/PID/mount namespaces, its own sshd)"
  $lab up 1 | sed 's/^/   /'
  inv=$($lab inventory)
  run_playbook "seeding Open-AutoGLM (daemon + supervisor, 2 users, 3 HF caches, cron, shared venv)" seed \
    -i "$inv" "$top/tools/lab/seed.yml"
  run_playbook "preview: ansible-playbook residue.purge.purge --check" check -i "$inv" residue.purge.purge --check -e "$targets"
  summary "preview (check mode, nothing changed)"
  run_playbook "purge: ansible-playbook residue.purge.purge" purge -i "$inv" residue.purge.purge -e "$targets"
  summary "purge"
  run_playbook "second run (must change nothing)" again -i "$inv" residue.purge.purge -e "$targets"
  grep -E '^demo-1 +:' "$logs/again.log" | sed 's/^/   /'
else
  sandbox=$(mktemp -d /tmp/residue-demo-home.XXXXXX)
  trap 'rm -rf "$sandbox"' EXIT
  home="$sandbox/home/$(id -un)"
  python3 "$top/tools/demo/seed_sandbox.py" "$home"
  echo "== not root: no lab host; purging a sandbox home instead: $home"
  local_args=(-i "localhost," -c local -e "ansible_python_interpreter=$top/.venv/bin/python"
              -e '{"residue_homes": ["'"$home"'"]}' -e "$targets")
  run_playbook "preview: ansible-playbook residue.purge.purge --check" check "${local_args[@]}" residue.purge.purge --check
  summary "preview (check mode, nothing changed)"
  run_playbook "purge: ansible-playbook residue.purge.purge" purge "${local_args[@]}" residue.purge.purge
  summary "purge"
fi
echo "== playbook logs: $logs"
