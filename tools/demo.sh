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

summary() {  # the console summary the report role wrote for the latest run (names escaped, one line each)
  sed 's/^/   /' "$report_dir/latest/summary.txt"
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
  summary
  run_playbook "purge: ansible-playbook residue.purge.purge" purge -i "$inv" residue.purge.purge -e "$targets"
  summary
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
  summary
  run_playbook "purge: ansible-playbook residue.purge.purge" purge "${local_args[@]}" residue.purge.purge
  summary
fi
echo "== playbook logs: $logs"
